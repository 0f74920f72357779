"""The snippet in Debian's Chromium, on a page served from another loopback port: page view,
single-page-app navigation, outbound click and download are stored; with Do Not Track or
Global Privacy Control nothing is sent; no request goes to any host but the page's and ours.
And the website report, holding XSS payloads in every captured field, runs no script of them."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.testing import chromium_page
from mailmarketer.tracking import queries_web, rollup, web
from mailmarketer.tracking.models_web import WebHit
from mailmarketer.tracking.testing_web import ingest, make_site

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Shop home</title>
<script defer src="{ours}/t/mm.js" data-site="{key}"></script></head><body>
<button id="spa">Next page</button>
<a id="out" href="https://partner.example/offer">Partner</a>
<a id="dl" href="/files/guide.pdf">Guide</a>
<script src="/app.js"></script></body></html>"""
# The site's own script: a single-page app's navigation, and links that do not leave the page
# (the test must not reach partner.example), listening after the snippet's capturing listener.
APP = """document.getElementById("spa").onclick = function () {
  history.pushState({}, "", "/spa/second"); document.title = "Second";
};
document.addEventListener("click", function (e) { e.preventDefault(); });"""
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
DNT = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'});"
GPC = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});"


class StaticSite:
    """A customer's website on its own loopback port."""

    def __init__(self, ours: str, key: str):
        files = {
            "/": ("text/html", PAGE.format(ours=ours, key=key)),
            "/app.js": ("text/javascript", APP),
            "/favicon.ico": ("image/x-icon", ""),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                kind, body = files.get(self.path.split("?")[0], ("text/plain", "not found"))
                self.send_response(200 if self.path.split("?")[0] in files else 404)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def wait_for_hits(count: int, timeout: float = 10.0) -> list[WebHit]:
    """The hits stored once the worker has ingested what /t/e spooled (polled: beacons may
    still be on their way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ingest()
        hits = list(WebHit.objects.order_by("id"))
        if len(hits) >= count:
            return hits
        time.sleep(0.2)
    return list(WebHit.objects.order_by("id"))


def browse(page, url, requests):
    # Headless Chromium says "HeadlessChrome", which the bot list rightly counts apart.
    page.set_extra_http_headers({"User-Agent": BROWSER_UA})
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url + "/?mm_vt=1.2.forged")
    page.wait_for_function("typeof window.mm === 'function'")
    page.click("#spa")
    page.click("#out")
    page.click("#dl")
    page.evaluate("mm('event', 'signup', {plan: 'pro'})")
    page.wait_for_timeout(500)


def test_it_records_what_a_visitor_does_and_talks_to_no_other_host(live_server, transactional_db):
    queries_web.forget_sites()
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    site = make_site(workspace, "shop.test", origins="")
    requests: list[str] = []
    with StaticSite(live_server.url, site.key) as shop:
        site.origins = shop.url
        site.save()
        with chromium_page() as (page, errors):
            browse(page, shop.url, requests)
            shown = page.evaluate("location.href")
    # Beacons travel in parallel: their order of arrival is not the order they were sent in.
    found = wait_for_hits(5)
    hits = {(h.kind, h.path): h for h in found}
    assert len(found) == 5, [(h.kind, h.path, h.title) for h in found]
    assert sorted(hits) == [
        ("download", "/spa/second"),
        ("event", "/spa/second"),
        ("outbound", "/spa/second"),
        ("pageview", "/"),
        ("pageview", "/spa/second"),
    ]
    second = hits["pageview", "/spa/second"]
    assert second.title == "Second" and second.referrer_class == "internal"
    assert hits["outbound", "/spa/second"].target == "https://partner.example/offer"
    assert hits["download", "/spa/second"].target == f"{shop.url}/files/guide.pdf"
    event = hits["event", "/spa/second"]
    assert event.name == "signup" and event.props == '{"plan":"pro"}'
    assert all(h.subscriber_id is None for h in hits.values())  # the forged token linked no one
    assert "mm_vt" not in shown  # the snippet took the token out of the address bar
    hosts = {urlsplit(u).netloc for u in requests}
    assert hosts <= {urlsplit(shop.url).netloc, urlsplit(live_server.url).netloc}, hosts
    assert errors == []


@pytest.mark.parametrize("script", [DNT, GPC], ids=["dnt", "gpc"])
def test_it_sends_nothing_when_the_browser_asks_not_to_be_tracked(
    live_server, transactional_db, script
):
    queries_web.forget_sites()
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    site = make_site(workspace, "shop.test", origins="")
    requests: list[str] = []
    with StaticSite(live_server.url, site.key) as shop:
        site.origins = shop.url
        site.save()
        with chromium_page() as (page, _errors):
            page.add_init_script(script)
            browse(page, shop.url, requests)
    time.sleep(1)
    ingest()
    assert not WebHit.objects.exists()
    assert not [u for u in requests if "/t/e" in u]


XSS = '"\'><script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


def test_the_report_runs_no_script_from_captured_text(live_server, transactional_db):
    workspace = Workspace.objects.create(name="Acme", slug="acme")
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.ANALYST)
    site = make_site(workspace)
    when = datetime.now(UTC).replace(microsecond=0)
    rows = [
        web.hit_row(site, at=when, key="a", path="/" + XSS, title=XSS,
                    referrer="https://evil.example/" + XSS, ua=f"Mozilla/5.0 {XSS} Chrome/1.0"),
        web.hit_row(site, at=when, key="b", path="/x", kind="outbound",
                    target="https://evil.example/" + XSS, ua="Mozilla/5.0 Firefox/120.0"),
        web.hit_row(site, at=when, key="c", path="/x", kind="event", name=XSS,
                    utm={"utm_campaign": XSS, "utm_source": XSS}, ua="Mozilla/5.0 Firefox/120.0"),
    ]  # fmt: skip
    web.store_rows(rows)
    rollup.rebuild_day(site, when.date())
    base = live_server.url
    report = f"{base}/app/acme/analytics/sites/{site.pk}/report/"
    with chromium_page() as (page, errors):
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")
        for address in (report, f"{base}/app/acme/analytics/sites/{site.pk}/"):
            page.goto(address)
            assert page.evaluate("window.__xss") is None
        page.goto(report)
        text = page.inner_text("main")
    assert "<script>window.__xss=1</script>" in text  # shown as text, escaped
    assert dialogs == []
    assert errors == []  # a CSP violation would be reported here
