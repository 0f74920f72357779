"""Email tracking as a new user meets it, in Debian's Chromium: a campaign sent to the outbox by
the engine, its message opened and its link clicked in the browser, the redirect landing on the
stored URL (a site on a second loopback port), then the report showing the click, its chart
canvas and its table. No console errors (a CSP violation is one), and no request to any host
but ours."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import chromium_page
from mailmarketer.tracking import rollups
from mailmarketer.tracking.models import EmailEvent
from mailmarketer.tracking.testing import ingest, send_campaign, sent_parts

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"
PERSON = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


class Landing(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><title>Landed</title><h1>Welcome to the shop</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def landing():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Landing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def roll_up() -> None:
    """What the worker does, in a thread with its own connection (closed when done): store
    what the edge spooled, then roll it up."""
    try:
        ingest()
        while rollups.roll_up_one():
            pass
    finally:
        connection.close()


def test_it_follows_a_tracked_click_to_the_stored_url_and_reports_it(
    live_server, transactional_db, landing, settings, monkeypatch
):
    settings.BASE_URL = live_server.url
    monkeypatch.setattr(rollups, "LAG_SECONDS", 0)
    workspace = Workspace.objects.create(
        name="Acme", slug="acme", sender_email="news@acme.test", postal_address="1 Main St"
    )
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    staff = Actor.for_user(olga)
    news = audience.do_create_list(workspace, name="News", slug="news", actor=staff)
    ann = audience.do_create_subscriber(workspace, email="ann@example.com", actor=staff)
    audience.do_subscribe(ann, [news], actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    campaign = send_campaign(
        workspace, [news], body=f"Our [new shop]({landing}/shop?from=mail) is open."
    )
    Delivery.objects.filter(campaign=campaign).update(sent_at=now() - timedelta(minutes=5))
    html, _ = sent_parts()["ann@example.com"]
    hosts: list[str] = []
    base = live_server.url

    with chromium_page() as (page, errors):
        page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or ""))
        # Headless Chromium says "HeadlessChrome", which the scanner rules rightly flag: this
        # browser plays a person reading their mail.
        page.set_extra_http_headers({"User-Agent": PERSON})
        page.set_content(html)  # the message, as a mail client shows it
        page.get_by_role("link", name="new shop").click()
        page.wait_for_url(f"{landing}/shop?from=mail")
        assert page.get_by_role("heading", name="Welcome to the shop").is_visible()
        # What the message and the landing site log is theirs (the landing site has no
        # favicon); from here on every console error is ours.
        errors.clear()

        worker = threading.Thread(target=roll_up)
        worker.start()
        worker.join(timeout=30)

        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")
        page.goto(f"{base}/app/acme/campaigns/{campaign.pk}/")
        page.get_by_role("link", name="Report").click()
        page.get_by_role("heading", name="Report: Autumn news").wait_for()
        totals = page.locator("table.report-totals")
        assert (
            totals.locator("tr", has_text="Unique clicks (people)").locator("td").inner_text()
            == "1"
        )
        assert totals.locator("tr", has_text="Delivered").locator("td").inner_text() == "1"
        page.locator(".chart-canvas canvas").first.wait_for()
        assert page.locator("table.chart-table tbody tr").count() >= 1
        links = page.locator("section", has_text="Links").locator("tbody tr").first
        assert f"{landing}/shop?from=mail" in links.inner_text()

    assert errors == [], f"console errors: {errors}"
    assert set(hosts) <= {"127.0.0.1", "localhost"}, hosts
    kinds = sorted(EmailEvent.objects.values_list("kind", flat=True))
    assert kinds == ["click", "open"]  # the pixel loaded with the message, then the click
