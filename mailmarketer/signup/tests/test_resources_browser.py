"""A resource form used as a person uses it, in Debian's Chromium: filled and sent, the file
downloaded from the page at once (single opt-in), the link opened from the mail in the outbox
and the file downloaded again, and the same link refused once it has expired (time moved on by
patching the clock the link is checked against, no sleeping). The browser asks no host but the
app for anything."""

from __future__ import annotations

import os
from datetime import timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Workspace
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import Subscriber
from mailmarketer.signup.models import ResourceDownload
from mailmarketer.testing import chromium_page

from .kinds_support import PDF_BYTES, download_path, make_resource, resource_form, upload
from .support import run_engine, sent_messages

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]


def fetch_download(page, action):
    """Runs `action` (which starts a download) and returns the file's name and bytes."""
    from playwright.sync_api import Error as PlaywrightError

    with page.expect_download() as info:
        try:
            action()
        except PlaywrightError as exc:  # a download aborts the navigation that started it
            assert "Download is starting" in str(exc) or "ERR_ABORTED" in str(exc), exc
    download = info.value
    with open(download.path(), "rb") as handle:
        return download.suggested_filename, handle.read()


def test_it_downloads_a_resource_from_the_page_and_the_mail_and_refuses_it_after_expiry(
    live_server, transactional_db, settings, tmp_path
):
    base = live_server.url
    settings.BASE_URL = base
    settings.DATA_DIR = tmp_path / "data"
    staff = Actor.system("test setup")
    acme = Workspace.objects.create(
        name="Acme", slug="acme", sender_name="Acme", sender_email="news@acme.test"
    )
    news = audience.do_create_list(acme, name="News", slug="news", actor=staff)
    guide = make_resource(
        acme, staff, upload=upload(PDF_BYTES, name="Coffee guide.pdf"), link_days=14
    )
    resource_form(acme, staff, guide, lists=[news])
    requests: list[str] = []

    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{base}/f/acme/guide")
        page.get_by_label("Email address").fill("ann@example.com")
        page.get_by_label("Name").fill("Ann")
        page.get_by_role("button", name="Sign up").click()
        assert "sent the download link" in page.get_by_role("status").inner_text()
        name, content = fetch_download(
            page, lambda: page.get_by_role("link", name="Download now").click()
        )
        assert (name, content) == ("Coffee_guide.pdf", PDF_BYTES)
    assert errors == [], f"console errors: {errors}"

    run_engine()
    [mail] = sent_messages(acme)
    assert mail["To"].addresses[0].addr_spec == "ann@example.com"
    link = base + download_path(mail.get_body(("plain",)).get_content())

    with chromium_page() as (page, errors):
        page.on("request", lambda request: requests.append(request.url))
        name, content = fetch_download(page, lambda: page.goto(link))
        assert (name, content) == ("Coffee_guide.pdf", PDF_BYTES)
        later = now() + timedelta(days=14, minutes=1)
        with mock.patch("mailmarketer.signup.resources.now", return_value=later):
            response = page.goto(link)
            assert response.status == 410
            assert "has expired" in page.get_by_role("status").inner_text()
    assert errors == [] or all("410" in e for e in errors), f"console errors: {errors}"

    ann = Subscriber.objects.get(email="ann@example.com")
    assert ResourceDownload.objects.filter(subscriber=ann, resource=guide).count() == 2
    assert {urlsplit(url).netloc for url in requests} == {urlsplit(base).netloc}
