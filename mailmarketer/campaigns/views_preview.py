"""A campaign's preview, with the form of its test send (the send is delivery's:
delivery/views_campaign.py).

The preview page shows the subject and the text version, and the HTML inside
`<iframe sandbox="allow-same-origin">` from its own endpoint: that response's
Content-Security-Policy is `sandbox allow-same-origin` with nothing allowed but inline styles and
images (data:, https:, and our own /i/ images), so no script runs and no form posts; the page
that frames it may read its height to size the frame (frame.js), nothing in it can run to read
the app.

"Preview as" a chosen subscriber needs audience.view_personal_data: the search lists people by
address (one "subscriber.listed" audit row with the count) and the preview shows the person's
data (one "subscriber.viewed" row). The page hands the frame a signed, short-lived token naming
the person, so the look is audited once, by the page, and the frame's URL cannot be pointed at
somebody else. Without the permission the preview uses sample data (Jane Doe).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience_actions
from mailmarketer.audience.queries import (
    SubscriberFilter,
    filter_subscribers,
    get_subscriber,
    lists_of,
    search_subscribers,
)

from . import queries, rendering
from .forms import LivePreviewForm, PeopleSearchForm, PreviewSearchForm, TestSendForm
from .models import Campaign
from .views_campaigns import campaign_or_404, subnav


# allow-same-origin (never with allow-scripts) lets the page that frames it measure the message
# to size the frame (web/static/web/frame.js); the message still runs no script (no script
# source is allowed, and the frame's sandbox attribute has no allow-scripts either), posts no
# form and cannot navigate the page. Images: the web's (https:) and ours (/i/, on BASE_URL,
# which is plain http on a local evaluation).
def preview_csp() -> str:
    return (
        "sandbox allow-same-origin; default-src 'none'; "
        f"img-src data: https: {settings.BASE_URL}/i/; style-src 'unsafe-inline'; "
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
    response["Content-Security-Policy"] = preview_csp()
    response["Cache-Control"] = "no-store, private"
    return response


# -- the editor's live preview -----------------------------------------------------------------
#
# The edit page posts its unsaved form here as the marketer types (htmx, debounced): one answer
# is a fragment with the rendered subject, the text version or the error, the other (posted by
# the page into the preview frame, after the fragment came back without an error) the HTML with
# preview_csp(). Nothing is saved. The draft is rendered by queries.preview_campaign, the path the
# saved preview takes: the campaign's content in its layout, compiled and rendered in a child
# process under the hard limits, with inert links (tracking rewrites links only when sending).
#
# Choosing a person: the search (audience.view_personal_data, "subscriber.listed" with the
# count) lists members of the lists ticked in the form (the whole workspace when none is);
# picking one writes one "subscriber.viewed" row and hands the page a signed token naming the
# person, the user and the workspace, which the renders that follow carry. So the look is
# audited once when chosen, not once a keystroke, and the token cannot be pointed elsewhere.

LIVE_AS_SALT = "mailmarketer.campaigns.editor-as"
LIVE_AS_MAX_AGE = 3600  # seconds: an editing session; choose again after it


class LiveProblem(Exception):
    """Something in the posted form that stops the preview; shown in the pane."""


def people_in_lists(workspace, *, q: str, list_ids: list[int], limit: int) -> list:
    """Newest first: the people whose address or name holds `q`, on one of these lists
    (in any state: a preview may be for someone who has not confirmed yet); the whole
    workspace when no list is given."""
    qs = filter_subscribers(workspace, SubscriberFilter(q=q))
    if list_ids:
        qs = qs.filter(subscriptions__mailing_list_id__in=list_ids).distinct()
    return list(qs.order_by("-pk")[:limit])


def live_token(request, subscriber) -> str:
    return signing.dumps(
        {"s": str(subscriber.uuid), "u": request.user.pk, "w": request.workspace.pk},
        salt=LIVE_AS_SALT,
    )


def _live_subscriber(request, token: str):
    if not token:
        return None
    if not sees_personal_data(request):
        raise LiveProblem("Previewing as a subscriber needs the permission to see personal data.")
    try:
        claims = signing.loads(token, salt=LIVE_AS_SALT, max_age=LIVE_AS_MAX_AGE)
    except signing.SignatureExpired:
        raise LiveProblem(
            "The choice of subscriber has expired: choose the person again."
        ) from None
    except signing.BadSignature:
        raise LiveProblem(
            "The choice of subscriber is not valid: choose the person again."
        ) from None
    if claims.get("u") != request.user.pk or claims.get("w") != request.workspace.pk:
        raise LiveProblem("The choice of subscriber is not yours: choose the person again.")
    subscriber = get_subscriber(request.workspace, claims.get("s", ""))
    if subscriber is None:
        raise LiveProblem("That subscriber no longer exists: choose another.")
    return subscriber


def _live_draft(request, data: dict) -> Campaign:
    """An unsaved campaign made of the posted content (never saved). It takes the edited
    campaign's id, when there is one, so that `lists` renders its saved lists."""
    workspace = request.workspace
    draft = Campaign(
        workspace=workspace,
        name="",
        subject=data["subject"],
        body_format=data["body_format"],
        body=data["body"],
        text_body=data["text_body"],
    )
    if data["campaign"]:
        campaign = queries.get_campaign(workspace, data["campaign"])
        if campaign is None:
            raise Http404("No such campaign in this workspace")
        draft.pk, draft.kind, draft.name = campaign.pk, campaign.kind, campaign.name
    if data["layout"]:
        layout = queries.get_layout(workspace, data["layout"])
        if layout is None:
            raise LiveProblem("The chosen layout does not exist (any more): choose another.")
        draft.layout = layout
    return draft


