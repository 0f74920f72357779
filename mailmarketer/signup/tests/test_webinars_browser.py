"""A webinar registration as a person makes it, in Debian's Chromium: the hosted webinar form
filled and sent, the mail read from the outbox, its .ics invitation parsed with icalendar (the
right UTC instant), then the cancel link opened and confirmed, which gives the seat to the
first on the waiting list. The browser asks no host but the app's own for anything."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Workspace
from mailmarketer.signup.models_webinars import Registration
from mailmarketer.signup.testing_webinars import (
    body_of,
    invitation,
    make_event,
    make_form,
    register,
    utc_start,
    vevent,
)
from mailmarketer.signup.webinars import starts_at_from_local
from mailmarketer.testing import chromium_page

from .support import run_engine, sent_messages

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]


def test_it_registers_in_a_browser_and_the_invitation_has_the_right_instant(
    live_server, transactional_db, settings
):
    base = live_server.url
    settings.BASE_URL = base
    staff = Actor.system("test setup")
    acme = Workspace.objects.create(
        name="Acme", slug="acme", sender_name="Acme", sender_email="news@acme.test"
    )
    # 18:30 in Tokyo (no daylight saving, UTC+9) on 3 March 2031 is 09:30 UTC.
    event = make_event(
        acme,
        staff,
        title="Espresso deep dive",
        starts_at=starts_at_from_local(datetime(2031, 3, 3, 18, 30), "Asia/Tokyo"),
        timezone="Asia/Tokyo",
        capacity=1,
        waitlist_capacity=1,
    )
    form = make_form(event, staff, slug="espresso")
    requests: list[str] = []

    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base}/f/acme/espresso")
        assert page.get_by_role("heading", name="Espresso deep dive").is_visible()
        assert "2031-03-03 18:30 (Asia/Tokyo)" in page.locator("#webinar-when").inner_text()
        page.get_by_label("Email address").fill("ann@example.com")
        page.get_by_label("Name").fill("Ann")
        page.get_by_label("I agree").check()
        page.get_by_role("button", name="Register").click()
        assert "Thank you for registering" in page.get_by_role("status").inner_text()
    assert errors == [], f"console errors: {errors}"

    register(form, "bo@example.com")  # the waiting list
    run_engine()
    [message] = [m for m in sent_messages(acme) if "ann@example.com" in m["To"]]
    calendar = invitation(message)
    assert calendar["method"] == "REQUEST"
    assert utc_start(calendar) == datetime(2031, 3, 3, 9, 30, tzinfo=UTC)
    assert vevent(calendar)["dtstart"].params["TZID"] == "Asia/Tokyo"
    assert str(vevent(calendar)["url"]) == "https://meet.example.com/roast?room=7"
    cancel = re.search(r"https?://[^\s]+/f/w/\S+", body_of(message)).group(0)

    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(cancel)
        assert "a•••@example.com" in page.get_by_role("main").inner_text()
        page.get_by_role("button", name="Cancel my registration").click()
        assert "cancelled" in page.get_by_role("status").inner_text()
    assert errors == [], f"console errors: {errors}"

    statuses = dict(Registration.objects.values_list("subscriber__email", "status"))
    assert statuses == {"ann@example.com": "cancelled", "bo@example.com": "registered"}
    run_engine()
    promoted = [m for m in sent_messages(acme) if "bo@example.com" in m["To"]][-1]
    assert utc_start(invitation(promoted)) == datetime(2031, 3, 3, 9, 30, tzinfo=UTC)
    assert {urlsplit(url).netloc for url in requests} == {urlsplit(base).netloc}
