"""Webinars (docs/webinars.md): events, registration through a webinar form, the waiting
list, the mails with their calendar invitations, reminders, attendance.

Every write is one transaction with an audit row (people by uuid only). Seats are counted
under a lock on the event's row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
transactions serialise writers), so two registrations for the last seat cannot both get it.

Mails are transactional messages through the delivery engine (`_mail`, the one place that
queues them), so each is in the ledger. They carry the event's words (the staff's) and the
person's address, never anything typed on the form: a stranger can type anyone's address.

Registration is immediate (no double opt-in): the confirmation mail carries the cancel link,
and the form's limits (per address and per IP, signup/limits.py) bound how often one address
can be mailed. Lists offered on the form still follow their own opt-in.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import urlsplit
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience import facts
from mailmarketer.audience.emails import InvalidEmail, email_key, normalise_email
from mailmarketer.audience.models import ConsentNotice, FactKind, Subscriber
from mailmarketer.delivery.transactional import do_send_transactional

from . import ics
from .fields import CONTROL, FormError
from .models import Form
from .models_webinars import Event, Registration, Reminder, WebinarForm
from .texts_webinars import wtext

logger = logging.getLogger(__name__)

EVENT_EDITABLE = (
    "title",
    "description",
    "starts_at",
    "timezone",
    "duration_minutes",
    "join_url",
    "capacity",
    "waitlist_capacity",
    "registration_closes_at",
    "reminder_offsets",
    "language",
)
# What a registrant's calendar holds: a change to any of these sends the update mail with a
# new invitation (SEQUENCE + 1).
CALENDAR_FIELDS = ("title", "starts_at", "timezone", "duration_minutes", "join_url")
MAX_CAPACITY = 1_000_000
MAX_DURATION = 7 * 24 * 60
MAX_OFFSETS = 5
MAX_OFFSET = 30 * 24 * 60
MAX_DESCRIPTION = 5000
# A cancel link works until the event is over (checked on use) and at most this long: an
# event may be planned months ahead.
CANCEL_DAYS = 400
_CANCEL_SALT = "mailmarketer.signup.webinar-cancel"
# Attendance imports: a list of addresses, one a line.
MAX_IMPORT_BYTES = 1024 * 1024
MAX_PROBLEMS = 100

Status = Registration.Status


class RegistrationClosed(Exception):
    """A registration refused before anything is stored: `reason` is a texts_webinars key
    (webinar_full, webinar_closed, webinar_cancelled)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- events ------------------------------------------------------------------------------------


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def starts_at_from_local(local: datetime, zone: str) -> datetime:
    """The UTC instant of a wall-clock time in a zone (a time skipped or repeated by a daylight
    saving change is read as the first of its kind, fold=0)."""
    if zone not in _zones():
        raise FormError("timezone", f"unknown time zone {zone!r}: use a name like Europe/Berlin")
    try:
        return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    except (OverflowError, ValueError):
        raise FormError("starts_at", "starts_at: a time between 2000 and 9000") from None


def _clean_offsets(raw) -> list[int]:
    if not isinstance(raw, list) or len(raw) > MAX_OFFSETS:
        raise FormError("reminder_offsets", f"a list of at most {MAX_OFFSETS} numbers of minutes")
    offsets = set()
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OFFSET:
            raise FormError(
                "reminder_offsets",
                f"each reminder is a whole number of minutes before the start, 1 to {MAX_OFFSET}",
            )
        offsets.add(value)
    return sorted(offsets, reverse=True)


def _within_years(field: str, value: datetime) -> datetime:
    """The UTC instant, refused outside 2000-9000: far enough for any event, and far from the
    ends of datetime, where moving to another zone (or a day earlier for a reminder)
    overflows."""
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        value = None
    if value is None or not 2000 <= value.year <= 9000:
        raise FormError(field, f"{field}: a time between the years 2000 and 9000")
    return value


