"""POST and GET /segments, GET /segments/{id}/count: allowed, forbidden, cross-workspace."""

from __future__ import annotations

import pytest

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.accounts.permissions import ROLE_PERMISSIONS, Role
from mailmarketer.audience.models import Segment
from mailmarketer.audience.segments.actions import do_create_segment

from .audience_data import SETUP, make_list, make_person

pytestmark = pytest.mark.django_db


def tree(*children, match="all"):
    return {"version": 1, "root": {"type": "group", "match": match, "children": list(children)}}


def city(value):
    return {"type": "attribute", "name": "city", "value_type": "string", "op": "eq", "value": value}


def email_is(value):
    return {"type": "field", "field": "email", "op": "eq", "value": value}


@pytest.fixture
def news(personas):
    news = make_list(personas.acme, "news")
    make_person(personas.acme, "ann@example.com", attributes={"city": "Oslo"}, lists=[news])
    make_person(personas.acme, "bob@example.com", attributes={"city": "Oslo"})
    make_person(personas.acme, "cat@example.com", attributes={"city": "Bergen"}, lists=[news])
    make_person(personas.evil, "eve@example.com", attributes={"city": "Oslo"})
    return news


@pytest.fixture
def oslo(personas, news):
    rules = tree(city("Oslo"), {"type": "list", "list": news.pk, "status": "confirmed"})
    return do_create_segment(personas.acme, name="Oslo readers", rules=rules, actor=SETUP)


@pytest.fixture
def one_person(personas, news):
    rules = tree(email_is("john.private@example.com"))
    return do_create_segment(personas.acme, name="Just John", rules=rules, actor=SETUP)


def post(client, body):
    return client.request("POST", "/api/v1/segments", body)


# -- POST /segments --------------------------------------------------------------------------


