"""The public side of forms (docs/forms.md): the hosted page, the same form posted from an
embed snippet on another site, the JSON endpoint, and the double opt-in confirmation.

All three ways in go through `_submit`: the same token, honeypot, origin, field and limit
checks, and the same answer whether or not the address was known. CSRF: these routes are
exempt from Django's cookie check and carry a signed per-form token instead (tokens.py says
why). Nothing is stored unless every check passes; then one transaction stores everything:
at once for webinar, resource and evaluation forms, and for newsletter forms by the worker a
moment after the answer, from the spool line the answer waited for (spooled.py).
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from mailmarketer.accounts.access import public_view
from mailmarketer.audience.emails import mask_email
from mailmarketer.lib.http import DEFAULT_CSP, client_ip

from . import altcha, leads, queries, queries_submit, resources, spooled
from .actions import (
    AVAILABLE_KINDS,
    Blocked,
    Visit,
    count_form_view,
    do_confirm_signup,
    do_submit_form,
)
from .fields import (
    CONSENT,
    CONTROL,
    EMAIL,
    HONEYPOT,
    LISTS,
    OPTIONAL_CONSENT_KINDS,
    TOKEN,
    TRACKING,
    label_of,
    read_submission,
)
from .models import Form
from .queries_submit import FormConfig
from .texts import text
from .texts_webinars import wtext
from .tokens import EMBED, PAGE, make_form_token, read_confirm_token, read_form_token
from .views import _public
from .views_webinars import webinar_page_context, webinar_thanks
from .webinars import RegistrationClosed

logger = logging.getLogger(__name__)

# A form's post is a few hundred bytes; 32 KB leaves room for long custom fields and is far
# below what would let a flood of posts fill the server's memory.
MAX_BODY = 32 * 1024


def _ready(form: Form | None) -> bool:
    """A form that can be shown and sent: of a kind that exists, and set up for it (a resource
    form gives a resource, an evaluation form offers products)."""
    if form is None or form.kind not in AVAILABLE_KINDS:
        return False
    if form.kind == Form.Kind.RESOURCE:
        return resources.resource_of(form) is not None
    if form.kind == Form.Kind.EVALUATION:
        return leads.setup_of(form) is not None
    return True


def _config_or_404(ws: str, form_slug: str) -> FormConfig:
    config = queries_submit.form_config(ws, form_slug)
    if config is None or not _ready(config.form):
        raise Http404("No such form")
    return config


def _own_origin() -> str:
    return settings.BASE_URL


def _origin_allowed(form: Form, origin: str | None) -> bool:
    """A post from a browser names its page's origin; only ours and the form's may post. No
    Origin (scripts) and the opaque "null" (what Chromium sends from a page with
    Referrer-Policy: no-referrer, as ours are) are let through: this check only keeps
    browsers on unlisted sites out; the token and the limits apply to every post."""
    if not origin or origin == "null":
        return True
    return origin == _own_origin() or origin in form.allowed_origins


def _csp(form: Form) -> str:
    # A redirect after the post goes to the form's own site: the page's form-action must let
    # the browser follow it (Chromium checks form-action on redirects).
    targets = " ".join(form.allowed_origins)
    return DEFAULT_CSP.replace("form-action 'self'", f"form-action 'self' {targets}".rstrip())


def field_rows(form: Form, values=None, errors=None) -> list[dict]:
    """What the template shows for each field: its spec, label, value and error."""
    values, errors = values or {}, errors or {}
    rows = []
    for spec in form.fields:
        value = values.get(spec["key"], "")
        rows.append(
            {
                **spec,
                "label": label_of(spec, form.language),
                "value": value if isinstance(value, str) else "",
                "checked": str(value).lower() in ("1", "true", "on", "yes"),
                "error": errors.get(spec["key"], ""),
            }
        )
    return rows


def page_context(form: Form, *, values=None, errors=None, problem: str = "") -> dict:
    values, errors = values or {}, errors or {}
    lists = queries.offered_lists(form) if form.list_mode == Form.ListMode.CHOICE else []
    ticked = {str(v) for v in values.get(LISTS, [])} if isinstance(values, dict) else set()
    return {
        "form": form,
        "t": {
            key: text(form.language, key)
            for key in (
                "email",
                "lists",
                "consent",
                "submit",
                "optional",
                "honeypot",
                "tracking",
                "noscript",
            )
        },
        "language": form.language,
        "sender": form.workspace.sender_name or form.workspace.name,
        "action": reverse("signup-form", args=[form.workspace.slug, form.slug]),
        "token": make_form_token(form.pk, PAGE),
        "rows": field_rows(form, values, errors),
        "lists": [{"id": m.pk, "name": m.name, "ticked": str(m.pk) in ticked} for m in lists],
        "email_value": values.get(EMAIL, "") if isinstance(values.get(EMAIL), str) else "",
        "email_error": errors.get(EMAIL, ""),
        "consent_error": errors.get(CONSENT, ""),
        # Kept ticked when the page comes back (e.g. a no-JavaScript embed's post landing here
        # for the proof of work): the person ticked it next to these same words.
        "consent_checked": str(values.get(CONSENT, "")).lower() in ("1", "true", "on", "yes"),
        "altcha": _altcha_context(form),
        "lists_error": errors.get(LISTS, ""),
        "other_errors": [
            f"{key}: {message}"
            for key, message in errors.items()
            if key
            not in {EMAIL, CONSENT, LISTS, altcha.FIELD, "event", leads.PRODUCT, leads.MESSAGE}
            | {s["key"] for s in form.fields}
        ],
        "problem": problem,
        **_kind_context(form, values, errors),
        # Rendered exactly as stored: the words a consent record points at are these words.
        "notice_text": form.notice.text,
        # The optional second box (activity tracking), its words likewise exact.
        "tracking_text": form.tracking_notice.text if form.tracking_notice_id else "",
        "tracking_ticked": str(values.get(TRACKING, "")).lower() in ("1", "true", "on", "yes"),
        "names": {
            "tracking": TRACKING,
            "email": EMAIL,
            "consent": CONSENT,
            "lists": LISTS,
            "token": TOKEN,
            "honeypot": HONEYPOT,
        },
        **webinar_page_context(form, errors),
    }


def _altcha_context(form: Form) -> dict | None:
    """What the templates need for the proof-of-work widget, or None when it is off."""
    if not altcha.protection_for(form.workspace).required:
        return None
    return {
        "name": altcha.FIELD,
        "challenge_url": reverse("signup-form-challenge", args=[form.workspace.slug, form.slug]),
    }


def _kind_context(form: Form, values: dict, errors: dict) -> dict:
    """What a resource or evaluation form shows besides a newsletter form's fields."""
    context = {
        "consent_optional": form.kind in OPTIONAL_CONSENT_KINDS,
        # A form of those kinds without lists asks for no consent: there is nothing to join.
        "consent_shown": form.kind not in OPTIONAL_CONSENT_KINDS or form.lists.exists(),
        "evaluation": None,
    }
    if form.kind == Form.Kind.EVALUATION:
        setup = leads.setup_of(form)
        w = leads.words(form.language)

        def value(key):
            got = values.get(key, "")
            return got if isinstance(got, str) else ""

        context["evaluation"] = {
            "products": setup.products if setup else [],
            "product": value(leads.PRODUCT),
            "message": value(leads.MESSAGE),
            "product_error": errors.get(leads.PRODUCT, ""),
            "message_error": errors.get(leads.MESSAGE, ""),
            "product_label": w["product"],
            "message_label": w["message"],
            "message_limit": leads.MESSAGE_LIMIT,
        }
    return context


