"""The docs page in a real browser (Debian's Chromium): Swagger UI renders the operations under
our Content-Security-Policy, with no violation reported and no request to another origin."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.browser


def test_it_renders_the_docs_within_the_csp(live_server):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's Chromium is needed for browser tests: apt-get install chromium"
    origin = urlsplit(live_server.url).netloc
    console, foreign = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda message: console.append(message.text))
            page.on(
                "request",
                lambda request: (
                    urlsplit(request.url).netloc not in (origin, "") and foreign.append(request.url)
                ),
            )
            page.goto(f"{live_server.url}/api/v1/docs")
            page.wait_for_selector(".opblock", timeout=15000)
            rendered = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert {"/api/v1/me", "/api/v1/workspace"} <= {path.strip() for path in rendered}
    assert console == [], console  # CSP violations are reported on the console
    assert foreign == []
