"""The rule builder in a real browser (Debian's Chromium): htmx adds a condition in place, the
count follows what is typed, a field change brings its own comparisons, and saving works,
with no console error (a CSP violation is one)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from mailmarketer.audience.models import Segment, Subscriber
from mailmarketer.testing import chromium_page

pytestmark = [pytest.mark.browser]


def htmx_settled(page) -> None:
    """Until htmx has no request in flight and nothing swapping or settling. Not
    wait_for_load_state("networkidle"): the page reached that once, after loading, and it
    returns at once from then on, whatever htmx does (CI saw a field change lost to a swap that
    landed after it)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def test_it_builds_a_segment_with_a_live_count(transactional_db, live_server, personas):
    for email in ("ann@example.com", "bob@example.com", "cy@other.test"):
        Subscriber.objects.create(workspace=personas.acme, email=email)
    client = Client()
    client.force_login(personas.alice)
    session = client.cookies["sessionid"].value
    base = live_server.url
    url = f"{base}/app/acme/audience/segments/new/"
    with chromium_page() as (page, errors):
        page.context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
        page.goto(url)
        count = page.locator("#segment-count")
        assert count.inner_text() == "3 subscribers match"

        page.get_by_role("button", name="Add field").click()
        page.wait_for_selector("#n-1-field")
        assert page.url == url, "the condition is added in place"
        assert page.evaluate("document.activeElement.id") == "n-1-field"

        page.locator("#n-1-value").fill("@example.com")
        expect(count).to_have_text("2 subscribers match")

        # Another field brings its own comparisons (the server re-renders the tree).
        page.locator("#n-1-field").select_option("created_at")
        page.wait_for_selector("#n-1-op option[value=before]", state="attached")
        assert page.locator("#n-1-value").get_attribute("type") == "date"
        # Let the re-render and the count it triggers finish before the next change, as a
        # person would: a change made while a swap is landing is replaced by it.
        htmx_settled(page)
        page.locator("#n-1-field").select_option("email")
        page.wait_for_selector("#n-1-op option[value=ends_with]", state="attached")
        htmx_settled(page)
        page.locator("#n-1-op").select_option("ends_with")
        page.locator("#n-1-value").fill("@other.test")
        expect(count).to_have_text("1 subscriber matches")

        page.get_by_label("Name").fill("Other people")
        page.get_by_role("button", name="Save segment").click()
        page.wait_for_url(re.compile(r".*/app/acme/audience/segments/[0-9]+/$"))
        expect(page.locator(".messages")).to_have_text("Segment “Other people” saved.")
        expect(count).to_have_text("1 subscriber matches")
    assert errors == [], f"console errors: {errors}"
    segment = Segment.objects.get()
    assert segment.rules["root"]["children"] == [
        {"type": "field", "field": "email", "op": "ends_with", "value": "@other.test"}
    ]
