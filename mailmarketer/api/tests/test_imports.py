"""POST /imports (multipart) and GET /imports/{id}: allowed, forbidden, cross-workspace."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.importing.jobs import run_import
from mailmarketer.audience.models import Import, Subscriber, Subscription

from .audience_data import make_list

pytestmark = pytest.mark.django_db

CSV = (
    b"Email;Name;City\n"
    b"ann@example.com;Ann;Oslo\n"
    b"not-an-address;X;Y\n"
    b"ann@example.com;Ann again;Bergen\n"
    b"bob@example.com;Bob;Bergen\n"
)


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path


@pytest.fixture
def news(personas):
    return make_list(personas.acme, "news")


def upload(token, content=CSV, name="people.csv", **fields):
    from django.test import Client

    data = {"file": SimpleUploadedFile(name, content, content_type="text/csv"), **fields}
    return Client().post(
        "/api/v1/imports", data=data, headers={"Authorization": f"Bearer {token.raw}"}
    )


def test_it_queues_an_import_and_reports_its_progress(tokens, as_token, news):
    response = upload(tokens.marketer, lists="news", status="confirmed", notice_text="Yes, mail me")
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["file_name"], body["mode"], body["delimiter"]) == (
        "queued",
        "people.csv",
        "subscribe",
        body["delimiter"],
    )
    imp = Import.objects.get(pk=body["id"])
    assert (imp.workspace.slug, imp.confirmed, imp.notice.text) == ("acme", True, "Yes, mail me")
    assert imp.mapping["email"] == 0 and imp.mapping["name"] == 1
    assert AuditEvent.objects.filter(event="import.created").count() == 1

    run_import(imp.pk)  # what the worker does

    progress = as_token(tokens.analyst.raw).get(f"/api/v1/imports/{imp.pk}")
    assert progress.status_code == 200
    done = progress.json()
    assert (done["status"], done["rows_done"], done["created"], done["skipped"]) == (
        "finished",
        4,
        2,
        2,
    )
    assert done["skipped_reasons"] == {"invalid_email": 1, "duplicate": 1}
    assert done["percent"] == 100.0 and done["has_error_report"] is True
    assert list(
        Subscriber.objects.order_by("email").values_list("email", "name", "attributes")
    ) == [
        ("ann@example.com", "Ann", {"City": "Oslo"}),
        ("bob@example.com", "Bob", {"City": "Bergen"}),
    ]
    assert set(Subscription.objects.values_list("status", flat=True)) == {"confirmed"}
    assert "ann@" not in progress.content.decode()


def test_it_takes_the_columns_it_is_told(tokens, news):
    content = b"a,b\nAnn,ann@example.com\n"
    response = upload(tokens.marketer, content, lists="news", email_column="b", name_column="1")
    assert response.status_code == 202, response.content
    imp = Import.objects.get()
    assert (imp.mapping["email"], imp.mapping["name"]) == (1, 0)


def test_it_refuses_confirmed_without_notice_text(tokens, news):
    response = upload(tokens.marketer, lists="news", status="confirmed")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "notice_text"
    assert not Import.objects.exists()


def test_it_names_the_list_it_cannot_find(tokens, news):
    response = upload(tokens.marketer, lists="news,nope")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "lists" and "'nope'" in error["message"]
    response = upload(tokens.marketer)
    assert response.json()["errors"][0]["field"] == "lists"
    assert not Import.objects.exists()


def test_it_refuses_a_file_it_cannot_read_and_keeps_nothing(tokens, news, tmp_path):
    response = upload(tokens.marketer, b"\x00\x01\x02PK\x03\x04garbage", "x.zip", lists="news")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "file"
    assert not Import.objects.exists()
    assert not any((tmp_path / "imports").glob("*/source"))


def test_it_refuses_a_column_that_is_not_there_and_removes_the_draft(
    tokens, news, tmp_path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(tokens.marketer, lists="news", email_column="E-mail address")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "email_column"
    assert "'E-mail address'" in error["message"]
    assert not Import.objects.exists()
    assert not any((tmp_path / "imports").glob("*/source"))


def test_it_refuses_a_file_over_the_limit_with_413(tokens, news, settings):
    settings.IMPORT_MAX_BYTES = 10
    response = upload(tokens.marketer, lists="news")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert "more than the" in response.json()["message"]
    assert not Import.objects.exists()


def test_it_refuses_an_import_to_an_analyst(tokens, news):
    response = upload(tokens.analyst, lists="news")
    assert response.status_code == 403
    assert p.AUDIENCE_MANAGE in response.json()["message"]
    assert not Import.objects.exists()


def test_it_never_lets_mallory_import_into_acmes_list(tokens, news):
    response = upload(tokens.mallory, lists=str(news.pk))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "lists"
    assert not Import.objects.exists()


def test_it_hides_acmes_import_from_mallory(tokens, as_token, news):
    imp_id = upload(tokens.marketer, lists="news").json()["id"]
    response = as_token(tokens.mallory.raw).get(f"/api/v1/imports/{imp_id}")
    assert response.status_code == 404
    assert "people.csv" not in response.content.decode()
    assert as_token(tokens.mallory.raw).get("/api/v1/imports/nope").status_code == 404


def test_it_asks_for_the_email_column_when_it_cannot_find_one(tokens, news):
    response = upload(tokens.marketer, b"first,second\nAnn,Oslo\n", lists="news")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "email_column"
    assert error["message"].startswith("no email column")
    assert not Import.objects.exists()
