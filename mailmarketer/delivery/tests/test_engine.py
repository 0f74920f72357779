"""The engine against a real SMTP server on 127.0.0.1 (aiosmtpd), step by step: the duties are
called directly, as the worker would, with no threads or sleeps of our own."""

from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.audience.models import Subscription, Suppression
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import engine, ledger, planner
from mailmarketer.delivery.models import Delivery, SmtpServer
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer
from mailmarketer.lib import outbox
from mailmarketer.testing import add_people, launch

Status = Delivery.Status


@pytest.fixture(autouse=True)
def _fresh_engine():
    engine.reset_state()
    yield
    engine.reset_state()


@pytest.fixture
def relay(personas):
    with ScriptedSmtpServer() as server:
        SmtpServer.objects.create(
            workspace=personas.acme,
            name="Local relay",
            host="127.0.0.1",
            port=server.port,
            tls_mode="none",
            max_connections=2,
        )
        yield server


@pytest.fixture
def postal(personas):
    personas.acme.postal_address = "1 Harbour Road, Bergen"
    personas.acme.save()


def run_until_idle(limit=200):
    for _ in range(limit):
        busy = planner.plan_one() | engine.send_one() | engine.finish_one()
        if not busy:
            return
    raise AssertionError("the engine did not become idle")


def statuses(campaign):
    return sorted(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))


def test_it_sends_a_campaign_and_records_each_recipient(personas, staff, news, relay, postal):
    people = add_people(personas.acme, [news], 12, staff)
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert statuses(campaign) == ["sent"] * 12
    assert sorted(relay.recipients) == sorted(p.email for p in people)
    campaign.refresh_from_db()
    assert campaign.status == "finished" and campaign.finished_at is not None
    row = Delivery.objects.filter(campaign=campaign).first()
    assert row.smtp_reply.startswith("250") and row.message_id.startswith("<")
    assert row.server.name == "Local relay" and row.sent_at is not None
    for received in relay.messages:
        message = BytesParser(policy=policy.strict).parsebytes(received.data)
        assert message["Message-ID"] in {
            d.message_id for d in Delivery.objects.filter(campaign=campaign)
        }
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "/f/u/" in message["List-Unsubscribe"]
        assert received.mail_from.startswith("bounces+")
        assert not message.defects


def test_it_sends_to_the_outbox_when_no_relay_is_configured(personas, staff, news, postal):
    add_people(personas.acme, [news], 3, staff)
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert statuses(campaign) == ["sent"] * 3
    viewer = outbox.Viewer(workspace_id=personas.acme.pk, email="nobody@acme.test")
    assert outbox.count_messages(viewer) == 3


def test_it_skips_people_who_left_after_planning(personas, staff, news, relay, postal):
    people = add_people(personas.acme, [news], 4, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    audience.do_unsubscribe(people[0], actor=staff, reason=Reason.BY_SUBSCRIBER)
    audience.do_blocklist_subscriber(people[1], actor=staff)
    audience.do_add_suppression(personas.acme, email=people[2].email, actor=staff)
    run_until_idle()
    assert relay.recipients == [people[3].email]
    assert statuses(campaign) == ["sent", "skipped", "skipped", "skipped"]


def test_it_retries_a_temporary_failure_and_delivers_once(personas, staff, news, relay, postal):
    people = add_people(personas.acme, [news], 3, staff)
    relay.script({people[0].email: ["451 4.3.0 try again later"]})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    row = Delivery.objects.get(campaign=campaign, subscriber=people[0])
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.next_attempt_at > now() + timedelta(seconds=30)
    assert "451" in row.smtp_reply
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=now())  # its time has come
    run_until_idle()
    assert statuses(campaign) == ["sent"] * 3
    assert relay.recipients.count(people[0].email) == 1


def test_it_fails_a_temporary_failure_after_the_deadline(
    personas, staff, news, relay, postal, settings
):
    settings.DELIVERY_RETRY_DEADLINE_S = 60
    (person,) = add_people(personas.acme, [news], 1, staff)
    relay.script({person.email: "451 4.3.0 try again later"})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    row = Delivery.objects.get(campaign=campaign)
    assert row.status == "failed" and "gave up" in row.smtp_reply


