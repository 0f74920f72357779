"""From a sent campaign to the next one: the engine sends through a real SMTP server on
127.0.0.1, a DSN comes back to the VERP return path the engine used, and the next campaign skips
the address."""

import pytest

from mailmarketer.audience.models import Subscription, Suppression
from mailmarketer.delivery import engine, planner
from mailmarketer.delivery.bounces import testing
from mailmarketer.delivery.bounces.apply import do_process_bounce
from mailmarketer.delivery.bounces.models import Bounce
from mailmarketer.delivery.models import Delivery, SmtpServer
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer
from mailmarketer.testing import SETUP, add_people, launch


@pytest.fixture
def relay(ws):
    engine.reset_state()
    with ScriptedSmtpServer() as server:
        SmtpServer.objects.create(
            workspace=ws,
            name="Local relay",
            host="127.0.0.1",
            port=server.port,
            tls_mode="none",
            max_connections=1,
        )
        yield server
    engine.reset_state()


def run_until_idle(limit=100):
    for _ in range(limit):
        if not (planner.plan_one() | engine.send_one() | engine.finish_one()):
            return
    raise AssertionError("the engine did not become idle")


def test_it_skips_an_address_that_bounced_later_in_the_next_campaign(ws, news, relay):
    people = add_people(ws, [news], 3, SETUP, prefix="e2e")
    first = launch(ws, [news])
    run_until_idle()
    sent = {m.rcpt_tos[0]: m.mail_from for m in relay.messages}
    return_path = sent[people[0].email]
    assert return_path.startswith("bounces+")

    token = return_path.split("+", 1)[1].split("@", 1)[0]
    bounce = do_process_bounce(
        testing.dsn(people[0].email, token=token),
        channel=Bounce.Channel.SMTP,
        envelope_recipients=[return_path],
    )
    assert (bounce.outcome, bounce.campaign_id) == ("suppressed", first.pk)
    assert Delivery.objects.get(campaign=first, subscriber=people[0]).status == "bounced"
    assert Suppression.objects.filter(workspace=ws, reason="hard_bounce").count() == 1
    assert Subscription.objects.get(subscriber=people[0]).status == "unsubscribed"

    relay.messages.clear()
    second = launch(ws, [news], name="Winter news")
    run_until_idle()
    assert sorted(m.rcpt_tos[0] for m in relay.messages) == sorted(p.email for p in people[1:])
    assert not Delivery.objects.filter(
        campaign=second, subscriber=people[0], status="sent"
    ).exists()