def _page(request, form: Form, context: dict, status: int = 200) -> HttpResponse:
    response = _public(render(request, "signup/form_page.html", context, status=status))
    response.headers["Content-Security-Policy"] = _csp(form)
    return response


KIND_THANKS = {
    Form.Kind.RESOURCE: {
        "en": "Thank you. We have sent the download link to your address; if a list you chose "
        "needs confirming, a link for that is on its way too.",
        "de": "Vielen Dank. Wir haben den Download-Link an Ihre Adresse geschickt; muss eine "
        "gewählte Liste bestätigt werden, kommt dafür ebenfalls ein Link.",
    },
    Form.Kind.EVALUATION: {
        "en": "Thank you: we have your request and will be in touch.",
        "de": "Vielen Dank: Ihre Anfrage ist bei uns angekommen, wir melden uns.",
    },
}


def _thanks_text(form: Form) -> str:
    """The form's own message, else the built-in one of its kind and language."""
    if form.success_message:
        return form.success_message
    by_kind = KIND_THANKS.get(form.kind)
    if by_kind:
        return by_kind.get(form.language, by_kind["en"])
    return webinar_thanks(form) or text(form.language, "thanks")


def _download_now(form: Form, submission) -> str:
    """The download link to show at once: resource forms whose lists are all single opt-in."""
    grant = getattr(submission, "grant", None)
    if grant is None or not resources.at_once(form):
        return ""
    return resources.download_url(grant)


