"""A sign-up as a person makes it, in a real browser: the hosted form filled and sent, the
confirmation mail read from the outbox, its link opened and confirmed; and the embed snippet on
a page of another origin (a second loopback port), sent with JavaScript on (the vendored ALTCHA
widget solves the proof of work) and off (the post lands on the hosted page, which asks for the
proof of work). The browser asks no host but these two for anything.

Drives Debian's Chromium through Playwright (see web/tests/test_browser_login.py)."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import ConsentRecord, Subscription
from mailmarketer.signup.actions import do_create_form
from mailmarketer.signup.altcha import do_set_form_protection
from mailmarketer.signup.embed import embed_snippet
from mailmarketer.signup.models_altcha import SolvedChallenge
from mailmarketer.signup.testing import EASY
from mailmarketer.signup.views_public import page_context
from mailmarketer.testing import chromium_page

from .support import confirm_path, run_engine, sent_messages

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"
NOTICE = "I would like Acme's weekly news by email.\nI can unsubscribe at any time."


class EmbedSite:
    """Another origin on loopback serving one page with the embed snippet in it."""

    def __init__(self):
        self.html = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(site.html)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def record_requests(page, log: list[str]):
    page.on("request", lambda request: log.append(request.url))


def test_it_signs_up_and_confirms_in_a_browser_from_the_page_and_an_embed(
    live_server, transactional_db, settings
):
    base = live_server.url
    settings.BASE_URL = base
    staff = Actor.system("test setup")
    acme = Workspace.objects.create(
        name="Acme", slug="acme", sender_name="Acme", sender_email="news@acme.test"
    )
    weekly = audience.do_create_list(
        acme, name="Weekly", slug="weekly", optin="double", actor=staff
    )
    # Proof of work is on (the default), at a difficulty the test solves at once.
    do_set_form_protection(acme, required=True, maxnumber=EASY, actor=staff)
    with EmbedSite() as site:
        form = do_create_form(
            acme,
            name="Weekly",
            slug="weekly",
            title="Get the weekly news",
            fields=[{"key": "first_name", "type": "builtin"}],
            lists=[weekly],
            notice_text=NOTICE,
            allowed_origins=[site.origin],
            actor=staff,
        )
        snippet = embed_snippet(form, page_context(form))
        site.html = f"<!doctype html><title>Partner</title><h1>Partner</h1>{snippet}".encode()
        requests: list[str] = []

        with chromium_page() as (page, errors):
            record_requests(page, requests)
            page.goto(f"{base}/f/acme/weekly")
            assert page.get_by_text("I would like Acme's weekly news by email.").is_visible()
            page.get_by_label("Email address").fill("ann@example.com")
            page.get_by_label("First name").fill("Ann")
            page.get_by_label("I agree").check()
            page.get_by_role("button", name="Sign up").click()
            # The widget fetched a challenge, solved it and sent the form with the solution.
            assert "check your inbox" in page.get_by_role("status").inner_text()
            assert any(url.endswith("/f/acme/weekly/challenge") for url in requests)
            assert any(url.endswith("/static/signup/altcha/worker.js") for url in requests)

            # The embed on the other origin, JavaScript on: the widget (loaded from us) solves
            # the challenge there, and the post lands on the hosted result.
            page.goto(site.origin + "/")
            page.get_by_label("Email address").fill("bo@example.com")
            page.get_by_label("I agree").check()
            page.get_by_role("button", name="Sign up").click()
            page.wait_for_url(f"{base}/f/acme/weekly")
            assert "check your inbox" in page.get_by_role("status").inner_text()
        assert errors == [], f"console errors: {errors}"

        with chromium_page() as (page, errors):
            # JavaScript off: the snippet's plain post cannot carry a solution; it lands on
            # the hosted page, which keeps what was typed and asks for one more press (with
            # JavaScript, which the widget needs). Nothing is stored meanwhile.
            context = page.context.browser.new_context(java_script_enabled=False)
            quiet = context.new_page()
            record_requests(quiet, requests)
            quiet.goto(site.origin + "/")
            quiet.get_by_label("Email address").fill("cy@example.com")
            quiet.get_by_label("First name").fill("Cy")
            quiet.get_by_label("I agree").check()
            quiet.get_by_role("button", name="Sign up").click()
            quiet.wait_for_url(f"{base}/f/acme/weekly")
            assert "One more step" in quiet.get_by_role("alert").first.inner_text()
            assert quiet.get_by_label("Email address").input_value() == "cy@example.com"
            assert quiet.get_by_label("First name").input_value() == "Cy"
            assert quiet.get_by_label("I agree").is_checked()
            assert "needs JavaScript" in quiet.get_by_role("main").inner_text()
            context.close()

    run_engine()
    messages = {m["To"].addresses[0].addr_spec: m for m in sent_messages(acme)}
    assert sorted(messages) == ["ann@example.com", "bo@example.com"]
    link = base + confirm_path(messages["ann@example.com"])

    with chromium_page() as (page, errors):
        record_requests(page, requests)
        page.goto(link)
        assert "a•••@example.com" in page.get_by_role("main").inner_text()
        page.get_by_role("button", name="Confirm").click()
        assert "confirmed" in page.get_by_role("status").inner_text()
    assert errors == [], f"console errors: {errors}"

    statuses = dict(Subscription.objects.values_list("subscriber__email", "status"))
    assert statuses == {"ann@example.com": "confirmed", "bo@example.com": "unconfirmed"}
    assert SolvedChallenge.objects.count() == 2
    assert ConsentRecord.objects.filter(action="confirm").count() == 1
    # A blob: URL is the embed's worker made on the partner's page (signup/static/signup/
    # altcha-embed.js): no request leaves the browser for it; it names its page's origin.
    hosts = {urlsplit(url.removeprefix("blob:")).netloc for url in requests}
    assert hosts == {urlsplit(base).netloc, urlsplit(site.origin).netloc}, hosts


def test_it_builds_a_form_in_the_browser_without_console_errors(
    live_server, transactional_db, settings
):
    base = live_server.url
    settings.BASE_URL = base
    acme = Workspace.objects.create(
        name="Acme", slug="acme", sender_name="Acme", sender_email="news@acme.test"
    )
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=acme, user=olga, role=Role.MARKETER)
    audience.do_create_list(
        acme, name="Weekly", slug="weekly", optin="double", actor=Actor.system("test setup")
    )

    with chromium_page() as (page, errors):
        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Forms").click()
        page.get_by_role("link", name="New form").click()
        page.get_by_label("Form name").fill("Spring")
        page.get_by_label("Short name").fill("spring")
        page.get_by_label("Title", exact=True).fill("Spring news")
        page.get_by_label("Company").select_option("required")
        page.get_by_label("Custom fields").fill("team_size | number | Team size | optional")
        page.get_by_label("Weekly").check()
        page.get_by_label("Consent notice").fill("Send me the spring news.")
        page.get_by_role("button", name="Save form").click()
        page.wait_for_url(f"{base}/app/acme/forms/*/")
        assert page.get_by_role("heading", level=1).inner_text() == "Spring"
        assert 'name="form_token"' in page.locator("#embed-code").inner_text()
        page.get_by_role("button", name="Copy embed code").click()
        page.get_by_role("link", name="Preview").click()
        assert page.get_by_label("Team size (optional)").is_visible()
        assert page.get_by_text("Send me the spring news.").is_visible()
    assert errors == [], f"console errors: {errors}"
