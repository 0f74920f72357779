"""The preference centre (`/f/m/<token>`, the "Manage your subscription" link in every
marketing message) and the two self-service links it mails (docs/unsubscribe.md).

- `GET /f/m/<token>`: the person's public lists (ticked where they are on them), their name,
  and buttons to save, unsubscribe from everything, mail me my data, erase me. GET never
  changes anything: mail scanners open every link in a message.
- `POST` the same address, with Django's CSRF token (the page sets its cookie; unlike the
  one-click unsubscribe, no mail client posts here), `action` naming the button.
- `GET /f/m/data/<token>`: the personal-data export as a JSON download (a read: the link was
  mailed to the address and expires after 24 hours).
- `GET /f/m/erase/<token>`: a page with one Erase button; only its POST (with CSRF) erases.

A token that is forged, altered, expired, of another kind, or names someone gone gets a page
saying the link is not valid (400), never an error. The pages keep the referrer to our own
origin (`same-origin`, not `no-referrer` as the unsubscribe page): Chromium sends
`Origin: null` from a no-referrer page, which Django's CSRF check refuses; same-origin still
never sends the token in the URL to another site.
"""

from __future__ import annotations

import json
from functools import partial

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from mailmarketer.accounts.access import public_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.audience.actions import suppression_for
from mailmarketer.audience.emails import mask_email
from mailmarketer.audience.queries import has_tracking_consent
from mailmarketer.audience.tokens import read_manage_token
from mailmarketer.lib.http import client_ip

from . import preferences, queries
from .fields import CONTROL
from .preferences import TooManyMails, Visitor
from .texts_pages import page_text
from .tokens import DATA, ERASE, SELF_SERVICE_HOURS, read_self_service_token
from .views import _public

MAX_NAME = 200
ACTIONS = ("save", "everything", "data", "erase")


