"""Sending a campaign as staff ask for it: status transitions (the one table), scheduling, test
sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import pytest
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns import actions
from mailmarketer.campaigns import testing as shared
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import campaign_actions
from mailmarketer.delivery.status import TRANSITIONS
from mailmarketer.lib import outbox

Status = Campaign.Status
# The fixtures and helpers both sides of campaign writes share (campaigns/testing.py).
acme, bob, news, draft = shared.acme, shared.bob, shared.news, shared.draft
events = shared.events


# -- status ----------------------------------------------------------------------------------------


def test_it_starts_a_campaign_with_an_audience_snapshot(draft, acme, personas, bob):
    mine = audience.do_create_subscriber(acme, email="ann@example.com", actor=bob)
    audience.do_create_subscriber(
        personas.evil, email="other@example.com", actor=Actor.for_user(personas.mallory)
    )
    campaign_actions.do_start_campaign(draft, actor=bob)
    draft.refresh_from_db()
    assert draft.status == Status.RUNNING
    assert draft.started_at is not None
    assert draft.audience_max_id == mine.pk  # this workspace's highest id, not another's
    assert (draft.planned_up_to, draft.planning_done) == (0, False)
    (event,) = events("campaign.started")
    assert event.old == {"status": "draft"}
    assert event.new == {"status": "running", "audience_max_id": mine.pk}
    assert Subscriber.objects.filter(workspace=personas.evil).get().pk > mine.pk


def test_it_refuses_to_start_marketing_without_a_postal_address(draft, acme, bob):
    acme.postal_address = "  "
    acme.save()
    with pytest.raises(ActionError) as info:
        campaign_actions.do_start_campaign(draft, actor=bob)
    assert info.value.code == "postal_address_required"
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    draft.kind = Campaign.Kind.TRANSACTIONAL
    draft.save()
    campaign_actions.do_start_campaign(draft, actor=bob)  # transactional mail needs no address


def test_it_refuses_to_start_without_lists_or_a_from_address(draft, acme, bob):
    actions.do_update_campaign(draft, {"lists": []}, actor=bob)
    with pytest.raises(ActionError) as info:
        campaign_actions.do_start_campaign(draft, actor=bob)
    assert info.value.code == "lists_required"
    actions.do_update_campaign(draft, {"lists": ["news"]}, actor=bob)
    acme.sender_email = ""
    acme.save()
    with pytest.raises(ActionError) as info:
        campaign_actions.do_start_campaign(draft, actor=bob)
    assert info.value.code == "from_required"
    actions.do_update_campaign(draft, {"from_email": "promo@acme.test"}, actor=bob)
    assert campaign_actions.do_start_campaign(draft, actor=bob).status == Status.RUNNING


def test_it_follows_the_transition_table(draft, bob):
    campaign_actions.do_start_campaign(draft, actor=bob)
    campaign_actions.do_pause_campaign(draft, actor=bob, reason="checking a typo")
    assert draft.status == Status.PAUSED and draft.status_reason == "checking a typo"
    campaign_actions.do_resume_campaign(draft, actor=bob)
    assert draft.status == Status.RUNNING
    campaign_actions.do_transition_campaign(draft, Status.FINISHED, actor=Actor.system("engine"))
    with pytest.raises(Conflict) as info:
        campaign_actions.do_transition_campaign(draft, Status.RUNNING, actor=bob)
    assert "cannot go from finished to running" in str(info.value)
    with pytest.raises(Conflict):
        campaign_actions.do_cancel_campaign(draft, actor=bob)
    draft.refresh_from_db()
    assert draft.status == Status.FINISHED
    assert [e.event for e in AuditEvent.objects.filter(object_type="campaign").order_by("id")][
        1:
    ] == ["campaign.started", "campaign.paused", "campaign.resumed", "campaign.status_changed"]


@pytest.mark.parametrize("start", [s for s in Status.values if s not in ("draft", "scheduled")])
def test_it_allows_exactly_the_transitions_in_the_table(draft, bob, start):
    for target in Status.values:
        Campaign.objects.filter(pk=draft.pk).update(status=start)
        try:
            campaign_actions.do_transition_campaign(draft, target, actor=bob)
            moved = True
        except Conflict:
            moved = False
        assert moved == (target in TRANSITIONS[start]), (start, target)


def test_it_cancels_a_campaign_for_good(draft, bob):
    campaign_actions.do_start_campaign(draft, actor=bob)
    campaign_actions.do_cancel_campaign(draft, actor=bob, reason="wrong list")
    draft.refresh_from_db()
    assert (draft.status, draft.status_reason) == (Status.CANCELLED, "wrong list")
    assert draft.finished_at is not None
    with pytest.raises(Conflict, match="cannot be resumed"):
        campaign_actions.do_resume_campaign(draft, actor=bob)


# -- scheduling ------------------------------------------------------------------------------------


def test_it_reads_a_form_time_in_the_workspace_time_zone(acme):
    acme.timezone = "Europe/Berlin"
    winter = campaign_actions.parse_local_datetime(acme, "2026-12-01T09:00")
    assert winter.astimezone(UTC) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    summer = campaign_actions.parse_local_datetime(acme, "2026-07-01T09:00")
    assert summer.astimezone(UTC) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    explicit = campaign_actions.parse_local_datetime(acme, "2026-07-01T09:00+00:00")
    assert explicit == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_it_refuses_local_times_that_do_not_exist_or_happen_twice(acme):
    acme.timezone = "Europe/Berlin"
    with pytest.raises(ActionError, match="does not exist in Europe/Berlin"):
        campaign_actions.parse_local_datetime(acme, "2026-03-29T02:30")
    with pytest.raises(ActionError, match="happens twice"):
        campaign_actions.parse_local_datetime(acme, "2026-10-25T02:30")
    with pytest.raises(ActionError, match="not a date and time"):
        campaign_actions.parse_local_datetime(acme, "tomorrow")


def test_it_schedules_in_the_workspace_time_zone_and_reschedules(draft, acme, bob):
    acme.timezone = "America/New_York"
    acme.save()
    draft.refresh_from_db()
    year = now().year + 1
    campaign_actions.do_schedule_campaign(draft, f"{year}-01-15T09:30", actor=bob)
    draft.refresh_from_db()
    assert draft.status == Status.SCHEDULED
    assert draft.scheduled_at == datetime(year, 1, 15, 14, 30, tzinfo=UTC)
    later = now() + timedelta(days=3)
    campaign_actions.do_schedule_campaign(draft, later, actor=bob)
    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (Status.SCHEDULED, later)
    assert [
        e.event for e in AuditEvent.objects.filter(event__startswith="campaign.").order_by("id")
    ][-2:] == [
        "campaign.scheduled",
        "campaign.rescheduled",
    ]
    campaign_actions.do_unschedule_campaign(draft, actor=bob)
    assert (draft.status, draft.scheduled_at) == (Status.DRAFT, None)


def test_it_refuses_to_schedule_a_campaign_that_has_started(draft, bob):
    campaign_actions.do_start_campaign(draft, actor=bob)
    with pytest.raises(Conflict, match="a running campaign cannot be scheduled"):
        campaign_actions.do_schedule_campaign(draft, now() + timedelta(days=1), actor=bob)


def test_it_refuses_a_schedule_in_the_past_or_one_that_could_not_start(draft, acme, bob):
    with pytest.raises(ActionError, match="in the past"):
        campaign_actions.do_schedule_campaign(draft, now() - timedelta(minutes=1), actor=bob)
    acme.postal_address = ""
    acme.save()
    with pytest.raises(ActionError) as info:
        campaign_actions.do_schedule_campaign(draft, now() + timedelta(days=1), actor=bob)
    assert info.value.code == "postal_address_required"


# -- test sends ------------------------------------------------------------------------------------


def test_it_sends_a_test_to_staff_addresses_through_the_delivery_engine(
    draft, acme, bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rendered = campaign_actions.do_send_test(
            draft, ["Boss@Acme.test", "copy@elsewhere.test", "Boss@acme.test"], actor=bob
        )
    assert rendered.subject == "Hello Jane"
    entries, total = outbox.list_messages(viewer=outbox.Viewer(acme.pk, "nobody@acme.test"))
    assert total == 2
    assert sorted(e.to for e in entries) == ["Boss@acme.test", "copy@elsewhere.test"]
    raw = next(outbox.outbox_dir().glob("*/*.eml")).read_bytes()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["Subject"] == "[Test] Hello Jane"
    text, html = outbox.message_parts(message)
    assert "https://acme.test/post" in html and "https://acme.test/post" in text
    (event,) = events("campaign.test_sent")
    assert event.new == {"recipients": 2}


def test_it_refuses_a_test_send_without_valid_addresses(draft, bob):
    with pytest.raises(ActionError, match="at least one address"):
        campaign_actions.do_send_test(draft, [" "], actor=bob)
    with pytest.raises(ActionError) as info:
        campaign_actions.do_send_test(draft, ["not-an-address"], actor=bob)
    assert info.value.code == "invalid_email"
    with pytest.raises(ActionError, match="at most 10"):
        campaign_actions.do_send_test(draft, [f"s{i}@acme.test" for i in range(11)], actor=bob)
    assert not events("campaign.test_sent")
