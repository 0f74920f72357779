"""/leads and /resources: keyset pages with filters, one lead with its history, changes through
the one writer (a status only along its transitions), masking without the personal-data
permission; who may do what."""

from __future__ import annotations

import pytest

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.api.access import declared_permission, operations
from mailmarketer.api.urls import api
from mailmarketer.audience.actions import do_create_list
from mailmarketer.signup import leads
from mailmarketer.signup.actions import Visit, do_create_form, do_submit_form
from mailmarketer.signup.fields import Submitted
from mailmarketer.signup.models import Lead

pytestmark = pytest.mark.django_db
SETUP = Actor.system("test setup")

ROUTES = {
    ("GET", "/leads"): p.LEADS_VIEW,
    ("GET", "/leads/{lead_id}"): p.LEADS_VIEW,
    ("PATCH", "/leads/{lead_id}"): p.LEADS_MANAGE,
    ("GET", "/resources"): p.FORMS_VIEW,
    ("POST", "/resources"): p.FORMS_MANAGE,
    ("PUT", "/forms/{form_id}/evaluation"): p.FORMS_MANAGE,
    ("PUT", "/forms/{form_id}/resource"): p.FORMS_MANAGE,
}


def evaluation(workspace, slug="trial"):
    news = do_create_list(workspace, name="News", slug=f"news-{slug}", actor=SETUP)
    form = do_create_form(
        workspace,
        name="Trial",
        slug=slug,
        kind="evaluation",
        title="Ask for a trial",
        fields=[{"key": "name", "type": "builtin"}, {"key": "company", "type": "builtin"}],
        lists=[news],
        notice_text="Send me news.",
        actor=SETUP,
    )
    leads.do_set_evaluation(form, products=["Starter", "Pro"], actor=SETUP)
    return form


def request_lead(form, email, product="Pro", company="Beans Ltd"):
    submitted = Submitted(
        email=email,
        name="Ann Example",
        attributes={"company": company},
        consented=False,
        extra={"product": product, "message": "Call me"},
    )
    do_submit_form(form, submitted, Visit(via="json"))
    return Lead.objects.order_by("-pk").first()


@pytest.fixture
def three(personas):
    form = evaluation(personas.acme)
    return [request_lead(form, f"p{i}@example.com", ("Pro", "Starter", "Pro")[i]) for i in range(3)]


def test_it_declares_the_permission_of_each_route():
    found = {(m, path): declared_permission(op) for m, path, op in operations(api)}
    assert ROUTES.items() <= found.items()


def test_it_pages_newest_first_with_filters(tokens, as_token, three):
    client = as_token(tokens.owner.raw)
    first = client.get("/api/v1/leads?limit=2").json()
    assert [lead["id"] for lead in first["leads"]] == [three[2].pk, three[1].pk]
    second = client.get(f"/api/v1/leads?limit=2&cursor={first['next_cursor']}").json()
    assert [lead["id"] for lead in second["leads"]] == [three[0].pk]
    assert second["next_cursor"] is None
    pro = client.get("/api/v1/leads?product=Pro").json()["leads"]
    assert {lead["id"] for lead in pro} == {three[0].pk, three[2].pk}
    assert client.get("/api/v1/leads?status=contacted").json()["leads"] == []
    assert len(client.get("/api/v1/leads?assignee=none&since=2000-01-01").json()["leads"]) == 3
    assert client.get("/api/v1/leads?until=2000-01-01").json()["leads"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=won", "status"), ("cursor=forged", "cursor"), ("since=today", "since")],
)
def test_it_refuses_a_bad_filter_naming_it(tokens, as_token, three, query, field):
    response = as_token(tokens.owner.raw).get(f"/api/v1/leads?{query}")
    assert response.status_code == 422
    assert field in json_fields(response)


def json_fields(response) -> str:
    return " ".join(str(e.get("field")) for e in response.json().get("errors", []))