def _check_event(event: Event) -> None:
    title = (event.title or "").strip()
    if not title:
        raise FormError("title", "title: required")
    if len(title) > 200 or CONTROL.search(title):
        raise FormError("title", "title: at most 200 characters, no control characters")
    event.title = title
    if len(event.description or "") > MAX_DESCRIPTION or "\x00" in (event.description or ""):
        raise FormError("description", f"description: at most {MAX_DESCRIPTION} characters")
    if event.timezone not in _zones():
        raise FormError("timezone", f"unknown time zone {event.timezone!r}")
    if not isinstance(event.starts_at, datetime) or event.starts_at.tzinfo is None:
        raise FormError("starts_at", "starts_at: a date and time with its zone")
    event.starts_at = _within_years("starts_at", event.starts_at)
    for field, top in (("duration_minutes", MAX_DURATION), ("capacity", MAX_CAPACITY)):
        value = getattr(event, field)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise FormError(field, f"{field}: a whole number from 1 to {top}")
    value = event.waitlist_capacity
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAPACITY:
        raise FormError("waitlist_capacity", f"waitlist_capacity: 0 to {MAX_CAPACITY}")
    if event.join_url:
        parts = urlsplit(event.join_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(event.join_url) > 500:
            raise FormError("join_url", "join_url: an http(s) address of at most 500 characters")
        if CONTROL.search(event.join_url) or " " in event.join_url:
            raise FormError("join_url", "join_url: no spaces or control characters")
    closes = event.registration_closes_at
    if closes is not None:
        if not isinstance(closes, datetime) or closes.tzinfo is None:
            raise FormError("registration_closes_at", "registration_closes_at: a date and time")
        event.registration_closes_at = closes = _within_years("registration_closes_at", closes)
        if closes > event.starts_at + timedelta(minutes=event.duration_minutes):
            raise FormError(
                "registration_closes_at", "registration cannot close after the event has ended"
            )
    event.reminder_offsets = _clean_offsets(event.reminder_offsets)
    if event.language not in Event.Language.values:
        raise FormError("language", "language: en or de")


def _snapshot(event: Event) -> dict:
    values = {k: getattr(event, k) for k in EVENT_EDITABLE}
    for key in ("starts_at", "registration_closes_at"):
        values[key] = values[key].isoformat() if values[key] else None
    return values


@transaction.atomic
def do_create_event(workspace, *, actor: Actor, **fields) -> Event:
    unknown = set(fields) - set(EVENT_EDITABLE)
    if unknown:
        name = sorted(unknown)[0]
        raise FormError(name, f"unknown event fields: {', '.join(sorted(unknown))}")
    event = Event(workspace=workspace, **fields)
    _check_event(event)
    event.save()
    audit("webinar.created", actor=actor, workspace=workspace, obj=event, new=_snapshot(event))
    return event


def _lock(event: Event) -> Event:
    return Event.objects.select_for_update().select_related("workspace").get(pk=event.pk)


@transaction.atomic
def do_update_event(event: Event, changes: dict, *, actor: Actor) -> Event:
    """Edits the event. Moving it (or changing what a calendar shows) raises its SEQUENCE and
    mails everyone registered the change with a new invitation; the waiting list learns the
    new time without one. More seats promote from the waiting list."""
    unknown = set(changes) - set(EVENT_EDITABLE)
    if unknown:
        name = sorted(unknown)[0]
        raise FormError(name, f"unknown event fields: {', '.join(sorted(unknown))}")
    event = _lock(event)
    if event.status == Event.Status.CANCELLED:
        raise Conflict("a cancelled webinar cannot be changed", code="cancelled")
    old = _snapshot(event)
    for key, value in changes.items():
        setattr(event, key, value)
    _check_event(event)
    new = _snapshot(event)
    diff = sorted(k for k in new if new[k] != old[k])
    if not diff:
        return event
    changed_calendar = any(k in diff for k in CALENDAR_FIELDS)
    if changed_calendar:
        event.sequence += 1
    event.updated_at = now()
    event.save()
    audit(
        "webinar.updated",
        actor=actor,
        workspace=event.workspace,
        obj=event,
        old={k: old[k] for k in diff},
        new={k: new[k] for k in diff} | ({"sequence": event.sequence} if changed_calendar else {}),
    )
    if changed_calendar or "reminder_offsets" in diff:
        # Unsent reminders follow the event's new SEQUENCE (a reminder of an older one is
        # skipped when claimed); one whose time has passed is not planned again.
        _replan_reminders(event)
    if changed_calendar:
        for registration in _active(event):
            _mail(registration, "moved", invitation=registration.status == Status.REGISTERED)
    _promote(event)
    return event


@transaction.atomic
def do_cancel_event(event: Event, *, actor: Actor) -> Event:
    """Cancels the event for good: everyone registered gets the cancellation with a
    METHOD:CANCEL notice for their calendar, the waiting list a mail without one; no reminder
    goes any more."""
    event = _lock(event)
    if event.status == Event.Status.CANCELLED:
        return event
    event.status = Event.Status.CANCELLED
    event.sequence += 1
    event.updated_at = now()
    event.save(update_fields=["status", "sequence", "updated_at"])
    Reminder.objects.filter(registration__event=event, sent_at__isnull=True).delete()
    people = _active(event)
    for registration in people:
        _mail(registration, "cancelled", invitation=registration.status == Status.REGISTERED)
    audit(
        "webinar.cancelled",
        actor=actor,
        workspace=event.workspace,
        obj=event,
        new={"sequence": event.sequence, "mailed": len(people)},
    )
    return event


def _active(event: Event) -> list[Registration]:
    return list(
        Registration.objects.filter(event=event, status__in=(Status.REGISTERED, Status.WAITLISTED))
        .select_related("subscriber", "event__workspace")
        .order_by("registered_at", "pk")
    )


# -- forms ------------------------------------------------------------------------------------


def bind_form(form: Form, event: Event | None) -> None:
    """Points a webinar form at its event (called in the form's own transaction)."""
    if form.kind != Form.Kind.WEBINAR:
        WebinarForm.objects.filter(form=form).delete()
        return
    if event is None:
        event = event_of(form)
    if event is None:
        raise FormError("event", "a webinar form needs its event")
    if event.workspace_id != form.workspace_id:
        raise FormError("event", "no such event in this workspace", code="not_found")
    WebinarForm.objects.update_or_create(
        form=form, defaults={"event": event, "workspace_id": form.workspace_id}
    )


def event_of(form: Form) -> Event | None:
    link = WebinarForm.objects.filter(form=form).select_related("event__workspace").first()
    return link.event if link else None


def _counts(event: Event) -> tuple[int, int]:
    seats = waiting = 0
    rows = Registration.objects.filter(
        event=event, status__in=(Status.REGISTERED, Status.WAITLISTED)
    ).values_list("status", flat=True)
    for status in rows:
        if status == Status.REGISTERED:
            seats += 1
        else:
            waiting += 1
    return seats, waiting


def closed_reason(event: Event, stamp: datetime | None = None) -> str | None:
    """Why nobody can register now (a texts_webinars key), or None."""
    stamp = stamp or now()
    if event.status == Event.Status.CANCELLED:
        return "webinar_cancelled"
    closes = event.registration_closes_at or event.starts_at
    if stamp >= closes:
        return "webinar_closed"
    seats, waiting = _counts(event)
    if seats >= event.capacity and waiting >= event.waitlist_capacity:
        return "webinar_full"
    return None


def check_open(form: Form) -> Event:
    """The form's event, locked for this transaction, or RegistrationClosed. Called by the
    submission before it stores anything."""
    event = event_of(form)
    if event is None:
        raise RegistrationClosed("webinar_closed")
    event = _lock(event)
    reason = closed_reason(event)
    if reason:
        raise RegistrationClosed(reason)
    return event


def register(
    event: Event,
    subscriber: Subscriber,
    *,
    form: Form,
    name: str,
    source: audience.ConsentSource,
    notice: ConsentNotice,
    actor: Actor,
) -> Registration:
    """The person's place (a seat, or on the waiting list), inside the submission's
    transaction, after check_open locked the event. Someone already registered or waiting
    keeps their place and gets nothing new (the page's answer is the same)."""
    registration = Registration.objects.filter(event=event, subscriber=subscriber).first()
    if registration is not None and registration.status != Status.CANCELLED:
        return registration
    seats, waiting = _counts(event)
    if seats < event.capacity:
        status = Status.REGISTERED
    elif waiting < event.waitlist_capacity:
        status = Status.WAITLISTED
    else:
        raise RegistrationClosed("webinar_full")
    stamp = now()
    if registration is None:
        registration = Registration(
            workspace_id=event.workspace_id, event=event, subscriber=subscriber
        )
    else:
        # A new registration: a new UID for the calendar, whose old entry was cancelled (and
        # old cancel links name the old uuid, so they no longer work).
        registration.uuid = uuid4()
    registration.status = status
    registration.name = name[:200]
    registration.form = form
    registration.registered_at = stamp
    registration.cancelled_at = None
    registration.save()
    registration.event = event
    audience.do_record_consent(
        subscriber, purpose=f"webinar:{event.pk}", source=source, notice=notice
    )
    if status == Status.REGISTERED:
        _plan_reminders([registration], event)
        _registered_fact(registration, stamp)
        _mail(registration, "registered", invitation=True)
    else:
        _mail(registration, "waitlisted")
    audit(
        "webinar.registered",
        actor=actor,
        workspace=event.workspace,
        obj=event,
        new={"subscriber": str(subscriber.uuid), "status": status},
    )
    return registration


REGISTERED, ATTENDED = FactKind.REGISTERED, FactKind.ATTENDED


def _registered_fact(registration: Registration, at) -> None:
    """ "Registered for event X" for segments: a seat, not a place on the waiting list."""
    facts.record_facts(
        [
            facts.Hit(
                registration.workspace_id,
                registration.subscriber_id,
                REGISTERED,
                facts.object_key("event", registration.event_id),
                at,
            )
        ]
    )


def _promote(event: Event) -> list[Registration]:
    """Seats free while people wait: the first on the waiting list gets each, with the
    confirmation and its invitation. The caller holds the event's lock."""
    if event.status != Event.Status.SCHEDULED or now() >= event.starts_at:
        return []
    seats, _ = _counts(event)
    free = event.capacity - seats
    if free <= 0:
        return []
    promoted = list(
        Registration.objects.filter(event=event, status=Status.WAITLISTED)
        .select_related("subscriber")
        .order_by("registered_at", "pk")[:free]
    )
    for registration in promoted:
        registration.status = Status.REGISTERED
        registration.save(update_fields=["status"])
        registration.event = event
        _registered_fact(registration, now())
        _mail(registration, "registered", invitation=True)
        audit(
            "webinar.promoted",
            actor=Actor.system("webinar waiting list"),
            workspace=event.workspace,
            obj=event,
            new={"subscriber": str(registration.subscriber.uuid)},
        )
    _plan_reminders(promoted, event)
    return promoted


@transaction.atomic
def do_cancel_registration(registration: Registration, *, actor: Actor) -> bool:
    """The person (their link) or staff cancel a place: the seat goes to the first on the
    waiting list. False when there was nothing to cancel."""
    event = _lock(registration.event)
    registration = (
        Registration.objects.select_for_update()
        .select_related("subscriber")
        .get(pk=registration.pk)
    )
    if registration.status == Status.CANCELLED:
        return False
    had_seat = registration.status == Status.REGISTERED
    registration.status = Status.CANCELLED
    registration.cancelled_at = now()
    registration.save(update_fields=["status", "cancelled_at"])
    registration.event = event
    Reminder.objects.filter(registration=registration, sent_at__isnull=True).delete()
    if event.status == Event.Status.SCHEDULED and now() < event.starts_at:
        _mail(registration, "left", invitation=had_seat, method=ics.CANCEL)
    audit(
        "webinar.registration_cancelled",
        actor=actor,
        workspace=event.workspace,
        obj=event,
        new={"subscriber": str(registration.subscriber.uuid), "had_seat": had_seat},
    )
    if had_seat:
        _promote(event)
    return True


# -- cancel links ----------------------------------------------------------------------------


def make_cancel_token(registration: Registration) -> str:
    return signing.TimestampSigner(salt=_CANCEL_SALT).sign(registration.uuid.hex)


def read_cancel_token(token: str) -> Registration | None:
    """The registration a current, unaltered link names, or None."""
    try:
        value = signing.TimestampSigner(salt=_CANCEL_SALT).unsign(
            token or "", max_age=timedelta(days=CANCEL_DAYS)
        )
        key = UUID(hex=value)
    except (signing.BadSignature, ValueError):  # altered, forged or expired
        return None
    return (
        Registration.objects.select_related("event__workspace", "subscriber")
        .filter(uuid=key)
        .first()
    )


def cancel_url(registration: Registration) -> str:
    return settings.BASE_URL + reverse("webinar-cancel", args=[make_cancel_token(registration)])


# -- mails -------------------------------------------------------------------------------------


def when_text(event: Event) -> str:
    start = ics.local_start(event)
    return f"{start:%Y-%m-%d %H:%M} ({event.timezone})"


def _mail(
    registration: Registration, kind: str, *, invitation: bool = False, method: str | None = None
) -> None:
    """One mail about this place, through the delivery engine. One that cannot go (the
    address suppressed meanwhile, the workspace without a sender) is logged and skipped: the
    registration stands."""
    event = registration.event
    language = event.language
    cancelling = kind in ("cancelled", "left")
    method = method or (ics.CANCEL if cancelling else ics.REQUEST)
    show_join = registration.status == Status.REGISTERED and not cancelling
    data = {
        "title": event.title,
        "when": when_text(event),
        "join_url": event.join_url if show_join else "",
        "cancel_url": "" if cancelling else cancel_url(registration),
        "invitation": invitation,
    }
    attachments = [ics.attachment(event, registration, method=method)] if invitation else None
    try:
        with transaction.atomic():
            do_send_transactional(
                event.workspace,
                registration.subscriber,
                actor=Actor.system(f"webinar {event.pk}"),
                subject=wtext(language, f"{kind}_subject"),
                body=wtext(language, f"{kind}_body"),
                body_format="text",
                data=data,
                attachments=attachments,
            )
    except ActionError as exc:
        logger.warning("webinar %s: %s mail not queued: %s", event.pk, kind, exc)


# -- reminders ---------------------------------------------------------------------------------


def _plan_reminders(registrations: list[Registration], event: Event) -> None:
    """The reminders still ahead for these seats (one already past is not owed)."""
    stamp = now()
    rows = [
        Reminder(
            workspace_id=event.workspace_id,
            registration=registration,
            offset_minutes=offset,
            sequence=event.sequence,
            due_at=event.starts_at - timedelta(minutes=offset),
        )
        for registration in registrations
        for offset in event.reminder_offsets
        if event.starts_at - timedelta(minutes=offset) > stamp
    ]
    Reminder.objects.bulk_create(rows, ignore_conflicts=True)


def _replan_reminders(event: Event) -> None:
    Reminder.objects.filter(registration__event=event, sent_at__isnull=True).delete()
    seated = list(Registration.objects.filter(event=event, status=Status.REGISTERED))
    _plan_reminders(seated, event)


def _due_reminder_id(stamp: datetime) -> int | None:
    # The partial index reminder_due: the oldest unsent due reminder, across workspaces (the
    # worker serves them all, as the delivery engine does).
    return (
        Reminder.objects.filter(sent_at__isnull=True, due_at__lte=stamp)
        .order_by("due_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )


def send_reminder_one() -> bool:
    """Worker duty: claim one due reminder and queue its mail. The claim is a conditional
    UPDATE (sent_at from NULL to now) that must change exactly one row: a worker that loses
    the race changes none and sends nothing, so a reminder goes at most once. The claim and
    the queued message commit together, so it also goes at least once."""
    stamp = now()
    candidate = _due_reminder_id(stamp)
    if candidate is None:
        return False
    with transaction.atomic():
        claimed = Reminder.objects.filter(pk=candidate, sent_at__isnull=True).update(sent_at=stamp)
        if claimed != 1:
            return True  # another worker got there first; there may be more to do
        reminder = Reminder.objects.select_related(
            "registration__subscriber", "registration__event__workspace"
        ).get(pk=candidate)
        registration = reminder.registration
        event = registration.event
        if (
            registration.status != Status.REGISTERED
            or event.status != Event.Status.SCHEDULED
            or reminder.sequence != event.sequence
            or event.starts_at <= stamp
            # A later reminder is due too (the workers were stopped): that one goes alone.
            or Reminder.objects.filter(
                registration=registration,
                sent_at__isnull=True,
                due_at__lte=stamp,
                offset_minutes__lt=reminder.offset_minutes,
            ).exists()
        ):
            Reminder.objects.filter(pk=candidate).update(skipped=True)
            return True
        _mail(registration, "reminder")
    return True


# -- attendance ----------------------------------------------------------------------------


@transaction.atomic
def do_set_attendance(registration: Registration, attended: bool, *, actor: Actor) -> None:
    if registration.status == Status.CANCELLED and attended:
        raise Conflict("a cancelled registration cannot be marked as attended")
    Registration.objects.filter(pk=registration.pk).update(attended=bool(attended))
    key = facts.object_key("event", registration.event_id)
    if attended:
        facts.record_facts(
            [facts.Hit(registration.workspace_id, registration.subscriber_id, ATTENDED, key, now())]
        )
    else:
        facts.forget_fact(registration.workspace_id, registration.subscriber_id, ATTENDED, key)
    audit(
        "webinar.attendance_marked",
        actor=actor,
        workspace=registration.event.workspace,
        obj=registration.event,
        new={"subscriber": str(registration.subscriber.uuid), "attended": bool(attended)},
    )


def _read_addresses(data: bytes) -> list[tuple[int, str]]:
    if len(data) > MAX_IMPORT_BYTES:
        raise ActionError(
            f"the file is larger than {MAX_IMPORT_BYTES // 1024} KB", field="file", code="too_big"
        )
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ActionError("the file is not UTF-8 text", field="file") from None
    if "\x00" in content:
        raise ActionError("the file is not a text file (it holds NUL bytes)", field="file")
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(content)), start=1):
        cell = (row[0] if row else "").strip()
        if not cell or (number == 1 and cell.lower() in ("email", "e-mail", "address")):
            continue
        rows.append((number, cell))
    return rows


@transaction.atomic
def do_import_attendance(event: Event, data: bytes, *, actor: Actor) -> tuple[int, list[str]]:
    """Marks as attended every registrant whose address is a line of the CSV (its first
    column; a header `email` is skipped). Returns how many were marked and the lines that
    were not (bad address, not registered), each naming its line."""
    registrations = {
        email_key(r.subscriber.email): r
        for r in Registration.objects.filter(event=event)
        .exclude(status=Status.CANCELLED)
        .select_related("subscriber")
    }
    marked: set[int] = set()
    problems: list[str] = []
    for number, cell in _read_addresses(data):
        try:
            address = normalise_email(cell[:254])
        except InvalidEmail:
            problems.append(f"line {number}: not an email address")
            continue
        registration = registrations.get(email_key(address))
        if registration is None:
            problems.append(f"line {number}: not registered for this webinar")
            continue
        marked.add(registration.pk)
    newly = list(
        Registration.objects.filter(pk__in=marked, attended=False).values_list(
            "workspace_id", "subscriber_id"
        )
    )
    Registration.objects.filter(pk__in=marked).update(attended=True)
    key, at = facts.object_key("event", event.pk), now()
    facts.record_facts([facts.Hit(ws, person, ATTENDED, key, at) for ws, person in newly])
    audit(
        "webinar.attendance_imported",
        actor=actor,
        workspace=event.workspace,
        obj=event,
        new={"marked": len(marked), "problems": len(problems)},
    )
    return len(marked), problems[:MAX_PROBLEMS]
