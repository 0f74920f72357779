"""Writing a campaign: create, edit, attachments, clone, delete.

Each view names its one permission in its decorator (campaigns.manage to write). Writes go
through actions.py; a refusal is shown with a 4xx status, on the field it names when it names
one (a template error with its line). Campaigns are looked up inside request.workspace only, so
another workspace's id is a 404.

The edit page is the editor: the form (content, sender, audience, schedule, options) beside a
live preview of the unsaved content (views_preview.live_preview) and the workspace's images
(views_images.py); a new campaign can start from one of the gallery's starters (gallery.py,
`?start=<key>`), which only fills the form.

The list of campaigns and one campaign's page (its status, the buttons its status allows, its
live progress), the ledger and the test send are delivery's (delivery/views_campaign.py): they
show and change how the campaign is sent. A refusal here links back to that page by its name.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.queries import lists_of
from mailmarketer.audience.segments.queries import segments_for

from . import actions, gallery, images, queries
from .forms import (
    AttachmentForm,
    CampaignForm,
    ImageForm,
    header_formset,
)
from .models import EDITABLE_STATUSES, Campaign

Status = Campaign.Status
PAGE_SIZE = 50
POLL_SECONDS = 2


# -- shared by the campaign pages ------------------------------------------------------------


def status_for(exc: ActionError) -> int:
    if isinstance(exc, Conflict):
        return 409
    if exc.code == "forbidden":
        return 403
    return 400


def campaign_or_404(request, campaign_id: int) -> Campaign:
    campaign = queries.get_campaign(request.workspace, int(campaign_id))
    if campaign is None:
        raise Http404("No such campaign in this workspace")
    return campaign


def subnav(request, current: str) -> list[dict]:
    ws = request.workspace.slug
    items = [
        ("campaigns", "Campaigns", reverse("campaigns-home", kwargs={"ws": ws})),
        ("layouts", "Layouts", reverse("campaign-layouts", kwargs={"ws": ws})),
    ]
    return [
        {"key": key, "label": label, "url": url, "current": key == current}
        for key, label, url in items
    ]


# -- writing a campaign ----------------------------------------------------------------------


def _campaign_form(request, data=None, **kwargs) -> CampaignForm:
    workspace = request.workspace
    return CampaignForm(
        data,
        workspace=workspace,
        lists=lists_of(workspace),
        segments=segments_for(workspace),
        layouts=queries.layouts_for(workspace),
        default_layout=queries.default_layout_for(workspace),
        **kwargs,
    )


def _put_error(form, headers, exc: ActionError) -> str:
    """The action's refusal onto the field it names; returns it when it names none."""
    name = exc.field
    if name == "headers":
        headers._non_form_errors = headers.error_class([str(exc)])
        return ""
    if name is not None and name in form.fields:
        form.add_error(name, str(exc))
        return ""
    return str(exc)


def _edit_page(
    request,
    form,
    headers,
    *,
    campaign=None,
    attachment_form=None,
    error="",
    status=200,
    starters=(),
    start="",
):
    context = {
        "subnav": subnav(request, "campaigns"),
        "campaign": campaign,
        "form": form,
        "headers": headers,
        "attachments": queries.attachments_of(campaign) if campaign else [],
        "attachment_form": attachment_form or AttachmentForm(),
        "error": error,
        "image_form": ImageForm(),
        "images": _images(request.workspace),
        "can_choose": request.membership.has(p.VIEW_PERSONAL_DATA),
        "starters": starters,
        "start": start,
    }
    return render(request, "campaigns/edit.html", context, status=status)


def _images(workspace) -> list[dict]:
    return [
        {
            "url": images.image_url(image),
            "filename": image.filename,
            "size": image.size,
            "alt": image.filename.rsplit(".", 1)[0],
        }
        for image in images.images_for(workspace)
    ]


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def campaign_new(request):
    if request.method == "GET":
        start = request.GET.get("start", "")
        initial = {"body_format": Campaign.Format.MARKDOWN}
        if start:
            starter = gallery.get_starter(start)
            if starter is None:
                raise Http404(f"No starting point called {start!r}")
            initial.update(starter.initial())
        form = _campaign_form(request, initial=initial)
        return _edit_page(request, form, header_formset(), starters=gallery.STARTERS, start=start)
    form = _campaign_form(request, request.POST)
    headers = header_formset(request.POST)
    if not (form.is_valid() and headers.is_valid()):
        return _edit_page(request, form, headers, status=400)
    try:
        campaign = actions.do_create_campaign(
            request.workspace,
            actor=Actor.from_request(request),
            **form.changes(),
            headers=headers.headers(),
        )
    except ActionError as exc:
        error = _put_error(form, headers, exc)
        return _edit_page(request, form, headers, error=error, status=status_for(exc))
    messages.success(request, f"The campaign “{campaign.name}” was saved as a draft.")
    return redirect("campaign", ws=request.workspace.slug, campaign_id=campaign.pk)


