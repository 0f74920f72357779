"""POST /subscribers and GET, PATCH, DELETE /subscribers/{id}, .../erase and .../export:
allowed, forbidden and cross-workspace for each; masking; the audit rows of unmasked reads."""

from __future__ import annotations

import uuid

import pytest

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.accounts.permissions import ROLE_PERMISSIONS, Role
from mailmarketer.audience import actions
from mailmarketer.audience.models import (
    ConsentRecord,
    Subscriber,
    Subscription,
    Suppression,
)

from .audience_data import SETUP, make_list, make_person

pytestmark = pytest.mark.django_db

NOTICE = {"notice_text": "Send me the Acme newsletter. Unsubscribe any time."}


@pytest.fixture
def news(personas):
    return make_list(personas.acme, "news")


@pytest.fixture
def webinars(personas):
    return make_list(personas.acme, "webinars", optin="double")


@pytest.fixture
def john(personas, news):
    return make_person(
        personas.acme,
        "john.private@example.com",
        name="John Privateperson",
        attributes={"city": "Tromsø-Secret"},
        lists=[news],
        ip="203.0.113.77",
    )


def url(subscriber, suffix=""):
    return f"/api/v1/subscribers/{subscriber.uuid}{suffix}"


def post(client, path, body=None):
    return client.request("POST", path, body)


def personal_data_of(subscriber) -> list[str]:
    return [subscriber.email, subscriber.email.split("@")[0], "Privateperson", "Tromsø-Secret"]


# -- POST /subscribers -----------------------------------------------------------------------