def test_it_fails_and_suppresses_a_hard_bounce(personas, staff, news, relay, postal):
    people = add_people(personas.acme, [news], 2, staff)
    relay.script({people[0].email: "550 5.1.1 no such user"})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert statuses(campaign) == ["failed", "sent"]
    assert Suppression.objects.get(workspace=personas.acme).reason == "hard_bounce"
    subscription = Subscription.objects.get(subscriber=people[0])
    assert (subscription.status, subscription.status_reason) == ("unsubscribed", "by_bounce")


def test_it_fails_without_suppressing_a_policy_refusal(personas, staff, news, relay, postal):
    (person,) = add_people(personas.acme, [news], 1, staff)
    relay.script({person.email: "554 5.7.1 message refused"})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert statuses(campaign) == ["failed"]
    assert not Suppression.objects.exists()


def test_it_pauses_the_campaign_when_the_relay_refuses_our_login(personas, staff, news, postal):
    add_people(personas.acme, [news], 3, staff)
    with ScriptedSmtpServer(auth=("mailer", "right")) as server:
        SmtpServer.objects.create(
            workspace=personas.acme,
            name="Relay",
            host="127.0.0.1",
            port=server.port,
            tls_mode="none",
            username="mailer",
            password="wrong",
        )
        campaign = launch(personas.acme, [news])
        run_until_idle()
        assert server.count == 0
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    assert "refused" in campaign.status_reason
    rows = Delivery.objects.filter(campaign=campaign)
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}


def test_it_pauses_after_too_many_failures_in_a_row(personas, staff, news, relay, postal, settings):
    settings.DELIVERY_MAX_CONSECUTIVE_FAILURES = 3
    settings.DELIVERY_BATCH = 2
    add_people(personas.acme, [news], 6, staff)
    relay.script({"*": "554 5.7.1 refused"})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    campaign.refresh_from_db()
    assert campaign.status == "paused" and "in a row" in campaign.status_reason
    assert statuses(campaign).count("queued") >= 2


