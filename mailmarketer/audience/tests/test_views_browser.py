"""The audience pages in a real browser: no console errors (a CSP violation is one), "select
all" and a bulk action, the htmx-enhanced filters and suppression check, the attribute editor.

Drives Debian's Chromium through Playwright (see web/tests/test_browser_login.py)."""

from __future__ import annotations

import os

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions
from mailmarketer.audience.models import Subscriber
from mailmarketer.testing import chromium_page

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"


def sign_in(page, base):
    page.goto(f"{base}/login/")
    page.get_by_label("Email address").fill("olga@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/app/acme/")


def test_it_works_in_a_browser_without_console_errors(live_server, transactional_db):
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    staff = Actor.for_user(olga)
    actions.do_create_list(workspace, name="News", slug="news", actor=staff)
    for name in ("ann", "bob", "cy"):
        actions.do_create_subscriber(
            workspace, email=f"{name}@example.com", attributes={"age": 40}, actor=staff
        )
    cy = Subscriber.objects.get(email="cy@example.com")
    actions.do_add_suppression(workspace, email="gone@example.com", actor=staff)
    base = live_server.url

    with chromium_page() as (page, errors):
        sign_in(page, base)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Audience").click()
        page.wait_for_url(f"{base}/app/acme/audience/")
        assert page.get_by_role("rowheader", name="News (news)").is_visible()

        # Filters through htmx: the results change and the address bar follows.
        page.get_by_role("link", name="Subscribers", exact=True).first.click()
        page.get_by_label("Search").fill("bob@")
        page.get_by_role("button", name="Find").click()
        page.wait_for_url(f"{base}/app/acme/audience/subscribers/?*q=bob%40*")
        assert page.get_by_role("link", name="bob@example.com").is_visible()
        assert page.get_by_role("link", name="ann@example.com").count() == 0
        page.get_by_role("link", name="Clear filters").click()
        page.wait_for_url(f"{base}/app/acme/audience/subscribers/")

        # "Select all" (shown by pages.js) ticks every row; the bulk action applies to them.
        select_all = page.get_by_label("Select all subscribers on this page")
        assert select_all.is_visible()
        select_all.check()
        assert page.get_by_label("Select cy@example.com").is_checked()
        page.get_by_label("Action").select_option("blocklist")
        page.get_by_role("button", name="Apply").click()
        page.wait_for_url(f"{base}/app/acme/audience/subscribers/")
        assert "done for 3" in page.get_by_role("status").first.inner_text()

        # The attribute editor keeps types: 41 is stored as a number.
        page.goto(f"{base}/app/acme/audience/subscribers/{cy.uuid}/")
        page.get_by_label("Value of attribute 1").fill("41")
        page.get_by_label("Name of attribute 2").fill("vip")
        page.get_by_label("Value of attribute 2").fill("true")
        page.get_by_role("button", name="Save attributes").click()
        page.wait_for_url(f"{base}/app/acme/audience/subscribers/{cy.uuid}/")

        # The suppression check answers in place (htmx), and shows its errors in place too.
        page.goto(f"{base}/app/acme/audience/suppression/")
        page.get_by_label("Email address to check").fill("Gone@example.com")
        page.get_by_role("button", name="Check").click()
        page.get_by_text("Gone@example.com is suppressed").wait_for()
        page.get_by_label("Email address to check").fill("nope")
        page.get_by_role("button", name="Check").click()
        page.get_by_text("invalid email address").wait_for()
        assert page.url == f"{base}/app/acme/audience/suppression/"

    # Chromium logs the deliberate 400 of the invalid check above; nothing else may appear.
    expected = ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    assert errors == expected, f"console errors: {errors}"
    assert set(Subscriber.objects.values_list("status", flat=True)) == {"blocklisted"}
    cy.refresh_from_db()
    assert cy.attributes == {"age": 41, "vip": True}
