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
    active = queries.active_list_ids(subscriber) if ticked is None else ticked
    tracking = preferences.tracking_notice_of(subscriber)  # the words they agreed to last
    return {
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
        "notice": preferences.notice_words(workspace),
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
    if request.method != "POST":
        return _page(request, "signup/manage.html", _context(subscriber))
    action = request.POST.get("action")
    if action not in ACTIONS:
        context = _context(subscriber, problem="The form sent a choice this page does not offer.")
        return _page(request, "signup/manage.html", context, status=400)
    visitor = _visitor(request)
    if action == "save":
        return _save(request, subscriber, visitor)
    if action == "everything":
        preferences.do_unsubscribe_everything(subscriber, visitor=visitor)
        context = _context(
            subscriber,
            done="You are unsubscribed from every list, and no more "
            "marketing mail will be sent to this address.",
        )
        return _page(request, "signup/manage.html", context)
    try:
        if action == "data":
            preferences.do_request_data_mail(subscriber, visitor=visitor)
            done = "We have sent a link to your data to your address. It works for 24 hours."
        else:
            preferences.do_request_erasure_mail(subscriber, visitor=visitor)
            done = (
                "We have sent a link to your address: open it and press Erase to erase "
                "your data. Nothing is erased until then."
            )
    except TooManyMails as exc:
        return _page(
            request,
            "signup/manage.html",
            _context(subscriber, problem=str(exc).capitalize() + "."),
            status=429,
        )
    except ActionError:
        problem = (
            "We cannot send mail to this address (it bounced or was blocked): ask the sender "
            "to help."
        )
        return _page(
            request, "signup/manage.html", _context(subscriber, problem=problem), status=409
        )
    return _page(request, "signup/manage.html", _context(subscriber, done=done))


def _save(request, subscriber, visitor: Visitor) -> HttpResponse:
    public = {str(m.pk): m for m in queries.public_lists(subscriber.workspace)}
    chosen = request.POST.getlist("lists")
    name = request.POST.get("name")
    problem, errors = "", {}
    if len(chosen) > len(public) or any(c not in public for c in chosen):
        errors["lists"] = "Choose among the lists shown."
    if name is not None and (len(name) > MAX_NAME or CONTROL.search(name)):
        errors["name"] = f"At most {MAX_NAME} characters, and no control characters."
    if errors:
        problem = "Please correct the marked fields."
        ticked = {int(c) for c in chosen if c in public}
        context = _context(
            subscriber, ticked=ticked, name=name or "", problem=problem, errors=errors
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
        )
    except ActionError as exc:
        context = _context(subscriber, problem=str(exc), errors={exc.field or "name": str(exc)})
        return _page(request, "signup/manage.html", context, status=422)
    subscriber.refresh_from_db()
    if changed.refused:
        context = _context(
            subscriber,
            problem="This address is on the sender's do-not-mail list for a reason only the sender "
            "can lift (a bounce, a complaint, or their decision): no list was joined.",
        )
        return _page(request, "signup/manage.html", context, status=409)
    return _page(
        request, "signup/manage.html", _context(subscriber, done="Your choices are saved.")
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
    if request.method != "POST":
        context = {"sender": sender, "address": mask_email(subscriber.email)}
        return _page(request, "signup/manage_erase.html", context)
    preferences.do_erase_self(subscriber)
    return _page(request, "signup/manage_erased.html", {"sender": sender})
