"""The worker duty that starts scheduled campaigns."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.campaigns import actions
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import campaign_actions
from mailmarketer.delivery.scheduler import start_scheduled_one
from mailmarketer.lib.worker import registered_duties

Status = Campaign.Status


@pytest.fixture
def bob(personas):
    return Actor.for_user(personas.bob)


@pytest.fixture
def scheduled(personas, bob):
    acme = personas.acme
    acme.postal_address = "1 Main Street"
    acme.save()
    news = audience.do_create_list(acme, name="News", slug="news", actor=bob)
    campaign = actions.do_create_campaign(
        acme, actor=bob, name="Later", subject="Hi", body="[x](https://acme.test/x)", lists=[news]
    )
    campaign_actions.do_schedule_campaign(campaign, now() + timedelta(hours=1), actor=bob)
    return campaign


def make_due(campaign):
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=now() - timedelta(seconds=1))


def test_it_is_registered_as_a_worker_duty():
    assert start_scheduled_one in registered_duties()


def test_it_leaves_a_campaign_whose_time_has_not_come(scheduled):
    assert start_scheduled_one() is False
    scheduled.refresh_from_db()
    assert scheduled.status == Status.SCHEDULED


def test_it_starts_a_due_campaign_once(scheduled, personas, bob):
    person = audience.do_create_subscriber(personas.acme, email="ann@example.com", actor=bob)
    make_due(scheduled)
    assert start_scheduled_one() is True
    assert start_scheduled_one() is False
    scheduled.refresh_from_db()
    assert scheduled.status == Status.RUNNING
    assert scheduled.started_at is not None
    assert scheduled.audience_max_id == person.pk
    (event,) = AuditEvent.objects.filter(event="campaign.started")
    assert event.actor_label == "scheduler"
    assert list(scheduled.links.values_list("url", flat=True)) == ["https://acme.test/x"]


def test_it_claims_with_a_conditional_update(scheduled, monkeypatch):
    # Another worker starts the campaign between our read and our update: ours changes no row.
    make_due(scheduled)
    from mailmarketer.delivery import scheduler

    real = scheduler.launch_fields

    def meanwhile(campaign):
        Campaign.objects.filter(pk=campaign.pk).update(status=Status.RUNNING)
        return real(campaign)

    monkeypatch.setattr(scheduler, "launch_fields", meanwhile)
    assert start_scheduled_one() is True
    assert not AuditEvent.objects.filter(event="campaign.started").exists()


def test_it_returns_a_campaign_that_can_no_longer_start_to_draft(scheduled, personas):
    acme = personas.acme
    acme.postal_address = ""
    acme.save()
    make_due(scheduled)
    assert start_scheduled_one() is True
    scheduled.refresh_from_db()
    assert scheduled.status == Status.DRAFT
    assert scheduled.scheduled_at is None
    assert "postal address" in scheduled.status_reason
    assert AuditEvent.objects.filter(event="campaign.schedule_failed").count() == 1
    assert start_scheduled_one() is False
