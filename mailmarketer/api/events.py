"""/events: webinars (docs/webinars.md) and their registrants.

Reading needs `forms.view`, changes `forms.manage` (webinars are part of lead capture, next to
the forms that register people for them). Times are ISO 8601 with their offset
(`2031-01-14T15:00:00+01:00`), stored as the UTC instant; `timezone` is the IANA zone the
mails and the invitation show the time in. Moving an event (PATCH of the time, zone, length,
title or join URL) mails everyone registered an update with a new invitation; POST
/events/{id}/cancel mails the cancellation. Registrants come in keyset pages, oldest first;
addresses and names are masked or left out without `audience.view_personal_data` (an unmasked
page is audited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from django.core import signing
from django.http import Http404
from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.actions import record_subscribers_listed
from mailmarketer.audience.emails import mask_email
from mailmarketer.signup import queries_webinars as queries
from mailmarketer.signup import webinars

from .access import require
from .errors import READ_ERRORS, WRITE_ERRORS, FieldErrors
from .forms import refusals  # the same map: a taken name 409, a refused setting 422 on its field
from .schemas import _Patch

router = Router(tags=["events"])

CURSOR_SALT = "mailmarketer.api.events.cursor"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class EventIn(_Body):
    title: StrictStr = Field(min_length=1, max_length=200)
    description: StrictStr = Field("", max_length=5000)
    starts_at: StrictStr = Field(description="ISO 8601 with offset, e.g. 2031-01-14T15:00+01:00")
    timezone: StrictStr = Field("UTC", description="IANA zone, e.g. Europe/Berlin")
    duration_minutes: StrictInt = 60
    join_url: StrictStr = Field("", description="sent only to registrants")
    capacity: StrictInt
    waitlist_capacity: StrictInt = 0
    registration_closes_at: StrictStr | None = Field(None, description="null: at the start")
    reminder_offsets: list[StrictInt] = Field(
        [1440, 60], description="minutes before the start at which registrants are reminded"
    )
    language: Literal["en", "de"] = "en"


class EventPatch(_Patch):
    title: StrictStr = Field(None, min_length=1, max_length=200)  # type: ignore[assignment]
    description: StrictStr = Field(None, max_length=5000)  # type: ignore[assignment]
    starts_at: StrictStr = None  # type: ignore[assignment]
    timezone: StrictStr = None  # type: ignore[assignment]
    duration_minutes: StrictInt = None  # type: ignore[assignment]
    join_url: StrictStr = None  # type: ignore[assignment]
    capacity: StrictInt = None  # type: ignore[assignment]
    waitlist_capacity: StrictInt = None  # type: ignore[assignment]
    registration_closes_at: StrictStr | None = None
    reminder_offsets: list[StrictInt] = None  # type: ignore[assignment]
    language: Literal["en", "de"] = None  # type: ignore[assignment]


class EventOut(Schema):
    id: int
    title: str
    description: str
    starts_at: datetime = Field(description="UTC")
    timezone: str
    duration_minutes: int
    join_url: str
    capacity: int
    waitlist_capacity: int
    registration_closes_at: datetime | None
    reminder_offsets: list[int]
    language: str
    status: str
    sequence: int = Field(description="grows each time the event moves or is cancelled")
    registered: int
    waiting: int
    created_at: datetime
    updated_at: datetime


class EventsOut(Schema):
    events: list[EventOut]


class RegistrantOut(Schema):
    id: int
    subscriber: UUID
    email: str = Field(description="masked without audience.view_personal_data")
    name: str | None = Field(description="as typed on the form; null without personal data")
    status: str = Field(description="registered, waitlisted or cancelled")
    registered_at: datetime
    attended: bool


class RegistrantPage(Schema):
    registrants: list[RegistrantOut]
    next_cursor: str | None


class RegistrantQuery(Schema):
    cursor: str | None = None
    limit: int = Field(100, ge=1, le=500)
    status: Literal["registered", "waitlisted", "cancelled"] | None = None


def event_out(event) -> dict:
    seats, waiting = webinars._counts(event)
    return {
        **{k: getattr(event, k) for k in ("id", *webinars.EVENT_EDITABLE)},
        "status": event.status,
        "sequence": event.sequence,
        "registered": seats,
        "waiting": waiting,
        "created_at": event.created_at,
        "updated_at": event.updated_at,
    }


def event_or_404(request, event_id: int):
    event = queries.get_event(request.workspace, event_id)
    if event is None:
        raise Http404("no such event in this workspace")
    return event


def _instant(field: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise FieldErrors(
            [
                {
                    "field": field,
                    "message": f"{field}: ISO 8601 with its offset, e.g. 2031-01-14T15:00:00+01:00",
                }
            ]
        )
    return value


def _fields(data: dict) -> dict:
    for key in ("starts_at", "registration_closes_at"):
        if key in data:
            data[key] = _instant(key, data[key])
    return data


@router.get("/events", response={200: EventsOut, **READ_ERRORS}, summary="All webinars")
@require(p.FORMS_VIEW)
def all_events(request):
    """Newest start first."""
    return {"events": [event_out(e) for e in queries.events_for(request.workspace)]}


@router.post("/events", response={201: EventOut, **WRITE_ERRORS}, summary="Create a webinar")
@require(p.FORMS_MANAGE)
def create_event(request, payload: EventIn):
    data = _fields(payload.model_dump())
    with refusals():
        event = webinars.do_create_event(
            request.workspace, actor=Actor.from_request(request), **data
        )
    return Status(201, event_out(event))


@router.get("/events/{event_id}", response={200: EventOut, **READ_ERRORS}, summary="One webinar")
@require(p.FORMS_VIEW)
def get_event(request, event_id: int):
    return event_out(event_or_404(request, event_id))


@router.patch(
    "/events/{event_id}", response={200: EventOut, **WRITE_ERRORS}, summary="Change a webinar"
)
@require(p.FORMS_MANAGE)
def patch_event(request, event_id: int, payload: EventPatch):
    """Send only what changes. A new time, zone, length, title or join URL mails everyone
    registered an update with a new invitation (SEQUENCE + 1); more seats promote people from
    the waiting list."""
    event = event_or_404(request, event_id)
    changes = _fields(payload.model_dump(exclude_unset=True))
    with refusals():
        event = webinars.do_update_event(event, changes, actor=Actor.from_request(request))
    return event_out(event)


@router.post(
    "/events/{event_id}/cancel",
    response={200: EventOut, **WRITE_ERRORS},
    summary="Cancel a webinar",
)
@require(p.FORMS_MANAGE)
def cancel_event(request, event_id: int):
    """For good: everyone registered gets the cancellation (METHOD:CANCEL), the waiting list a
    mail; no reminder goes any more. Cancelling a cancelled webinar changes nothing."""
    event = webinars.do_cancel_event(
        event_or_404(request, event_id), actor=Actor.from_request(request)
    )
    return event_out(event)


def _cursor(after_id: int | None) -> str | None:
    if after_id is None:
        return None
    return signing.Signer(salt=CURSOR_SALT).sign_object({"after": after_id})


def _after(raw: str) -> int:
    try:
        after = signing.Signer(salt=CURSOR_SALT).unsign_object(raw)["after"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        after = None
    if not isinstance(after, int):
        raise FieldErrors(
            [{"field": "cursor", "message": "not a cursor this API gave out: pass next_cursor"}]
        )
    return after


@router.get(
    "/events/{event_id}/registrants",
    response={200: RegistrantPage, **READ_ERRORS},
    summary="A webinar's registrants",
)
@require(p.FORMS_VIEW)
def registrants(request, event_id: int, filters: Query[RegistrantQuery]):
    """In id order, `limit` per page (1-500, default 100); pass `next_cursor` back as
    `cursor`. `status` filters. Without `audience.view_personal_data` the address is masked
    and the name null."""
    event = event_or_404(request, event_id)
    qs = queries.registrations_of(event, filters.status).order_by("pk")
    if filters.cursor:
        qs = qs.filter(pk__gt=_after(filters.cursor))
    rows = list(qs[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    reveal = p.VIEW_PERSONAL_DATA in request.api_token.permissions
    if reveal and rows:
        record_subscribers_listed(
            request.workspace, count=len(rows), actor=Actor.from_request(request)
        )
    return {
        "registrants": [
            {
                "id": r.pk,
                "subscriber": r.subscriber.uuid,
                "email": r.subscriber.email if reveal else mask_email(r.subscriber.email),
                "name": r.name if reveal else None,
                "status": r.status,
                "registered_at": r.registered_at,
                "attended": r.attended,
            }
            for r in rows
        ],
        "next_cursor": _cursor(rows[-1].pk) if more and rows else None,
    }
