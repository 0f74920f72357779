"""Bad input is a 422 naming the field, never a 500 or a misleading 409 (issue 9, F8), and
control characters are refused at the edge in every field that can reach a header (F9)."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import Workspace
from mailmarketer.audience.models import MailingList, Subscriber
from mailmarketer.campaigns import actions as campaigns
from mailmarketer.campaigns.models import Campaign

from .audience_data import make_list, make_person

pytestmark = pytest.mark.django_db
SETUP = Actor.system("test setup")


def fields_of(response) -> set[str]:
    assert response.status_code == 422, response.content
    return {error["field"] for error in response.json()["errors"]}


@pytest.fixture
def owner(tokens, as_token):
    return as_token(tokens.owner.raw)


@pytest.fixture
def john(personas):
    return make_person(personas.acme, "john@example.com", name="John", attributes={"score": 1})


# -- F8: numbers and times Python can parse but not store or compare ------------------------------


def test_it_refuses_a_schedule_time_past_year_9999_in_utc(personas, owner):
    personas.acme.postal_address = "1 Main Street"
    personas.acme.save()
    news = make_list(personas.acme, "news")
    draft = campaigns.do_create_campaign(
        personas.acme, actor=SETUP, name="A", subject="Hi", body="Hello", lists=[news]
    )
    response = owner.request(
        "POST", f"/api/v1/campaigns/{draft.uuid}/schedule", {"at": "9999-12-31T23:59:59-14:00"}
    )
    assert fields_of(response) == {"at"}
    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (Campaign.Status.DRAFT, None)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_it_refuses_a_non_finite_attribute_on_a_new_subscriber(owner, number):
    body = '{"email": "ann@example.com", "attributes": {"score": NUMBER}}'.replace("NUMBER", number)
    response = owner.request("POST", "/api/v1/subscribers", raw_body=body)
    assert fields_of(response) == {"attributes.score"}
    assert not Subscriber.objects.filter(email="ann@example.com").exists()


def test_it_refuses_a_non_finite_attribute_on_a_change(owner, john):
    body = '{"attributes": {"score": NaN, "nested": [1, 2]}}'
    response = owner.request("PATCH", f"/api/v1/subscribers/{john.uuid}", raw_body=body)
    assert fields_of(response) == {"attributes.score"}
    john.refresh_from_db()
    assert john.attributes == {"score": 1}


# -- F9: control characters at the edge -----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sender_name", "Acme\r\nBcc: v@evil.example"),
        ("sender_name", "Acme\x00"),
        ("sender_name", "Ac\x85me"),  # C1 NEL, a line break to some parsers
        ("name", "Acme\nLtd"),
        ("sender_email", "a@acme.test\r\nBcc: v@evil.example"),
        ("postal_address", "1 Main Street\x00"),
    ],
)
def test_it_refuses_control_characters_in_the_workspace_settings(owner, field, value):
    response = owner.patch("/api/v1/workspace", {field: value})
    assert fields_of(response) == {field}
    acme = Workspace.objects.get(slug="acme")
    assert getattr(acme, field) != value


def test_it_keeps_line_breaks_in_the_postal_address(owner):
    response = owner.patch("/api/v1/workspace", {"postal_address": "1 Main Street\r\nSpringfield"})
    assert response.status_code == 200


@pytest.mark.parametrize("name", ["Ann\r\nBcc: v@evil.example", "Ann\x00", "Ann\tLee"])
def test_it_refuses_control_characters_in_a_new_subscribers_name(owner, name):
    body = {"email": "ann@example.com", "name": name}
    response = owner.request("POST", "/api/v1/subscribers", body)
    assert fields_of(response) == {"name"}
    assert not Subscriber.objects.filter(email="ann@example.com").exists()


def test_it_refuses_control_characters_in_a_changed_name(owner, john):
    response = owner.patch(f"/api/v1/subscribers/{john.uuid}", {"name": "John\nBcc: x@y.example"})
    assert fields_of(response) == {"name"}
    john.refresh_from_db()
    assert john.name == "John"


def test_it_refuses_nul_in_attribute_names_and_values(owner, john):
    path = f"/api/v1/subscribers/{john.uuid}"
    assert fields_of(owner.patch(path, {"attributes": {"a\x00b": 1}})) == {"attributes"}
    assert fields_of(owner.patch(path, {"attributes": {"city": "Os\x00lo"}})) == {"attributes.city"}
    assert fields_of(owner.patch(path, {"attributes": {"tags": ["a", "b\x00"]}})) == {
        "attributes.tags.1"
    }
    john.refresh_from_db()
    assert john.attributes == {"score": 1}


def test_it_keeps_line_breaks_in_attribute_values(owner, john):
    response = owner.patch(f"/api/v1/subscribers/{john.uuid}", {"attributes": {"note": "a\nb"}})
    assert response.status_code == 200


def test_it_reports_a_control_character_in_one_item_of_a_bulk_add(owner, personas):
    news = make_list(personas.acme, "news")
    items = [{"email": "ok@example.com"}, {"email": "bad@example.com", "name": "B\r\nad"}]
    body = {"subscribers": items, "status": "unconfirmed"}
    response = owner.request("POST", f"/api/v1/lists/{news.slug}/subscriptions", body)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert results[0]["result"] == "created"
    assert results[1]["result"] == "invalid" and "name" in results[1]["reason"]
    assert not Subscriber.objects.filter(email="bad@example.com").exists()


@pytest.mark.parametrize(("field", "value"), [("name", "News\x00"), ("name", "News\r\nX")])
def test_it_refuses_control_characters_in_a_list(owner, field, value):
    response = owner.request("POST", "/api/v1/lists", {"name": value, "slug": "news"})
    assert fields_of(response) == {field}
    assert not MailingList.objects.filter(slug="news").exists()


@pytest.mark.parametrize("field", ["name", "subject", "from_name"])
def test_it_refuses_control_characters_in_campaign_fields_that_reach_headers(owner, field):
    body = {"name": "A", "subject": "Hi", "body": "Hello", field: "Acme\x0bBcc: v@evil.example"}
    response = owner.request("POST", "/api/v1/campaigns", body)
    assert fields_of(response) == {field}
    assert not Campaign.objects.exists()
