"""Test helpers for webinars, shared by the signup and API tests (no product code imports
it): an event and its form, posting a registration, and the calendar invitation of a mail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import icalendar
from django.test import Client
from django.utils.timezone import now

from mailmarketer.signup import webinars
from mailmarketer.signup.actions import do_create_form
from mailmarketer.signup.testing import altcha_payload
from mailmarketer.signup.tokens import PAGE, make_form_token
from mailmarketer.testing import FORM_NOTICE


def form_url(form) -> str:
    return f"/f/{form.workspace.slug}/{form.slug}"


# 15:00 in Berlin on a winter day is 14:00 UTC.
BERLIN_START = datetime(2031, 1, 14, 15, 0)
BERLIN_START_UTC = datetime(2031, 1, 14, 14, 0, tzinfo=UTC)


def make_event(workspace, actor, **fields):
    values = {
        "title": "Roasting {{ beans }} live",
        "description": "How we roast.",
        "starts_at": webinars.starts_at_from_local(BERLIN_START, "Europe/Berlin"),
        "timezone": "Europe/Berlin",
        "duration_minutes": 45,
        "join_url": "https://meet.example.com/roast?room=7",
        "capacity": 2,
        "waitlist_capacity": 1,
    }
    values.update(fields)
    return webinars.do_create_event(workspace, actor=actor, **values)


def make_form(event, actor, *, lists=(), slug="roast", **fields):
    return do_create_form(
        event.workspace,
        name="Roasting webinar",
        slug=slug,
        kind="webinar",
        title="Register for the roasting webinar",
        fields=[{"key": "name", "type": "builtin"}],
        lists=list(lists),
        notice_text=FORM_NOTICE,
        actor=actor,
        event=event,
        **fields,
    )


def register(form, email, *, name="Ann", client=None, **more):
    """A registration posted as JSON: the response."""
    body = {
        "form_token": make_form_token(form.pk, PAGE),
        "email": email,
        "name": name,
        "consent": True,
        # Every way into a form asks for proof of work (signup/altcha.py).
        "altcha": altcha_payload(form),
        **more,
    }
    client = client or Client()
    return client.post(form_url(form) + ".json", json.dumps(body), content_type="application/json")


def invitation(message) -> icalendar.Calendar | None:
    """The parsed .ics attached to a mail, or None."""
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            return icalendar.Calendar.from_ical(part.get_payload(decode=True))
    return None


def vevent(calendar):
    return calendar.walk("VEVENT")[0]


def utc_start(calendar) -> datetime:
    return vevent(calendar).decoded("dtstart").astimezone(UTC)


def body_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def soon(**delta) -> datetime:
    return now() + timedelta(**delta)
