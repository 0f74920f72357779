"""The registration mail's inline invitation: multipart/alternative with text/plain and
text/calendar; method=REQUEST (what Gmail and Outlook read to show "add to calendar"), plus the
.ics attachment; read back under policy.strict and by icalendar."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime

import icalendar
import pytest

from mailmarketer.lib import outbox
from mailmarketer.signup import webinars
from mailmarketer.signup.models_webinars import Registration
from mailmarketer.signup.testing_webinars import make_event, make_form, register

from .support import run_engine

pytestmark = pytest.mark.django_db


def raw_mails(workspace, address):
    run_engine()
    found = []
    for path in sorted(outbox.outbox_dir().glob(f"ws-{workspace.pk}/*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.strict)
        for part in message.walk():
            assert part.defects == []
        if address in message["To"]:
            found.append(message)
    return found


def inline_calendar(message) -> icalendar.Calendar:
    assert message.get_content_type() == "multipart/mixed"
    body = next(message.iter_parts())
    assert body.get_content_type() == "multipart/alternative"
    alternatives = list(body.iter_parts())
    assert alternatives[0].get_content_type() == "text/plain"
    inline = alternatives[-1]
    assert inline.get_content_type() == "text/calendar"
    assert inline.get_content_disposition() is None
    data = inline.get_payload(decode=True)
    # The attachment carries the very same invitation.
    [attached] = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert attached.get_payload(decode=True).replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")
    calendar = icalendar.Calendar.from_ical(data)
    assert inline.get_param("method") == str(calendar["method"])
    return calendar


def test_the_registration_mail_carries_an_inline_request_that_updates_keep_by_uid(personas, staff):
    event = make_event(personas.acme, staff)
    form = make_form(event, staff)
    assert register(form, "ann@example.com").status_code == 200
    seat = Registration.objects.get(subscriber__email="ann@example.com")

    [first] = raw_mails(personas.acme, "ann@example.com")
    calendar = inline_calendar(first)
    assert calendar["method"] == "REQUEST"
    entry = calendar.walk("VEVENT")[0]
    assert str(entry["uid"]) == f"{seat.uuid}@testserver"
    assert int(entry["sequence"]) == 0
    assert str(entry["organizer"]) == f"mailto:{personas.acme.sender_email}"
    assert str(entry["attendee"]) == "mailto:ann@example.com"

    webinars.do_update_event(
        event,
        {"starts_at": webinars.starts_at_from_local(datetime(2031, 2, 1, 10, 0), "Europe/Berlin")},
        actor=staff,
    )
    update = raw_mails(personas.acme, "ann@example.com")[-1]
    moved = inline_calendar(update)
    assert moved["method"] == "REQUEST"
    moved_entry = moved.walk("VEVENT")[0]
    assert str(moved_entry["uid"]) == str(entry["uid"])
    assert int(moved_entry["sequence"]) == 1

    webinars.do_cancel_event(event, actor=staff)
    cancelled = inline_calendar(raw_mails(personas.acme, "ann@example.com")[-1])
    assert cancelled["method"] == "CANCEL"
    assert str(cancelled.walk("VEVENT")[0]["uid"]) == str(entry["uid"])