def test_it_saves_a_segment(tokens, as_token, news):
    response = post(
        as_token(tokens.marketer.raw),
        {"name": " Oslo ", "description": "City people", "rules": tree(city("Oslo"))},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    segment = Segment.objects.get(pk=body["id"])
    assert (segment.workspace.slug, segment.name, segment.description) == (
        "acme",
        "Oslo",
        "City people",
    )
    assert body["rules"] == segment.rules
    assert segment.rules["root"]["children"][0]["value"] == "Oslo"
    event = AuditEvent.objects.get(event="segment.created")
    assert event.actor_token_id == tokens.marketer.token.pk


def test_it_names_the_node_of_invalid_rules(tokens, as_token, news):
    between = {"type": "attribute", "name": "age", "value_type": "number", "op": "between"}
    bad = tree(city("Oslo"), {**between, "value": 3})
    response = post(as_token(tokens.marketer.raw), {"name": "Bad", "rules": bad})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "rules.root.children[1].op"
    assert "between" in error["message"]
    assert not Segment.objects.exists()


def test_it_refuses_a_name_in_use_with_409(tokens, as_token, oslo):
    response = post(as_token(tokens.marketer.raw), {"name": "Oslo readers", "rules": tree()})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"


def test_it_refuses_saving_to_an_analyst(tokens, as_token, news):
    response = post(as_token(tokens.analyst.raw), {"name": "X", "rules": tree()})
    assert response.status_code == 403
    assert p.AUDIENCE_MANAGE in response.json()["message"]
    assert not Segment.objects.exists()


def test_it_never_lets_mallory_use_acmes_list(tokens, as_token, news):
    rules = tree({"type": "list", "list": news.pk, "status": "any"})
    response = post(as_token(tokens.mallory.raw), {"name": "Stolen", "rules": rules})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("rules.root.children[0]")
    assert not Segment.objects.exists()


# -- GET /segments ---------------------------------------------------------------------------


def test_it_lists_segments_with_their_rules(tokens, as_token, oslo, one_person):
    response = as_token(tokens.marketer.raw).get("/api/v1/segments")
    assert response.status_code == 200
    segments = response.json()["segments"]
    assert [s["name"] for s in segments] == ["Just John", "Oslo readers"]
    assert segments[0]["rules"]["root"]["children"][0]["value"] == "john.private@example.com"


def test_it_masks_rules_that_single_out_a_person_for_an_analyst(tokens, as_token, oslo, one_person):
    response = as_token(tokens.analyst.raw).get("/api/v1/segments")
    assert response.status_code == 200
    assert "john.private" not in response.content.decode()
    john, city_people = response.json()["segments"]
    assert john["rules"]["root"]["children"][0]["value"] == "j•••@example.com"
    city_rule, list_rule = city_people["rules"]["root"]["children"]
    assert city_rule == {**oslo.rules["root"]["children"][0], "value": "•••"}
    assert list_rule == oslo.rules["root"]["children"][1]  # a list is no one's own data
    one_person.refresh_from_db()
    assert one_person.rules["root"]["children"][0]["value"] == "john.private@example.com"


def test_it_masks_the_value_of_every_attribute_rule_for_an_analyst(tokens, as_token, personas):
    phone = {"type": "attribute", "name": "phone", "value_type": "string", "op": "eq"}
    age = {"type": "attribute", "name": "age", "value_type": "number", "op": "gte"}
    has_phone = {"type": "attribute", "name": "phone", "value_type": "string", "op": "exists"}
    rules = tree({**phone, "value": "+47 555 0009"}, {**age, "value": 31}, has_phone)
    do_create_segment(personas.acme, name="Callers", rules=rules, actor=SETUP)
    response = as_token(tokens.analyst.raw).get("/api/v1/segments")
    body = response.content.decode()
    assert "+47 555 0009" not in body and "555 0009" not in body  # timestamps may hold "555"
    (callers,) = response.json()["segments"]
    values = [node.get("value") for node in callers["rules"]["root"]["children"]]
    assert values == ["•••", "•••", None]
    owner = as_token(tokens.owner.raw).get("/api/v1/segments").json()["segments"][0]
    assert owner["rules"] == rules


def test_it_shows_mallory_none_of_acmes_segments(tokens, as_token, oslo):
    response = as_token(tokens.mallory.raw).get("/api/v1/segments")
    assert response.json() == {"segments": []}


def test_it_refuses_segments_to_a_role_without_audience_view(tokens, as_token, oslo, monkeypatch):
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.ANALYST, ROLE_PERMISSIONS[Role.ANALYST] - {p.AUDIENCE_VIEW}
    )
    assert as_token(tokens.analyst.raw).get("/api/v1/segments").status_code == 403
    response = as_token(tokens.analyst.raw).get(f"/api/v1/segments/{oslo.pk}/count")
    assert response.status_code == 403


# -- GET /segments/{id}/count ----------------------------------------------------------------


def test_it_counts_a_segment_for_an_analyst(tokens, as_token, personas, news, oslo):
    client = as_token(tokens.analyst.raw)
    response = client.get(f"/api/v1/segments/{oslo.pk}/count")
    assert response.status_code == 200
    assert response.json() == {"id": oslo.pk, "count": 1}
    make_person(personas.acme, "dan@example.com", attributes={"city": "Oslo"}, lists=[news])
    assert client.get(f"/api/v1/segments/{oslo.pk}/count").json()["count"] == 2


def test_it_never_counts_acmes_segment_for_mallory(tokens, as_token, oslo):
    response = as_token(tokens.mallory.raw).get(f"/api/v1/segments/{oslo.pk}/count")
    assert response.status_code == 404
    assert as_token(tokens.mallory.raw).get("/api/v1/segments/nope/count").status_code == 404


def test_it_answers_409_for_saved_rules_that_no_longer_hold(tokens, as_token, oslo):
    Segment.objects.filter(pk=oslo.pk).update(rules={"version": 99, "root": {}})
    response = as_token(tokens.analyst.raw).get(f"/api/v1/segments/{oslo.pk}/count")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_rules"
