"""Helpers for the campaign page tests (test_views_*.py; their fixtures are in conftest.py):
URLs, audit rows, launching without a worker, and ledger rows in chosen statuses without
running the engine."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience import actions as audience
from mailmarketer.audience.actions import Reason
from mailmarketer.campaigns import actions
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery.models import Delivery, SmtpServer

SETUP = Actor.system("test setup")


def url(name, ws="acme", **kwargs):
    return reverse(name, kwargs={"ws": ws, **kwargs})


def events(name, **filters):
    return list(AuditEvent.objects.filter(event=name, **filters).order_by("id"))


def launched(campaign, **fields) -> Campaign:
    """The campaign as launching leaves it (status running, snapshot taken), without a worker."""
    actions.do_start_campaign(campaign, actor=SETUP)
    if fields:
        Campaign.objects.filter(pk=campaign.pk).update(**fields)
    campaign.refresh_from_db()
    return campaign


def ledger_rows(campaign, people, statuses, **fields) -> list[Delivery]:
    """One ledger row per person, with the given statuses (sent rows sent a few seconds ago)."""
    rows = []
    for person, status in zip(people, statuses, strict=True):
        sent = status in (Delivery.Status.SENT, Delivery.Status.BOUNCED)
        rows.append(
            Delivery.objects.create(
                workspace=campaign.workspace,
                campaign=campaign,
                subscriber=person,
                status=status,
                attempts=1 if status != Delivery.Status.QUEUED else 0,
                sent_at=now() - timedelta(seconds=5) if sent else None,
                **fields,
            )
        )
    return rows


def many_people(workspace, lists, count, prefix="m"):
    found = []
    for i in range(count):
        person = audience.do_create_subscriber(
            workspace, email=f"{prefix}{i}@example.com", actor=SETUP
        )
        audience.do_subscribe(person, lists, actor=SETUP, reason=Reason.BY_ADMIN, confirmed=True)
        found.append(person)
    return found


def relay(workspace, name="Main relay") -> SmtpServer:
    return SmtpServer.objects.create(workspace=workspace, name=name, host="smtp.acme.test")