def refused_page(request, campaign: Campaign, *, error: str, status: int):
    """A refusal of a change to the campaign, with the way back to its page."""
    context = {"subnav": subnav(request, "campaigns"), "campaign": campaign, "error": error}
    return render(request, "campaigns/refused.html", context, status=status)


def _not_editable(request, campaign):
    return refused_page(
        request,
        campaign,
        error=f"This campaign is {campaign.get_status_display().lower()}: only drafts and "
        "scheduled campaigns can be changed. Clone it to start from its content.",
        status=409,
    )


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def campaign_edit(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if campaign.status not in EDITABLE_STATUSES:
        return _not_editable(request, campaign)
    if request.method == "GET":
        form = _campaign_form(request, initial=CampaignForm.initial_for(campaign))
        return _edit_page(request, form, header_formset(campaign=campaign), campaign=campaign)
    form = _campaign_form(request, request.POST)
    headers = header_formset(request.POST)
    if not (form.is_valid() and headers.is_valid()):
        return _edit_page(request, form, headers, campaign=campaign, status=400)
    try:
        actions.do_update_campaign(
            campaign,
            {**form.changes(), "headers": headers.headers()},
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        campaign.refresh_from_db()
        error = _put_error(form, headers, exc)
        return _edit_page(
            request, form, headers, campaign=campaign, error=error, status=status_for(exc)
        )
    messages.success(request, f"The campaign “{campaign.name}” was saved.")
    return redirect("campaign", ws=request.workspace.slug, campaign_id=campaign.pk)


def _attachment_error(request, campaign, attachment_form, error="", status=400):
    form = _campaign_form(request, initial=CampaignForm.initial_for(campaign))
    return _edit_page(
        request,
        form,
        header_formset(campaign=campaign),
        campaign=campaign,
        attachment_form=attachment_form,
        error=error,
        status=status,
    )


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def attachment_add(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if campaign.status not in EDITABLE_STATUSES:
        return _not_editable(request, campaign)
    form = AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        return _attachment_error(request, campaign, form)
    upload = form.cleaned_data["file"]
    try:
        attachment = actions.do_add_attachment(
            campaign,
            filename=upload.name,
            content_type=form.content_type(),
            data=upload.read(),
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        form.add_error("file", str(exc))
        return _attachment_error(request, campaign, form, status=status_for(exc))
    messages.success(request, f"Attached {attachment.filename}.")
    url = reverse(
        "campaign-edit", kwargs={"ws": request.workspace.slug, "campaign_id": campaign.pk}
    )
    return redirect(f"{url}#attachments")


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def attachment_remove(request, campaign_id: int, attachment_id: int):
    campaign = campaign_or_404(request, campaign_id)
    attachment = queries.get_attachment(campaign, attachment_id)
    if attachment is None:
        raise Http404("No such attachment on this campaign")
    try:
        actions.do_remove_attachment(attachment, actor=Actor.from_request(request))
    except ActionError as exc:
        return refused_page(request, campaign, error=str(exc), status=status_for(exc))
    messages.success(request, f"Removed {attachment.filename}.")
    url = reverse(
        "campaign-edit", kwargs={"ws": request.workspace.slug, "campaign_id": campaign.pk}
    )
    return redirect(f"{url}#attachments")


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def campaign_clone(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    clone = actions.do_clone_campaign(campaign, actor=Actor.from_request(request))
    messages.success(request, f"Cloned as the draft “{clone.name}”.")
    return redirect("campaign-edit", ws=request.workspace.slug, campaign_id=clone.pk)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def campaign_delete(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    if campaign.status != Status.DRAFT:
        return refused_page(
            request,
            campaign,
            error=f"Only drafts can be deleted; this campaign is "
            f"{campaign.get_status_display().lower()}. Cancel it instead: its record stays.",
            status=409,
        )
    if request.method == "GET":
        context = {"subnav": subnav(request, "campaigns"), "campaign": campaign}
        return render(request, "campaigns/delete.html", context)
    try:
        actions.do_delete_campaign(campaign, actor=Actor.from_request(request))
    except ActionError as exc:
        return refused_page(request, campaign, error=str(exc), status=status_for(exc))
    messages.success(request, f"The draft “{campaign.name}” was deleted.")
    return redirect("campaigns-home", ws=request.workspace.slug)
