"""The dashboard as a new marketer meets it, in Debian's Chromium: the growth chart drawn (a
canvas) over a table holding exactly the numbers the test made, the 30/90-day switch, and the
getting-started checklist ticking as steps are done, then gone when all are. No console errors
(a CSP violation is one), and no request to any host but ours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import Subscription
from mailmarketer.delivery.models import DkimKey
from mailmarketer.signup.actions import do_create_form
from mailmarketer.testing import chromium_page, launch, many_people, relay

pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"


def sign_in(page, base):
    page.goto(f"{base}/login/")
    page.get_by_label("Email address").fill("olga@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/app/acme/")


def table_of(page, chart_id: str) -> tuple[dict[str, list[str]], int]:
    """({day: [new, unsubscribed, net]} of the days with a number, the number of rows)."""
    rows = page.locator(f'figure[aria-labelledby="{chart_id}-title"] table.chart-table tbody tr')
    found = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        values = [cell.inner_text() for cell in row.locator("td").all()]
        if any(v != "0" for v in values):
            found[row.locator("th").inner_text()] = values
    return found, rows.count()


def test_it_draws_the_growth_chart_and_ticks_the_checklist(live_server, transactional_db):
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    staff = Actor.for_user(olga)
    news = audience.do_create_list(workspace, name="News", slug="news", actor=staff)
    today = datetime.now(UTC).date()
    days = {today - timedelta(days=3): 4, today - timedelta(days=1): 2, today - timedelta(60): 5}
    for n, (day, count) in enumerate(days.items()):
        people = many_people(workspace, [news], count, prefix=f"d{n}-")
        Subscription.objects.filter(subscriber__in=people).update(
            created_at=datetime.combine(day, time(10), tzinfo=UTC)
        )
    leaving = Subscription.objects.filter(subscriber__email="d0-0@example.com").get()
    audience.do_unsubscribe(leaving.subscriber, actor=staff, reason=Reason.BY_ADMIN)
    day = str(today - timedelta(days=3))
    yesterday = str(today - timedelta(days=1))
    unsubscribed = str(today)
    base = live_server.url
    hosts: list[str] = []

    with chromium_page() as (page, errors):
        page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or ""))
        sign_in(page, base)
        page.locator(".chart-canvas canvas").first.wait_for()
        shown, count = table_of(page, "growth-30")
        assert count == 30
        assert shown == {
            day: ["4", "0", "4"],
            yesterday: ["2", "0", "2"],
            unsubscribed: ["0", "1", "-1"],
        }
        page.get_by_role("link", name="90 days").click()
        page.wait_for_url(f"{base}/app/acme/?days=90#audience-heading")
        page.locator('figure[aria-labelledby="growth-90-title"] .chart-canvas canvas').wait_for()
        shown, count = table_of(page, "growth-90")
        assert count == 90
        assert shown[str(today - timedelta(days=60))] == ["5", "0", "5"]
        assert len(shown) == 4

        checklist = page.locator("#getting-started")
        assert checklist.locator(".step-done").count() == 1  # the list
        assert "1 of 7 done" in checklist.inner_text()
        checklist.get_by_role("link", name="Add your postal address").click()
        page.get_by_label("Postal address").fill("Kaffeestraße 12\n10115 Berlin")
        page.get_by_label("Sender email address").fill("news@acme.test")
        page.get_by_role("button", name="Save settings").click()
        page.get_by_text("Workspace settings saved.").wait_for()
        page.get_by_role("link", name="Dashboard").click()
        done = checklist.locator(".step-done")
        assert [done.nth(i).get_attribute("data-step") for i in range(done.count())] == [
            "postal_address",
            "sender",
            "list",
        ]
        assert "3 of 7 done" in checklist.inner_text()

    # The rest of the steps, done outside the browser (the ORM stays out of Playwright's block).
    relay(workspace)
    DkimKey.objects.create(
        workspace=workspace, domain="acme.test", selector="s1", private_key="x", public_key="y"
    )
    do_create_form(
        workspace, name="F", slug="f", title="F", lists=[news], notice_text="Y.", actor=staff
    )
    launch(workspace, [news])

    with chromium_page() as (page, more_errors):
        page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or ""))
        sign_in(page, base)
        page.get_by_role("heading", name="Campaigns").wait_for()
        assert page.locator("#getting-started").count() == 0
        errors += more_errors

    assert errors == [], f"console errors: {errors}"
    assert set(hosts) <= {"127.0.0.1", "localhost"}, hosts