def _live_render(request):
    """(rendered message, problem text): one of them is None or empty."""
    form = LivePreviewForm(request.POST)
    if not form.is_valid():
        return None, f"The preview cannot be made: {form.problem()}"
    try:
        draft = _live_draft(request, form.cleaned_data)
        subscriber = _live_subscriber(request, form.cleaned_data["preview_as"])
    except LiveProblem as problem:
        return None, str(problem)
    return _render(draft, subscriber)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
@never_cache
def live_preview(request):
    """The fragment: the subject as rendered, the text version, or the error."""
    message, error = _live_render(request)
    context = {"message": message, "render_error": error}
    return render(request, "campaigns/_live_preview.html", context)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
@never_cache
@xframe_options_sameorigin
def live_preview_html(request):
    """The HTML alone, posted by the edit page into its preview frame."""
    message, error = _live_render(request)
    if message is None:
        response = HttpResponse(error, content_type="text/plain; charset=utf-8", status=400)
    elif message.html is None:
        response = HttpResponse(
            "This campaign is plain text: it has no HTML version. The text is shown above.",
            content_type="text/plain; charset=utf-8",
        )
    else:
        response = HttpResponse(message.html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = preview_csp()
    response["Cache-Control"] = "no-store, private"
    return response


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_GET
@never_cache
def live_people(request):
    """Members of the lists ticked in the form whose address or name holds `q`."""
    if not sees_personal_data(request):
        return forbidden_page(request, p.VIEW_PERSONAL_DATA)
    form = PeopleSearchForm(request.GET, lists=lists_of(request.workspace))
    found = []
    if not form.is_valid():
        return HttpResponse("Those lists are not in this workspace.", status=400)
    q = form.cleaned_data["q"].strip()
    if q:
        found = people_in_lists(
            request.workspace, q=q, list_ids=form.cleaned_data["lists"], limit=SEARCH_LIMIT
        )
        audience_actions.record_subscribers_listed(
            request.workspace, count=len(found), actor=Actor.from_request(request)
        )
    context = {"found": found, "searched": bool(q)}
    return render(request, "campaigns/_live_people.html", context)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
@never_cache
def live_as(request):
    """Choose the person the preview is made for (audited once), or sample data."""
    subscriber = None
    raw = request.POST.get("subscriber", "")
    if raw:
        if not sees_personal_data(request):
            return forbidden_page(request, p.VIEW_PERSONAL_DATA)
        subscriber = chosen_subscriber(request, raw)
        audience_actions.record_subscriber_viewed(subscriber, actor=Actor.from_request(request))
    context = {
        "subscriber": subscriber,
        "token": live_token(request, subscriber) if subscriber else "",
        "can_choose": sees_personal_data(request),
    }
    response = render(request, "campaigns/_live_as.html", context)
    # After the swap, so that the render it starts reads the new token (the button that asked
    # is gone by then: htmx fires the event on the body).
    response["HX-Trigger-After-Settle"] = "preview-as-changed"
    return response
