"""The benchmarks' campaign harness (delivery/testing/campaign.py): the message size that
send_bench.py's limit sends must be the size of what the workers really send."""

import pytest

from mailmarketer.delivery import engine, planner
from mailmarketer.delivery.testing import campaign as harness
from mailmarketer.delivery.testing.smtpd import ScriptedSmtpServer


@pytest.fixture(autouse=True)
def _fresh_engine():
    engine.reset_state()
    yield
    engine.reset_state()


@pytest.mark.django_db(transaction=True)
def test_message_size_is_the_size_of_the_messages_the_relay_receives():
    with ScriptedSmtpServer() as server:
        harness.seed(12, server.port, body_kb=5)
        measured = harness.message_size()
        for _ in range(50):
            if not (planner.plan_one() | engine.send_one()):
                break
        server.wait_for(12)
        received = [len(message.data) for message in server.messages]
    assert len(received) == 12
    mean = sum(received) / len(received)
    # Only the digits of ledger ids and tokens differ between recipients and runs.
    assert abs(measured["mean"] - mean) <= 16, (measured, received)
    # The campaign's messages are ~3x the --body-kb the benchmark was asked for: the HTML part,
    # its text alternative, tracked links and headers.
    assert measured["mean"] > 2.5 * 5 * 1024