def test_it_creates_a_subscriber_with_lists_and_the_notice_shown(tokens, as_token, news, webinars):
    response = post(
        as_token(tokens.marketer.raw),
        "/api/v1/subscribers",
        {
            "email": " Ann@Example.COM ",
            "name": "Ann",
            "attributes": {"city": "Oslo", "age": 31},
            "lists": ["news", webinars.pk],
            "consent": {**NOTICE, "notice_name": "Webshop checkout"},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    sub = Subscriber.objects.get(uuid=body["id"])
    assert (sub.email, sub.name, sub.source, sub.attributes) == (
        "Ann@example.com",
        "Ann",
        "api",
        {"city": "Oslo", "age": 31},
    )
    assert {
        (s["list"]["slug"], s["status"], s["status_reason"]) for s in body["subscriptions"]
    } == {
        ("news", "confirmed", "by_api"),
        ("webinars", "unconfirmed", "by_api"),
    }
    assert body["email"] == "Ann@example.com" and body["masked"] is False
    records = ConsentRecord.objects.filter(subscriber=sub).select_related("notice")
    assert {(r.purpose, r.source_type, r.notice.name, r.notice.text) for r in records} == {
        ("email:news", "api", "Webshop checkout", NOTICE["notice_text"]),
        ("email:webinars", "api", "Webshop checkout", NOTICE["notice_text"]),
    }
    assert len(body["consent"]) == 2
    created = AuditEvent.objects.get(event="subscriber.created")
    assert created.actor_token_id == tokens.marketer.token.pk
    assert created.object_id == str(sub.pk)


def test_it_follows_each_lists_opt_in_by_default(tokens, as_token, news, webinars):
    body = post(
        as_token(tokens.owner.raw),
        "/api/v1/subscribers",
        {"email": "b@example.com", "lists": ["webinars"]},
    ).json()
    assert [s["status"] for s in body["subscriptions"]] == ["unconfirmed"]


@pytest.mark.parametrize(
    ("status", "lists"),
    [("confirmed", ["webinars"]), (None, ["news"]), (None, ["webinars", "news"])],
)
def test_it_refuses_a_confirmed_subscription_without_notice_text(
    tokens, as_token, news, webinars, status, lists
):
    body = {"email": "c@example.com", "lists": lists}
    if status:
        body["status"] = status
    response = post(as_token(tokens.owner.raw), "/api/v1/subscribers", body)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "consent.notice_text"
    assert error["message"].startswith("notice_text is required for confirmed subscriptions")
    assert not Subscriber.objects.exists()


def test_it_takes_an_unconfirmed_subscription_without_notice_text(tokens, as_token, news):
    response = post(
        as_token(tokens.owner.raw),
        "/api/v1/subscribers",
        {"email": "d@example.com", "lists": ["news"], "status": "unconfirmed"},
    )
    assert response.status_code == 201
    assert response.json()["subscriptions"][0]["status"] == "unconfirmed"


def test_it_refuses_a_suppressed_address_with_409_suppressed(tokens, as_token, personas, news):
    actions.do_add_suppression(personas.acme, email="gone@example.com", actor=SETUP)
    response = post(
        as_token(tokens.owner.raw),
        "/api/v1/subscribers",
        {"email": "GONE@example.com", "lists": ["news"], "consent": NOTICE},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "suppressed"
    assert "suppression list" in response.json()["message"]
    assert not Subscriber.objects.exists()
    assert not AuditEvent.objects.filter(event__startswith="subscriber.").exists()


def test_it_adds_one_person_whatever_the_case_of_the_address(tokens, as_token, news):
    client = as_token(tokens.owner.raw)
    created = post(client, "/api/v1/subscribers", {"email": "Anna.Schmidt@Beispiel.DE"})
    again = post(client, "/api/v1/subscribers", {"email": "ANNA.SCHMIDT@beispiel.de"})
    bulk = post(
        client,
        "/api/v1/lists/news/subscriptions",
        {
            "subscribers": [{"email": "anna.schmidt@BEISPIEL.de"}],
            "notice_text": NOTICE["notice_text"],
        },
    )

    assert created.status_code == 201 and created.json()["email"] == "Anna.Schmidt@beispiel.de"
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert bulk.status_code == 200, bulk.content
    (result,) = bulk.json()["results"]
    assert (result["result"], result["id"]) == ("subscribed", created.json()["id"])
    assert Subscriber.objects.count() == 1


def test_it_refuses_an_address_already_here_with_409(tokens, as_token, john):
    response = post(
        as_token(tokens.owner.raw), "/api/v1/subscribers", {"email": "john.private@EXAMPLE.com"}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert Subscriber.objects.count() == 1


def test_it_reports_bad_fields_by_name(tokens, as_token, news):
    response = post(
        as_token(tokens.owner.raw),
        "/api/v1/subscribers",
        {
            "email": "e@example.com",
            "lists": ["news", "nope", 999],
            "attributes": {" ": 1},
            "nmae": "typo",
        },
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    assert {(e["field"], e["message"]) for e in body["errors"]} == {
        ("attributes", "attribute names cannot be blank"),
        ("nmae", "unknown field"),
    }
    response = post(
        as_token(tokens.owner.raw),
        "/api/v1/subscribers",
        {"email": "e@x.com", "lists": ["nope", 999]},
    )
    assert {(e["field"], e["message"]) for e in response.json()["errors"]} == {
        ("lists.0", "no list 'nope' here"),
        ("lists.1", "no list 999 here"),
    }


def test_it_reports_an_invalid_address_on_the_email_field(tokens, as_token):
    response = post(as_token(tokens.owner.raw), "/api/v1/subscribers", {"email": "not-an-address"})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "email"
    assert error["message"].startswith("invalid email address")


def test_it_refuses_status_without_lists(tokens, as_token):
    response = post(
        as_token(tokens.owner.raw),
        "/api/v1/subscribers",
        {"email": "f@example.com", "status": "confirmed"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "status"


def test_it_refuses_creation_to_an_analyst(tokens, as_token, news):
    response = post(as_token(tokens.analyst.raw), "/api/v1/subscribers", {"email": "g@example.com"})
    assert response.status_code == 403
    assert p.AUDIENCE_MANAGE in response.json()["message"]
    assert not Subscriber.objects.exists()


def test_it_never_lets_mallory_subscribe_to_acmes_lists(tokens, as_token, news):
    response = post(
        as_token(tokens.mallory.raw),
        "/api/v1/subscribers",
        {"email": "h@example.com", "lists": [news.pk], "consent": NOTICE},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "lists.0"
    assert not Subscription.objects.exists()
    # Without acme's list, the person is created in mallory's own workspace.
    response = post(as_token(tokens.mallory.raw), "/api/v1/subscribers", {"email": "h@example.com"})
    assert response.status_code == 201
    assert Subscriber.objects.get().workspace.slug == "evil"


# -- GET /subscribers/{id} -------------------------------------------------------------------


def test_it_shows_a_subscriber_with_subscriptions_and_consent(tokens, as_token, john):
    response = as_token(tokens.marketer.raw).get(url(john))
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["email"], body["name"]) == (
        str(john.uuid),
        "john.private@example.com",
        "John Privateperson",
    )
    assert body["attributes"] == {"city": "Tromsø-Secret"}
    (subscription,) = body["subscriptions"]
    assert subscription["list"]["slug"] == "news" and subscription["status"] == "confirmed"
    (record,) = body["consent"]
    assert (record["purpose"], record["action"], record["ip"]) == (
        "email:news",
        "grant",
        "203.0.113.77",
    )
    assert record["notice"]["text"] == "Yes, send me the news."


def test_it_writes_one_audit_row_per_unmasked_look(tokens, as_token, john):
    as_token(tokens.marketer.raw).get(url(john), REMOTE_ADDR="198.51.100.1")
    (event,) = AuditEvent.objects.filter(event="subscriber.viewed")
    assert (event.object_id, event.actor_token_id, event.ip) == (
        str(john.pk),
        tokens.marketer.token.pk,
        "198.51.100.1",
    )
    assert event.workspace.slug == "acme"
    text = f"{event.object_repr} {event.old} {event.new}"
    assert not any(secret in text for secret in personal_data_of(john))
    as_token(tokens.marketer.raw).get(url(john))
    assert AuditEvent.objects.filter(event="subscriber.viewed").count() == 2


def test_it_masks_a_subscriber_for_an_analyst(tokens, as_token, john):
    response = as_token(tokens.analyst.raw).get(url(john))
    assert response.status_code == 200
    body = response.json()
    assert (body["email"], body["name"], body["attributes"], body["masked"]) == (
        "j•••@example.com",
        "•••",
        {"city": "•••"},
        True,
    )
    assert body["consent"] is None
    assert body["subscriptions"][0]["list"]["slug"] == "news"
    raw = response.content.decode()
    assert not any(secret in raw for secret in [*personal_data_of(john), "203.0.113.77"])
    assert not AuditEvent.objects.filter(event="subscriber.viewed").exists()


def test_it_hides_acmes_subscriber_from_mallory(tokens, as_token, john):
    response = as_token(tokens.mallory.raw).get(url(john))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "john" not in response.content.decode()


@pytest.mark.parametrize("key", ["not-a-uuid", "1", "00000000000000000000000000000001"])
def test_it_finds_subscribers_by_uuid_only(tokens, as_token, john, key):
    assert as_token(tokens.owner.raw).get(f"/api/v1/subscribers/{key}").status_code == 404
    assert as_token(tokens.owner.raw).get(url(john)).status_code == 200


def test_it_refuses_reading_to_a_role_without_audience_view(tokens, as_token, john, monkeypatch):
    # Every shipped role may view the audience; take it away to prove the route checks it.
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.ANALYST, ROLE_PERMISSIONS[Role.ANALYST] - {p.AUDIENCE_VIEW}
    )
    response = as_token(tokens.analyst.raw).get(url(john))
    assert response.status_code == 403
    assert p.AUDIENCE_VIEW in response.json()["message"]


# -- PATCH /subscribers/{id} -----------------------------------------------------------------


def test_it_changes_a_subscriber_and_merges_attributes(tokens, as_token, john):
    client = as_token(tokens.marketer.raw)
    response = client.patch(
        url(john), {"name": "John P.", "email": "john.p@example.com", "attributes": {"age": 40}}
    )
    assert response.status_code == 200
    john.refresh_from_db()
    assert (john.name, john.email, john.attributes) == (
        "John P.",
        "john.p@example.com",
        {"city": "Tromsø-Secret", "age": 40},
    )
    assert response.json()["attributes"] == {"city": "Tromsø-Secret", "age": 40}
    updated = AuditEvent.objects.get(event="subscriber.updated")
    assert sorted(updated.new["fields"]) == ["attributes", "email", "name"]
    assert AuditEvent.objects.filter(event="subscriber.viewed").count() == 1


def test_it_replaces_attributes_when_asked(tokens, as_token, john):
    response = as_token(tokens.marketer.raw).patch(
        url(john), {"attributes": {"plan": "pro"}, "attributes_mode": "replace"}
    )
    assert response.status_code == 200
    john.refresh_from_db()
    assert john.attributes == {"plan": "pro"}


def test_it_refuses_attributes_mode_without_attributes(tokens, as_token, john):
    response = as_token(tokens.marketer.raw).patch(url(john), {"attributes_mode": "replace"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "attributes_mode"
    john.refresh_from_db()
    assert john.attributes == {"city": "Tromsø-Secret"}


def test_it_blocklists_and_unblocks(tokens, as_token, john):
    client = as_token(tokens.marketer.raw)
    body = client.patch(url(john), {"status": "blocklisted"}).json()
    assert body["status"] == "blocklisted"
    assert [s["status"] for s in body["subscriptions"]] == ["unsubscribed"]
    assert AuditEvent.objects.filter(event="subscriber.blocklisted").count() == 1
    body = client.patch(url(john), {"status": "enabled"}).json()
    assert body["status"] == "enabled"
    assert [s["status"] for s in body["subscriptions"]] == ["unsubscribed"]
    assert AuditEvent.objects.filter(event="subscriber.unblocked").count() == 1


def test_it_refuses_changing_to_a_suppressed_or_taken_address(tokens, as_token, personas, john):
    make_person(personas.acme, "taken@example.com")
    actions.do_add_suppression(personas.acme, email="gone@example.com", actor=SETUP)
    client = as_token(tokens.marketer.raw)
    response = client.patch(url(john), {"email": "gone@example.com", "name": "New"})
    assert (response.status_code, response.json()["code"]) == (409, "suppressed")
    response = client.patch(url(john), {"email": "taken@example.com"})
    assert (response.status_code, response.json()["code"]) == (409, "conflict")
    response = client.patch(url(john), {"email": "nope"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "email"
    response = client.patch(url(john), {"name": None})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "name"
    john.refresh_from_db()
    assert (john.email, john.name) == ("john.private@example.com", "John Privateperson")


def test_it_refuses_changes_to_an_analyst_before_reading_the_body(tokens, as_token, john):
    response = as_token(tokens.analyst.raw).patch(url(john), {"bogus": 1})
    assert response.status_code == 403
    response = as_token(tokens.analyst.raw).patch(url(john), {"name": "X"})
    assert response.status_code == 403
    john.refresh_from_db()
    assert john.name == "John Privateperson"


def test_it_never_lets_mallory_change_acmes_subscriber(tokens, as_token, john):
    response = as_token(tokens.mallory.raw).patch(url(john), {"status": "blocklisted"})
    assert response.status_code == 404
    john.refresh_from_db()
    assert john.status == "enabled"


# -- DELETE /subscribers/{id} ----------------------------------------------------------------


def test_it_deletes_a_subscriber_without_suppressing_them(tokens, as_token, john):
    client = as_token(tokens.marketer.raw)
    response = client.request("DELETE", url(john))
    assert response.status_code == 204
    assert response.content == b""
    assert not Subscriber.objects.exists()
    assert AuditEvent.objects.filter(event="subscriber.deleted", object_id=str(john.pk)).exists()
    again = post(client, "/api/v1/subscribers", {"email": "john.private@example.com"})
    assert again.status_code == 201


def test_it_refuses_deletion_to_an_analyst(tokens, as_token, john):
    assert as_token(tokens.analyst.raw).request("DELETE", url(john)).status_code == 403
    assert Subscriber.objects.filter(pk=john.pk).exists()


def test_it_never_lets_mallory_delete_acmes_subscriber(tokens, as_token, john):
    assert as_token(tokens.mallory.raw).request("DELETE", url(john)).status_code == 404
    assert Subscriber.objects.filter(pk=john.pk).exists()


# -- POST /subscribers/{id}/erase ------------------------------------------------------------


def test_it_erases_a_person_and_refuses_them_afterwards(tokens, as_token, john, news):
    client = as_token(tokens.marketer.raw)
    response = post(client, url(john, "/erase"))
    assert response.status_code == 204
    assert not Subscriber.objects.exists()
    assert not ConsentRecord.objects.exists()
    assert Suppression.objects.get().reason == "erased"
    assert AuditEvent.objects.filter(event="subscriber.erased").count() == 1
    again = post(
        client,
        "/api/v1/subscribers",
        {"email": "John.Private@example.com", "lists": ["news"], "consent": NOTICE},
    )
    assert (again.status_code, again.json()["code"]) == (409, "suppressed")
    bulk = post(
        client,
        "/api/v1/lists/news/subscriptions",
        {"subscribers": [{"email": "john.private@example.com"}], **NOTICE},
    )
    assert bulk.json()["results"][0]["result"] == "suppressed"
    assert not Subscriber.objects.exists()
    assert as_token(tokens.marketer.raw).get(url(john)).status_code == 404


def test_it_refuses_erasure_to_an_analyst(tokens, as_token, john):
    assert post(as_token(tokens.analyst.raw), url(john, "/erase")).status_code == 403
    assert Subscriber.objects.filter(pk=john.pk).exists()
    assert not Suppression.objects.exists()


def test_it_never_lets_mallory_erase_acmes_subscriber(tokens, as_token, john):
    assert post(as_token(tokens.mallory.raw), url(john, "/erase")).status_code == 404
    assert Subscriber.objects.filter(pk=john.pk).exists()
    assert not Suppression.objects.exists()


# -- GET /subscribers/{id}/export ------------------------------------------------------------


def test_it_exports_everything_held_about_a_person(tokens, as_token, john, webinars):
    actions.do_subscribe(john, [webinars], actor=SETUP, reason="by_admin")
    response = as_token(tokens.marketer.raw).get(url(john, "/export"))
    assert response.status_code == 200
    document = response.json()
    assert document["format"] == "mailmarketer.personal-data.v1"
    assert document["profile"]["email"] == "john.private@example.com"
    assert document["profile"]["attributes"] == {"city": "Tromsø-Secret"}
    assert {s["mailing_list__slug"] for s in document["subscriptions"]} == {"news", "webinars"}
    assert [(c["purpose"], c["notice__text"], c["ip"]) for c in document["consent"]] == [
        ("email:news", "Yes, send me the news.", "203.0.113.77"),
        ("email:webinars", None, None),
    ]
    (event,) = AuditEvent.objects.filter(event="subscriber.exported")
    assert (event.object_id, event.actor_token_id) == (str(john.pk), tokens.marketer.token.pk)


def test_it_refuses_export_to_an_analyst(tokens, as_token, john):
    response = as_token(tokens.analyst.raw).get(url(john, "/export"))
    assert response.status_code == 403
    assert p.AUDIENCE_EXPORT in response.json()["message"]
    assert "john" not in response.content.decode()


def test_it_refuses_export_without_view_personal_data(tokens, as_token, john, monkeypatch):
    # No shipped role may export without seeing personal data; make one to prove both are needed.
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.MARKETER, ROLE_PERMISSIONS[Role.MARKETER] - {p.VIEW_PERSONAL_DATA}
    )
    response = as_token(tokens.marketer.raw).get(url(john, "/export"))
    assert response.status_code == 403
    assert p.VIEW_PERSONAL_DATA in response.json()["message"]
    assert not AuditEvent.objects.filter(event="subscriber.exported").exists()


def test_it_never_exports_acmes_subscriber_to_mallory(tokens, as_token, john):
    response = as_token(tokens.mallory.raw).get(url(john, "/export"))
    assert response.status_code == 404
    assert "john" not in response.content.decode()
    assert not AuditEvent.objects.filter(event="subscriber.exported").exists()


def test_it_answers_404_for_an_unknown_uuid_on_every_route(tokens, as_token):
    client = as_token(tokens.owner.raw)
    unknown = f"/api/v1/subscribers/{uuid.uuid4()}"
    assert client.get(unknown).status_code == 404
    assert client.patch(unknown, {"name": "x"}).status_code == 404
    assert client.request("DELETE", unknown).status_code == 404
    assert post(client, f"{unknown}/erase").status_code == 404
    assert client.get(f"{unknown}/export").status_code == 404
