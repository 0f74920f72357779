"""A campaign's preview, with the form of its test send (the send is delivery's:
delivery/views_campaign.py).

The preview page shows the subject and the text version, and the HTML inside
`<iframe sandbox="">` from its own endpoint, as the outbox does (web/views_outbox.py): that
response's Content-Security-Policy is `sandbox` with nothing allowed but inline styles and
images (data: and https:, since a campaign's images live on the web), so no script runs, no form
posts and the frame is an opaque origin that can read nothing of the app.

"Preview as" a chosen subscriber needs audience.view_personal_data: the search lists people by
address (one "subscriber.listed" audit row with the count) and the preview shows the person's
data (one "subscriber.viewed" row). The page hands the frame a signed, short-lived token naming
the person, so the look is audited once, by the page, and the frame's URL cannot be pointed at
somebody else. Without the permission the preview uses sample data (Jane Doe).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.core import signing
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience_actions
from mailmarketer.audience.queries import SubscriberFilter, get_subscriber, search_subscribers

from . import queries, rendering
from .forms import PreviewSearchForm, TestSendForm
from .views_campaigns import campaign_or_404, subnav

PREVIEW_CSP = (
    "sandbox; default-src 'none'; img-src data: https:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
PREVIEW_TOKEN_SALT = "mailmarketer.campaigns.preview-as"  # noqa: S105 (a salt, not a secret)
PREVIEW_TOKEN_MAX_AGE = 600  # seconds: long enough to read a preview, too short to share
SEARCH_LIMIT = 10


def sees_personal_data(request) -> bool:
    return request.membership.has(p.VIEW_PERSONAL_DATA)


def forbidden_page(request, permission: str):
    return render(request, "web/forbidden.html", {"permission": permission}, status=403)


def chosen_subscriber(request, raw: str):
    """The subscriber named by `as` (their uuid), inside the workspace; 404 when there is
    none."""
    if not raw:
        return None
    try:
        key = uuid.UUID(raw)
    except ValueError:
        raise Http404("No such subscriber in this workspace") from None
    subscriber = get_subscriber(request.workspace, key)
    if subscriber is None:
        raise Http404("No such subscriber in this workspace")
    return subscriber


def frame_token(request, campaign, subscriber) -> str:
    return signing.dumps(
        {"c": campaign.pk, "s": str(subscriber.uuid), "u": request.user.pk},
        salt=PREVIEW_TOKEN_SALT,
    )


def _render(campaign, subscriber):
    """(rendered message, error text)."""
    try:
        return queries.preview_campaign(campaign, subscriber), ""
    except rendering.TemplateProblem as problem:
        return None, f"The campaign cannot be rendered: {problem}"
    except rendering.RenderError as exc:
        return None, f"The campaign cannot be rendered for this person: {exc}"


def preview_page(request, campaign, *, test_form=None, error="", status=200):
    reveal = sees_personal_data(request)
    raw = request.GET.get("as", "") if request.method == "GET" else request.POST.get("as", "")
    if raw and not reveal:
        return forbidden_page(request, p.VIEW_PERSONAL_DATA)
    subscriber = chosen_subscriber(request, raw)
    actor = Actor.from_request(request)
    search = PreviewSearchForm(request.GET if request.method == "GET" else None)
    found = []
    if reveal and search.is_valid() and search.cleaned_data["q"].strip():
        found, _ = search_subscribers(
            request.workspace,
            SubscriberFilter(q=search.cleaned_data["q"].strip()),
            limit=SEARCH_LIMIT,
        )
        audience_actions.record_subscribers_listed(request.workspace, count=len(found), actor=actor)
    message, render_error = _render(campaign, subscriber)
    if subscriber is not None:
        audience_actions.record_subscriber_viewed(subscriber, actor=actor)
    frame_url = reverse(
        "campaign-preview-html",
        kwargs={"ws": request.workspace.slug, "campaign_id": campaign.pk},
    )
    if subscriber is not None:
        frame_url += "?" + urlencode({"as": frame_token(request, campaign, subscriber)})
    can_manage = request.membership.has(p.CAMPAIGNS_MANAGE)
    context = {
        "subnav": subnav(request, "campaigns"),
        "campaign": campaign,
        "message": message,
        "render_error": render_error,
        "error": error,
        "subscriber": subscriber,
        "can_choose": reveal,
        "search": search,
        "searched": search.is_bound and bool(request.GET.get("q", "").strip()),
        "found": found,
        "frame_url": frame_url,
        "can_test": can_manage,
        "test_form": test_form or (TestSendForm() if can_manage else None),
    }
    return render(request, "campaigns/preview.html", context, status=status)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaign_preview(request, campaign_id: int):
    return preview_page(request, campaign_or_404(request, campaign_id))


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
@never_cache
@xframe_options_sameorigin
def campaign_preview_html(request, campaign_id: int):
    """The HTML alone, for the preview's sandboxed frame (see the module docstring)."""
    campaign = campaign_or_404(request, campaign_id)
    subscriber = None
    token = request.GET.get("as", "")
    if token:
        if not sees_personal_data(request):
            return forbidden_page(request, p.VIEW_PERSONAL_DATA)
        try:
            claims = signing.loads(token, salt=PREVIEW_TOKEN_SALT, max_age=PREVIEW_TOKEN_MAX_AGE)
        except signing.BadSignature:
            raise Http404("This preview link has expired: open the preview again") from None
        if claims.get("c") != campaign.pk or claims.get("u") != request.user.pk:
            raise Http404("This preview link is not for this campaign")
        subscriber = get_subscriber(request.workspace, claims.get("s", ""))
        if subscriber is None:
            raise Http404("No such subscriber in this workspace")
    message, error = _render(campaign, subscriber)
    if message is None:
        response = HttpResponse(error, content_type="text/plain; charset=utf-8", status=400)
    elif message.html is None:
        raise Http404("This campaign is plain text: it has no HTML version")
    else:
        response = HttpResponse(message.html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = PREVIEW_CSP
    response["Cache-Control"] = "no-store, private"
    return response
