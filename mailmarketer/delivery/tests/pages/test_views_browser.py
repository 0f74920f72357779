"""The campaign pages in a real browser: write a campaign, preview it in its sandboxed frame,
send a test, start it, and watch the progress block update itself (htmx) until the campaign is
finished, then read the ledger; no console errors along the way (a CSP violation is one).

Drives Debian's Chromium through Playwright (see web/tests/test_browser_login.py)."""

from __future__ import annotations

import os
import threading

import pytest
from django.db import connection

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import engine, planner
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import chromium_page

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"


def run_worker() -> None:
    """What a worker process does, in a thread with its own database connection (the page's
    greenlets must not open one), closed when done."""
    try:
        engine.reset_state()
        for _ in range(100):
            if not (planner.plan_one() | engine.send_one() | engine.finish_one()):
                break
    finally:
        engine.reset_state()
        connection.close()


def test_it_writes_previews_starts_and_follows_a_campaign(live_server, transactional_db):
    workspace = Workspace.objects.create(
        name="Acme",
        slug="acme",
        sender_email="news@acme.test",
        postal_address="1 Main Street, Springfield",
    )
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    staff = Actor.for_user(olga)
    news = audience.do_create_list(workspace, name="News", slug="news", actor=staff)
    for name in ("ann", "bob", "cy"):
        person = audience.do_create_subscriber(
            workspace, email=f"{name}@example.com", name=name.title(), actor=staff
        )
        audience.do_subscribe(person, [news], actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    base = live_server.url

    with chromium_page() as (page, errors):
        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
        page.wait_for_url(f"{base}/app/acme/campaigns/")
        page.get_by_role("link", name="New campaign").click()
        page.get_by_label("Name", exact=True).fill("Autumn news")
        page.get_by_label("Subject").fill("Hello {{ subscriber.first_name }}")
        page.get_by_label("Body").fill("Our **autumn** roast is here.")
        page.get_by_role("group", name="Send to these lists").get_by_label("News").check()
        page.get_by_role("button", name="Save draft").click()
        page.wait_for_url(f"{base}/app/acme/campaigns/*/")
        campaign_url = page.url

        # The preview: the HTML in its sandboxed frame, the text beside it.
        page.get_by_role("link", name="Preview and test").click()
        frame = page.frame_locator("iframe.mail")
        frame.get_by_text("roast is here").wait_for()
        assert page.get_by_text("Hello Jane").is_visible()
        page.get_by_label("Send a test to").fill("boss@acme.test")
        page.get_by_role("button", name="Send test").click()
        page.get_by_text("Test sent to boss@acme.test.").wait_for()

        # Start, then let a "worker" send while the page polls its progress block.
        # The page before sending says who gets it; its count is what the ledger holds after.
        page.goto(campaign_url)
        page.get_by_role("link", name="Start sending…").click()
        assert "the local outbox: nobody receives it" in page.content()
        promised = int(page.locator("#send-count").get_attribute("data-count"))
        page.get_by_role("button", name=f"Send to {promised} people now").click()
        page.get_by_text("Sending has started.").wait_for()
        assert page.locator("#campaign-live[hx-trigger='every 2s']").count() == 1
        worker = threading.Thread(target=run_worker)
        worker.start()
        worker.join(timeout=60)
        # No reload: the polled block swaps itself and stops polling once finished.
        page.locator("#campaign-live .campaign-status", has_text="Finished").wait_for(timeout=15000)
        assert page.locator("#campaign-live[hx-trigger]").count() == 0
        assert page.locator("#campaign-bar").get_attribute("aria-valuenow") == "3"

        page.get_by_role("link", name="Delivery ledger").click()
        for name in ("ann", "bob", "cy"):
            assert page.get_by_role("link", name=f"{name}@example.com").is_visible()

        page.goto(f"{base}/app/acme/campaigns/layouts/")
        assert page.get_by_role("heading", name="New layout").is_visible()

    assert errors == [], f"console errors: {errors}"
    campaign = Campaign.objects.get(name="Autumn news")
    assert campaign.status == Campaign.Status.FINISHED
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "sent"
    }
    assert Delivery.objects.filter(campaign=campaign).count() == promised == 3
