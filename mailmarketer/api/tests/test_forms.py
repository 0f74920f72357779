"""/forms: creating, reading, changing and deleting forms, and reading their submissions,
masked without the personal-data permission; who may do what."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.api.access import declared_permission, operations
from mailmarketer.api.urls import api
from mailmarketer.audience.actions import do_create_list
from mailmarketer.signup.actions import Visit, do_create_form, do_submit_form
from mailmarketer.signup.fields import Submitted
from mailmarketer.signup.models import Form
from mailmarketer.signup.testing import altcha_payload

pytestmark = pytest.mark.django_db
SETUP = Actor.system("test setup")

ROUTES = {
    ("GET", "/forms"): p.FORMS_VIEW,
    ("POST", "/forms"): p.FORMS_MANAGE,
    ("GET", "/forms/{form_id}"): p.FORMS_VIEW,
    ("PATCH", "/forms/{form_id}"): p.FORMS_MANAGE,
    ("DELETE", "/forms/{form_id}"): p.FORMS_MANAGE,
    ("GET", "/forms/{form_id}/submissions"): p.FORMS_VIEW,
    ("PUT", "/forms/{form_id}/evaluation"): p.FORMS_MANAGE,  # api/leads.py
    ("PUT", "/forms/{form_id}/resource"): p.FORMS_MANAGE,  # api/leads.py
}
BODY = {
    "name": "Newsletter",
    "slug": "newsletter",
    "title": "Get our news",
    "fields": [{"key": "first_name"}, {"key": "seats", "type": "number", "required": True}],
    "lists": ["news"],
    "notice_text": "Yes, send me the news.",
    "allowed_origins": ["https://www.acme.test"],
}


@pytest.fixture
def news(personas):
    return do_create_list(personas.acme, name="News", slug="news", actor=SETUP)


@pytest.fixture
def form(personas, news):
    return do_create_form(
        personas.acme, name="F", slug="f", title="F", lists=[news], notice_text="Yes.", actor=SETUP
    )


def submit(form, email: str, **visit):
    submitted = Submitted(email=email, lists=[m.pk for m in form.lists.all()])
    return do_submit_form(form, submitted, Visit(via="json", ip="203.0.113.9", **visit))


def test_it_declares_the_permission_of_each_route():
    found = {
        (method, path): declared_permission(op)
        for method, path, op in operations(api)
        if path.startswith("/forms")
    }
    assert found == ROUTES


def test_it_creates_a_form_with_its_notice(tokens, as_token, news):
    response = as_token(tokens.marketer.raw).request("POST", "/api/v1/forms", BODY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["lists"] == [news.pk]
    assert body["notice"]["text"] == "Yes, send me the news."
    assert body["notice"]["version"] == 1
    assert body["url"].endswith("/f/acme/newsletter")
    assert [f["type"] for f in body["fields"]] == ["builtin", "number"]
    # What a script on the allowed origin posts with.
    posted = Client().post(
        "/f/acme/newsletter.json",
        data=json.dumps(
            {
                "form_token": body["embed_token"],
                "altcha": altcha_payload(Form.objects.get(pk=body["id"])),
                "email": "ann@example.com",
                "seats": 3,
                "consent": True,
            }
        ),
        content_type="application/json",
        HTTP_ORIGIN="https://www.acme.test",
    )
    assert posted.status_code == 200, posted.content
    assert posted["Access-Control-Allow-Origin"] == "https://www.acme.test"
    assert AuditEvent.objects.filter(event="form.created").exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "webinar"}, "event"),
        ({"kind": "webinar", "event": 999}, "event"),
        ({"redirect_url": "https://evil.test/"}, "redirect_url"),
        ({"lists": ["nope"]}, "lists"),
        ({"fields": [{"key": "email"}]}, "fields"),
        ({"allowed_origins": ["not an origin"]}, "allowed_origins"),
        ({"unknown": 1}, "unknown"),
        ({"slug": "Bad Slug"}, "slug"),
    ],
)
def test_it_names_the_field_it_refuses(tokens, as_token, news, change, field):
    response = as_token(tokens.owner.raw).request("POST", "/api/v1/forms", {**BODY, **change})
    assert response.status_code == 422, response.content
    assert field in {e["field"] for e in response.json()["errors"]}
    assert not Form.objects.exists()


def test_it_refuses_a_taken_slug_with_409(tokens, as_token, form):
    response = as_token(tokens.owner.raw).request("POST", "/api/v1/forms", {**BODY, "slug": "f"})
    assert response.status_code == 409


def test_it_reads_patches_and_deletes_by_id_or_slug(tokens, as_token, form):
    client = as_token(tokens.marketer.raw)
    assert client.get("/api/v1/forms/f").json()["id"] == form.pk
    assert [f["slug"] for f in client.get("/api/v1/forms").json()["forms"]] == ["f"]
    patched = client.patch(f"/api/v1/forms/{form.pk}", {"title": "New", "notice_text": "Other."})
    assert patched.status_code == 200
    assert (patched.json()["title"], patched.json()["notice"]["version"]) == ("New", 2)
    assert client.request("DELETE", "/api/v1/forms/f").status_code == 204
    assert not Form.objects.exists()


def test_it_lets_the_analyst_read_but_not_write(tokens, as_token, form):
    client = as_token(tokens.analyst.raw)
    assert client.get("/api/v1/forms").status_code == 200
    assert client.request("POST", "/api/v1/forms", BODY).status_code == 403
    assert client.patch(f"/api/v1/forms/{form.pk}", {"title": "x"}).status_code == 403
    assert client.request("DELETE", f"/api/v1/forms/{form.pk}").status_code == 403
    assert Form.objects.get().title == "F"


def test_it_shows_mallory_none_of_acmes_forms(tokens, as_token, form):
    client = as_token(tokens.mallory.raw)
    assert client.get("/api/v1/forms").json() == {"forms": []}
    assert client.get(f"/api/v1/forms/{form.pk}").status_code == 404
    assert client.get(f"/api/v1/forms/{form.pk}/submissions").status_code == 404
    assert client.request("DELETE", f"/api/v1/forms/{form.pk}").status_code == 404


def test_it_pages_submissions_newest_first(tokens, as_token, form):
    for n in range(5):
        submit(form, f"p{n}@example.com")
    client = as_token(tokens.owner.raw)
    first = client.get(f"/api/v1/forms/{form.pk}/submissions?limit=2").json()
    assert [s["email"] for s in first["submissions"]] == ["p4@example.com", "p3@example.com"]
    second = client.get(
        f"/api/v1/forms/{form.pk}/submissions?limit=2&cursor={first['next_cursor']}"
    ).json()
    assert [s["email"] for s in second["submissions"]] == ["p2@example.com", "p1@example.com"]
    bad = client.get(f"/api/v1/forms/{form.pk}/submissions?cursor=forged")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"


def test_it_masks_submissions_without_the_personal_data_permission(tokens, as_token, form):
    submit(form, "ann@example.com", user_agent="Firefox/128", referrer="https://r.test/")
    masked = as_token(tokens.analyst.raw).get(f"/api/v1/forms/{form.pk}/submissions").json()
    (row,) = masked["submissions"]
    assert row["email"] == "a•••@example.com"
    assert (row["ip"], row["user_agent"], row["referrer"]) == (None, None, None)
    assert not AuditEvent.objects.filter(event="subscriber.listed").exists()

    shown = as_token(tokens.owner.raw).get(f"/api/v1/forms/{form.pk}/submissions").json()
    (row,) = shown["submissions"]
    assert (row["email"], row["ip"], row["user_agent"]) == (
        "ann@example.com",
        "203.0.113.9",
        "Firefox/128",
    )
    assert AuditEvent.objects.filter(event="subscriber.listed").count() == 1
