"""An access log uploaded on a site's page in Debian's Chromium: the form, the progress block
waiting for the worker, then (the worker having run, without reloading the page) the totals.
No console errors (a CSP violation is one), no request to any host but ours."""

from __future__ import annotations

import gzip
import os
import threading
from urllib.parse import urlsplit

import pytest
from django.db import connection

from mailmarketer.accounts.models import Membership, User, Workspace
from mailmarketer.accounts.permissions import Role
from mailmarketer.testing import chromium_page
from mailmarketer.tracking import uploads
from mailmarketer.tracking.models_uploads import LogUpload
from mailmarketer.tracking.testing_web import make_site
from mailmarketer.tracking.tests.test_logs import APACHE

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
pytestmark = [pytest.mark.browser]
PASSWORD = "correct horse battery staple"


def work(upload_id: int) -> None:
    """What the worker does, in a thread with its own connection (closed when done)."""
    try:
        uploads.run_upload(upload_id)
    finally:
        connection.close()


def test_a_log_uploaded_in_the_browser_shows_its_progress_then_its_totals(
    live_server, transactional_db, settings, tmp_path
):
    settings.DATA_DIR = tmp_path / "data"
    workspace = Workspace.objects.create(
        name="Acme", slug="acme", sender_email="news@acme.test", postal_address="1 Main St"
    )
    olga = User.objects.create_user(email="olga@acme.test", name="Olga", password=PASSWORD)
    Membership.objects.create(workspace=workspace, user=olga, role=Role.OWNER)
    site = make_site(workspace)
    log = tmp_path / "access.log.gz"
    log.write_bytes(gzip.compress(("\n".join(APACHE) + "\n").encode()))
    base = live_server.url
    hosts: list[str] = []
    with chromium_page() as (page, errors):
        page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or ""))
        page.goto(f"{base}/login/")
        page.get_by_label("Email address").fill("olga@acme.test")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/app/acme/")
        page.goto(f"{base}/app/acme/analytics/sites/{site.pk}/")
        page.get_by_role("link", name="Import an access log").click()
        page.get_by_label("Access log").set_input_files(str(log))
        page.get_by_role("button", name="Upload and import").click()
        page.get_by_text("Waiting for a worker").wait_for()
        upload_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        worker = threading.Thread(target=work, args=(upload_id,))
        worker.start()
        worker.join(timeout=30)
        page.get_by_text("Finished.").wait_for(timeout=10_000)
        assert page.locator("#log-upload-stored").inner_text() == "5"
        assert "lines 7, 8, 9" in page.locator("#log-upload-bad").inner_text()
    assert errors == [], f"console errors: {errors}"
    assert set(hosts) <= {"127.0.0.1", "localhost"}, hosts
    assert LogUpload.objects.get(pk=upload_id).status == "finished"
