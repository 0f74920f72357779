"""The editor in a real browser: typing in the source updates the preview frame (as sample
data or a chosen subscriber), the mobile
toggle narrows it, the frame is as tall as the message (its footer shows; the saved preview's
frame too), an image uploaded
from the editor lands in the body as Markdown, and a starter of the gallery becomes a saved
campaign; no console errors along the way (a CSP violation is one).

Drives Debian's Chromium through Playwright (see mailmarketer/testing.py chromium_page)."""

from __future__ import annotations

import os

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns import actions, gallery
from mailmarketer.campaigns.models import Campaign
from mailmarketer.campaigns.models_images import CampaignImage
from mailmarketer.testing import chromium_page

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2"
    "2d8c1b0000000049454e44ae426082"
)


def test_it_previews_as_you_type_and_starts_from_the_gallery(
    live_server, transactional_db, settings, tmp_path
):
    settings.IMAGES_DIR = tmp_path / "images"
    workspace = Workspace.objects.create(
        name="Acme",
        slug="acme",
        sender_email="news@acme.test",
        postal_address="1 Main Street\nSpringfield",
    )
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    staff = Actor.for_user(olga)
    news = audience.do_create_list(workspace, name="News", slug="news", actor=staff)
    ann = audience.do_create_subscriber(
        workspace, email="ann@example.com", name="Ann Lee", actor=staff
    )
    audience.do_subscribe(ann, [news], actor=staff, reason=Reason.BY_ADMIN, confirmed=True)
    draft = actions.do_create_campaign(
        workspace,
        actor=staff,
        name="Autumn",
        subject="Hello {{ subscriber.first_name }}",
        body="First words.",
        lists=[news],
    )
    image_file = tmp_path / "dot.png"
    image_file.write_bytes(PNG_1PX)
    base = live_server.url
    settings.BASE_URL = base  # the image's address in the message, on the test's server
    newsletter = gallery.get_starter("newsletter")

    with chromium_page() as (page, errors):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")

        page.goto(f"{base}/app/acme/campaigns/{draft.pk}/edit/")
        frame = page.frame_locator("#live-frame")
        frame.get_by_text("First words.").wait_for()
        assert not page.locator("[data-live-frame-submit]").is_visible()
        assert page.locator("#live-result .preview-subject").inner_text().endswith("Hello Jane")

        # Typing updates the frame (and the subject) without saving.
        body = page.get_by_label("Body")
        body.fill("")
        body.press_sequentially("Our **winter** roast", delay=10)
        frame.locator("strong", has_text="winter").wait_for()
        assert frame.get_by_text("First words.").count() == 0
        page.get_by_label("Subject").fill("Cold days, {{ subscriber.first_name }}")
        page.locator("#live-result .preview-subject", has_text="Cold days, Jane").wait_for()

        # As a chosen subscriber: the subject and the frame, until back to sample data.
        page.get_by_label("Preview as a subscriber").fill("ann")
        page.get_by_role("button", name="ann@example.com").click()
        page.locator("#live-result .preview-subject", has_text="Cold days, Ann").wait_for()
        body.fill("Our **winter** roast, {{ subscriber.first_name }}.")
        frame.get_by_text("roast, Ann.").wait_for()
        page.get_by_role("button", name="Use sample data instead").click()
        page.locator("#live-result .preview-subject", has_text="Cold days, Jane").wait_for()
        frame.get_by_text("roast, Jane.").wait_for()

        # The frame is as tall as the message: its footer is inside the visible frame.
        page.wait_for_function(
            "() => { const f = document.getElementById('live-frame');"
            " const d = f.contentDocument; return d && d.documentElement.scrollHeight > 0 &&"
            " Math.abs(f.getBoundingClientRect().height - d.documentElement.scrollHeight) < 8; }"
        )
        assert frame.get_by_text("1 Main Street").is_visible()

        # Desktop and mobile widths.
        desktop = page.locator("#live-frame").bounding_box()["width"]
        assert desktop >= 600
        page.get_by_role("button", name="Mobile").click()
        page.wait_for_function(
            "() => Math.round(document.getElementById('live-frame')"
            ".getBoundingClientRect().width) === 375"
        )
        assert page.get_by_role("button", name="Mobile").get_attribute("aria-pressed") == "true"
        page.get_by_role("button", name="Desktop").click()
        page.wait_for_function(
            "() => document.getElementById('live-frame').getBoundingClientRect().width >= 600"
        )

        # A template error shows in the pane, and the frame keeps the last good render.
        body.fill("Broken {{ subscriber.first_name | shout }}")
        page.locator("#live-result [role=alert]", has_text="shout").wait_for()
        assert frame.locator("strong", has_text="winter").count() == 1

        # An image uploaded from the editor goes into the body as Markdown.
        body.fill("Picture: ")
        with page.expect_file_chooser() as chooser:
            page.get_by_role("button", name="Upload an image…").click()
        chooser.value.set_files(str(image_file))
        page.locator("#image-status", has_text="Inserted dot.png").wait_for()
        assert "![dot](http" in body.input_value()
        frame.locator("img[alt=dot]").wait_for()
        page.wait_for_function(
            "() => { const i = document.getElementById('live-frame').contentDocument"
            ".querySelector('img[alt=dot]'); return i && i.complete && i.naturalWidth === 1; }"
        )

        # Narrow screens: the panes stack, and the page does not scroll sideways.
        page.set_viewport_size({"width": 390, "height": 800})
        source = page.locator(".editor-source").bounding_box()
        preview = page.locator(".editor-preview").bounding_box()
        files = page.locator(".editor-files").bounding_box()
        assert source["y"] + source["height"] - 1 <= preview["y"] < files["y"]
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), (
            "the page scrolls sideways at 390 px"
        )
        page.set_viewport_size({"width": 1400, "height": 900})

        # The saved preview's frame is sized to the message too (frame.js).
        page.goto(f"{base}/app/acme/campaigns/{draft.pk}/preview/")
        page.frame_locator("iframe.mail").get_by_text("First words.").wait_for()
        page.wait_for_function(
            "() => { const f = document.querySelector('iframe.mail');"
            " const d = f.contentDocument;"
            " return d && d.body && d.body.innerText.includes('Unsubscribe') &&"
            " Math.abs(f.getBoundingClientRect().height - d.documentElement.scrollHeight) < 8; }"
        )

        # The gallery: start a newsletter, pick the list, save.
        page.goto(f"{base}/app/acme/campaigns/new/")
        page.get_by_role("link", name="Newsletter").click()
        page.wait_for_url(f"{base}/app/acme/campaigns/new/?start=newsletter")
        frame.get_by_text("The big story").wait_for()
        page.get_by_role("group", name="Send to these lists").get_by_label("News").check()
        page.get_by_role("button", name="Save draft").click()
        page.wait_for_url(f"{base}/app/acme/campaigns/*/")

    assert errors == [], f"console errors: {errors}"
    assert Campaign.objects.get(pk=draft.pk).body == "First words."  # typing saved nothing
    created = Campaign.objects.exclude(pk=draft.pk).get()
    assert created.body == newsletter.body.strip()
    assert created.subject == newsletter.subject
    assert list(created.lists.all()) == [news]
    assert CampaignImage.objects.filter(workspace=workspace).count() == 1
