"""Public pages of a campaign: "view in browser" (the message as that person received it, from a
signed link in the message), the public archive (campaigns marked for it, rendered without
anyone's data: variables.archive_subscriber fills what would be blank) and its index per
workspace (/archive/<workspace>/). No staff login; nothing here changes anything.

Neither page shows the message's own "View this email in your browser" link: they are the web
version. They render with WEB_VERSION as `view_in_browser_url` and take out every link to it
(and, in a text-only message, every line naming it) afterwards: a condition in the layout
instead would make a per-recipient piece of every message the engine renders
(rendering.SplitTemplate).

The message HTML is served with a policy that lets it run no script, load nothing but images,
submit nothing and be framed by nobody: it is content written by campaign authors, shown on our
origin.
"""

from __future__ import annotations

import re
from dataclasses import replace

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.http import require_GET

from mailmarketer.accounts.access import public_view
from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.links import manage_url, read_view_token, unsubscribe_url
from mailmarketer.audience.models import Subscriber

from . import rendering, variables
from .models import Campaign

SHOWN = (Campaign.Status.RUNNING, Campaign.Status.PAUSED, Campaign.Status.FINISHED)
MESSAGE_CSP = (
    "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
)


# Never a real address (.invalid, RFC 2606): a link to it is this page's link to itself.
WEB_VERSION = "https://web-version.invalid/"
_LINK_TO_SELF = re.compile(r'<a\b[^>]*\bhref="' + re.escape(WEB_VERSION) + r'"[^>]*>.*?</a>', re.S)


def _without_own_link(rendered: rendering.RenderedMessage) -> rendering.RenderedMessage:
    html = rendered.html
    if html is not None:
        html = _LINK_TO_SELF.sub("", html)
    text = "\n".join(line for line in rendered.text.split("\n") if WEB_VERSION not in line)
    return replace(rendered, html=html, text=text)


def _message_response(rendered: rendering.RenderedMessage) -> HttpResponse:
    rendered = _without_own_link(rendered)
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
            # This page is the web version: its own link is taken out (_message_response).
            "view_in_browser_url": WEB_VERSION,
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
        # Nobody's data: the archive shows the message as a stranger would see it, with
        # neutral words where a variable would print nothing.
        subscriber=variables.archive_subscriber(campaign),
        urls={"unsubscribe_url": here, "manage_url": here, "view_in_browser_url": WEB_VERSION},
    )
    return _rendered(request, campaign, context)


ARCHIVE_PAGE = 30


@public_view
@require_GET
def archive_index(request, ws: str):
    """The workspace's archived campaigns, newest first (ARCHIVE_PAGE of them). A workspace with
    none, or none of that name, is a 404 alike: the page says nothing about what exists."""
    workspace = Workspace.objects.filter(slug=ws).first()
    campaigns = []
    if workspace is not None:
        campaigns = list(
            Campaign.objects.filter(
                workspace=workspace,
                archive=True,
                status__in=SHOWN,
                kind=Campaign.Kind.MARKETING,
            )
            .order_by("-started_at", "-pk")
            .select_related("workspace")[:ARCHIVE_PAGE]
        )
    if not campaigns:
        return _not_found(request)
    entries = [
        {"uuid": c.uuid, "subject": _archive_subject(c), "at": c.started_at} for c in campaigns
    ]
    response = render(
        request,
        "campaigns/public_archive_index.html",
        {"workspace_name": workspace.name, "campaigns": entries},
    )
    response["Referrer-Policy"] = "no-referrer"
    return response


def _archive_subject(campaign: Campaign) -> str:
    """The subject as the archive page shows it: rendered like the archive (a subject holding
    a template, in the bounded child process), or the campaign's name if it cannot be."""
    if "{" not in campaign.subject:
        return campaign.subject
    context = rendering.recipient_context(
        workspace=rendering.workspace_context(campaign.workspace),
        campaign=rendering.campaign_context(campaign),
        subscriber=variables.archive_subscriber(campaign),
        urls={},
    )
    try:
        return rendering.render_isolated(campaign, context).subject
    except (rendering.TemplateProblem, rendering.RenderError):
        return campaign.name
