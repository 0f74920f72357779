"""The calendar invitation a webinar's mails carry (RFC 5545 / iTIP RFC 5546), made with
icalendar.

- METHOD:REQUEST for a registration or a move, METHOD:CANCEL when the event (or the person's
  place) is cancelled: what calendar programs act on.
- UID is the registration's (`<uuid>@<our host>`): stable for that person's place, so a move
  or a cancellation replaces the entry their calendar already holds instead of adding one.
- SEQUENCE is the event's: it grows each time the event moves and when it is cancelled, and a
  calendar ignores an update whose SEQUENCE is not above the one it has (a person's own
  cancellation goes one above: `sequence_of`).
- DTSTART/DTEND carry the event's time zone (TZID) with its VTIMEZONE, so the entry stays at
  the right local time across daylight saving changes; the UTC instant is the stored one.
- The join URL (LOCATION and URL) only in invitations to people with a seat.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
from django.conf import settings
from django.utils.timezone import now

from .models_webinars import Event, Registration

REQUEST, CANCEL = "REQUEST", "CANCEL"
FILENAME = "invite.ics"
CONTENT_TYPE = "text/calendar"


def uid_of(registration: Registration) -> str:
    host = urlsplit(settings.BASE_URL).hostname or "localhost"
    return f"{registration.uuid}@{host}"


def sequence_of(event: Event, method: str) -> int:
    """The event's SEQUENCE; one more for a person's own cancellation while the event stands,
    so that calendars (Outlook among them) take it over the invitation of the same SEQUENCE
    they hold. That UID gets nothing after it: registering again makes a new registration
    uuid, so a new UID."""
    if method == CANCEL and event.status != Event.Status.CANCELLED:
        return event.sequence + 1
    return event.sequence


def local_start(event: Event):
    return event.starts_at.astimezone(ZoneInfo(event.timezone))


def invitation(event: Event, registration: Registration, *, method: str = REQUEST) -> bytes:
    """The .ics bytes for this person's place at the event."""
    workspace = event.workspace
    start = local_start(event)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Mail Marketer//Webinars//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    entry = icalendar.Event()
    entry.add("uid", uid_of(registration))
    entry.add("sequence", sequence_of(event, method))
    entry.add("dtstamp", now().astimezone(UTC))
    entry.add("dtstart", start)
    entry.add("dtend", start + timedelta(minutes=event.duration_minutes))
    entry.add("summary", event.title)
    if event.description:
        entry.add("description", event.description)
    cancelled = method == CANCEL
    entry.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if event.join_url and not cancelled and registration.status == Registration.Status.REGISTERED:
        entry.add("location", event.join_url)
        entry.add("url", event.join_url)
    if workspace.sender_email:
        entry.add(
            "organizer",
            f"mailto:{workspace.sender_email}",
            parameters={"cn": workspace.sender_name or workspace.name},
        )
    entry.add(
        "attendee",
        f"mailto:{registration.subscriber.email}",
        parameters={
            "role": "REQ-PARTICIPANT",
            "partstat": "DECLINED" if cancelled else "ACCEPTED",
            "rsvp": "FALSE",
        },
    )
    calendar.add_component(entry)
    # The zone's rules from a year before the event to a year after: enough for any calendar
    # to place it, and small (the default spans 1970-2038).
    calendar.add_missing_timezones(
        first_date=(start - timedelta(days=366)).date(),
        last_date=(start + timedelta(days=366)).date(),
    )
    return calendar.to_ical()


def attachment(event: Event, registration: Registration, *, method: str = REQUEST):
    """(filename, content type, bytes) for delivery.transactional's attachments."""
    return (FILENAME, CONTENT_TYPE, invitation(event, registration, method=method))
