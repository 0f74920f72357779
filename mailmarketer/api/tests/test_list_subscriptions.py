"""POST /lists/{id}/subscriptions: many people onto one list, one exact result per item."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription

from .audience_data import SETUP, make_list, make_person

pytestmark = pytest.mark.django_db

NOTICE = "Yes, send me the Acme newsletter."
PATH = "/api/v1/lists/news/subscriptions"


@pytest.fixture
def news(personas):
    return make_list(personas.acme, "news")


@pytest.fixture
def webinars(personas):
    return make_list(personas.acme, "webinars", optin="double")


def bulk(client, body, path=PATH):
    return client.request("POST", path, body)


def results(response) -> list[tuple]:
    assert response.status_code == 200, response.content
    return [(r["result"], r["status"], r["reason"]) for r in response.json()["results"]]


def test_it_reports_every_item_exactly(tokens, as_token, personas, news):
    member = make_person(personas.acme, "member@example.com", name="Kept Name", lists=[news])
    left = make_person(personas.acme, "left@example.com", lists=[news])
    actions.do_unsubscribe(left, [news], actor=SETUP, reason=Reason.BY_SUBSCRIBER)
    blocked = make_person(personas.acme, "blocked@example.com")
    actions.do_blocklist_subscriber(blocked, actor=SETUP)
    elsewhere = make_person(personas.acme, "elsewhere@example.com")
    actions.do_add_suppression(personas.acme, email="gone@example.com", actor=SETUP)
    make_person(personas.evil, "new@example.com")  # the same address in another workspace

    response = bulk(
        as_token(tokens.marketer.raw),
        {
            "subscribers": [
                {"email": "New@Example.com", "name": "New Person", "attributes": {"plan": "pro"}},
                {"email": "member@example.com", "name": "Other Name"},
                {"email": "left@example.com"},
                {"email": "blocked@example.com"},
                {"email": "GONE@example.com"},
                {"email": "elsewhere@example.com"},
                {"email": "not-an-address"},
                "just a string",
                {"name": "No Email"},
                {"email": "x@example.com", "phone": "123"},
                {"email": "y@example.com", "name": 7},
                {"email": "z@example.com", "attributes": ["a"]},
                {"email": "New@example.com"},
            ],
            "notice_text": NOTICE,
        },
    )
    assert results(response) == [
        ("created", "confirmed", None),
        ("already", "confirmed", None),
        ("unsubscribed_kept", "unsubscribed", None),
        ("blocklisted", None, "the subscriber is blocklisted"),
        ("suppressed", None, "the address is on the suppression list"),
        ("subscribed", "confirmed", None),
        ("invalid", None, "invalid email address: An email address must have an @-sign."),
        ("invalid", None, "each item must be an object with an email"),
        ("invalid", None, "email is missing"),
        (
            "invalid",
            None,
            "unknown fields: phone (allowed: email, name, first_name, last_name, attributes)",
        ),
        ("invalid", None, "name must be a string"),
        ("invalid", None, "attributes must be an object of names to values"),
        ("invalid", None, "the same address as item 0"),
    ]
    body = response.json()
    new = Subscriber.objects.get(workspace=personas.acme, email="New@example.com")
    ids = [r["id"] for r in body["results"]]
    assert ids[:6] == [
        str(new.uuid),
        str(member.uuid),
        str(left.uuid),
        str(blocked.uuid),
        None,
        str(elsewhere.uuid),
    ]
    assert body["counts"] == {
        "created": 1,
        "subscribed": 1,
        "already": 1,
        "unsubscribed_kept": 1,
        "suppressed": 1,
        "blocklisted": 1,
        "invalid": 7,
    }
    assert (body["list"]["slug"], body["status"]) == ("news", "confirmed")
    assert (new.name, new.attributes, new.source) == ("New Person", {"plan": "pro"}, "api")
    member.refresh_from_db()
    assert member.name == "Kept Name"  # existing people's details are left alone
    assert set(
        Subscription.objects.filter(mailing_list=news).values_list("subscriber__email", "status")
    ) == {
        ("member@example.com", "confirmed"),
        ("left@example.com", "unsubscribed"),
        ("New@example.com", "confirmed"),
        ("elsewhere@example.com", "confirmed"),
    }
    grants = ConsentRecord.objects.filter(source_type="api").select_related("notice")
    assert sorted((g.subscriber.email, g.purpose, g.notice.text) for g in grants) == [
        ("New@example.com", "email:news", NOTICE),
        ("elsewhere@example.com", "email:news", NOTICE),
    ]
    assert all(g.confirmed_at is not None for g in grants)
    (event,) = AuditEvent.objects.filter(event="list.bulk_added")
    assert event.new["counts"] == body["counts"]
    assert event.actor_token_id == tokens.marketer.token.pk
    assert "@" not in f"{event.old} {event.new} {event.object_repr}"


def test_it_changes_nothing_when_the_same_call_is_repeated(tokens, as_token, news):
    client = as_token(tokens.marketer.raw)
    body = {
        "subscribers": [{"email": f"r{i}@example.com"} for i in range(5)],
        "notice_text": NOTICE,
    }
    assert {r[0] for r in results(bulk(client, body))} == {"created"}
    before = (
        Subscriber.objects.count(),
        Subscription.objects.count(),
        ConsentRecord.objects.count(),
    )
    assert {r[0] for r in results(bulk(client, body))} == {"already"}
    after = (
        Subscriber.objects.count(),
        Subscription.objects.count(),
        ConsentRecord.objects.count(),
    )
    assert before == after == (5, 5, 5)


def test_it_follows_a_double_opt_in_list_without_needing_a_notice(tokens, as_token, webinars):
    response = bulk(
        as_token(tokens.marketer.raw),
        {"subscribers": [{"email": "d@example.com"}]},
        path=f"/api/v1/lists/{webinars.pk}/subscriptions",
    )
    assert results(response) == [("created", "unconfirmed", None)]
    assert response.json()["status"] == "unconfirmed"
    record = ConsentRecord.objects.get()
    assert (record.notice, record.confirmed_at) == (None, None)


def test_it_confirms_unconfirmed_members_when_asked(tokens, as_token, personas, webinars):
    pending = make_person(personas.acme, "pending@example.com", lists=[webinars])
    assert Subscription.objects.get(subscriber=pending).status == "unconfirmed"
    response = bulk(
        as_token(tokens.marketer.raw),
        {
            "subscribers": [{"email": "pending@example.com"}],
            "status": "confirmed",
            "notice_text": NOTICE,
            "notice_name": "Trade fair sign-up sheet",
        },
        path="/api/v1/lists/webinars/subscriptions",
    )
    assert results(response) == [("subscribed", "confirmed", None)]
    membership = Subscription.objects.get(subscriber=pending)
    assert (membership.status, membership.status_reason) == ("confirmed", "by_api")
    assert membership.confirmed_at is not None
    grant = ConsentRecord.objects.get(subscriber=pending, source_type="api")
    assert (grant.notice.name, grant.notice.text) == ("Trade fair sign-up sheet", NOTICE)


def test_it_leaves_an_unconfirmed_member_alone_when_adding_unconfirmed(
    tokens, as_token, personas, webinars
):
    make_person(personas.acme, "pending@example.com", lists=[webinars])
    response = bulk(
        as_token(tokens.marketer.raw),
        {"subscribers": [{"email": "pending@example.com"}]},
        path="/api/v1/lists/webinars/subscriptions",
    )
    assert results(response) == [("already", "unconfirmed", None)]


@pytest.mark.parametrize("status", ["confirmed", None])
def test_it_refuses_confirmed_memberships_without_notice_text(tokens, as_token, news, status):
    body = {"subscribers": [{"email": "a@example.com"}]}
    if status:
        body["status"] = status
    response = bulk(as_token(tokens.marketer.raw), body)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "notice_text"
    assert error["message"].startswith("notice_text is required for confirmed memberships")
    assert not Subscriber.objects.exists()


def test_it_refuses_more_than_ten_thousand_items_naming_the_limit(tokens, as_token, news):
    items = [{"email": f"p{i}@example.com"} for i in range(10_001)]
    response = bulk(as_token(tokens.marketer.raw), {"subscribers": items, "notice_text": NOTICE})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "subscribers",
            "message": "at most 10,000 subscribers per call, this one has 10,001: "
            "split it into several calls",
        }
    ]
    assert not Subscriber.objects.exists()


def test_it_answers_413_for_a_body_over_the_servers_limit(tokens, as_token, news, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    items = [{"email": f"p{i}@example.com"} for i in range(100)]
    response = bulk(as_token(tokens.marketer.raw), {"subscribers": items, "notice_text": NOTICE})
    assert response.status_code == 413
    assert response.json() == {
        "code": "too_large",
        "message": "the request body is larger than the 1,000 bytes accepted: send less per call",
    }


def test_it_uses_a_handful_of_queries_per_chunk_not_per_item(tokens, as_token, personas, news):
    # 1,200 items, a third of them already known: a per-item implementation would run
    # thousands of queries; chunked, it is a few dozen (more on SQLite, whose limit on bound
    # parameters splits each bulk insert into batches of about a hundred rows).
    for i in range(0, 1_200, 3):
        make_person(personas.acme, f"p{i}@example.com")
    actions.do_add_suppression(personas.acme, email="p1@example.com", actor=SETUP)
    items = [{"email": f"p{i}@example.com", "attributes": {"n": i}} for i in range(1_200)]
    client = as_token(tokens.marketer.raw)
    with CaptureQueriesContext(connection) as queries:
        response = bulk(client, {"subscribers": items, "notice_text": NOTICE})
    assert response.json()["counts"] == {
        "created": 799,
        "subscribed": 400,
        "already": 0,
        "unsubscribed_kept": 0,
        "suppressed": 1,
        "blocklisted": 0,
        "invalid": 0,
    }
    assert len(queries.captured_queries) < 100
    assert Subscription.objects.filter(mailing_list=news).count() == 1_199


def test_it_refuses_a_bulk_add_to_an_analyst(tokens, as_token, news):
    response = bulk(
        as_token(tokens.analyst.raw),
        {"subscribers": [{"email": "a@example.com"}], "notice_text": NOTICE},
    )
    assert response.status_code == 403
    assert p.AUDIENCE_MANAGE in response.json()["message"]
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("key", ["id", "slug"])
def test_it_never_lets_mallory_add_to_acmes_list(tokens, as_token, news, key):
    ref = news.pk if key == "id" else "news"
    response = bulk(
        as_token(tokens.mallory.raw),
        {"subscribers": [{"email": "a@example.com"}], "notice_text": NOTICE},
        path=f"/api/v1/lists/{ref}/subscriptions",
    )
    assert response.status_code == 404
    assert not Subscriber.objects.exists()
    assert not Subscription.objects.exists()


local_parts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,15}", fullmatch=True).filter(
    lambda s: ".." not in s and not s.endswith(".")
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(local=local_parts, upper=st.booleans(), how=st.sampled_from(["erased", "manual"]))
def test_it_never_adds_a_suppressed_or_erased_address(tokens, as_token, news, local, upper, how):
    address = f"{local}@example.com"
    later = address.upper() if upper else address
    client = as_token(tokens.marketer.raw)
    sid = transaction.savepoint()
    try:
        person = make_person(news.workspace, address, lists=[news])
        if how == "erased":
            erase = client.request("POST", f"/api/v1/subscribers/{person.uuid}/erase")
            assert erase.status_code == 204
        else:
            actions.do_unsubscribe(person, actor=SETUP, reason=Reason.BY_ADMIN, suppress_all=True)
        before = set(Subscription.objects.values_list("id", "status"))
        response = bulk(client, {"subscribers": [{"email": later}], "notice_text": NOTICE})
        assert results(response)[0][0] == "suppressed"
        assert set(Subscription.objects.values_list("id", "status")) == before
        assert not Subscription.objects.filter(status="confirmed").exists()
        assert Subscriber.objects.filter(email__iexact=later).count() == (how != "erased")
    finally:
        transaction.savepoint_rollback(sid)