def test_it_reads_a_lead_with_its_history_and_audits_the_look(tokens, as_token, three):
    body = as_token(tokens.owner.raw).get(f"/api/v1/leads/{three[0].pk}").json()
    assert (body["email"], body["name"], body["message"]) == (
        "p0@example.com",
        "Ann Example",
        "Call me",
    )
    assert body["company"] == "Beans Ltd"
    assert [e["field"] for e in body["history"]] == ["created"]
    assert AuditEvent.objects.filter(event="lead.viewed").count() == 1


def test_it_masks_the_person_for_an_analyst(tokens, as_token, three):
    body = as_token(tokens.analyst.raw).get(f"/api/v1/leads/{three[0].pk}").json()
    assert body["email"] != "p0@example.com" and body["email"].endswith("@example.com")
    assert body["name"] is body["message"] is body["notes"] is None
    listed = as_token(tokens.analyst.raw).get("/api/v1/leads").json()["leads"]
    assert all("p0@" not in lead["email"] for lead in listed)
    assert not AuditEvent.objects.filter(event__in=["lead.viewed", "leads.listed"]).exists()


def test_it_changes_status_assignee_and_notes(tokens, as_token, three, personas):
    client = as_token(tokens.marketer.raw)
    path = f"/api/v1/leads/{three[0].pk}"
    body = client.patch(
        path, {"status": "contacted", "assignee": personas.carol.pk, "notes": "Monday"}
    ).json()
    assert (body["status"], body["assignee"], body["notes"]) == (
        "contacted",
        personas.carol.pk,
        "Monday",
    )
    assert [e["field"] for e in body["history"]] == ["created", "status", "assignee", "notes"]
    assert body["history"][1]["actor"].startswith("API token")
    assert client.patch(path, {"assignee": None}).json()["assignee"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "qualified"}, "status"),  # new cannot jump to qualified
        ({"status": "won"}, "status"),
        ({"assignee": 999999}, "assignee"),
        ({"notes": "x" * 10001}, "notes"),
        ({"product": "Pro"}, "product"),
    ],
)
def test_it_refuses_a_bad_change_naming_the_field(tokens, as_token, three, change, field):
    response = as_token(tokens.owner.raw).patch(f"/api/v1/leads/{three[0].pk}", change)
    assert response.status_code == 422, response.content
    assert field in json_fields(response)
    three[0].refresh_from_db()
    assert (three[0].status, three[0].notes) == ("new", "")


def test_it_lets_no_one_but_the_workspace_and_its_managers_near_leads(tokens, as_token, three):
    path = f"/api/v1/leads/{three[0].pk}"
    assert as_token(tokens.analyst.raw).patch(path, {"status": "contacted"}).status_code == 403
    assert as_token(tokens.analyst.raw).get(path).status_code == 200
    mallory = as_token(tokens.mallory.raw)
    assert mallory.get(path).status_code == 404
    assert mallory.patch(path, {"status": "contacted"}).status_code == 404
    assert mallory.get("/api/v1/leads").json()["leads"] == []
    three[0].refresh_from_db()
    assert three[0].status == "new"


def test_it_lists_resources_with_their_download_counts(tokens, as_token, personas, settings):
    from mailmarketer.signup import resources

    resources.do_create_resource(
        personas.acme, title="Guide", external_url="https://cdn.example.com/g.pdf", actor=SETUP
    )
    body = as_token(tokens.analyst.raw).get("/api/v1/resources").json()
    assert [(r["title"], r["downloads"], r["people"]) for r in body["resources"]] == [
        ("Guide", 0, 0)
    ]
    assert as_token(tokens.mallory.raw).get("/api/v1/resources").json()["resources"] == []


