"""The import pages: upload, mapping with a preview, progress, the error report, and the access
rule of every route (allowed for audience.manage, 403 for the analyst, 404 across workspaces)."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.accounts.permissions import Role
from mailmarketer.audience.importing import files, jobs
from mailmarketer.audience.models import Import, Subscriber
from mailmarketer.testing import make_member, make_user

from .import_helpers import import_data_dir, run, start, write  # noqa: F401

Status = Import.Status


def url(name: str, ws: str = "acme", **kwargs) -> str:
    return reverse(name, kwargs={"ws": ws, **kwargs})


def upload(client, content: bytes, *, name="people.csv", **data):
    fields = {
        "file": SimpleUploadedFile(name, content, content_type="text/csv"),
        "mode": "subscribe",
        "attribute_mode": "merge",
        **data,
    }
    return client.post(url("audience-import-new"), fields)


@pytest.fixture
def finished(personas, news, tmp_path):
    """A finished acme import with an error report."""
    path = write(tmp_path, "acme.csv", "email,name\nann@example.com,Ann\n=cmd|x,Bad\n")
    return run(personas.acme, path)


# -- the whole path, as a person takes it ---------------------------------------------------------


def test_it_takes_an_upload_through_mapping_to_the_progress_page(bob_client, news, personas):
    content = "E-mail;Name;Plan\nann@example.com;Ann;pro\nbob@example.com;Bob;free\n".encode(
        "cp1252"
    )

    response = upload(
        bob_client, content, lists=[news.pk], confirmed="on", notice_text="Send me news."
    )

    imp = Import.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("audience-import-mapping", import_id=imp.pk)
    assert imp.status == Status.DRAFT and imp.created_by == personas.bob

    page = bob_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "Read as <strong>UTF-8</strong>, separated by <strong>semicolons</strong>" in html
    assert "<td>ann@example.com</td>" in html and "<td>pro</td>" in html
    # The guess: E-mail is the email, Name the name, Plan an attribute named after it.
    assert re.search(r'name="role_0"[^>]*>.*?<option value="email" selected>', html, re.S)
    assert re.search(r'name="role_1"[^>]*>.*?<option value="name" selected>', html, re.S)
    assert 'name="attr_2" value="Plan"' in html

    started = bob_client.post(
        url("audience-import-mapping", import_id=imp.pk),
        {
            "role_0": "email",
            "role_1": "name",
            "attr_1": "Name",
            "role_2": "attribute:text",
            "attr_2": "plan",
        },
    )

    imp.refresh_from_db()
    assert started.status_code == 302
    assert started["Location"] == url("audience-import", import_id=imp.pk)
    assert imp.status == Status.QUEUED
    assert imp.mapping == {"email": 0, "name": 1, "attributes": [[2, "plan", "text"]]}
    queued = bob_client.get(started["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in queued and "Waiting for a worker" in queued

    jobs.run_import(imp.pk)

    done = bob_client.get(url("audience-import", import_id=imp.pk)).content.decode()
    assert "hx-trigger" not in done  # finished: the page stops polling
    assert 'aria-valuenow="100.0"' in done and "Finished." in done
    assert sorted(Subscriber.objects.values_list("email", "attributes")) == [
        ("ann@example.com", {"plan": "pro"}),
        ("bob@example.com", {"plan": "free"}),
    ]


def test_it_polls_a_running_import_with_an_accessible_progress_bar(
    bob_client, personas, news, tmp_path
):
    imp = start(personas.acme, write(tmp_path, "p.csv", "email\na@example.com\nb@example.com\n"))
    Import.objects.filter(pk=imp.pk).update(
        status=Status.RUNNING, rows_done=1, rows_total=2, rows_total_exact=True
    )

    fragment = bob_client.get(url("audience-import-progress", import_id=imp.pk))

    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html
    assert f'hx-get="{url("audience-import-progress", import_id=imp.pk)}"' in html
    assert 'hx-trigger="every 1s"' in html and 'hx-swap="outerHTML"' in html
    assert '<progress id="import-bar" max="100" value="50.0"' in html
    assert 'aria-valuenow="50.0"' in html and 'aria-valuetext="50.0%: 1 of 2 rows"' in html


def test_it_shows_a_form_error_for_a_file_it_cannot_read(bob_client, news):
    response = upload(
        bob_client, b"\x89PNG\r\n\x1a\n\x00\x00\x00", name="photo.csv", lists=[news.pk]
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert "this is not a CSV text file (it contains NUL bytes" in html
    assert (
        'id="id_file_error"' in html and 'aria-describedby="id_file_helptext id_file_error"' in html
    )
    assert not Import.objects.exists()


def test_it_asks_for_the_notice_when_importing_as_confirmed(bob_client, news):
    response = upload(bob_client, b"email\na@example.com\n", lists=[news.pk], confirmed="on")

    assert response.status_code == 400
    assert "needs the text of the consent notice" in response.content.decode()
    assert 'id="id_notice_text_error"' in response.content.decode()


def test_it_refuses_an_upload_over_the_size_limit(bob_client, news, settings):
    settings.IMPORT_MAX_BYTES = 1024

    response = upload(bob_client, b"email\n" + b"a@example.com\n" * 200, lists=[news.pk])

    assert response.status_code == 413
    assert (
        "the file is larger than the 1 KB allowed: compress it (.csv.gz or .zip) or split it"
        in response.content.decode()
    )
    assert 'id="id_file_error"' in response.content.decode()
    assert not Import.objects.exists()


def test_it_refuses_a_mapping_without_an_email_column(bob_client, personas, news, tmp_path):
    imp = jobs.do_create_import(
        personas.acme,
        file=write(tmp_path, "p.csv", "email,name\na@example.com,Ann\n"),
        original_name="p.csv",
        lists=[news],
        actor=Actor.for_user(personas.bob),
    )

    response = bob_client.post(
        url("audience-import-mapping", import_id=imp.pk),
        {"role_0": "ignore", "role_1": "name", "attr_0": "", "attr_1": ""},
    )

    assert response.status_code == 400
    assert "choose the column that holds the email addresses" in response.content.decode()
    imp.refresh_from_db()
    assert imp.status == Status.DRAFT


def test_it_downloads_the_error_report(bob_client, finished):
    response = bob_client.get(url("audience-import-errors", import_id=finished.pk))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="import-{finished.pk}-errors.csv"'
    )
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.splitlines() == [
        "line,reason,email,name",
        "3,invalid email address: An email address must have an @-sign.,'=cmd|x,Bad",
    ]


def test_it_writes_one_audit_row_per_download_of_the_error_report(bob_client, finished):
    for _ in range(2):
        response = bob_client.get(url("audience-import-errors", import_id=finished.pk))
        assert response.status_code == 200
        assert b"=cmd" in b"".join(response.streaming_content)
    rows = AuditEvent.objects.filter(event="import.report_downloaded")
    assert rows.count() == 2
    assert {(r.object_id, r.actor_user.email) for r in rows} == {
        (str(finished.pk), "bob@acme.test")
    }
    assert not any("ann@" in f"{r.new} {r.object_repr}" for r in rows)


@pytest.fixture
def support_client(personas, client):
    sam = make_user("sam@acme.test", "Sam")
    make_member(personas.acme, sam, Role.SUPPORT)
    client.force_login(sam)
    return client


def test_it_keeps_the_error_report_from_a_role_that_may_import_but_not_export(
    support_client, finished
):
    # Support may import (audience.manage) and look people up, but the report is a download
    # of other people's rows: an export, which support may not make.
    response = support_client.get(url("audience-import-errors", import_id=finished.pk))
    assert response.status_code == 403
    assert "audience.export" in response.content.decode()
    for page in (url("audience-imports"), url("audience-import", import_id=finished.pk)):
        html = support_client.get(page).content.decode()
        assert url("audience-import-errors", import_id=finished.pk) not in html, page
    assert not AuditEvent.objects.filter(event="import.report_downloaded").exists()


def test_it_cancels_resumes_and_deletes(bob_client, personas, news, tmp_path, monkeypatch):
    imp = start(personas.acme, write(tmp_path, "p.csv", "email\na@example.com\n"))
    Import.objects.filter(pk=imp.pk).update(status=Status.FAILED, error="boom")
    monkeypatch.setattr(jobs, "_enqueue", lambda pk: None)

    resumed = bob_client.post(url("audience-import-resume", import_id=imp.pk))
    imp.refresh_from_db()
    assert resumed.status_code == 302 and imp.status == Status.QUEUED

    cancelled = bob_client.post(url("audience-import-cancel", import_id=imp.pk))
    imp.refresh_from_db()
    assert cancelled.status_code == 302 and imp.status == Status.CANCELLED

    again = bob_client.post(url("audience-import-cancel", import_id=imp.pk), follow=True)
    assert "this import is cancelled: nothing to cancel" in again.content.decode()

    deleted = bob_client.post(url("audience-import-delete", import_id=imp.pk))
    assert deleted.status_code == 302 and deleted["Location"] == url("audience-imports")
    assert not Import.objects.exists()
    assert list(
        AuditEvent.objects.filter(object_type="import")
        .order_by("id")
        .values_list("event", flat=True)
    ) == ["import.created", "import.resumed", "import.cancelled", "import.deleted"]


def test_it_lists_the_workspaces_imports_only(bob_client, personas, news, finished, tmp_path):
    theirs = write(tmp_path, "evil-secret.csv", "email\ne@example.com\n")
    jobs.do_create_import(
        personas.evil,
        file=theirs,
        original_name="evil-secret.csv",
        lists=[],
        mode="blocklist",
        actor=Actor.system("test"),
    )

    html = bob_client.get(url("audience-imports")).content.decode()

    assert "acme.csv" in html and "evil-secret.csv" not in html
    assert url("audience-import-errors", import_id=finished.pk) in html


# -- every route: allowed, forbidden, other workspace ------------------------------------------

ROUTES = [
    ("get", "audience-imports", False),
    ("get", "audience-import-new", False),
    ("get", "audience-import", True),
    ("get", "audience-import-mapping", True),
    ("get", "audience-import-progress", True),
    ("get", "audience-import-errors", True),
    ("post", "audience-import-cancel", True),
    ("post", "audience-import-resume", True),
    ("post", "audience-import-delete", True),
]


@pytest.mark.parametrize(("method", "name", "has_id"), ROUTES)
def test_it_lets_a_marketer_in(bob_client, finished, method, name, has_id):
    kwargs = {"import_id": finished.pk} if has_id else {}

    response = getattr(bob_client, method)(url(name, **kwargs))

    assert response.status_code in (200, 302)


@pytest.mark.parametrize(("method", "name", "has_id"), ROUTES)
def test_it_forbids_the_analyst(carol_client, finished, method, name, has_id):
    kwargs = {"import_id": finished.pk} if has_id else {}

    response = getattr(carol_client, method)(url(name, **kwargs))

    assert response.status_code == 403
    assert Import.objects.filter(pk=finished.pk).exists()


@pytest.mark.parametrize(("method", "name", "has_id"), ROUTES)
def test_it_shows_nothing_of_acme_to_mallory(mallory_client, finished, method, name, has_id):
    kwargs = {"import_id": finished.pk} if has_id else {}

    in_acme = getattr(mallory_client, method)(url(name, **kwargs))
    assert in_acme.status_code == 404

    if has_id:  # acme's import id, asked in mallory's own workspace
        in_evil = getattr(mallory_client, method)(url(name, ws="evil", **kwargs))
        assert in_evil.status_code == 404
    assert Import.objects.filter(pk=finished.pk, status=Status.FINISHED).exists()
    assert files.report_path(finished.pk).exists()
