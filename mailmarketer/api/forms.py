"""/forms: sign-up forms (CRUD) and their submissions.

A form is addressed by its numeric id or its slug. Reading needs `forms.view`, changes
`forms.manage`. Submissions come newest first in keyset pages; addresses, IPs, user agents and
page URLs are masked or left out without `audience.view_personal_data` (an unmasked page is
audited). Only `newsletter` and `webinar` forms can be made yet: another kind is a 422 on
`kind`; a webinar form names its event (`event`, an id from /events).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Literal

from django.conf import settings
from django.core import signing
from django.http import Http404
from django.urls import reverse
from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actions import Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import queries as audience_queries
from mailmarketer.audience.actions import record_subscribers_listed
from mailmarketer.audience.emails import mask_email
from mailmarketer.signup import queries
from mailmarketer.signup.actions import (
    FORM_EDITABLE,
    FormError,
    do_create_form,
    do_delete_form,
    do_update_form,
)
from mailmarketer.signup.queries_webinars import get_event
from mailmarketer.signup.tokens import EMBED, make_form_token
from mailmarketer.signup.webinars import event_of

from .access import require
from .errors import ApiError, FieldErrors
from .schemas import _Patch
from .subscribers import READ_ERRORS, WRITE_ERRORS

router = Router(tags=["forms"])

Kind = Literal["newsletter", "webinar", "resource", "evaluation"]
CURSOR_SALT = "mailmarketer.api.forms.cursor"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class FieldSpec(_Body):
    key: StrictStr = Field(
        description="built-in (name, first_name, last_name, company, "
        "job_title, phone, country) or the attribute name of a custom field"
    )
    type: Literal["builtin", "text", "number", "date", "choice", "checkbox"] = Field(
        None, description="builtin for the built-in keys, else the custom field's type"
    )
    label: StrictStr = ""
    required: StrictBool = False
    help: StrictStr = ""
    choices: list[StrictStr] = []


class FormIn(_Body):
    name: StrictStr = Field(min_length=1, max_length=150)
    slug: StrictStr = Field(description="1-50 lower-case letters, digits and hyphens")
    kind: Kind = "newsletter"
    title: StrictStr = Field(min_length=1, max_length=200)
    intro: StrictStr = ""
    fields: list[FieldSpec] = []
    list_mode: Literal["fixed", "choice"] = "fixed"
    lists: list[StrictStr | int] = Field(
        [],
        description="list ids or slugs (at least one for a newsletter form; optional for "
        "webinar, resource and evaluation forms)",
    )
    notice_text: StrictStr = Field(description="the consent notice shown, word for word")
    tracking_notice_text: StrictStr = Field(
        "",
        description="optional second notice, for activity tracking: its own box and consent "
        "record; empty for none",
    )
    success_message: StrictStr = ""
    redirect_url: StrictStr = ""
    allowed_origins: list[StrictStr] = []
    language: Literal["en", "de"] = "en"
    event: int | None = Field(None, description="a webinar form's event (its id)")


class FormPatch(_Patch):
    name: StrictStr = Field(None, min_length=1, max_length=150)  # type: ignore[assignment]
    slug: StrictStr = None  # type: ignore[assignment]
    kind: Kind = None  # type: ignore[assignment]
    title: StrictStr = Field(None, min_length=1, max_length=200)  # type: ignore[assignment]
    intro: StrictStr = None  # type: ignore[assignment]
    fields: list[FieldSpec] = None  # type: ignore[assignment]
    list_mode: Literal["fixed", "choice"] = None  # type: ignore[assignment]
    lists: list[StrictStr | int] = None  # type: ignore[assignment]
    notice_text: StrictStr = None  # type: ignore[assignment]
    tracking_notice_text: StrictStr = None  # type: ignore[assignment]
    success_message: StrictStr = None  # type: ignore[assignment]
    redirect_url: StrictStr = None  # type: ignore[assignment]
    allowed_origins: list[StrictStr] = None  # type: ignore[assignment]
    language: Literal["en", "de"] = None  # type: ignore[assignment]
    event: int = None  # type: ignore[assignment]


class NoticeOut(Schema):
    name: str
    version: int
    text: str
    sha256: str


class FormOut(Schema):
    id: int
    name: str
    slug: str
    kind: str
    title: str
    intro: str
    fields: list[dict]
    list_mode: str
    lists: list[int]
    notice: NoticeOut
    tracking_notice: NoticeOut | None = None
    success_message: str
    redirect_url: str
    allowed_origins: list[str]
    language: str
    event: int | None = Field(None, description="a webinar form's event")
    url: str = Field(description="the hosted page")
    embed_token: str = Field(
        description="the form_token a script on an allowed origin sends to the JSON address "
        "(public, like the embed code it is in; valid 400 days from this answer)"
    )
    created_at: datetime
    updated_at: datetime


class FormsOut(Schema):
    forms: list[FormOut]


class SubmissionOut(Schema):
    id: int
    created_at: datetime
    outcome: str
    via: str
    subscriber: str | None = Field(description="the subscriber's uuid, null once erased")
    email: str | None = Field(description="masked without audience.view_personal_data")
    ip: str | None
    user_agent: str | None
    page_url: str | None
    referrer: str | None


class SubmissionPage(Schema):
    submissions: list[SubmissionOut]
    next_cursor: str | None


class SubmissionQuery(Schema):
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=500)


def form_out(form) -> dict:
    return {
        **{k: getattr(form, k) for k in ("id", *FORM_EDITABLE, "created_at", "updated_at")},
        "lists": sorted(form.lists.values_list("pk", flat=True)),
        "notice": {
            "name": form.notice.name,
            "version": form.notice.version,
            "text": form.notice.text,
            "sha256": form.notice.sha256,
        },
        "tracking_notice": _notice_out(form.tracking_notice) if form.tracking_notice_id else None,
        "url": settings.BASE_URL + reverse("signup-form", args=[form.workspace.slug, form.slug]),
        "embed_token": make_form_token(form.pk, EMBED),
        "event": getattr(event_of(form), "pk", None),
    }


def _notice_out(notice) -> dict:
    return {k: getattr(notice, k) for k in ("name", "version", "text", "sha256")}


def form_or_404(request, form_id: str):
    form = queries.get_form(request.workspace, form_id)
    if form is None:
        raise Http404("no such form in this workspace")
    return form


def _event(request, event_id):
    if event_id is None:
        return None
    event = get_event(request.workspace, event_id)
    if event is None:
        raise FieldErrors([{"field": "event", "message": "no such event in this workspace"}])
    return event


def _lists(request, keys) -> list:
    found, missing = [], []
    for key in keys:
        mailing_list = audience_queries.get_list(request.workspace, key)
        (found if mailing_list else missing).append(mailing_list or key)
    if missing:
        raise FieldErrors(
            [{"field": "lists", "message": f"no such list in this workspace: {missing[0]}"}]
        )
    return found


@contextmanager
def refusals():
    """A form setting refused by the action is a 422 naming it; a taken slug a 409."""
    try:
        yield
    except Conflict as exc:
        raise ApiError(409, str(exc), code="conflict") from exc
    except FormError as exc:
        raise FieldErrors([{"field": exc.field, "message": str(exc)}]) from exc


@router.get("/forms", response={200: FormsOut, **READ_ERRORS}, summary="All forms")
@require(p.FORMS_VIEW)
def all_forms(request):
    return {"forms": [form_out(f) for f in queries.forms_for(request.workspace)]}


@router.post("/forms", response={201: FormOut, **WRITE_ERRORS}, summary="Create a form")
@require(p.FORMS_MANAGE)
def create_form(request, payload: FormIn):
    """`notice_text` becomes a versioned consent notice; the words are kept with every consent
    record the form writes."""
    data = payload.model_dump()
    lists = _lists(request, data.pop("lists"))
    notice_text = data.pop("notice_text")
    event = _event(request, data.pop("event"))
    data["fields"] = [{k: v for k, v in f.items() if v is not None} for f in data["fields"]]
    with refusals():
        form = do_create_form(
            request.workspace,
            lists=lists,
            notice_text=notice_text,
            actor=Actor.from_request(request),
            event=event,
            **data,
        )
    return Status(201, form_out(form))


@router.get("/forms/{form_id}", response={200: FormOut, **READ_ERRORS}, summary="One form")
@require(p.FORMS_VIEW)
def get_form(request, form_id: str):
    return form_out(form_or_404(request, form_id))


@router.patch("/forms/{form_id}", response={200: FormOut, **WRITE_ERRORS}, summary="Change a form")
@require(p.FORMS_MANAGE)
def patch_form(request, form_id: str, payload: FormPatch):
    """Send only what changes. New `notice_text` makes a new notice version; consent records
    already written keep the version they were given."""
    form = form_or_404(request, form_id)
    changes = payload.model_dump(exclude_unset=True)
    lists = _lists(request, changes.pop("lists")) if "lists" in changes else None
    notice_text = changes.pop("notice_text", None)
    event = _event(request, changes.pop("event", None))
    if "fields" in changes:
        changes["fields"] = [
            {k: v for k, v in f.items() if v is not None} for f in changes["fields"]
        ]
    with refusals():
        form = do_update_form(
            form,
            changes,
            lists=lists,
            notice_text=notice_text,
            actor=Actor.from_request(request),
            event=event,
        )
    return form_out(queries.get_form(request.workspace, form.pk))


@router.delete("/forms/{form_id}", response={204: None, **WRITE_ERRORS}, summary="Delete a form")
@require(p.FORMS_MANAGE)
def delete_form(request, form_id: str):
    """Its submissions go with it; the people, their subscriptions and consent records stay."""
    do_delete_form(form_or_404(request, form_id), actor=Actor.from_request(request))
    return Status(204, None)


def _cursor(before_id: int | None) -> str | None:
    if before_id is None:
        return None
    return signing.Signer(salt=CURSOR_SALT).sign_object({"before": before_id})


def _before(raw: str) -> int:
    try:
        before = signing.Signer(salt=CURSOR_SALT).unsign_object(raw)["before"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        before = None
    if not isinstance(before, int):
        raise FieldErrors(
            [{"field": "cursor", "message": "not a cursor this API gave out: pass next_cursor"}]
        )
    return before


def submission_out(row, *, reveal: bool) -> dict:
    subscriber = row.subscriber
    email = subscriber.email if subscriber else None
    return {
        "id": row.pk,
        "created_at": row.created_at,
        "outcome": row.outcome,
        "via": row.via,
        "subscriber": str(subscriber.uuid) if subscriber else None,
        "email": (email if reveal else mask_email(email)) if email else None,
        "ip": row.ip if reveal else None,
        "user_agent": row.user_agent if reveal else None,
        "page_url": row.page_url if reveal else None,
        "referrer": row.referrer if reveal else None,
    }


@router.get(
    "/forms/{form_id}/submissions",
    response={200: SubmissionPage, **READ_ERRORS},
    summary="A form's submissions",
)
@require(p.FORMS_VIEW)
def form_submissions(request, form_id: str, filters: Query[SubmissionQuery]):
    """Newest first, `limit` per page (1-500, default 50); pass `next_cursor` back as `cursor`.
    Without `audience.view_personal_data` the address is masked and IP, user agent, page and
    referrer are null."""
    form = form_or_404(request, form_id)
    before = _before(filters.cursor) if filters.cursor else None
    page, next_id = queries.submissions_page(form, before_id=before, limit=filters.limit)
    reveal = p.VIEW_PERSONAL_DATA in request.api_token.permissions
    if reveal and page:
        record_subscribers_listed(
            request.workspace, count=len(page), actor=Actor.from_request(request)
        )
    return {
        "submissions": [submission_out(row, reveal=reveal) for row in page],
        "next_cursor": _cursor(next_id),
    }
