"""Reads for campaigns: lookups always inside a workspace, and previews."""

from __future__ import annotations

import uuid

from mailmarketer.audience.models import Subscriber

from . import rendering
from .models import Attachment, Campaign, CampaignLink, Layout


def get_campaign(workspace, key) -> Campaign | None:
    """By numeric id or uuid, inside the workspace."""
    qs = Campaign.objects.filter(workspace=workspace)
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return qs.filter(pk=int(key)).first()
    try:
        return qs.filter(uuid=uuid.UUID(str(key))).first()
    except ValueError:
        return None


def campaigns_for(workspace, status: str | None = None):
    qs = Campaign.objects.filter(workspace=workspace).order_by("-created_at", "-id")
    if status:
        qs = qs.filter(status=status)
    return qs


def get_layout(workspace, key) -> Layout | None:
    if not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
        return None
    return Layout.objects.filter(workspace=workspace, pk=int(key)).first()


def layouts_for(workspace) -> list[Layout]:
    return list(Layout.objects.filter(workspace=workspace).order_by("-is_default", "name"))


def default_layout_for(workspace) -> Layout | None:
    """The workspace's own default layout; None means the built-in one is used."""
    return Layout.objects.filter(workspace=workspace, is_default=True).first()


def attachments_of(campaign: Campaign) -> list[Attachment]:
    """The attachments without their data (for listing)."""
    return list(
        Attachment.objects.filter(campaign=campaign).defer("data").order_by("filename", "id")
    )


def get_attachment(campaign: Campaign, attachment_id) -> Attachment | None:
    if not str(attachment_id).isdigit():
        return None
    return Attachment.objects.filter(campaign=campaign, pk=int(attachment_id)).first()


def links_of(campaign: Campaign) -> list[str]:
    return list(CampaignLink.objects.filter(campaign=campaign).values_list("url", flat=True))


def preview_campaign(
    campaign: Campaign, subscriber: Subscriber | None = None
) -> rendering.RenderedMessage:
    """The campaign as `subscriber` would receive it (sample data when None). Links are inert:
    the unsubscribe link of a preview changes nothing. Raises TemplateProblem or RenderError."""
    if subscriber is not None and subscriber.workspace_id != campaign.workspace_id:
        raise ValueError("the subscriber belongs to another workspace")
    person = None
    if subscriber is not None:
        person = {
            "uuid": str(subscriber.uuid),
            "email": subscriber.email,
            "name": subscriber.name,
            "first_name": subscriber.first_name,
            "last_name": subscriber.last_name,
            "attributes": subscriber.attributes or {},
        }
    context = rendering.sample_context(
        rendering.workspace_context(campaign.workspace),
        rendering.campaign_context(campaign),
        person,
    )
    return rendering.render_isolated(campaign, context)