def _page(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = _public(
        render(request, template, {"referrer_policy": "same-origin", **context}, status=status)
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _invalid(request) -> HttpResponse:
    return _page(request, "signup/manage_invalid.html", {}, status=400)


def _visitor(request) -> Visitor:
    return Visitor(
        ip=client_ip(request),
        user_agent=CONTROL.sub("", request.headers.get("User-Agent", ""))[:400],
    )


def _person(token: str):
    parsed = read_manage_token(token)
    if parsed is None:
        return None
    return queries.manage_subscriber(parsed.workspace_id, parsed.subscriber_id)


def _context(subscriber, *, ticked=None, name=None, **more) -> dict:
    workspace = subscriber.workspace
    language = more.pop("language", None) or queries.language_of(subscriber)
    active = queries.active_list_ids(subscriber) if ticked is None else ticked
    tracking = preferences.tracking_notice_of(subscriber)  # the words they agreed to last
    return {
        "language": language,
        "sender": preferences.sender_of(workspace),
        "address": mask_email(subscriber.email),
        "name": subscriber.name if name is None else name,
        "max_name": MAX_NAME,
        "lists": [
            {"id": m.pk, "name": m.name, "description": m.description, "ticked": m.pk in active}
            for m in queries.public_lists(workspace)
        ],
        "others": queries.other_active_lists(subscriber),
        "suppressed": suppression_for(workspace, subscriber.email) is not None,
        "notice": preferences.notice_words(workspace, language),
        "hours": SELF_SERVICE_HOURS,
        "tracking_words": tracking.text if tracking else "",
        "tracking": has_tracking_consent(workspace, subscriber),
        **more,
    }


@public_view
@require_http_methods(["GET", "HEAD", "POST"])
def manage(request, token: str):
    subscriber = _person(token)
    if subscriber is None:
        return _invalid(request)
    language = queries.language_of(subscriber)
    if request.method != "POST":
        return _page(request, "signup/manage.html", _context(subscriber, language=language))
    words = partial(page_text, language)
    action = request.POST.get("action")
    if action not in ACTIONS:
        context = _context(subscriber, language=language, problem=words("bad_action"))
        return _page(request, "signup/manage.html", context, status=400)
    visitor = _visitor(request)
    if action == "save":
        return _save(request, subscriber, visitor, language)
    if action == "everything":
        preferences.do_unsubscribe_everything(subscriber, visitor=visitor)
        context = _context(subscriber, language=language, done=words("everything_done"))
        return _page(request, "signup/manage.html", context)
    try:
        if action == "data":
            preferences.do_request_data_mail(subscriber, visitor=visitor, language=language)
            done = words("data_sent", hours=SELF_SERVICE_HOURS)
        else:
            preferences.do_request_erasure_mail(subscriber, visitor=visitor, language=language)
            done = words("erase_sent")
    except TooManyMails:
        return _page(
            request,
            "signup/manage.html",
            _context(subscriber, language=language, problem=words("too_many_mails")),
            status=429,
        )
    except ActionError:
        context = _context(subscriber, language=language, problem=words("cannot_mail"))
        return _page(request, "signup/manage.html", context, status=409)
    return _page(request, "signup/manage.html", _context(subscriber, language=language, done=done))


def _save(request, subscriber, visitor: Visitor, language: str) -> HttpResponse:
    words = partial(page_text, language)
    public = {str(m.pk): m for m in queries.public_lists(subscriber.workspace)}
    chosen = request.POST.getlist("lists")
    name = request.POST.get("name")
    problem, errors = "", {}
    if len(chosen) > len(public) or any(c not in public for c in chosen):
        errors["lists"] = words("lists_invalid")
    if name is not None and (len(name) > MAX_NAME or CONTROL.search(name)):
        errors["name"] = words("name_invalid", limit=MAX_NAME)
    if errors:
        problem = words("problem")
        ticked = {int(c) for c in chosen if c in public}
        context = _context(
            subscriber,
            ticked=ticked,
            name=name or "",
            problem=problem,
            errors=errors,
            language=language,
        )
        return _page(request, "signup/manage.html", context, status=422)
    try:
        changed = preferences.do_update_preferences(
            subscriber,
            wanted=[public[c] for c in dict.fromkeys(chosen)],
            name=name,
            visitor=visitor,
            # Only when the page showed the box (the person has agreed to tracking before).
            tracking=request.POST.get("tracking") == "1"
            if "tracking_shown" in request.POST
            else None,
            language=language,
        )
    except ActionError as exc:
        context = _context(
            subscriber,
            problem=str(exc),
            errors={exc.field or "name": str(exc)},
            language=language,
        )
        return _page(request, "signup/manage.html", context, status=422)
    subscriber.refresh_from_db()
    if changed.refused:
        context = _context(subscriber, language=language, problem=words("not_liftable"))
        return _page(request, "signup/manage.html", context, status=409)
    return _page(
        request, "signup/manage.html", _context(subscriber, language=language, done=words("saved"))
    )


def _self_service(kind: str, token: str):
    ids = read_self_service_token(kind, token)
    return None if ids is None else queries.manage_subscriber(*ids)


@public_view
@require_http_methods(["GET", "HEAD"])
def data_download(request, token: str):
    """The person's data as the staff's export gives it. A read, not a change: the audit row
    it writes records that the data left."""
    subscriber = _self_service(DATA, token)
    if subscriber is None:
        return _invalid(request)
    document = preferences.do_export_own_data(subscriber)
    response = HttpResponse(
        json.dumps(document, indent=2, default=str, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    response.headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return _public(response)


@public_view
@require_http_methods(["GET", "HEAD", "POST"])
def erase(request, token: str):
    subscriber = _self_service(ERASE, token)
    if subscriber is None:
        return _invalid(request)
    sender = preferences.sender_of(subscriber.workspace)
    language = queries.language_of(subscriber)  # before erasure takes the submissions along
    if request.method != "POST":
        context = {"sender": sender, "address": mask_email(subscriber.email), "language": language}
        return _page(request, "signup/manage_erase.html", context)
    preferences.do_erase_self(subscriber)
    return _page(request, "signup/manage_erased.html", {"sender": sender, "language": language})
