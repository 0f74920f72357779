"""The engine through a real Postfix, as a user's production set-up sends: Debian's postfix,
started by the test on 127.0.0.1 with its own configuration and queue in a temporary directory,
relaying to a test sink (testing/postfix.py). The engine's duties run in this process, as the
worker would run them; every wait is bounded.

Skipped only where the postfix package is missing (install it with `make postfix`), never in CI.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import Subscriber, Subscription
from mailmarketer.delivery import engine, planner
from mailmarketer.delivery.models import Delivery, SmtpServer
from mailmarketer.delivery.testing import postfix
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer
from mailmarketer.testing import launch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not postfix.available() and os.environ.get("CI") != "true",
        reason="Debian's postfix package is not installed (make postfix, as root)",
    ),
]


@pytest.fixture(autouse=True)
def _fresh_engine(settings):
    settings.DELIVERY_PROBE_MAX_S = 2
    engine.reset_state()
    yield
    engine.reset_state()


@pytest.fixture
def sink():
    with ScriptedSmtpServer() as server:
        yield server


@pytest.fixture
def policy():
    with postfix.PolicyService() as service:
        yield service


@pytest.fixture
def relay(sink, policy, personas):
    with postfix.PostfixRelay(sink_port=sink.port, policy_port=policy.port) as mta:
        SmtpServer.objects.create(
            workspace=personas.acme,
            name="Postfix",
            host="127.0.0.1",
            port=mta.port,
            tls_mode="none",
            max_connections=4,
        )
        yield mta


def audience_of(workspace, news, count: int) -> list[str]:
    """`count` confirmed members, written in bulk (the actions would take minutes)."""
    people = Subscriber.objects.bulk_create(
        Subscriber(workspace=workspace, email=f"reader{i}@example.com", name=f"Reader {i}")
        for i in range(count)
    )
    people = list(Subscriber.objects.filter(workspace=workspace).order_by("pk"))
    Subscription.objects.bulk_create(
        Subscription(
            workspace=workspace,
            subscriber=person,
            mailing_list=news,
            status="confirmed",
            confirmed_at=now(),
        )
        for person in people
    )
    return [p.email for p in people]


def run_until_settled(campaign, timeout: float = 90, during=None) -> str:
    """Run the duties until the campaign is finished or paused; `during(sent)` is called after
    each step. Returns the status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = planner.plan_one() | engine.send_one() | engine.reclaim_one()
        busy |= engine.finish_one()
        campaign.refresh_from_db()
        if campaign.status in ("finished", "paused"):
            return campaign.status
        if during is not None:
            during(Delivery.objects.filter(campaign=campaign, status="sent").count())
        if not busy:
            time.sleep(0.05)
    raise AssertionError(f"the campaign did not settle within {timeout} s: {campaign.status}")


def wait_received(sink, emails: list[str], timeout: float = 60) -> Counter:
    """Wait until every address reached the sink through Postfix's queue; what arrived."""
    deadline = time.monotonic() + timeout
    while not set(emails) <= set(sink.recipients) and time.monotonic() < deadline:
        time.sleep(0.1)
    return Counter(sink.recipients)


def never_paused(campaign) -> bool:
    return not AuditEvent.objects.filter(
        event="campaign.paused", object_id=str(campaign.pk)
    ).exists()


def test_it_sends_a_thousand_recipients_through_postfix_exactly_once(personas, news, relay, sink):
    emails = audience_of(personas.acme, news, 1000)
    campaign = launch(personas.acme, [news])
    assert run_until_settled(campaign) == "finished"
    rows = Delivery.objects.filter(campaign=campaign)
    assert rows.count() == 1000 and set(rows.values_list("status", flat=True)) == {"sent"}
    received = wait_received(sink, emails)
    assert set(received) == set(emails) and max(received.values()) == 1
    # The return path is on the From domain, which Postfix accepts as a sender's domain.
    assert {m.mail_from.partition("@")[2] for m in sink.messages} == {"acme.test"}


def test_it_pauses_without_failing_anyone_when_postfix_refuses_our_sender(
    personas, news, relay, sink, settings
):
    settings.BOUNCE_DOMAIN = "127.0.0.1"  # the old default: no valid address domain
    audience_of(personas.acme, news, 50)
    campaign = launch(personas.acme, [news])
    assert run_until_settled(campaign) == "paused"
    assert campaign.status_reason.startswith(
        f"the relay Postfix (127.0.0.1:{relay.port}) refused our envelope sender <bounces+"
    )
    assert campaign.status_reason.endswith("501 5.1.7 Bad sender address syntax")
    rows = Delivery.objects.filter(campaign=campaign)
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}
    assert sink.count == 0


def test_it_heals_by_itself_after_a_window_of_4xx_replies(personas, news, relay, sink, policy):
    emails = audience_of(personas.acme, news, 300)
    campaign = launch(personas.acme, [news])
    policy.refusing.set()
    healed = threading.Timer(4.0, policy.refusing.clear)
    healed.start()
    try:
        assert run_until_settled(campaign) == "finished"
    finally:
        healed.cancel()
    assert policy.refused > 0  # the window did refuse us
    assert never_paused(campaign)
    received = wait_received(sink, emails)
    assert set(received) == set(emails) and max(received.values()) == 1


def test_it_heals_by_itself_when_postfix_restarts_mid_campaign(personas, news, relay, sink):
    emails = audience_of(personas.acme, news, 1000)
    campaign = launch(personas.acme, [news])
    restarts = []

    def restart_once(sent):
        if sent >= 200 and not restarts:
            restarts.append(threading.Thread(target=relay.restart))
            restarts[0].start()

    try:
        assert run_until_settled(campaign, during=restart_once) == "finished"
    finally:
        for thread in restarts:
            thread.join(30)
    assert restarts, "the campaign finished before the restart"
    assert never_paused(campaign)
    rows = Delivery.objects.filter(campaign=campaign)
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    received = wait_received(sink, emails)
    assert set(received) == set(emails), relay.log()[-3000:]
    # A message whose 250 the restart cut off can arrive twice, and so can one that Postfix had
    # handed to the sink without noting it before it stopped: no more than one batch.
    assert sum(received.values()) - len(emails) <= 200
