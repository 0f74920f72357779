"""POST /tx: one transactional message to one person (a subscriber, or an address that gets a
record without lists or consent), queued as a one-row campaign and sent by the same engine (here
into the outbox); who it may go to, and who may send it."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription
from mailmarketer.campaigns import actions
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import campaign_actions, engine, planner
from mailmarketer.delivery.models import Delivery
from mailmarketer.lib import outbox

pytestmark = pytest.mark.django_db
SETUP = Actor.system("test setup")
RECEIPT = {
    "subject": "Your receipt, {{ subscriber.first_name }}",
    "body": "Thanks for your order, **{{ subscriber.name }}**.",
}


@pytest.fixture
def ann(personas):
    return audience.do_create_subscriber(
        personas.acme, email="ann@example.com", name="Ann Lee", actor=SETUP
    )


@pytest.fixture(autouse=True)
def _fresh_engine():
    engine.reset_state()
    yield
    engine.reset_state()


def send(client, body):
    return client.request("POST", "/api/v1/tx", body)


def run_engine():
    for _ in range(50):
        if not (planner.plan_one() | engine.send_one() | engine.finish_one()):
            return
    raise AssertionError("the engine did not become idle")


def sent_messages(workspace):
    return [
        BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        for path in sorted(outbox.outbox_dir().glob(f"ws-{workspace.pk}/*.eml"))
    ]


def test_it_queues_one_message_and_the_engine_sends_it(tokens, as_token, ann, personas):
    response = send(as_token(tokens.marketer.raw), {"to": "ann@example.com", **RECEIPT})
    assert response.status_code == 202
    body = response.json()
    campaign = Campaign.objects.get(uuid=body["campaign"])
    assert (campaign.kind, campaign.status, campaign.planning_done) == (
        "transactional",
        "running",
        True,
    )
    (row,) = Delivery.objects.filter(campaign=campaign)
    assert (body["delivery"], body["status"], row.subscriber) == (row.pk, "queued", ann)
    (event,) = AuditEvent.objects.filter(event="campaign.transactional_queued")
    assert event.new == {"subscriber": str(ann.uuid), "subject": RECEIPT["subject"]}
    assert event.actor_token_id == tokens.marketer.token.pk

    run_engine()
    (message,) = sent_messages(personas.acme)
    assert message["To"].addresses[0].addr_spec == "ann@example.com"
    assert message["Subject"] == "Your receipt, Ann"
    assert message["List-Unsubscribe"] is None
    assert (
        "Thanks for your order, <strong>Ann Lee</strong>."
        in message.get_body(("html",)).get_content()
    )
    row.refresh_from_db()
    campaign.refresh_from_db()
    assert (row.status, campaign.status) == ("sent", "finished")


def test_it_gives_the_templates_the_messages_data(tokens, as_token, ann, personas):
    body = {
        "to": "ann@example.com",
        "subject": "Order {{ data.order }}",
        "body": "{% for item in data.lines %}{{ item.name }} x{{ item.qty }}; {% endfor %}",
        "body_format": "text",
        "data": {"order": "A-17", "lines": [{"name": "Beans", "qty": 2}]},
    }
    assert send(as_token(tokens.owner.raw), body).status_code == 202
    run_engine()
    (message,) = sent_messages(personas.acme)
    assert message["Subject"] == "Order A-17"
    assert message.get_body(("plain",)).get_content().startswith("Beans x2;")
    # The data may name the person: it stays out of the audit log.
    assert "A-17" not in str(list(AuditEvent.objects.values_list("old", "new")))


def test_it_sends_by_subscriber_uuid_in_plain_text(tokens, as_token, ann, personas):
    response = send(
        as_token(tokens.owner.raw),
        {"subscriber": str(ann.uuid), "subject": "Code", "body": "Your code: 1234",
         "body_format": "text"},
    )  # fmt: skip
    assert response.status_code == 202
    run_engine()
    (message,) = sent_messages(personas.acme)
    assert message.get_body(("plain",)).get_content().startswith("Your code: 1234")
    assert message.get_body(("html",)) is None


def test_it_reaches_someone_who_unsubscribed_from_marketing(tokens, as_token, ann, personas):
    audience.do_unsubscribe(ann, actor=SETUP, reason=Reason.BY_SUBSCRIBER, suppress_all=True)
    response = send(as_token(tokens.owner.raw), {"to": "ann@example.com", **RECEIPT})
    assert response.status_code == 202
    run_engine()
    assert len(sent_messages(personas.acme)) == 1


def test_it_refuses_a_blocklisted_or_bounced_recipient(tokens, as_token, ann, personas):
    client = as_token(tokens.owner.raw)
    audience.do_blocklist_subscriber(ann, actor=SETUP)
    response = send(client, {"to": "ann@example.com", **RECEIPT})
    assert response.status_code == 409 and response.json()["code"] == "blocklisted"
    bob = audience.do_create_subscriber(personas.acme, email="bob@example.com", actor=SETUP)
    audience.do_add_suppression(
        personas.acme, email="bob@example.com", reason="hard_bounce", actor=SETUP
    )
    response = send(client, {"subscriber": str(bob.uuid), **RECEIPT})
    assert response.status_code == 409 and response.json()["code"] == "suppressed"
    assert not Campaign.objects.filter(kind="transactional").exists()


def test_it_sends_to_a_bare_address_through_a_record_without_lists_or_consent(
    tokens, as_token, personas, alice_client
):
    response = send(as_token(tokens.owner.raw), {"to": "Stranger@Example.com", **RECEIPT})
    assert response.status_code == 202, response.json()
    person = Subscriber.objects.get(workspace=personas.acme, email="Stranger@example.com")
    assert person.source == Subscriber.Source.TRANSACTIONAL
    assert not Subscription.objects.filter(subscriber=person).exists()
    assert not ConsentRecord.objects.filter(subscriber=person).exists()
    (created,) = AuditEvent.objects.filter(event="subscriber.created")
    assert created.new == {"source": "tx"}
    run_engine()
    (message,) = sent_messages(personas.acme)
    assert message["To"].addresses[0].addr_spec == "Stranger@example.com"
    assert Delivery.objects.get(subscriber=person).status == "sent"
    # Staff see why the record exists.
    page = alice_client.get(f"/app/acme/audience/subscribers/{person.uuid}/")
    assert "Transactional mail (no consent)" in page.content.decode()


def test_it_sends_again_to_the_same_record(tokens, as_token, personas):
    client = as_token(tokens.owner.raw)
    for _ in range(2):
        assert send(client, {"to": "stranger@example.com", **RECEIPT}).status_code == 202
    assert Subscriber.objects.filter(workspace=personas.acme).count() == 1
    assert Delivery.objects.count() == 2


def test_it_creates_no_record_when_the_message_is_refused(tokens, as_token, personas):
    client = as_token(tokens.owner.raw)
    bad = send(client, {"to": "stranger@example.com", "subject": "Hi", "body": "{{ x | shout }}"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body"
    audience.do_add_suppression(
        personas.acme, email="bounced@example.com", reason="hard_bounce", actor=SETUP
    )
    response = send(client, {"to": "bounced@example.com", **RECEIPT})
    assert response.status_code == 409 and response.json()["code"] == "suppressed"
    assert not Subscriber.objects.exists()
    assert not Campaign.objects.exists()


def test_it_never_includes_a_transactional_record_in_marketing_until_they_subscribe(
    tokens, as_token, personas
):
    acme = personas.acme
    acme.postal_address = "1 Main Street"
    acme.save()
    # Marketing to everyone there is: every list of the workspace, with someone on each.
    news = audience.do_create_list(acme, name="News", slug="news", actor=SETUP)
    offers = audience.do_create_list(acme, name="Offers", slug="offers", actor=SETUP)
    member = audience.do_create_subscriber(acme, email="member@example.com", actor=SETUP)
    audience.do_subscribe(
        member, [news, offers], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True
    )
    assert send(as_token(tokens.owner.raw), {"to": "buyer@example.com", **RECEIPT}).status_code
    buyer = Subscriber.objects.get(email="buyer@example.com")

    def marketing(name):
        campaign = campaign_actions.do_start_campaign(
            actions.do_create_campaign(
                acme, actor=SETUP, name=name, subject="Sale", body="Sale!", lists=[news, offers]
            ),
            actor=SETUP,
        )
        run_engine()
        return set(
            Delivery.objects.filter(campaign=campaign).values_list("subscriber__email", flat=True)
        )

    assert marketing("Everyone") == {"member@example.com"}
    audience.do_subscribe(buyer, [news], actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
    assert marketing("Everyone again") == {"member@example.com", "buyer@example.com"}


def test_it_names_the_bad_fields(tokens, as_token, ann):
    client = as_token(tokens.owner.raw)
    cases = [
        ({**RECEIPT}, "to"),  # neither to nor subscriber
        ({"to": "ann@example.com", "subscriber": str(ann.uuid), **RECEIPT}, "to"),  # both
        ({"to": "not an address", **RECEIPT}, "to"),
        ({"subscriber": "00000000-0000-4000-8000-000000000000", **RECEIPT}, "subscriber"),
        ({"to": "ann@example.com", "subject": "Hi", "body": "{{ x | shout }}"}, "body"),
        ({"to": "ann@example.com", "subject": "{{ x", "body": "b"}, "subject"),
        ({"to": "ann@example.com", "body": "b"}, "subject"),
        ({"to": "ann@example.com", "data": ["not", "an", "object"], **RECEIPT}, "data"),
        ({"to": "ann@example.com", "data": {"big": "x" * 70_000}, **RECEIPT}, "data"),
    ]
    for body, field in cases:
        response = send(client, body)
        assert response.status_code == 422, body
        assert [e["field"] for e in response.json()["errors"]] == [field], body
    assert not Campaign.objects.exists()


def test_it_refuses_tx_to_an_analyst(tokens, as_token, ann):
    response = send(as_token(tokens.analyst.raw), {"to": "ann@example.com", **RECEIPT})
    assert response.status_code == 403
    assert "campaigns.send" in response.json()["message"]
    assert not Campaign.objects.exists()


def test_it_never_reaches_acmes_people_from_mallorys_token(tokens, as_token, ann, personas):
    client = as_token(tokens.mallory.raw)
    assert send(client, {"subscriber": str(ann.uuid), **RECEIPT}).status_code == 422
    # By address, the name is looked up in (or added to) mallory's own workspace only.
    personas.evil.sender_email = "news@evil.test"
    personas.evil.save()
    assert send(client, {"to": "ann@example.com", **RECEIPT}).status_code == 202
    (theirs,) = Subscriber.objects.filter(email="ann@example.com").exclude(pk=ann.pk)
    assert theirs.workspace_id == personas.evil.pk
    assert not Delivery.objects.filter(subscriber=ann).exists()
    assert not Campaign.objects.filter(workspace=personas.acme).exists()


def test_it_lists_transactional_messages_apart_from_campaigns(tokens, as_token, ann):
    client = as_token(tokens.owner.raw)
    uuid = send(client, {"to": "ann@example.com", **RECEIPT}).json()["campaign"]
    assert client.get("/api/v1/campaigns").json()["campaigns"] == []
    (item,) = client.get("/api/v1/campaigns?kind=transactional").json()["campaigns"]
    assert (item["id"], item["kind"], item["total"]) == (uuid, "transactional", 1)
    deliveries = client.get(f"/api/v1/campaigns/{uuid}/deliveries").json()["deliveries"]
    assert [d["recipient"]["email"] for d in deliveries] == ["ann@example.com"]