def test_it_builds_an_evaluation_form_through_the_api(tokens, as_token, personas):
    client = as_token(tokens.marketer.raw)
    created = client.request(
        "POST",
        "/api/v1/forms",
        {
            "name": "Demo",
            "slug": "demo",
            "kind": "evaluation",
            "title": "Ask for a demo",
            "lists": [],
            "notice_text": "Send me news.",
        },
    )
    assert created.status_code == 201, created.content
    form_id = created.json()["id"]
    path = f"/api/v1/forms/{form_id}/evaluation"
    bad = client.request("PUT", path, {"products": [], "assignee": personas.mallory.pk})
    assert bad.status_code == 422
    body = {"products": ["Team"], "assignee": personas.bob.pk, "recipients": []}
    done = client.request("PUT", path, body)
    assert done.status_code == 200, done.content
    assert done.json()["products"] == ["Team"]
    assert as_token(tokens.analyst.raw).request("PUT", path, body).status_code == 403
    assert as_token(tokens.mallory.raw).request("PUT", path, body).status_code == 404
    wrong_kind = client.request("PUT", f"/api/v1/forms/{form_id}/resource", {"resource": 1})
    assert wrong_kind.status_code == 422


# -- uploading a resource --------------------------------------------------------------------


def upload_resource(token, content, name="guide.pdf", **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    data = {"title": "The guide", **fields}
    if content is not None:
        data["file"] = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return Client().post(
        "/api/v1/resources", data=data, headers={"Authorization": f"Bearer {token.raw}"}
    )


def resource_files(settings, workspace) -> list:
    from pathlib import Path

    folder = Path(settings.DATA_DIR) / "resources" / f"ws-{workspace.pk}"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def test_it_uploads_a_resource_file_checked_by_its_content(
    tokens, as_token, personas, settings, data_dir
):
    from mailmarketer.signup.models_resources import Resource

    response = upload_resource(tokens.marketer, b"%PDF-1.7 the guide", link_days="7")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["title"], body["content_type"], body["size"], body["link_days"]) == (
        "The guide",
        "application/pdf",
        len(b"%PDF-1.7 the guide"),
        7,
    )
    resource = Resource.objects.get(pk=body["id"])
    assert resource.workspace == personas.acme
    (stored,) = resource_files(settings, personas.acme)
    assert stored.read_bytes() == b"%PDF-1.7 the guide"
    assert AuditEvent.objects.filter(event="resource.created").count() == 1
    # And it is listed with its counts.
    listed = as_token(tokens.analyst.raw).get("/api/v1/resources").json()["resources"]
    assert [r["id"] for r in listed] == [resource.pk]


def test_it_takes_an_external_url_instead_of_a_file(tokens, data_dir):
    response = upload_resource(tokens.marketer, None, external_url="https://cdn.example.com/g.pdf")
    assert response.status_code == 201, response.content
    assert response.json()["external_url"] == "https://cdn.example.com/g.pdf"


def test_it_refuses_a_file_of_another_type_whatever_its_name_storing_nothing(
    tokens, personas, settings, data_dir
):
    from mailmarketer.signup.models_resources import Resource

    response = upload_resource(tokens.marketer, b"MZ\x90\x00\x03 an executable", "guide.pdf")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "file"
    assert not Resource.objects.exists()
    assert resource_files(settings, personas.acme) == []


def test_it_refuses_a_file_over_the_size_limit_with_413(tokens, personas, settings, data_dir):
    from mailmarketer.signup.models_resources import Resource

    settings.RESOURCE_MAX_BYTES = 16
    response = upload_resource(tokens.marketer, b"%PDF-1.7 " + b"x" * 64)

    assert response.status_code == 413
    assert not Resource.objects.exists()
    assert resource_files(settings, personas.acme) == []


def test_it_refuses_both_or_neither_of_file_and_url(tokens, data_dir):
    both = upload_resource(tokens.marketer, b"%PDF-1.7 x", external_url="https://cdn.example.com/")
    neither = upload_resource(tokens.marketer, None)
    assert (both.status_code, neither.status_code) == (422, 422)
    assert both.json()["errors"][0]["field"] == "file"


def test_it_lets_neither_an_analyst_nor_another_workspace_upload(tokens, personas, data_dir):
    from mailmarketer.signup.models_resources import Resource

    assert upload_resource(tokens.analyst, b"%PDF-1.7 x").status_code == 403
    assert upload_resource(tokens.mallory, b"%PDF-1.7 x").status_code == 201
    assert not Resource.objects.filter(workspace=personas.acme).exists()
