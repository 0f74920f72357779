"""What a form asks, and reading what a person sent back.

A form's `fields` is a list of specs: `{"key", "type", "label", "required", "help", "choices"}`.
Built-in keys (name, first_name, ...) have the type "builtin"; custom fields are typed (text,
number, date, choice, checkbox) and stored as subscriber attributes of that type under their
key. `name` goes to the subscriber's name, every other key to an attribute of the same name.

Reading a submission (`read_submission`) checks every value against its spec and refuses
anything the form does not ask (an unknown field is an error naming it, not silently dropped),
so the JSON endpoint, the hosted page and the embed all get the same checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from mailmarketer.accounts.actions import ActionError
from mailmarketer.audience.emails import InvalidEmail, normalise_email

from .texts import text

BUILTIN = ("name", "first_name", "last_name", "company", "job_title", "phone", "country")
CUSTOM_TYPES = ("text", "number", "date", "choice", "checkbox")
# Keys the form itself uses in what it posts.
EMAIL, LISTS, CONSENT, TOKEN, PAGE_URL = "email", "lists", "consent", "form_token", "page_url"
# The honeypot: hidden from people (hidden attribute, off the tab order); bots that fill every
# field fill it. Named like a field bots like to fill.
HONEYPOT = "website"
# The second, optional box: consent to activity tracking (a form with a tracking notice).
TRACKING = "tracking_consent"
ALTCHA = "altcha"  # the proof-of-work solution (altcha.py), checked before the fields
RESERVED = frozenset({EMAIL, LISTS, CONSENT, TOKEN, PAGE_URL, HONEYPOT, TRACKING, ALTCHA})
# Kinds a person may send without ticking the consent box: they ask for a resource or an
# evaluation, and join the form's lists only when they tick it (docs/resources.md, leads.md).
OPTIONAL_CONSENT_KINDS = frozenset({"resource", "evaluation"})
# What an evaluation form posts besides its fields (read by leads.read_lead_fields).
KIND_KEYS = {"evaluation": frozenset({"product", "message"})}

VALUE_LIMIT = 200  # characters of one value; longer is refused, not cut
MAX_FIELDS = 30
MAX_CHOICES = 50
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,49}")
# Control characters have no place in a name or a company, and PostgreSQL cannot store NUL.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FormError(ActionError):
    """A form setting is not valid; `field` names it (the API's 422, the builder's field)."""

    def __init__(self, field: str, message: str, code: str = "invalid"):
        super().__init__(message, code=code)
        self.field = field


class FieldsError(FormError):
    """The field configuration is not valid."""

    def __init__(self, message: str):
        super().__init__("fields", message)


def clean_fields(specs) -> list[dict]:
    """The field specs in their stored shape, or FieldsError saying which one is wrong."""
    if not isinstance(specs, list):
        raise FieldsError("fields must be a list")
    if len(specs) > MAX_FIELDS:
        raise FieldsError(f"at most {MAX_FIELDS} fields")
    cleaned, seen = [], set()
    for number, spec in enumerate(specs, start=1):
        if not isinstance(spec, dict):
            raise FieldsError(f"field {number}: must be an object")
        unknown = set(spec) - {"key", "type", "label", "required", "help", "choices"}
        if unknown:
            raise FieldsError(f"field {number}: unknown settings {', '.join(sorted(unknown))}")
        key = str(spec.get("key") or "")
        kind = str(spec.get("type") or ("builtin" if key in BUILTIN else "text"))
        if not KEY_PATTERN.fullmatch(key):
            raise FieldsError(
                f"field {number}: the key {key!r} must be lower-case letters, digits and _, "
                "starting with a letter"
            )
        if key in RESERVED:
            raise FieldsError(f"field {number}: {key!r} is used by every form; choose another")
        if key in seen:
            raise FieldsError(f"field {number}: the key {key!r} is used twice")
        seen.add(key)
        if kind == "builtin" and key not in BUILTIN:
            raise FieldsError(f"field {number}: {key!r} is not a built-in field")
        if kind != "builtin" and kind not in CUSTOM_TYPES:
            raise FieldsError(
                f"field {number}: unknown type {kind!r} (one of {', '.join(CUSTOM_TYPES)})"
            )
        if kind != "builtin" and key in BUILTIN:
            raise FieldsError(f"field {number}: {key!r} is a built-in field; use type builtin")
        choices = spec.get("choices") or []
        if kind == "choice":
            if not isinstance(choices, list) or not choices or len(choices) > MAX_CHOICES:
                raise FieldsError(f"field {number}: a choice needs 1 to {MAX_CHOICES} options")
            choices = [str(c).strip()[:VALUE_LIMIT] for c in choices]
            if not all(choices) or len(set(choices)) != len(choices):
                raise FieldsError(f"field {number}: options must be distinct and not empty")
        elif choices:
            raise FieldsError(f"field {number}: only a choice field has options")
        cleaned.append(
            {
                "key": key,
                "type": kind,
                "label": str(spec.get("label") or "").strip()[:VALUE_LIMIT],
                "required": bool(spec.get("required")),
                "help": str(spec.get("help") or "").strip()[:500],
                "choices": choices,
            }
        )
    return cleaned


def label_of(spec: dict, language: str) -> str:
    if spec["label"]:
        return spec["label"]
    return text(language, spec["key"]) if spec["type"] == "builtin" else spec["key"]


@dataclass
class Submitted:
    email: str = ""
    name: str = ""
    attributes: dict = field(default_factory=dict)
    lists: list[int] = field(default_factory=list)  # ids the person ticked (choice forms)
    page_url: str = ""
    tracking: bool = False  # ticked the activity-tracking box of a form that has one
    errors: dict[str, str] = field(default_factory=dict)
    consented: bool = True  # the consent box was ticked (always, for newsletter forms)
    extra: dict = field(default_factory=dict)  # what a kind reads itself (a lead's product)


def _one(data, key):
    """One value whether the data is a QueryDict (the page) or a dict (JSON)."""
    if hasattr(data, "getlist"):
        values = data.getlist(key)
        return values[-1] if values else None
    return data.get(key)


def _many(data, key) -> list:
    if hasattr(data, "getlist"):
        return data.getlist(key)
    value = data.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _truthy(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "on", "yes")


def _read_value(spec: dict, raw, language: str):
    """(value to store or None when blank, error message or "")."""
    if spec["type"] == "checkbox":
        return _truthy(raw), ""
    if isinstance(raw, (dict, list)):
        return None, text(language, "required")
    value = "" if raw is None else str(raw).strip()
    if not value:
        return None, ""
    if len(value) > VALUE_LIMIT:
        return None, text(language, "too_long", limit=VALUE_LIMIT)
    if CONTROL.search(value):
        return None, text(language, "invalid_characters")
    if spec["type"] == "number":
        try:
            number = float(value.replace(",", "."))
        except ValueError:
            return None, text(language, "invalid_number")
        if number != number or number in (float("inf"), float("-inf")):
            return None, text(language, "invalid_number")
        return (int(number) if number.is_integer() and abs(number) < 2**53 else number), ""
    if spec["type"] == "date":
        try:
            return date.fromisoformat(value).isoformat(), ""
        except ValueError:
            return None, text(language, "invalid_date")
    if spec["type"] == "choice" and value not in spec["choices"]:
        return None, text(language, "invalid_choice")
    return value, ""


def read_submission(form, data, *, offered_list_ids: list[int], language: str) -> Submitted:
    """What the person sent, checked against the form; errors by field name. The honeypot and
    the token are checked by the caller (they block rather than ask for a correction)."""
    specs = form.fields
    result = Submitted()
    known = RESERVED | KIND_KEYS.get(form.kind, frozenset()) | {spec["key"] for spec in specs}
    for key in data:
        if key not in known:
            result.errors[key] = text(language, "unknown_field", name=key[:50])

    raw_email = _one(data, EMAIL)
    if not isinstance(raw_email, str) or not raw_email.strip():
        result.errors[EMAIL] = text(language, "required")
    elif len(raw_email) > 254:
        result.errors[EMAIL] = text(language, "too_long", limit=254)
    else:
        try:
            result.email = normalise_email(raw_email)
        except InvalidEmail:
            result.errors[EMAIL] = text(language, "invalid_email")

    for spec in specs:
        value, problem = _read_value(spec, _one(data, spec["key"]), language)
        if problem:
            result.errors[spec["key"]] = problem
        elif spec["required"] and (value is None or value is False):
            result.errors[spec["key"]] = text(language, "required")
        elif value is not None:
            if spec["key"] == "name":
                result.name = value
            else:
                result.attributes[spec["key"]] = value

    if not result.name:
        # A form asking first and last name still gives the person a name (what campaigns
        # greet them by); the parts stay as attributes too.
        parts = [result.attributes.get(k) for k in ("first_name", "last_name")]
        result.name = " ".join(str(p) for p in parts if p)

    result.consented = _truthy(_one(data, CONSENT))
    if not result.consented and form.kind not in OPTIONAL_CONSENT_KINDS:
        result.errors[CONSENT] = text(language, "consent_required")

    if not result.consented:
        result.lists = []
    elif form.list_mode == form.ListMode.CHOICE:
        chosen = []
        for raw in _many(data, LISTS):
            try:
                list_id = int(raw)
            except (TypeError, ValueError):
                list_id = None
            if list_id not in offered_list_ids:
                result.errors[LISTS] = text(language, "invalid_choice")
                break
            chosen.append(list_id)
        # A webinar form's lists are an extra the person may take or leave.
        if not chosen and LISTS not in result.errors and form.kind != form.Kind.WEBINAR:
            result.errors[LISTS] = text(language, "lists_required")
        result.lists = sorted(set(chosen))
    else:
        result.lists = list(offered_list_ids)

    # Ticked on a form without a tracking notice means nothing: there were no words to agree to.
    result.tracking = bool(form.tracking_notice_id) and _truthy(_one(data, TRACKING))

    page_url = _one(data, PAGE_URL)
    if isinstance(page_url, str):
        result.page_url = CONTROL.sub("", page_url).strip()[:500]
    return result
