"""GET /subscribers: filters, keyset pagination, masking and the one audit row per page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.accounts.permissions import ROLE_PERMISSIONS, Role
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import Subscriber

from .audience_data import SETUP, make_list, make_person

pytestmark = pytest.mark.django_db


def search(client, **params):
    return client.get("/api/v1/subscribers?" + urlencode(params))


def emails(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {s["email"] for s in response.json()["subscribers"]}


@pytest.fixture
def people(personas):
    """Five people of acme with attributes of mixed types, and one of evil."""
    news = make_list(personas.acme, "news")
    webinars = make_list(personas.acme, "webinars", optin="double")
    ann = make_person(
        personas.acme,
        "ann@example.com",
        name="Ann Archer",
        attributes={"city": "Oslo", "age": 31, "since": "2021-03-01", "vip": True},
        lists=[news],
    )
    bob = make_person(
        personas.acme,
        "bob@example.org",
        name="Bob Baker",
        attributes={"city": "Bergen", "age": "45", "since": "2023-06-30"},
        lists=[news, webinars],
    )
    cat = make_person(
        personas.acme, "cat@example.com", attributes={"city": "oslo", "age": 19, "zip": "0150"}
    )
    dan = make_person(personas.acme, "dan@example.net", attributes={"age": 45.5, "zip": 150})
    eve = make_person(personas.acme, "eve@example.com", attributes={"age": None})
    actions.do_unsubscribe(bob, [news], actor=SETUP, reason=Reason.BY_SUBSCRIBER)
    actions.do_blocklist_subscriber(dan, actor=SETUP)
    make_person(personas.evil, "ann@example.com", attributes={"city": "Oslo"})
    return {"ann": ann, "bob": bob, "cat": cat, "dan": dan, "eve": eve}


# -- allowed, masked, forbidden, cross-workspace ---------------------------------------------


def test_it_lists_subscribers_newest_first(tokens, as_token, people):
    response = search(as_token(tokens.marketer.raw))
    body = response.json()
    assert [s["email"] for s in body["subscribers"]] == [
        "eve@example.com",
        "dan@example.net",
        "cat@example.com",
        "bob@example.org",
        "ann@example.com",
    ]
    assert body["next_cursor"] is None
    first = body["subscribers"][-1]
    assert (first["id"], first["name"], first["masked"]) == (
        str(people["ann"].uuid),
        "Ann Archer",
        False,
    )


def test_it_writes_one_audit_row_per_unmasked_page(tokens, as_token, people):
    client = as_token(tokens.marketer.raw)
    search(client, limit=2)
    search(client, q="example.com")
    rows = list(AuditEvent.objects.filter(event="subscriber.listed").order_by("pk"))
    assert [row.new for row in rows] == [{"count": 2}, {"count": 3}]
    assert all(row.actor_token_id == tokens.marketer.token.pk for row in rows)
    # The search words may be an address: they are not in the audit log.
    assert not any("example" in f"{row.old} {row.new} {row.object_repr}" for row in rows)


def test_it_masks_every_person_for_an_analyst(tokens, as_token, people):
    response = search(as_token(tokens.analyst.raw))
    assert response.status_code == 200
    body = response.json()
    assert {s["email"] for s in body["subscribers"]} == {
        "a•••@example.com",
        "b•••@example.org",
        "c•••@example.com",
        "d•••@example.net",
        "e•••@example.com",
    }
    assert all(s["masked"] for s in body["subscribers"])
    raw = response.content.decode()
    for secret in ["ann@", "bob@", "cat@", "dan@", "eve@", "Archer", "Baker", "Oslo", "Bergen"]:
        assert secret not in raw
    assert not AuditEvent.objects.filter(event="subscriber.listed").exists()


def test_it_refuses_an_analyst_the_probe_that_grows_an_address_letter_by_letter(
    tokens, as_token, people
):
    # The probe: "a" matches, "an" matches, "ann" matches, "ann@" matches... a masked answer to
    # a filter on real values spells the address out. No step of it may be answered.
    client = as_token(tokens.analyst.raw)
    for guess in ["a", "an", "ann", "ann@", "ann@e", "zzz"]:
        response = search(client, q=guess)
        assert response.status_code == 403, guess
        body = response.json()
        assert body["code"] == "personal_data_filter"
        assert "(q)" in body["message"] and "audience.view_personal_data" in body["message"]
        assert "subscribers" not in body


@pytest.mark.parametrize(
    "params",
    [
        {"attr.city": "Oslo"},
        {"attr.age": "31"},
        {"attr.age__gte": "30"},
        {"attr.city__contains": "os"},
        {"list": "news", "attr.vip": "true"},
    ],
)
def test_it_refuses_an_analyst_every_attribute_filter(tokens, as_token, people, params):
    response = search(as_token(tokens.analyst.raw), **params)
    assert response.status_code == 403
    (attribute,) = [key for key in params if key.startswith("attr.")]
    assert f"({attribute})" in response.json()["message"]


def test_it_lets_an_analyst_filter_on_what_is_not_personal(tokens, as_token, people):
    # Lists, statuses and dates are not a person's own data: these filters stay open.
    client = as_token(tokens.analyst.raw)
    assert emails(search(client, list="news", subscription_status="confirmed")) == {
        "a•••@example.com"
    }
    assert emails(search(client, status="blocklisted")) == {"d•••@example.net"}
    assert search(client, q="  ").status_code == 200  # an empty search is no search


def test_it_lets_a_marketer_search_and_audits_the_page(tokens, as_token, people):
    response = search(as_token(tokens.marketer.raw), q="ann@", **{"attr.age": "31"})
    assert emails(response) == {"ann@example.com"}
    assert AuditEvent.objects.filter(event="subscriber.listed").count() == 1


def test_it_shows_mallory_only_her_own_people(tokens, as_token, people):
    response = search(as_token(tokens.mallory.raw))
    assert emails(response) == {"ann@example.com"}
    (ann,) = response.json()["subscribers"]
    assert ann["id"] != str(people["ann"].uuid)
    assert emails(search(as_token(tokens.mallory.raw), q="bob")) == set()


def test_it_never_filters_mallory_by_acmes_list(tokens, as_token, people):
    news = people["ann"].subscriptions.get().mailing_list
    response = search(as_token(tokens.mallory.raw), list=news.pk)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "list", "message": f"no list '{news.pk}' here"}]


def test_it_refuses_a_role_without_audience_view(tokens, as_token, people, monkeypatch):
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.ANALYST, ROLE_PERMISSIONS[Role.ANALYST] - {p.AUDIENCE_VIEW}
    )
    response = search(as_token(tokens.analyst.raw))
    assert response.status_code == 403
    assert "@" not in response.content.decode()


# -- pagination ------------------------------------------------------------------------------


def test_it_walks_every_page_without_gaps_or_repeats(tokens, as_token, personas):
    for i in range(23):
        make_person(personas.acme, f"p{i:02}@example.com")
    make_person(personas.evil, "p99@example.com")
    client = as_token(tokens.owner.raw)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = search(client, **params).json()
        pages += 1
        seen += [s["email"] for s in body["subscribers"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert seen == [f"p{i:02}@example.com" for i in range(22, -1, -1)]
    assert AuditEvent.objects.filter(event="subscriber.listed").count() == 5


def test_it_ends_on_a_full_last_page_without_an_empty_one(tokens, as_token, personas):
    for i in range(4):
        make_person(personas.acme, f"q{i}@example.com")
    client = as_token(tokens.owner.raw)
    first = search(client, limit=2).json()
    second = search(client, limit=2, cursor=first["next_cursor"]).json()
    assert len(second["subscribers"]) == 2
    assert second["next_cursor"] is None


def test_it_keeps_filters_across_pages(tokens, as_token, personas):
    for i in range(6):
        make_person(personas.acme, f"r{i}@example.com", attributes={"even": i % 2 == 0})
    client = as_token(tokens.owner.raw)
    first = search(client, limit=2, **{"attr.even": "true"}).json()
    second = search(client, limit=2, cursor=first["next_cursor"], **{"attr.even": "true"}).json()
    assert [s["email"] for s in first["subscribers"] + second["subscribers"]] == [
        "r4@example.com",
        "r2@example.com",
        "r0@example.com",
    ]
    assert second["next_cursor"] is None


def test_it_refuses_a_cursor_it_did_not_give_out(tokens, as_token, people):
    response = search(as_token(tokens.owner.raw), cursor="eyJiZWZvcmUiOjV9:forged")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "cursor"
    assert "not a cursor this API gave out" in error["message"]


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_it_refuses_a_limit_out_of_range(tokens, as_token, people, limit):
    response = search(as_token(tokens.owner.raw), limit=limit)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


# -- filters ---------------------------------------------------------------------------------


def test_it_finds_by_part_of_the_email_or_name(tokens, as_token, people):
    client = as_token(tokens.owner.raw)
    assert emails(search(client, q="example.org")) == {"bob@example.org"}
    assert emails(search(client, q="archer")) == {"ann@example.com"}


def test_it_filters_by_list_and_membership_status(tokens, as_token, people):
    client = as_token(tokens.owner.raw)
    assert emails(search(client, list="news")) == {"ann@example.com", "bob@example.org"}
    assert emails(search(client, list="news", subscription_status="unsubscribed")) == {
        "bob@example.org"
    }
    webinars = people["bob"].subscriptions.get(mailing_list__slug="webinars").mailing_list
    assert emails(search(client, list=webinars.pk, subscription_status="unconfirmed")) == {
        "bob@example.org"
    }


def test_it_filters_by_status(tokens, as_token, people):
    client = as_token(tokens.owner.raw)
    assert emails(search(client, status="blocklisted")) == {"dan@example.net"}
    assert len(emails(search(client, status="enabled"))) == 4


def test_it_matches_attribute_text_as_text_or_the_number_it_spells(tokens, as_token, people):
    client = as_token(tokens.owner.raw)
    assert emails(search(client, **{"attr.city": "Oslo"})) == {"ann@example.com"}
    # A query string has no types: 45 matches the number and the text "45".
    assert emails(search(client, **{"attr.age": "45"})) == {"bob@example.org"}
    assert emails(search(client, **{"attr.age": "31"})) == {"ann@example.com"}
    assert emails(search(client, **{"attr.age__eq": "45.5"})) == {"dan@example.net"}
    # "0150" is text (not the number 150): the zip code keeps its leading zero.
    assert emails(search(client, **{"attr.zip": "0150"})) == {"cat@example.com"}
    assert emails(search(client, **{"attr.zip": "150"})) == {"dan@example.net"}
    assert emails(search(client, **{"attr.vip": "true"})) == {"ann@example.com"}


def test_it_compares_ranges_within_one_type(tokens, as_token, people):
    # Numbers compare with numbers only: the text "45" is neither >= 30 nor <= 50, on both
    # databases (which order values of different JSON types differently).
    client = as_token(tokens.owner.raw)
    assert emails(search(client, **{"attr.age__gte": "30"})) == {
        "ann@example.com",
        "dan@example.net",
    }
    assert emails(search(client, **{"attr.age__lt": "31"})) == {"cat@example.com"}
    assert emails(search(client, **{"attr.age__lte": "50"})) == {
        "ann@example.com",
        "cat@example.com",
        "dan@example.net",
    }
    # Text compares with text: ISO dates order correctly.
    assert emails(search(client, **{"attr.since__gt": "2022-01-01"})) == {"bob@example.org"}
    assert emails(search(client, **{"attr.since__lt": "2022-01-01"})) == {"ann@example.com"}
    both = search(client, **{"attr.age__gte": "19", "attr.age__lt": "31"})
    assert emails(both) == {"cat@example.com"}


def test_it_finds_part_of_an_attributes_text(tokens, as_token, people):
    client = as_token(tokens.owner.raw)
    assert emails(search(client, **{"attr.city__contains": "OSL"})) == {
        "ann@example.com",
        "cat@example.com",
    }


def test_it_filters_by_creation_time(tokens, as_token, people):
    eve = people["eve"]
    Subscriber.objects.filter(pk=eve.pk).update(created_at=datetime(2020, 5, 1, 12, tzinfo=UTC))
    client = as_token(tokens.owner.raw)
    everyone = emails(search(client))
    assert len(everyone) == 5
    assert emails(search(client, created_before="2020-05-02")) == {"eve@example.com"}
    # 13:00 at +02:00 is 11:00 UTC: eve was created after it; without a zone, UTC.
    assert emails(search(client, created_after="2020-05-01T13:00:00+02:00")) == everyone
    assert emails(search(client, created_after="2020-05-01T12:00:01")) == everyone - {
        "eve@example.com"
    }
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert emails(search(client, created_after=later)) == set()


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"colour": "red"}, "colour", "unknown query parameter"),
        ({"attr.age__about": "30"}, "attr.age__about", "unknown comparison 'about'"),
        ({"attr.": "x"}, "attr.", "give an attribute name"),
        ({"attr.123": "x"}, "attr.123", "give an attribute name"),
        ({"subscription_status": "confirmed"}, "subscription_status", "give `list` too"),
        ({"status": "asleep"}, "status", "Input should be"),
        ({"created_after": "yesterday"}, "created_after", "Input should be a valid datetime"),
        ({"list": "nope"}, "list", "no list 'nope' here"),
    ],
)
def test_it_names_the_bad_filter(tokens, as_token, people, params, field, message):
    response = search(as_token(tokens.owner.raw), **params)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [e["field"] for e in body["errors"]] == [field]
    assert message in body["errors"][0]["message"]
    assert not AuditEvent.objects.filter(event="subscriber.listed").exists()


def test_it_treats_a_name_with_double_underscores_as_one_name(tokens, as_token, personas):
    make_person(personas.acme, "u@example.com", attributes={"a__b": "x", "contains": "y"})
    client = as_token(tokens.owner.raw)
    assert emails(search(client, **{"attr.a__b__eq": "x"})) == {"u@example.com"}
    # An attribute named like a lookup is still just a key.
    assert emails(search(client, **{"attr.contains": "y"})) == {"u@example.com"}