def test_it_stops_claiming_for_a_paused_campaign_and_resumes(personas, staff, news, relay, postal):
    add_people(personas.acme, [news], 4, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    Campaign.objects.filter(pk=campaign.pk).update(status="paused")
    assert engine.send_one() is False
    Campaign.objects.filter(pk=campaign.pk).update(status="running")
    run_until_idle()
    assert statuses(campaign) == ["sent"] * 4
    assert len(relay.recipients) == 4


def test_it_cancels_what_was_not_sent(personas, staff, news, relay, postal, settings):
    settings.DELIVERY_BATCH = 2
    add_people(personas.acme, [news], 5, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    engine.send_one()
    Campaign.objects.filter(pk=campaign.pk).update(status="cancelled")
    run_until_idle()
    assert statuses(campaign) == ["cancelled"] * 3 + ["sent"] * 2


def test_it_finishes_only_when_every_row_is_final(personas, staff, news, relay, postal):
    people = add_people(personas.acme, [news], 2, staff)
    relay.script({people[0].email: ["451 4.3.0 later"]})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    campaign.refresh_from_db()
    assert campaign.status == "running"  # one row is waiting for its retry
    Delivery.objects.filter(campaign=campaign, status="queued").update(next_attempt_at=now())
    run_until_idle()
    campaign.refresh_from_db()
    assert campaign.status == "finished"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(leaving=st.sets(st.integers(min_value=0, max_value=7)), step=st.integers(0, 3))
def test_it_never_mails_someone_who_unsubscribed_mid_campaign(
    personas, staff, news, relay, postal, settings, leaving, step
):
    from django.db import transaction

    settings.DELIVERY_BATCH = 2
    sid = transaction.savepoint()
    try:
        relay.messages.clear()
        people = add_people(personas.acme, [news], 8, staff, prefix=f"u{len(leaving)}s{step}-")
        campaign = launch(personas.acme, [news])
        planner.plan_chunk(campaign)
        for _ in range(step):
            engine.send_one()
        already = set(relay.recipients)
        for index in leaving:
            audience.do_unsubscribe(people[index], actor=staff, reason=Reason.BY_SUBSCRIBER)
        run_until_idle()
        for index in leaving:
            email = people[index].email
            assert email not in set(relay.recipients) - already
    finally:
        transaction.savepoint_rollback(sid)
        engine.reset_state()


def transactional_to(person, **fields):
    campaign = Campaign.objects.create(
        workspace=person.workspace,
        kind="transactional",
        name="Receipt",
        subject="Your receipt",
        body="Thanks, {{ subscriber.name }}.",
        status="running",
        started_at=now(),
        planning_done=True,
        **fields,
    )
    Delivery.objects.create(workspace=person.workspace, campaign=campaign, subscriber=person)
    return campaign


def test_it_sends_a_transactional_message_without_list_unsubscribe(
    personas, staff, news, relay, postal
):
    (person,) = add_people(personas.acme, [news], 1, staff)
    audience.do_unsubscribe(person, actor=staff, reason=Reason.BY_SUBSCRIBER, suppress_all=True)
    campaign = transactional_to(person)
    run_until_idle()
    assert statuses(campaign) == ["sent"]  # unsubscribed from marketing, still gets a receipt
    message = BytesParser(policy=policy.strict).parsebytes(relay.messages[0].data)
    assert message["List-Unsubscribe"] is None
    campaign.refresh_from_db()
    assert campaign.status == "finished"


def test_it_never_sends_a_transactional_message_to_a_bounced_address(
    personas, staff, news, relay, postal
):
    (person,) = add_people(personas.acme, [news], 1, staff)
    audience.do_add_suppression(
        personas.acme, email=person.email, reason="hard_bounce", actor=staff
    )
    campaign = transactional_to(person)
    run_until_idle()
    assert statuses(campaign) == ["skipped"] and relay.recipients == []


def test_it_keeps_to_the_relays_hourly_cap(personas, staff, news, relay, postal):
    SmtpServer.objects.filter(workspace=personas.acme).update(hourly_cap=3)
    add_people(personas.acme, [news], 5, staff)
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert len(relay.recipients) == 3
    waiting = Delivery.objects.filter(campaign=campaign, status="queued")
    assert waiting.count() == 2
    assert all(d.attempts == 0 and d.next_attempt_at.minute == 0 for d in waiting)
    assert all("send limit" in d.smtp_reply for d in waiting)


def test_it_fails_one_unsendable_address_without_holding_up_the_batch(
    personas, staff, news, relay, postal
):
    people = add_people(personas.acme, [news], 2, staff)
    odd = audience.do_create_subscriber(personas.acme, email="jörg@bücher.de", actor=staff)
    audience.do_subscribe(odd, [news], actor=staff, reason=Reason.BY_ADMIN)
    campaign = launch(personas.acme, [news])
    run_until_idle()
    row = Delivery.objects.get(campaign=campaign, subscriber=odd)
    assert row.status == "failed" and row.smtp_reply.startswith("not sent:")
    assert sorted(relay.recipients) == sorted(p.email for p in people)


def test_it_signs_with_the_from_domains_dkim_key(personas, staff, news, relay, postal):
    from mailmarketer.delivery import dkim
    from mailmarketer.delivery.models import DkimKey

    private_pem, public_b64 = dkim.generate_key(bits=1024)
    DkimKey.objects.create(
        workspace=personas.acme,
        domain="acme.test",
        selector="mm2026",
        private_key=private_pem,
        public_key=public_b64,
    )
    add_people(personas.acme, [news], 2, staff)
    launch(personas.acme, [news], from_email="news@acme.test")
    run_until_idle()
    for received in relay.messages:
        assert received.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(received.data, public_b64, selector="mm2026", domain="acme.test")


def test_it_sends_transactional_messages_before_a_waiting_campaign(
    personas, staff, news, relay, postal, settings
):
    settings.DELIVERY_BATCH = 2
    people = add_people(personas.acme, [news], 4, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    receipt = transactional_to(people[3])
    engine.send_one()
    assert statuses(receipt) == ["sent"]
    assert statuses(campaign).count("sent") == 0


def test_it_reads_the_running_campaigns_again_only_when_they_changed(
    personas, staff, news, relay, postal, settings
):
    settings.DELIVERY_BATCH = 1
    people = add_people(personas.acme, [news], 4, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    engine.send_one()
    (read,) = engine.state().running
    engine.send_one()
    assert engine.state().running == [read] and engine.state().running[0] is read
    # Changed (its updated_at moved): read again; a transactional message: read, and first.
    Campaign.objects.filter(pk=campaign.pk).update(updated_at=now())
    engine.send_one()
    assert engine.state().running[0] is not read
    receipt = transactional_to(people[3])
    engine.send_one()
    assert statuses(receipt) == ["sent"]
    assert statuses(campaign).count("sent") == 3


def test_it_sends_through_a_relay_changed_or_disabled_between_batches(
    personas, staff, news, relay, postal, settings
):
    settings.DELIVERY_BATCH = 1
    add_people(personas.acme, [news], 4, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    engine.send_one()
    engine.send_one()
    assert len(relay.recipients) == 2
    with ScriptedSmtpServer() as other:
        SmtpServer.objects.filter(workspace=personas.acme).update(port=other.port)
        engine.send_one()
        assert (len(relay.recipients), len(other.recipients)) == (2, 1)
        SmtpServer.objects.filter(workspace=personas.acme).update(enabled=False)
        engine.send_one()
        assert (len(relay.recipients), len(other.recipients)) == (2, 1)
    assert statuses(campaign) == ["sent"] * 4
    assert Delivery.objects.filter(campaign=campaign, server__isnull=True).count() == 1


def test_it_gives_a_staff_retry_a_fresh_retry_window(
    personas, staff, news, relay, postal, settings
):
    from mailmarketer.delivery.campaign_actions import do_retry_failed

    settings.DELIVERY_RETRY_DEADLINE_S = 3600
    (person,) = add_people(personas.acme, [news], 1, staff)
    relay.script({person.email: ["554 5.7.1 refused"]})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert statuses(campaign) == ["failed"]
    Delivery.objects.filter(campaign=campaign).update(created_at=now() - timedelta(days=3))
    relay.script({person.email: ["451 4.3.0 later"]})
    do_retry_failed(Campaign.objects.get(pk=campaign.pk), actor=staff)
    run_until_idle()
    row = Delivery.objects.get(campaign=campaign)
    assert row.status == "queued" and "451" in row.smtp_reply  # retried later, not given up


def test_it_clears_a_transactional_messages_data_when_its_person_is_erased(personas, staff, news):
    (person,) = add_people(personas.acme, [news], 1, staff)
    receipt = transactional_to(person, data={"ship_to": "Zelda Unique, 1 Hidden Lane"})
    audience.do_erase_subscriber(person, actor=staff)
    receipt.refresh_from_db()
    assert receipt.data == {}


def reason_of(campaign):
    campaign.refresh_from_db()
    return campaign.status, campaign.status_reason


def relay_label(relay):
    return f"the relay Local relay (127.0.0.1:{relay.port})"


def test_it_uses_the_from_domain_for_the_return_path_by_default(
    personas, staff, news, relay, postal, settings
):
    settings.BOUNCE_DOMAIN = ""
    add_people(personas.acme, [news], 1, staff)
    launch(personas.acme, [news], from_email="news@acme.test")
    run_until_idle()
    (received,) = relay.messages
    local, _, domain = received.mail_from.partition("@")
    assert domain == "acme.test" and local.startswith("bounces+")


def test_it_pauses_without_failing_anyone_when_the_relay_refuses_our_sender(
    personas, staff, news, relay, postal
):
    add_people(personas.acme, [news], 5, staff)
    relay.script({"*": "501 5.1.7 Bad sender address syntax"}, stage="mail")
    campaign = launch(personas.acme, [news])
    run_until_idle()
    status, reason = reason_of(campaign)
    assert status == "paused"
    assert reason.startswith(f"{relay_label(relay)} refused our envelope sender <bounces+")
    assert reason.endswith("501 5.1.7 Bad sender address syntax")
    rows = Delivery.objects.filter(campaign=campaign)
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}  # nobody failed


def test_it_pauses_when_the_relay_refuses_our_sender_at_rcpt(personas, staff, news, relay, postal):
    # Postfix delays a sender refusal to RCPT (smtpd_delay_reject): still about us.
    add_people(personas.acme, [news], 3, staff)
    relay.script({"*": "553 5.1.8 <x>: Sender address rejected: Domain not found"})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert reason_of(campaign)[0] == "paused"
    assert statuses(campaign) == ["queued"] * 3 and not Suppression.objects.exists()


def test_it_backs_off_from_a_relay_answering_4xx_and_resumes_by_itself(
    personas, staff, news, relay, postal, settings
):
    settings.DELIVERY_MAX_CONSECUTIVE_FAILURES = 3
    settings.DELIVERY_BATCH = 10
    add_people(personas.acme, [news], 10, staff)
    relay.script({"*": "450 4.7.1 Service unavailable, try again"})
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert reason_of(campaign)[0] == "running"  # nobody has to resume it
    rows = Delivery.objects.filter(campaign=campaign)
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}  # no attempt counted
    # Until the probe is due the worker leaves the relay alone.
    tried = len(relay.transcript) + relay.connections
    assert engine.send_one() is False and len(relay.transcript) + relay.connections == tried
    relay.script(None)  # the relay recovers
    (sender,) = engine.state().senders.senders.values()
    sender.breaker.open_until = 0.0  # the probe's time has come
    Delivery.objects.filter(campaign=campaign).update(next_attempt_at=now())
    assert engine.send_one()
    assert statuses(campaign).count("sent") == 1  # the probe: one message
    run_until_idle()
    assert statuses(campaign) == ["sent"] * 10
    assert reason_of(campaign)[0] == "finished"


def test_it_counts_failures_in_a_row_by_message(personas, staff, news, relay, postal, settings):
    settings.DELIVERY_MAX_CONSECUTIVE_FAILURES = 3
    settings.DELIVERY_BATCH = 10
    add_people(personas.acme, [news], 10, staff)
    relay.script({"*": "554 5.7.1 refused"})
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    engine.send_one()
    status, reason = reason_of(campaign)
    assert status == "paused"
    assert reason == (
        f"3 messages in a row were refused by {relay_label(relay)}; "
        "the last reply: 554 5.7.1 refused"
    )


def test_it_waits_for_a_relay_that_refuses_connections_without_pausing(
    personas, staff, news, postal
):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    SmtpServer.objects.create(
        workspace=personas.acme, name="Down", host="127.0.0.1", port=port, tls_mode="none"
    )
    add_people(personas.acme, [news], 4, staff)
    campaign = launch(personas.acme, [news])
    run_until_idle()
    assert reason_of(campaign)[0] == "running"
    rows = Delivery.objects.filter(campaign=campaign)
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}
    assert all(f"127.0.0.1:{port}" in r.smtp_reply for r in rows)


def test_it_reopens_a_pooled_connection_the_relay_closed_and_sends_the_batch_on_it(
    personas, staff, news, relay, postal, settings
):
    settings.DELIVERY_BATCH = 4
    add_people(personas.acme, [news], 8, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    engine.send_one()
    opened = relay.connections
    relay.hang_up_all()  # the relay restarts; our idle connections are dead
    engine.send_one()
    assert statuses(campaign) == ["sent"] * 8
    assert relay.connections > opened
    assert set(Delivery.objects.filter(campaign=campaign).values_list("attempts", flat=True)) == {1}


def test_it_pauses_when_the_sender_name_cannot_go_into_a_header(
    personas, staff, news, relay, postal
):
    add_people(personas.acme, [news], 2, staff)
    personas.acme.sender_name = "Acme\r\nBcc: v@evil.example"
    personas.acme.save()
    campaign = launch(personas.acme, [news])
    run_until_idle()
    status, reason = reason_of(campaign)
    assert status == "paused" and "cannot be built" in reason and "CR, LF" in reason
    rows = Delivery.objects.filter(campaign=campaign)
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}
    assert relay.messages == []


def test_it_records_why_each_row_was_skipped(personas, staff, news, relay, postal):
    people = add_people(personas.acme, [news], 5, staff)
    vip = audience.do_create_list(personas.acme, name="VIP", slug="vip", actor=staff)
    audience.do_subscribe(people[3], [vip], actor=staff, reason=Reason.BY_ADMIN)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    campaign.exclude_lists.set([vip])  # changed after planning: checked again at send time
    audience.do_unsubscribe(people[0], actor=staff, reason=Reason.BY_SUBSCRIBER)
    audience.do_blocklist_subscriber(people[1], actor=staff)
    audience.do_add_suppression(personas.acme, email=people[2].email, actor=staff)
    audience.do_erase_subscriber(people[4], actor=staff)
    run_until_idle()
    rows = Delivery.objects.filter(campaign=campaign)
    reasons = {r.subscriber_id: (r.status, r.skip_reason) for r in rows}
    assert reasons == {
        people[0].pk: ("skipped", "unsubscribed"),
        people[1].pk: ("skipped", "blocklisted"),
        people[2].pk: ("skipped", "suppressed"),
        people[3].pk: ("skipped", "excluded"),
        None: ("skipped", "erased"),
    }


@pytest.mark.django_db(transaction=True)
def test_it_renews_the_leases_of_a_batch_while_working_on_it(personas, staff, news, settings):
    import time

    from mailmarketer.delivery import ledger

    settings.DELIVERY_LEASE_S = 1
    add_people(personas.acme, [news], 2, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    rows = ledger.claim(campaign.pk, "w1")
    first = Delivery.objects.get(pk=rows[0].id).lease_expires_at
    with engine.Heartbeat("w1", [r.id for r in rows]):
        deadline = time.monotonic() + 10
        while Delivery.objects.get(pk=rows[0].id).lease_expires_at == first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_one_heartbeat_thread_renews_each_batch_in_turn(personas, staff, news, settings):
    import time

    from mailmarketer.delivery import ledger

    settings.DELIVERY_LEASE_S = 1
    add_people(personas.acme, [news], 4, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    threads = []
    for batch in range(2):
        rows = ledger.claim(campaign.pk, "w1", limit=2)
        first = Delivery.objects.get(pk=rows[0].id).lease_expires_at
        with engine.Heartbeat("w1", [r.id for r in rows]):
            threads.append(engine.Heartbeat._thread)
            deadline = time.monotonic() + 10
            while Delivery.objects.get(pk=rows[0].id).lease_expires_at == first:
                assert time.monotonic() < deadline, f"batch {batch}'s lease was never renewed"
                time.sleep(0.05)
        assert engine.Heartbeat._batches == {}
    assert threads[0] is threads[1], "each batch started a thread of its own"


def test_it_lets_staff_retry_a_dead_row(personas, staff, news, relay, postal):
    from mailmarketer.delivery.campaign_actions import do_retry_failed

    add_people(personas.acme, [news], 1, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    Delivery.objects.filter(campaign=campaign).update(
        status="dead", lease_expiries=3, attempts=3, smtp_reply="dead: ..."
    )
    assert do_retry_failed(Campaign.objects.get(pk=campaign.pk), actor=staff) == 1
    row = Delivery.objects.get(campaign=campaign)
    assert (row.status, row.attempts, row.lease_expiries) == ("queued", 0, 0)
    run_until_idle()
    assert statuses(campaign) == ["sent"]


def test_it_makes_the_verp_token_that_salted_hmac_makes(settings):
    # Bounces to tokens made before the send path kept the derived key must still be read.
    import base64

    from django.utils.crypto import salted_hmac

    for secret in ("one-secret-" + "x" * 40, "another-secret-" + "y" * 40):
        settings.SECRET_KEY = secret
        for delivery_id in (0, 7, 123456, 2**40 + 3, *range(1, 3000, 7)):
            digest = salted_hmac(engine.VERP_SALT, str(delivery_id), algorithm="sha256").digest()
            expected = f"{delivery_id}-{base64.b32encode(digest[:10]).decode().lower()}"
            assert engine.verp_token(delivery_id) == expected
            assert engine.read_verp_token(expected) == delivery_id


def test_it_sends_batch_after_batch_in_one_worker_round(
    personas, staff, news, relay, postal, settings, monkeypatch
):
    from mailmarketer.lib.worker import registered_duties

    settings.DELIVERY_BATCH = 2
    monkeypatch.setattr(engine, "SEND_ROUND_S", 60)  # a busy machine must not end it early
    add_people(personas.acme, [news], 7, staff)
    campaign = launch(personas.acme, [news])
    while planner.plan_one():
        pass
    assert engine.send_some() is True
    # Four batches of at most two in one call, each recorded before the next was claimed.
    assert statuses(campaign) == ["sent"] * 7
    assert engine.send_some() is False
    assert engine.send_some in registered_duties() and engine.send_one not in registered_duties()


def test_it_stops_sending_batches_when_the_round_time_is_up(monkeypatch):
    calls = []
    monkeypatch.setattr(engine, "send_one", lambda: calls.append(1) or True)
    monkeypatch.setattr(engine, "reclaim_one", lambda: False)
    clock = iter([0.0, 0.1, 0.2, engine.SEND_ROUND_S + 0.01, 99.0])
    assert engine.send_some(clock=lambda: next(clock)) is True
    assert len(calls) == 3


def test_it_reports_no_work_when_there_is_no_batch_and_nothing_to_plan(monkeypatch):
    monkeypatch.setattr(engine, "send_one", lambda: False)
    monkeypatch.setattr(engine, "reclaim_one", lambda: False)
    monkeypatch.setattr(planner, "plan_one", lambda: False)
    assert engine.send_some() is False


def test_it_plans_the_next_chunk_within_the_round_when_the_planned_rows_run_out(
    personas, staff, news, relay, postal, settings, monkeypatch
):
    # Planning used to wait for the round's other duties; now the round plans and goes on.
    settings.DELIVERY_PLAN_CHUNK = 3
    monkeypatch.setattr(engine, "SEND_ROUND_S", 60)
    add_people(personas.acme, [news], 7, staff)
    campaign = launch(personas.acme, [news])
    assert engine.send_some() is True
    assert statuses(campaign) == ["sent"] * 7
    assert engine.send_some() is False


def test_it_ends_the_round_between_batches_when_the_worker_is_asked_to_stop(monkeypatch):
    from mailmarketer.lib import worker

    calls = []

    class Stopping:
        stopping = False

    running = Stopping()

    def send_one():
        calls.append(1)
        running.stopping = len(calls) == 2  # SIGTERM arrives during the second batch
        return True

    monkeypatch.setattr(worker, "_running", running)
    monkeypatch.setattr(engine, "send_one", send_one)
    monkeypatch.setattr(engine, "reclaim_one", lambda: False)
    assert engine.send_some(clock=lambda: 0.0) is True
    assert len(calls) == 2


def test_it_takes_back_a_dead_workers_rows_within_the_round(monkeypatch):
    # The reclaim must not wait for the end of a long round: a killed worker's rows are sending
    # again within 15 s.
    events = []
    monkeypatch.setattr(engine, "send_one", lambda: events.append("send") or True)
    monkeypatch.setattr(engine, "reclaim_one", lambda: events.append("reclaim") or False)
    clock = iter([0.0, 0.1, 0.2, engine.SEND_ROUND_S + 0.01])
    assert engine.send_some(clock=lambda: next(clock)) is True
    # Before each claim, so that rows taken back go out in that very batch.
    assert events == ["reclaim", "send", "reclaim", "send", "reclaim", "send"]


def test_it_records_each_accepted_part_of_a_batch_before_sending_the_next(
    personas, staff, news, relay, postal, monkeypatch
):
    # A kill -9 mid-batch leaves at most one part accepted but unrecorded, not a whole batch.
    monkeypatch.setattr(engine, "SEND_PART", 3)
    add_people(personas.acme, [news], 8, staff)
    campaign = launch(personas.acme, [news])
    while planner.plan_one():
        pass
    sender = engine.state().senders.for_workspace(personas.acme.pk)
    real_send = sender.send
    sent_before_each_part = []

    def send(messages):
        sent_before_each_part.append(
            Delivery.objects.filter(campaign=campaign, status=Status.SENT).count()
        )
        return real_send(messages)

    monkeypatch.setattr(sender, "send", send)
    assert engine.send_one() is True
    assert sent_before_each_part == [0, 3, 6]
    assert statuses(campaign) == ["sent"] * 8
    assert len(relay.messages) == 8


def test_only_the_batch_s_last_record_waits_for_the_disk(
    personas, staff, news, relay, postal, monkeypatch
):
    # The parts' records and the claim commit without waiting for the WAL flush on PostgreSQL;
    # the batch's last record waits, which makes them durable too (ledger.RELAXED_COMMIT).
    monkeypatch.setattr(engine, "SEND_PART", 3)
    add_people(personas.acme, [news], 8, staff)
    campaign = launch(personas.acme, [news])
    while planner.plan_one():
        pass
    with CaptureQueriesContext(connection) as queries:
        assert engine.send_one() is True
    assert statuses(campaign) == ["sent"] * 8
    writes = [
        ("relaxed" if q["sql"].startswith(ledger.RELAXED_COMMIT) else "waits", q["sql"])
        for q in queries
        if "UPDATE delivery_delivery SET status" in q["sql"]
    ]
    kinds = [(how, "claim" if "SET status = 'sending'" in sql else "record") for how, sql in writes]
    if connection.vendor == "postgresql":
        assert kinds == [
            ("relaxed", "claim"),
            ("relaxed", "record"),
            ("relaxed", "record"),
            ("waits", "record"),
        ]
    else:
        # SQLite's commits are not PostgreSQL's: nothing changes there.
        assert [how for how, _ in kinds] == ["waits"] * 4


def test_after_a_part_with_a_failure_the_rest_of_the_batch_goes_at_once(
    personas, staff, news, relay, postal, monkeypatch
):
    monkeypatch.setattr(engine, "SEND_PART", 2)
    people = add_people(personas.acme, [news], 7, staff)
    campaign = launch(personas.acme, [news])
    while planner.plan_one():
        pass
    # The batch goes in id order: the second person is in the first part.
    relay.script({people[1].email: "451 4.3.0 try again later"})
    sender = engine.state().senders.for_workspace(personas.acme.pk)
    real_send = sender.send
    sizes = []

    def send(messages):
        sizes.append(len(messages))
        return real_send(messages)

    monkeypatch.setattr(sender, "send", send)
    assert engine.send_one() is True
    assert sizes == [2, 5]
    assert statuses(campaign) == ["queued"] + ["sent"] * 6


def test_it_looks_at_every_lease_first_and_each_minute_then_at_the_recent_ones(db, monkeypatch):
    # A worker looks for expired leases often (every twentieth of a lease); between its looks
    # at all of them, each look covers only those that expired since a minute before the last
    # (the in-flight index keeps an entry for every row ever claimed until VACUUM).
    seen = []
    monkeypatch.setattr(ledger, "reclaim_expired", lambda since=None: seen.append(since) or 0)
    clock = [1000.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: clock[0])
    engine.reset_state()
    engine._last_reclaim = 0.0
    for step in (0, 1, 30, 61):
        clock[0] = 1000.0 + step
        engine.reclaim_one()
    full, recent, recent_too, full_again = seen
    assert full is None and full_again is None
    assert recent is not None and now() - recent > engine.RECLAIM_OVERLAP
    assert recent_too > recent


def test_it_starts_from_the_start_after_taking_back_a_dead_workers_rows(
    personas, staff, news, monkeypatch
):
    add_people(personas.acme, [news], 6, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign)
    engine.reset_state()
    st = engine.state()
    st.claimed_up_to[campaign.pk] = (now(), 1)
    monkeypatch.setattr(ledger, "reclaim_expired", lambda since=None: 3)
    engine._last_reclaim = 0.0
    assert engine.reclaim_one() is True
    assert st.claimed_up_to == {}
