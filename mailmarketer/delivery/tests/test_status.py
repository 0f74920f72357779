"""The one table of a campaign's status and its one writer: what the table allows, that a stale
copy writes nothing, and that every writer leaves an audit row naming its actor."""

from __future__ import annotations

import pytest

from mailmarketer.accounts.actions import Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import engine
from mailmarketer.delivery.status import MOVES, TRANSITIONS, moves_for, set_campaign_status
from mailmarketer.testing import launch

pytestmark = pytest.mark.django_db
Status = Campaign.Status
SETUP = Actor.system("test setup")


def campaign_events():
    return list(AuditEvent.objects.filter(event__startswith="campaign.").order_by("id"))


@pytest.mark.parametrize("status", Status.values)
def test_it_offers_pause_and_cancel_exactly_where_the_table_allows_them(status):
    moves = moves_for(status)
    assert ("pause" in moves) == (Status.PAUSED in TRANSITIONS[status])
    assert ("cancel" in moves) == (Status.CANCELLED in TRANSITIONS[status])
    assert moves_for(Status.FINISHED) == ["retry"]
    assert moves_for(Status.CANCELLED) == []


def test_it_offers_only_the_moves_a_role_may_make():
    only_manage = {MOVES["schedule"].permission}
    assert moves_for(Status.DRAFT, only_manage) == ["schedule"]
    assert moves_for(Status.DRAFT, frozenset()) == []


def test_it_writes_nothing_from_a_stale_copy(personas, news):
    campaign = launch(personas.acme, [news])
    stale = Campaign.objects.get(pk=campaign.pk)
    assert set_campaign_status(campaign, Status.PAUSED, actor=SETUP, reason="staff")
    assert set_campaign_status(stale, Status.FINISHED, actor=SETUP) is False
    campaign.refresh_from_db()
    assert (campaign.status, campaign.status_reason) == (Status.PAUSED, "staff")
    assert [e.event for e in campaign_events()] == ["campaign.status_changed"]


def test_it_refuses_a_move_the_table_does_not_allow(personas, news):
    campaign = launch(personas.acme, [news], status=Status.FINISHED)
    with pytest.raises(Conflict, match="from finished to running"):
        set_campaign_status(campaign, Status.RUNNING, actor=SETUP)
    assert set_campaign_status(campaign, Status.RUNNING, actor=SETUP, reopen=True)


def test_it_records_the_engines_pause_and_finish_as_the_engine(personas, news):
    campaign = launch(personas.acme, [news], planning_done=True)
    engine.pause_campaign(campaign, "the relay refused us: 535\r\nauthentication failed")
    campaign.refresh_from_db()
    assert campaign.status == Status.PAUSED
    assert campaign.status_reason.startswith("the relay refused us")
    set_campaign_status(campaign, Status.RUNNING, actor=SETUP)
    assert engine.finish_one() is True
    paused, _, finished = campaign_events()
    assert (paused.event, paused.actor_label) == ("campaign.paused", "delivery engine")
    assert paused.old == {"status": "running"}
    assert (finished.event, finished.actor_label) == ("campaign.finished", "delivery engine")
    assert finished.new == {"status": "finished"}


def test_it_leaves_a_campaign_staff_cancelled_when_the_engine_would_pause_it(personas, news):
    campaign = launch(personas.acme, [news])
    set_campaign_status(
        Campaign.objects.get(pk=campaign.pk), Status.CANCELLED, actor=SETUP, reason="staff"
    )
    engine.pause_campaign(campaign, "the relay broke")  # its copy still says running
    campaign.refresh_from_db()
    assert campaign.status == Status.CANCELLED
    assert not AuditEvent.objects.filter(event="campaign.paused").exists()


def test_it_masks_addresses_the_relay_quoted_in_the_engines_pause_reason(personas, news):
    # The status reason is shown to every role that sees the campaign (the analyst too); the
    # ledger row keeps the whole reply for the roles that may read it.
    campaign = launch(personas.acme, [news])
    engine.pause_campaign(
        campaign, "the relay refused 3 in a row; the last reply: 550 <anna.schmidt@acme.test>"
    )
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "anna.schmidt" not in campaign.status_reason
    assert "@acme.test>" in campaign.status_reason


def test_it_keeps_our_own_return_path_in_the_engines_pause_reason(personas, news):
    campaign = launch(personas.acme, [news])
    engine.pause_campaign(
        campaign, "refused our envelope sender <bounces+x.y@acme.test>: 501 5.1.7 Bad sender"
    )
    campaign.refresh_from_db()
    assert "<bounces+x.y@acme.test>" in campaign.status_reason
