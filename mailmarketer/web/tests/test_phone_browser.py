"""Every staff page works on a phone (issue 12): at 390 px wide no page scrolls sideways;
wide tables scroll inside their own box instead. A crawl from the dashboard follows every link
of the workspace's staff pages (GET only, nothing that changes anything), so pages added later
are checked without anyone listing them.

Drives Debian's Chromium through Playwright (mailmarketer.testing.chromium_page)."""

from __future__ import annotations

import os
from urllib.parse import urldefrag, urlsplit

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns import actions as campaigns
from mailmarketer.testing import chromium_page

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}
MAX_PAGES = 120
# Links that leave the staff pages or download rather than show a page.
SKIP = ("/logout", "/export", ".csv", "/download", "/html", "/static/", "/api/")


# The innermost elements reaching past the viewport: what to fix, in the failure message.
CULPRITS = """(limit) => {
  const out = [];
  const clipped = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (["auto", "scroll", "hidden"].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  for (const el of document.querySelectorAll("body *")) {
    if (clipped(el)) continue;
    const r = el.getBoundingClientRect();
    const past = (e) => e.getBoundingClientRect().right > limit + 1;
    if (past(el) && ![...el.children].some(past)) {
      const cls = el.className ? "." + String(el.className).split(" ").join(".") : "";
      out.push(el.tagName.toLowerCase() + cls + ":" + Math.round(r.right));
    }
    if (out.length >= 4) break;
  }
  return out;
}"""


def _workspace_with_content():
    workspace = Workspace.objects.create(
        name="Acme Kaffeerösterei GmbH",
        slug="acme",
        sender_email="news@acme.test",
        postal_address="Kaffeestraße 12\n20095 Hamburg\nGermany",
    )
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    staff = Actor.for_user(olga)
    news = audience.do_create_list(
        workspace, name="Newsletter for very long list names", slug="news", actor=staff
    )
    for i in range(3):
        person = audience.do_create_subscriber(
            workspace,
            email=f"a.rather.long.address.number{i}@subdomain.example-company.com",
            name=f"Person {i}",
            actor=staff,
        )
        audience.do_subscribe(person, [news], actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    campaigns.do_create_campaign(
        workspace,
        actor=staff,
        name="Winter roast announcement with a long name",
        subject="Our winter roast is here, {{ subscriber.first_name | default('friend') }}",
        body="Read [the post](https://acme.test/post).",
        lists=[news],
    )


def test_no_staff_page_scrolls_sideways_on_a_phone(live_server, transactional_db):
    _workspace_with_content()
    base = live_server.url
    wide: dict[str, tuple] = {}
    seen: set[str] = set()
    missing: list[str] = []
    skipped: dict[str, int | None] = {}
    with chromium_page() as (page, errors):
        page.on("response", lambda r: r.status >= 400 and missing.append(f"{r.status} {r.url}"))
        page.on("requestfailed", lambda r: missing.append(f"failed {r.url}"))
        page.set_viewport_size(PHONE)
        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")
        queue = ["/app/acme/", "/account/", "/app/help/"]
        while queue and len(seen) < MAX_PAGES:
            path = queue.pop(0)
            if path in seen:
                continue
            seen.add(path)
            response = page.goto(base + path)
            if response is None or response.status != 200:
                skipped[path] = response.status if response else None
                continue
            if "text/html" not in (response.headers.get("content-type") or ""):
                continue
            # What the page loads by itself (htmx fragments) finishes before the next page, so
            # a request is never cut off and every error belongs to the page that made it.
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                wide[path] = (width, page.evaluate(CULPRITS, PHONE["width"]))
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                link = urldefrag(href).url
                parts = urlsplit(link)
                if parts.netloc != urlsplit(base).netloc:
                    continue
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                if not target.startswith(("/app/acme/", "/account/", "/app/help/")):
                    continue
                if any(s in target for s in SKIP) or target in seen:
                    continue
                queue.append(target)
    assert len(seen) > 20, f"the crawl reached only {sorted(seen)}"
    assert "/app/help/sending/" in seen, "the crawl missed the help pages"
    assert wide == {}, f"pages wider than {PHONE['width']} px: {wide}"
    assert errors == [], f"console errors: {errors}; not found: {missing}; {skipped}"
