"""The live progress block: the numbers match the ledger, the rate comes from sent_at over the
last minute, and the block polls only while the campaign sends."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils.timezone import now

from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import queries as ledger
from mailmarketer.delivery.models import Delivery
from mailmarketer.testing import launched, ledger_rows, many_people, url

pytestmark = pytest.mark.django_db
STATUSES = ["queued", "sending", "sent", "failed", "bounced", "skipped", "cancelled", "dead"]


@pytest.fixture
def sending(ws, news, draft):
    """A campaign 5 minutes into sending: 20 rows in every status, the sent ones spread over
    the last 5 minutes (4 of them within the last minute)."""
    people = many_people(ws, [news], 20)
    campaign = launched(draft, started_at=now() - timedelta(minutes=5), planning_done=True)
    statuses = ["sent"] * 10 + ["queued"] * 4 + ["sending", "failed", "failed"]
    statuses += ["bounced", "skipped", "cancelled"]
    rows = ledger_rows(campaign, people, statuses)
    for i, row in enumerate(r for r in rows if r.status == "sent"):
        # 4 sent within the last minute, 6 before it.
        Delivery.objects.filter(pk=row.pk).update(
            sent_at=now() - timedelta(seconds=10 + i * 5 if i < 4 else 120 + i)
        )
    Delivery.objects.filter(campaign=campaign, status="bounced").update(
        sent_at=now() - timedelta(minutes=3)
    )
    return campaign


def counts_in(html: str) -> dict[str, int]:
    return {
        status: int(n.replace(",", ""))
        for status, n in re.findall(r'data-status="(\w+)"><a [^>]*>([\d,]+)</a>', html)
    }


def test_it_shows_the_ledgers_counts_by_status(bob_client, sending):
    response = bob_client.get(url("campaign-progress", campaign_id=sending.pk))
    assert response.status_code == 200
    html = response.content.decode()
    expected = {s: Delivery.objects.filter(campaign=sending, status=s).count() for s in STATUSES}
    assert counts_in(html) == expected
    assert expected == {
        "queued": 4,
        "sending": 1,
        "sent": 10,
        "failed": 2,
        "bounced": 1,
        "skipped": 1,
        "cancelled": 1,
        "dead": 0,
    }


def test_it_draws_sent_of_total_as_a_progress_bar(bob_client, sending):
    html = bob_client.get(url("campaign-progress", campaign_id=sending.pk)).content.decode()
    total = Delivery.objects.filter(campaign=sending).count()
    sent = Delivery.objects.filter(campaign=sending, status__in=["sent", "bounced"]).count()
    assert (sent, total) == (11, 20)
    bar = re.search(r"<progress [^>]*>", html).group(0)
    assert f'max="{total}"' in bar and f'value="{sent}"' in bar
    assert f'aria-valuenow="{sent}"' in bar
    assert 'aria-valuetext="11 of 20 sent (55.0%)"' in bar


def test_it_reads_the_rate_from_the_last_minute_and_the_eta_from_it(sending):
    progress = ledger.campaign_progress(sending)
    assert progress.rate == pytest.approx(4 / 60)
    assert progress.remaining == 5
    assert progress.eta_seconds == round(5 / (4 / 60))


def test_it_reads_the_rate_since_launch_when_that_is_under_a_minute(ws, news, draft):
    people = many_people(ws, [news], 3)
    before = now()
    campaign = launched(draft, started_at=before - timedelta(seconds=10))
    ledger_rows(campaign, people, ["sent", "sent", "queued"])
    progress = ledger.campaign_progress(campaign)
    # Two sent over the time since launch: 10 s, plus however long this test took to get here
    # (seconds on a loaded machine), and no more.
    took = (now() - before).total_seconds()
    assert 2 / (10 + took) - 1e-9 <= progress.rate <= 2 / 10 + 1e-9


def test_it_polls_every_two_seconds_only_while_sending(bob_client, sending):
    html = bob_client.get(url("campaign-progress", campaign_id=sending.pk)).content.decode()
    assert 'hx-trigger="every 2s"' in html
    assert "Time left" in html
    Campaign.objects.filter(pk=sending.pk).update(status="finished", finished_at=now())
    html = bob_client.get(url("campaign-progress", campaign_id=sending.pk)).content.decode()
    assert "hx-trigger" not in html  # the last swap stops the polling
    assert "Finished" in html


def test_it_counts_each_status_in_one_query(sending, django_assert_num_queries):
    with django_assert_num_queries(1):
        ledger.campaign_progress(sending)


def test_it_lets_an_analyst_watch_the_progress(carol_client, sending):
    response = carol_client.get(url("campaign-progress", campaign_id=sending.pk))
    assert response.status_code == 200
    assert counts_in(response.content.decode())["sent"] == 10
    assert "example.com" not in response.content.decode()  # numbers only, nobody named


def test_it_hides_the_progress_from_mallory(mallory_client, sending, evil_draft):
    assert mallory_client.get(url("campaign-progress", campaign_id=sending.pk)).status_code == 404
    other = url("campaign-progress", ws="evil", campaign_id=sending.pk)
    assert mallory_client.get(other).status_code == 404