def _thanks(request, form: Form, submission=None) -> HttpResponse:
    if form.redirect_url:
        return _public(HttpResponseRedirect(form.redirect_url, status=303))
    message = _thanks_text(form)
    context = {
        "form": form,
        "message": message,
        "download_url": _download_now(form, submission),
        "download_label": resources.LINK_TEXTS.get(form.language, resources.LINK_TEXTS["en"]),
        "language": form.language,
        "sender": form.workspace.sender_name or form.workspace.name,
    }
    return _public(render(request, "signup/form_done.html", context))


def _cors(response: HttpResponse, form: Form, origin: str | None) -> HttpResponse:
    if origin and origin in form.allowed_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


class Refusal(Exception):
    """Why a post was refused before anything was stored: a status, a message, and the field
    it concerns (for the JSON answer), or None when it is not about one field."""

    def __init__(self, status: int, message: str, field: str | None = None, errors=None):
        super().__init__(message)
        self.status, self.message, self.field, self.errors = status, message, field, errors


def _read_body(request, *, as_json: bool):
    """The posted data, or Refusal for a body too large or unreadable."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY:
        raise Refusal(413, "too_big")
    try:
        if as_json:
            raw = request.body
            if len(raw) > MAX_BODY:
                raise Refusal(413, "too_big")
            data = json.loads(raw or b"null")
            if not isinstance(data, dict):
                raise Refusal(400, "the body must be a JSON object of field names to values")
            return data
        return request.POST
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "the body is not valid JSON") from None
    except (MultiPartParserError, SuspiciousOperation, RequestDataTooBig):
        raise Refusal(400, "too_big") from None


def _submit(request, config: FormConfig, data, *, as_json: bool):
    """Every check, then the submission. Raises Refusal; returns the submission."""
    form = config.form
    language = form.language
    origin = request.headers.get("Origin")
    if not _origin_allowed(form, origin):
        raise Refusal(403, text(language, "blocked"))
    token = data.get(TOKEN)
    via = read_form_token(token, form.pk) if isinstance(token, str) else None
    if via is None:
        raise Refusal(422, text(language, "expired"), field=TOKEN)
    if data.get(HONEYPOT):
        raise Refusal(400, text(language, "blocked"))
    offered = [m.pk for m in config.lists]
    submitted = read_submission(form, data, offered_list_ids=offered, language=language)
    if form.kind == Form.Kind.EVALUATION:
        submitted.extra, lead_errors = leads.read_lead_fields(form, data, language)
        submitted.errors.update(lead_errors)
    if submitted.errors:
        raise Refusal(422, text(language, "problem"), errors=submitted.errors)
    solved = None
    if config.protection.required:
        try:
            solved = altcha.check(form, data.get(altcha.FIELD))
        except altcha.AltchaRefused as refused:
            raise Refusal(422, text(language, refused.reason), field=altcha.FIELD) from None
    visit = Visit(
        via="json" if as_json else ("embed" if via == EMBED else "page"),
        ip=client_ip(request),
        user_agent=_header(request, "User-Agent"),
        referrer=_header(request, "Referer"),
    )
    if spooled.takes(form):
        try:
            spooled.accept(
                form, submitted, visit, solved=solved, lists=config.chosen(submitted.lists)
            )
            return None  # stored by the worker in a moment (spooled.py)
        except Blocked as blocked:
            raise Refusal(429, text(language, blocked.reason)) from None
        except altcha.AltchaRefused as refused:
            raise Refusal(422, text(language, refused.reason), field=altcha.FIELD) from None
        except OSError:
            # The spool cannot take it (disk full, gone): the transactional path still can.
            logger.exception("form %s: the sign-up spool refused; storing directly", form.pk)
    try:
        return do_submit_form(
            form, submitted, visit, solved=solved, lists=config.chosen(submitted.lists)
        )
    except Blocked as blocked:
        raise Refusal(429, text(language, blocked.reason)) from None
    except altcha.AltchaRefused as refused:
        raise Refusal(422, text(language, refused.reason), field=altcha.FIELD) from None
    except RegistrationClosed as closed:
        raise Refusal(422, wtext(language, closed.reason), field="event") from None


def _header(request, name: str) -> str:
    # Kept as sent, less any control character (PostgreSQL cannot store NUL).
    return CONTROL.sub("", request.headers.get(name, ""))


@public_view
@csrf_exempt  # a cross-site post from an embed carries no CSRF cookie: see tokens.py
@require_http_methods(["GET", "HEAD", "POST"])
def form_page(request, ws: str, form_slug: str):
    config = _config_or_404(ws, form_slug)
    form = config.form
    if request.method != "POST":
        if request.method == "GET":
            count_form_view(form)
        return _page(request, form, page_context(form))
    data = {}
    try:
        data = _read_body(request, as_json=False)
        submission = _submit(request, config, data, as_json=False)
    except Refusal as refusal:
        message = _message(form, refusal)
        errors = dict(refusal.errors or {})
        if refusal.field:
            errors[refusal.field] = message
        context = page_context(form, values=_values(data), errors=errors, problem=message)
        return _page(request, form, context, status=refusal.status)
    return _thanks(request, form, submission)


def _values(data) -> dict:
    """What the person typed, to show again with the errors (never stored)."""
    if hasattr(data, "getlist"):
        return {key: (data.getlist(key) if key == LISTS else data.get(key)) for key in data}
    return dict(data) if isinstance(data, dict) else {}


@public_view
@csrf_exempt  # posted by scripts on the form's allowed origins: CORS and the token guard it
@require_http_methods(["POST", "OPTIONS"])
def form_json(request, ws: str, form_slug: str):
    config = queries_submit.form_config(ws, form_slug)
    form = config.form if config is not None else None
    origin = request.headers.get("Origin")
    if not _ready(form):
        return JsonResponse({"code": "not_found", "message": "no such form"}, status=404)
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        if origin and origin in form.allowed_origins:
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
        return _cors(response, form, origin)
    try:
        data = _read_body(request, as_json=True)
        submission = _submit(request, config, data, as_json=True)
    except Refusal as refusal:
        message = _message(form, refusal)
        body = {"code": _code(refusal), "message": message}
        if refusal.errors:
            body["errors"] = [{"field": k, "message": v} for k, v in refusal.errors.items()]
        elif refusal.field:
            body["errors"] = [{"field": refusal.field, "message": message}]
        return _cors(JsonResponse(body, status=refusal.status), form, origin)
    body = {
        "status": "ok",
        "message": _thanks_text(form),
        "redirect": form.redirect_url or None,
    }
    if form.kind == Form.Kind.RESOURCE:
        body["download_url"] = _download_now(form, submission) or None
    return _cors(JsonResponse(body), form, origin)


def _message(form: Form, refusal: Refusal) -> str:
    return text(form.language, "too_big") if refusal.message == "too_big" else refusal.message


def _code(refusal: Refusal) -> str:
    return {
        400: "refused",
        403: "forbidden",
        413: "too_large",
        422: "invalid",
        429: "rate_limited",
    }.get(refusal.status, "refused")


# -- confirmation ----------------------------------------------------------------------------


@public_view
@csrf_exempt  # the signed token in the URL is the authority, as for unsubscribe links
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token: str):
    confirmation_id = read_confirm_token(token)
    confirmation = queries.get_confirmation(confirmation_id) if confirmation_id else None
    language = queries.confirmation_language(confirmation) if confirmation else "en"
    if confirmation is None or confirmation.status != confirmation.Status.PENDING:
        context = {"message": text(language, "confirm_invalid"), "language": language}
        if confirmation is not None and confirmation.status == confirmation.Status.CONFIRMED:
            context["message"] = text(language, "confirmed")
            return _public(render(request, "signup/confirm_done.html", context))
        return _public(render(request, "signup/confirm_done.html", context, status=400))
    workspace = confirmation.subscriber.workspace
    sender = workspace.sender_name or workspace.name
    if request.method != "POST":
        # Never a write here: mail scanners open every link in a message.
        context = {
            "language": language,
            "sender": sender,
            "title": text(language, "confirm_title"),
            "intro": text(
                language, "confirm_intro", address=mask_email(confirmation.subscriber.email)
            ),
            "button": text(language, "confirm_button"),
        }
        return _public(render(request, "signup/confirm.html", context))
    done = do_confirm_signup(
        confirmation, ip=client_ip(request), user_agent=_header(request, "User-Agent")
    )
    key = "confirmed" if done else "confirm_invalid"
    context = {"message": text(language, key), "language": language, "sender": sender}
    return _public(
        render(request, "signup/confirm_done.html", context, status=200 if done else 400)
    )
