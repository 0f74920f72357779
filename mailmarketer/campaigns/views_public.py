"""Public pages of a campaign: "view in browser" (the message as that person received it, from a
signed link in the message) and the public archive (campaigns marked for it, rendered without
anyone's data). No staff login; nothing here changes anything.

The message HTML is served with a policy that lets it run no script, load nothing but images,
submit nothing and be framed by nobody: it is content written by campaign authors, shown on our
origin.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.http import require_GET

from mailmarketer.accounts.access import public_view
from mailmarketer.audience.links import manage_url, read_view_token, unsubscribe_url
from mailmarketer.audience.models import Subscriber

from . import rendering
from .models import Campaign

SHOWN = (Campaign.Status.RUNNING, Campaign.Status.PAUSED, Campaign.Status.FINISHED)
MESSAGE_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
)


def _message_response(rendered: rendering.RenderedMessage) -> HttpResponse:
    body = rendered.html
    if body is None:
        title, text = escape(rendered.subject), escape(rendered.text)
        body = f"<!doctype html><title>{title}</title><pre>{text}</pre>"
    response = HttpResponse(body)
    response["Content-Security-Policy"] = MESSAGE_CSP
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "private, no-store"
    return response


def _rendered(request, campaign, context: dict):
    try:
        return _message_response(rendering.render_isolated(campaign, context))
    except (rendering.TemplateProblem, rendering.RenderError):
        # A template that cannot be rendered for this person (a cap, or the hard limit of
        # render_isolated) gets the page of a message that is not there, not a server error.
        return _not_found(request)


def _not_found(request):
    response = render(request, "campaigns/public_not_found.html", status=404)
    response["Referrer-Policy"] = "no-referrer"
    return response


@public_view
@require_GET
def view_in_browser(request, token: str):
    ids = read_view_token(token)
    if ids is None:
        return _not_found(request)
    workspace_id, subscriber_id, campaign_id = ids
    campaign = (
        Campaign.objects.select_related("workspace")
        .filter(pk=campaign_id, workspace_id=workspace_id, status__in=SHOWN)
        .first()
    )
    person = Subscriber.objects.filter(pk=subscriber_id, workspace_id=workspace_id).first()
    if campaign is None or person is None:
        return _not_found(request)
    unsubscribe = unsubscribe_url(workspace_id, subscriber_id, campaign_id)
    context = rendering.recipient_context(
        workspace=rendering.workspace_context(campaign.workspace),
        campaign=rendering.campaign_context(campaign),
        subscriber={
            "uuid": person.uuid,
            "email": person.email,
            "name": person.name,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "attributes": person.attributes,
        },
        urls={
            "unsubscribe_url": unsubscribe,
            "manage_url": manage_url(workspace_id, subscriber_id),
            "view_in_browser_url": settings.BASE_URL + request.path,
        },
        data=campaign.data,
    )
    return _rendered(request, campaign, context)


@public_view
@require_GET
def archive(request, uuid):
    campaign = (
        Campaign.objects.select_related("workspace")
        .filter(uuid=uuid, archive=True, status__in=SHOWN, kind=Campaign.Kind.MARKETING)
        .first()
    )
    if campaign is None:
        return _not_found(request)
    here = settings.BASE_URL + request.path
    context = rendering.recipient_context(
        workspace=rendering.workspace_context(campaign.workspace),
        campaign=rendering.campaign_context(campaign),
        # Nobody's data: the archive shows the message as a stranger would see it.
        subscriber={},
        urls={"unsubscribe_url": here, "manage_url": here, "view_in_browser_url": here},
    )
    return _rendered(request, campaign, context)
