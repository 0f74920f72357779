"""The inline calendar alternative (MessageParts.calendar): a webinar invitation that Gmail and
Outlook offer to add to the calendar, read back under policy.strict and by icalendar."""

from __future__ import annotations

import icalendar
import pytest

from mailmarketer.delivery.mime import MessageParts

from .test_mime import build, parse_strict, parts

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nMETHOD:REQUEST\r\n"
    b"BEGIN:VEVENT\r\nUID:abc@acme.example\r\nSEQUENCE:0\r\nDTSTAMP:20310101T000000Z\r\n"
    b"DTSTART:20310114T140000Z\r\nSUMMARY:R\xc3\xb6sten live\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def calendar_parts() -> MessageParts:
    return parts(calendar=("REQUEST", ICS), attachments=[("invite.ics", "text/calendar", ICS)])


@pytest.mark.parametrize("html", ["<p>Hello</p>", None])
def test_it_puts_the_invitation_last_among_the_alternatives_and_attaches_it_too(html):
    message = parse_strict(build(calendar_parts(), html=html))

    assert message.get_content_type() == "multipart/mixed"
    body, attached = list(message.iter_parts())
    assert body.get_content_type() == "multipart/alternative"
    alternatives = [p.get_content_type() for p in body.iter_parts()]
    expected = ["text/plain", "text/html"] if html else ["text/plain"]
    assert alternatives == [*expected, "text/calendar"]
    inline = list(body.iter_parts())[-1]
    assert inline.get_param("method") == "REQUEST"
    assert inline.get_content_disposition() is None
    calendar = icalendar.Calendar.from_ical(inline.get_payload(decode=True))
    assert calendar["method"] == "REQUEST"
    assert str(calendar.walk("VEVENT")[0]["summary"]) == "Rösten live"
    assert attached.get_content_type() == "text/calendar"
    assert attached.get_filename() == "invite.ics"
    assert attached.get_payload(decode=True) == ICS


def test_it_leaves_messages_without_a_calendar_as_they_were():
    message = parse_strict(build(parts()))
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]


@pytest.mark.parametrize(
    "calendar",
    [("REQ UEST", ICS), ("REQUEST\r\nX-Evil: 1", ICS), ("REQUEST", "text"), ("REQUEST", b"\xff")],
)
def test_it_refuses_a_bad_calendar_naming_it(calendar):
    with pytest.raises(ValueError, match="calendar"):
        parts(calendar=calendar)
