"""Staff upload of an access-log file: the form (permission, workspace, size, format, gzip),
the job (progress, totals, audit, file deleted) and the page showing them."""

from __future__ import annotations

import gzip
import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.testing import url
from mailmarketer.tracking import uploads
from mailmarketer.tracking.models_uploads import LogUpload
from mailmarketer.tracking.models_web import WebHit
from mailmarketer.tracking.testing_web import make_site
from mailmarketer.tracking.tests.test_logs import APACHE


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def site(personas):
    return make_site(personas.acme)


def log_file(name="access.log.gz", lines=APACHE, compress=True):
    data = ("\n".join(lines) + "\n").encode()
    return SimpleUploadedFile(name, gzip.compress(data) if compress else data)


def post(client, site, file, log_format="combined"):
    return client.post(
        url("site-log-upload-new", site_id=site.pk), {"file": file, "log_format": log_format}
    )


def test_an_owner_uploads_a_gzipped_log_the_worker_imports_it_and_the_page_shows_totals(
    alice_client, site, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(alice_client, site, log_file())
    upload = LogUpload.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("site-log-upload", site_id=site.pk, upload_id=upload.pk)
    assert len(callbacks) == 1  # the job is queued once the upload is committed
    assert upload.status == "queued" and uploads.source_path(upload.pk).exists()
    assert uploads.source_path(upload.pk).stat().st_mode & 0o077 == 0
    page = alice_client.get(response["Location"]).content.decode()
    assert "Waiting for a worker" in page and 'hx-trigger="every 1s"' in page

    uploads.run_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == "finished"
    assert upload.totals["stored"] == 5 and upload.totals["bad"] == 3
    assert upload.totals["bad_lines"] == [7, 8, 9]
    assert WebHit.objects.filter(site=site).count() == 5
    assert not uploads.source_path(upload.pk).exists()
    assert [
        e.event for e in AuditEvent.objects.filter(object_type="log_upload").order_by("id")
    ] == [
        "log_upload.created",
        "log_upload.finished",
    ]
    fragment = alice_client.get(
        url("site-log-upload-progress", site_id=site.pk, upload_id=upload.pk)
    ).content.decode()
    assert 'id="log-upload-stored">5<' in fragment and "hx-trigger" not in fragment
    assert "lines 7, 8, 9" in fragment
    # A second runner (or a second enqueue) finds nothing to do.
    assert uploads.run_upload(upload.pk) is None


def test_reuploading_the_same_log_adds_nothing_twice(alice_client, site):
    for _ in range(2):
        post(alice_client, site, log_file(compress=False, name="access.log"))
    first, second = LogUpload.objects.order_by("pk")
    uploads.run_upload(first.pk)
    uploads.run_upload(second.pk)
    second.refresh_from_db()
    assert (second.totals["stored"], second.totals["duplicates"]) == (0, 5)
    assert WebHit.objects.filter(site=site).count() == 5


def test_it_refuses_an_unknown_format_an_empty_file_and_a_file_over_the_limit(
    alice_client, site, settings
):
    response = post(alice_client, site, log_file(), log_format="$nonsense without")
    assert response.status_code == 400 and "log format" in response.content.decode()
    response = post(alice_client, site, SimpleUploadedFile("empty.log", b""))
    assert response.status_code == 400
    settings.TRACKING_LOG_UPLOAD_MAX_BYTES = 100
    response = post(alice_client, site, log_file(compress=False, name="big.log"))
    assert response.status_code == 413
    assert "larger than" in html.unescape(response.content.decode())
    assert not LogUpload.objects.exists()


def test_a_broken_gzip_fails_the_upload_with_a_message_and_keeps_nothing(alice_client, site):
    post(alice_client, site, SimpleUploadedFile("x.log.gz", b"\x1f\x8b" + b"broken" * 10))
    upload = LogUpload.objects.get()
    uploads.run_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == "failed" and upload.error.startswith("cannot import the file")
    assert not uploads.source_path(upload.pk).exists()
    assert AuditEvent.objects.filter(event="log_upload.failed").count() == 1
    page = alice_client.get(url("site-log-upload", site_id=site.pk, upload_id=upload.pk))
    assert "Failed: cannot import the file" in page.content.decode()


def test_only_those_managing_settings_may_upload_and_only_in_their_workspace(
    carol_client, mallory_client, alice_client, site, personas
):
    assert carol_client.get(url("site-log-upload-new", site_id=site.pk)).status_code == 403
    assert post(carol_client, site, log_file()).status_code == 403
    # Another workspace's site and upload do not exist for mallory.
    other = make_site(personas.evil, domain="evil.test")
    assert (
        mallory_client.get(url("site-log-upload-new", ws="evil", site_id=site.pk)).status_code
        == 404
    )
    post(alice_client, site, log_file())
    upload = LogUpload.objects.get()
    for name in ("site-log-upload", "site-log-upload-progress"):
        assert (
            mallory_client.get(
                url(name, ws="evil", site_id=other.pk, upload_id=upload.pk)
            ).status_code
            == 404
        )
    assert not LogUpload.objects.filter(workspace=personas.evil).exists()
