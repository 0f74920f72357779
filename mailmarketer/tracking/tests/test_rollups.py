"""Roll-ups: the worker duty counts each event once, per hour and day, per link, human and
machine apart, with unique counts that add up across buckets; a click is also an open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils.timezone import now

from mailmarketer.tracking import rollups
from mailmarketer.tracking.models import CampaignDomainStat, CampaignStat, EmailEvent, RollupCursor

T0 = datetime(2026, 11, 30, 22, 15, tzinfo=UTC)


def event(ws, kind, at, key="r1", link=None, machine=False, **firsts):
    return EmailEvent.objects.create(
        workspace=ws,
        campaign_id=7,
        kind=kind,
        at=at,
        link_id=link,
        recipient_key=key,
        domain="example.com",
        agent_class="browser",
        machine=machine,
        **firsts,
    )


def stats(**filters):
    return {
        (s.grain, s.bucket, s.link_id, s.kind, s.machine): (s.total, s.uniques)
        for s in CampaignStat.objects.filter(**filters)
    }


@pytest.fixture
def events(personas):
    ws = personas.acme
    event(ws, "open", T0, first_open=True)
    event(ws, "open", T0 + timedelta(minutes=10))
    # Next hour and next day: a click without an earlier open of another recipient.
    event(ws, "click", T0 + timedelta(hours=2), key="r2", link=3, first_open=True,
          first_click=True, first_link_click=True)  # fmt: skip
    event(ws, "open", T0, key="r3", machine=True, first_open=True)
    return ws


def test_it_counts_hours_days_links_and_machines_apart(events):
    assert rollups.roll_up_one() is True
    assert rollups.roll_up_one() is False
    hour0, hour2 = T0.replace(minute=0), T0.replace(minute=0) + timedelta(hours=2)
    day0, day1 = hour0.replace(hour=0), hour0.replace(hour=0) + timedelta(days=1)
    assert stats(grain="h") == {
        ("h", hour0, 0, "open", False): (2, 1),
        ("h", hour0, 0, "open", True): (1, 1),
        ("h", hour2, 0, "click", False): (1, 1),
        ("h", hour2, 3, "click", False): (1, 1),
        ("h", hour2, 0, "open", False): (0, 1),  # a click is an open
    }
    assert stats(grain="d") == {
        ("d", day0, 0, "open", False): (2, 1),
        ("d", day0, 0, "open", True): (1, 1),
        ("d", day1, 0, "click", False): (1, 1),
        ("d", day1, 3, "click", False): (1, 1),
        ("d", day1, 0, "open", False): (0, 1),
    }
    domains = {(d.kind, d.machine): (d.total, d.uniques) for d in CampaignDomainStat.objects.all()}
    assert domains == {("open", False): (2, 2), ("open", True): (1, 1), ("click", False): (1, 1)}


def test_it_counts_each_event_once_across_runs(events):
    rollups.roll_up_one()
    event(events, "open", T0 + timedelta(minutes=20))
    rollups.roll_up_one()
    hour0 = T0.replace(minute=0)
    assert stats(grain="h", bucket=hour0, kind="open", machine=False)[
        ("h", hour0, 0, "open", False)
    ] == (3, 1)
    assert RollupCursor.objects.get().last_id == EmailEvent.objects.order_by("-id")[0].id


def test_it_waits_for_events_still_young(personas):
    event(personas.acme, "open", now())
    assert rollups.roll_up_one() is False
    assert not CampaignStat.objects.exists()
