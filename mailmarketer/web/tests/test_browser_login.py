"""The first minutes of a new installation in a real browser: the setup link, the dashboard,
signing out and in again, with no console errors (a CSP violation is one).

Drives Debian's Chromium through Playwright; never a downloaded browser."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.models import User, Workspace
from mailmarketer.accounts.setup import setup_token
from mailmarketer.testing import chromium_page

PASSWORD = "correct horse battery staple"

pytestmark = [pytest.mark.browser]


def test_it_sets_up_the_first_owner_then_signs_out_and_in(live_server, transactional_db):
    base = live_server.url
    setup_link = f"{base}/setup/{setup_token()}/"
    with chromium_page() as (page, errors):
        page.goto(setup_link)
        assert page.title().startswith("Set up Mail Marketer")
        page.get_by_label("Workspace name").fill("Acme Ltd")
        # app.js suggests the address from the name.
        assert page.get_by_label("Workspace address").input_value() == "acme-ltd"
        page.get_by_label("Your name").fill("Olivia Owner")
        page.get_by_label("Your email address").fill("olivia@acme.test")
        page.get_by_label("New password", exact=True).fill(PASSWORD)
        page.get_by_label("New password again").fill(PASSWORD)
        page.get_by_role("button", name="Create workspace and sign in").click()

        page.wait_for_url(f"{base}/app/acme-ltd/")
        assert page.get_by_role("heading", level=1).inner_text() == "Acme Ltd"

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{base}/login/")
        assert page.get_by_text("You have signed out.").is_visible()

        # A wrong password first: the page says so, in a way a screen reader announces.
        page.get_by_label("Email address").fill("olivia@acme.test")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        assert "do not match an account" in page.get_by_role("alert").inner_text()

        page.get_by_label("Email address").fill("Olivia@Acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme-ltd/")
        account_link = page.get_by_role("link", name="Olivia Owner")
        assert account_link.is_visible()

        # A new list's short name follows its name the same way, until edited.
        page.goto(f"{base}/app/acme-ltd/audience/")
        page.get_by_label("Name", exact=True).fill("Café News – Weekly")
        assert page.get_by_label("Short name (slug)").input_value() == "cafe-news-weekly"

        # The two-factor set-up draws its QR code as inline SVG: no inline style may sneak in.
        account_link.click()
        page.get_by_role("link", name="Set up two-factor authentication").click()
        assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
        assert page.get_by_label("6-digit code").is_visible()

    assert errors == [], f"console errors: {errors}"
    assert Workspace.objects.get().slug == "acme-ltd"
    owner = User.objects.get()
    assert owner.email == "olivia@acme.test"
    assert owner.memberships.get().role == "owner"
