"""The unsubscribe link in every marketing message (docs/unsubscribe.md).

`POST /f/u/<token>` is RFC 8058 one-click: a mail client posts `List-Unsubscribe=One-Click`
with no cookie and no CSRF token, and gets 200 with a short body, never a redirect. The same URL
opened in a browser (GET) shows a page that changes nothing (mail scanners and link previews
fetch every link in a message) and whose buttons POST back to it; a post from those buttons gets
the confirmation page instead of the short body.
"""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from mailmarketer.accounts.access import public_view
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.actions import ConsentSource, Reason, do_unsubscribe
from mailmarketer.audience.emails import mask_email
from mailmarketer.audience.models import ConsentRecord
from mailmarketer.audience.tokens import read_unsubscribe_token
from mailmarketer.lib.http import client_ip

from .queries import (
    UnsubscribeTarget,
    active_subscriptions,
    is_suppressed,
    language_of,
    unsubscribe_target,
)
from .texts_pages import page_text

# The buttons on our page send `scope`; a mail client's one-click POST never does.
SCOPE_LISTS = "lists"
SCOPE_EVERYTHING = "everything"
SCOPES = (SCOPE_LISTS, SCOPE_EVERYTHING)

ONE_CLICK_DONE = "You are unsubscribed.\n"
ONE_CLICK_INVALID = "This unsubscribe link is not valid.\n"


def _public(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: no referrer may carry it to another site, no search engine may
    # index the page, and no cache may keep it (or serve one person's page to another).
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    add_never_cache_headers(response)
    return response


def _plain(text: str, status: int = 200) -> HttpResponse:
    return _public(HttpResponse(text, status=status, content_type="text/plain; charset=utf-8"))


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    return _public(render(request, template, context, status=status))


def _invalid_page(request) -> HttpResponse:
    # No details: whoever holds a broken link learns nothing about what it used to point at.
    return _page(request, "signup/unsubscribe_invalid.html", {}, status=400)


def _form_scope(request) -> str | None:
    """The button pressed on our page, or None for anything else: a mail client's one-click
    POST (`List-Unsubscribe=One-Click`, form-encoded or multipart) or any other body, which
    RFC 8058 asks us to accept."""
    try:
        form = request.POST
    except (MultiPartParserError, SuspiciousOperation):  # a body that is not a readable form
        return None
    if form.get("List-Unsubscribe") == "One-Click":
        return None
    return form.get("scope")


def _sender_name(target: UnsubscribeTarget) -> str:
    workspace = target.subscriber.workspace
    return workspace.sender_name or workspace.name


def _context(target: UnsubscribeTarget) -> dict:
    if target.subscriber is None:
        return {"gone": True}
    return {
        "gone": False,
        "language": language_of(target.subscriber),
        "address": mask_email(target.subscriber.email),
        "sender": _sender_name(target),
        "active": [s.mailing_list.name for s in active_subscriptions(target)],
        "scope_lists": None if target.lists is None else [m.name for m in target.lists],
        "suppressed": is_suppressed(target),
        "scope_lists_value": SCOPE_LISTS,
        "scope_everything_value": SCOPE_EVERYTHING,
    }


def _unsubscribe(request, target: UnsubscribeTarget, *, everything: bool, label: str) -> None:
    subscriber = target.subscriber
    if subscriber is None:  # erased or deleted since: nothing left to unsubscribe
        return
    do_unsubscribe(
        subscriber,
        None if everything else target.lists,
        actor=Actor.system(label.lower()),
        reason=Reason.BY_SUBSCRIBER,
        source=ConsentSource(
            type=ConsentRecord.SourceType.SUBSCRIBER,
            id=str(target.campaign_id or ""),
            label=label,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        ),
        # Once on the suppression list, pressing the button again has nothing more to record.
        suppress_all=everything and not is_suppressed(target),
    )


@public_view
@csrf_exempt  # RFC 8058: the mail client posts with no cookie, so there is no CSRF token
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    if request.method != "POST":
        # Never a write here: scanners and previews open links nobody clicked.
        parsed = read_unsubscribe_token(token)
        target = unsubscribe_target(parsed) if parsed else None
        if target is None:
            return _invalid_page(request)
        return _page(request, "signup/unsubscribe.html", _context(target))

    scope = _form_scope(request)
    parsed = read_unsubscribe_token(token)
    target = unsubscribe_target(parsed) if parsed else None
    if scope is None:  # one-click, from a mail client: a short answer, whatever happened
        if target is None:
            return _plain(ONE_CLICK_INVALID, status=400)
        _unsubscribe(request, target, everything=False, label="One-click unsubscribe")
        return _plain(ONE_CLICK_DONE)

    if target is None:
        return _invalid_page(request)
    if scope not in SCOPES:
        context = _context(target)
        context["problem"] = page_text(context.get("language", "en"), "unsub_bad_scope")
        return _page(request, "signup/unsubscribe.html", context, status=400)
    everything = scope == SCOPE_EVERYTHING
    label = "Unsubscribe page: everything" if everything else "Unsubscribe page"
    context = _context(target)  # before: the lists it ends are the ones still active now
    _unsubscribe(request, target, everything=everything, label=label)
    context.update(everything=everything, suppressed=is_suppressed(target))
    if not everything:  # "I did this by mistake" (views_undo.py imports this module)
        from .views_undo import form_token

        context.update(undo_url=reverse("unsubscribe-undo", args=[token]), undo=form_token(token))
    return _page(request, "signup/unsubscribed.html", context)
