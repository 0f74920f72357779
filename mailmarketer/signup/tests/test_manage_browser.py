"""The preference centre as a person uses it, in a real browser: signed up and confirmed from
the mails in the outbox, then from a campaign's "Manage your subscription" link: change the
lists and the name, unsubscribe from everything, have the data mailed and download it, and
erase it through the mailed link. The browser asks no host but ours for anything.

Drives Debian's Chromium through Playwright; the ORM is used only between the browser blocks
(see mailmarketer.testing.chromium_page)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Workspace
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription, Suppression
from mailmarketer.audience.queries import has_tracking_consent
from mailmarketer.signup.actions import do_create_form
from mailmarketer.testing import chromium_page, launch

from .support import confirm_path, run_engine, sent_messages

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
NOTICE = "I would like Acme's weekly news by email.\nI can unsubscribe at any time."
TRACKING = "Acme may note which pages I visit, to tailor its offers."


def link(message, path: str) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(rf"(https?://[^\s)]+{re.escape(path)}[^\s)]+)", body)
    assert match, body
    return match.group(1)


def statuses(person) -> dict[str, str]:
    return dict(
        Subscription.objects.filter(subscriber=person).values_list("mailing_list__slug", "status")
    )


def test_it_manages_unsubscribes_downloads_and_erases_in_a_browser(
    live_server, transactional_db, settings
):
    base = live_server.url
    settings.BASE_URL = base
    staff = Actor.system("test setup")
    acme = Workspace.objects.create(
        name="Acme", slug="acme", sender_name="Acme", sender_email="news@acme.test"
    )
    weekly = audience.do_create_list(
        acme, name="Weekly", slug="weekly", optin="double", visibility="public", actor=staff
    )
    audience.do_create_list(acme, name="Offers", slug="offers", visibility="public", actor=staff)
    do_create_form(
        acme,
        name="Weekly",
        slug="weekly",
        title="Get the weekly news",
        lists=[weekly],
        notice_text=NOTICE,
        tracking_notice_text=TRACKING,
        actor=staff,
    )
    requests: list[str] = []

    # Sign up (ticking the tracking box too) and confirm from the mailed link.
    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base}/f/acme/weekly")
        page.get_by_label("Email address").fill("ann@example.com")
        page.get_by_label("I agree", exact=True).check()
        page.get_by_label("I agree to activity tracking").check()
        page.get_by_role("button", name="Sign up").click()
        assert "check your inbox" in page.get_by_role("status").inner_text()
    run_engine()
    confirm = base + confirm_path(sent_messages(acme)[-1])
    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(confirm)
        page.get_by_role("button", name="Confirm").click()
        assert "confirmed" in page.content()
    ann = Subscriber.objects.get(email="ann@example.com")
    assert statuses(ann) == {"weekly": "confirmed"}
    assert has_tracking_consent(acme, ann)

    # A campaign arrives; its footer links to the preference centre.
    launch(acme, [weekly], subject="This week", body="Hello")
    run_engine()
    (campaign_mail,) = [m for m in sent_messages(acme) if m["Subject"] == "This week"]
    manage = link(campaign_mail, "/f/m/")

    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(manage)
        assert page.get_by_label("Weekly").is_checked()
        assert not page.get_by_label("Offers").is_checked()
        page.get_by_label("Offers").check()
        page.get_by_label("Activity tracking").uncheck()
        page.get_by_label("Name").fill("Ann Example")
        page.get_by_role("button", name="Save my choices").click()
        assert "Your choices are saved" in page.get_by_role("status").inner_text()
        assert page.get_by_label("Offers").is_checked()
        assert page.get_by_label("Name").input_value() == "Ann Example"
        assert not page.get_by_label("Activity tracking").is_checked()
    assert statuses(ann) == {"weekly": "confirmed", "offers": "confirmed"}
    ann.refresh_from_db()
    assert ann.name == "Ann Example"
    assert not has_tracking_consent(acme, ann)

    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(manage)
        page.get_by_role("button", name="Unsubscribe from everything").click()
        assert "unsubscribed from every list" in page.get_by_role("status").inner_text()
        page.get_by_role("button", name="Mail me my data").click()
        assert "sent a link to your data" in page.get_by_role("status").inner_text()
        page.get_by_role("button", name="Erase my data").click()
        assert "press Erase" in page.get_by_role("status").inner_text()
        assert errors == [], f"console errors: {errors}"
    assert set(statuses(ann).values()) == {"unsubscribed"}
    assert Suppression.objects.get().reason == "unsubscribed_all"
    assert Subscriber.objects.filter(pk=ann.pk).exists()  # nothing erased yet

    run_engine()
    mails = {m["Subject"]: m for m in sent_messages(acme)}
    data = link(mails["Your data"], "/f/m/data/")
    erase = link(mails["Confirm the erasure of your data"], "/f/m/erase/")

    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        # "Download is starting": the answer is an attachment, not a page.
        with page.expect_download() as info, contextlib.suppress(PlaywrightError):
            page.goto(data)
        document = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
        page.goto(erase)
        page.get_by_role("button", name="Erase").click()
        assert "Your data is erased" in page.content()
        assert errors == [], f"console errors: {errors}"
    assert document["profile"]["email"] == "ann@example.com"
    assert {c["purpose"] for c in document["consent"]} >= {"email:weekly", "tracking"}
    assert not Subscriber.objects.filter(email="ann@example.com").exists()
    assert not ConsentRecord.objects.exists()
    assert Suppression.objects.get().reason == "erased"

    foreign = [url for url in requests if not url.startswith(base + "/")]
    assert requests and foreign == [], foreign
