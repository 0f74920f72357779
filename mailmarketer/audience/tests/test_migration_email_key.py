"""Migration audience 0006: people stored twice under addresses that differ only in case are
merged into the oldest, before the unique key on the lower-cased address is added. The database
is taken back to the schema before it, filled through the models of that time, and migrated
forward, as an upgrade would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils.timezone import now

from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.models import ConsentRecord, Subscriber, Subscription
from mailmarketer.delivery.models import Delivery

MIGRATION = ("audience", "0006_audience_email_key")


def _targets(executor, audience):
    """Every app at its latest migration, audience at `audience`."""
    return [n for n in executor.loader.graph.leaf_nodes() if n[0] != "audience"] + [audience]


def _before(apps):
    """Two workspaces; in acme, Anna three times (two case-duplicates of the oldest) and Bo
    once; in the other workspace an Anna of its own, which is another person."""
    Workspace = apps.get_model("accounts", "Workspace")
    MailingList = apps.get_model("audience", "MailingList")
    Subscriber = apps.get_model("audience", "Subscriber")
    Subscription = apps.get_model("audience", "Subscription")
    ConsentRecord = apps.get_model("audience", "ConsentRecord")
    Campaign = apps.get_model("campaigns", "Campaign")
    Delivery = apps.get_model("delivery", "Delivery")

    acme = Workspace.objects.create(name="Acme", slug="acme")
    other = Workspace.objects.create(name="Other", slug="other")
    news, offers, tips = (
        MailingList.objects.create(workspace=acme, name=slug, slug=slug)
        for slug in ("news", "offers", "tips")
    )
    t = now() - timedelta(days=30)

    def person(ws, email, days, **fields):
        return Subscriber.objects.create(
            workspace=ws,
            email=email,
            created_at=t + timedelta(days=days),
            updated_at=t + timedelta(days=days),
            **fields,
        )

    oldest = person(acme, "Anna@beispiel.de", 0, name="Anna", attributes={"city": "Bonn", "a": 1})
    loud = person(acme, "ANNA@beispiel.de", 2, name="", attributes={"city": "Köln"})
    quiet = person(acme, "anna@beispiel.de", 1, name="Anna S", attributes={"b": 2})
    bo = person(acme, "bo@beispiel.de", 0)
    # Beyond ASCII, where SQLite's LOWER folds nothing: Python's lower() decides.
    umlaut = person(acme, "ÄRGER@beispiel.de", 3)
    person(acme, "ärger@beispiel.de", 4)
    elsewhere = person(other, "anna@beispiel.de", 0)

    def member(sub, ml, status):
        Subscription.objects.create(
            workspace_id=sub.workspace_id,
            subscriber=sub,
            mailing_list=ml,
            status=status,
            status_reason="by_import",
        )

    member(oldest, news, "confirmed")
    member(loud, news, "unsubscribed")  # unsubscribed under one spelling: unsubscribed
    member(oldest, offers, "unconfirmed")
    member(quiet, offers, "confirmed")  # confirmed beats unconfirmed
    member(loud, tips, "confirmed")  # only the duplicate was on it: moved
    for sub in (oldest, loud, quiet):
        ConsentRecord.objects.create(
            workspace_id=acme.pk,
            subscriber=sub,
            purpose="email:news",
            action="grant",
            source_type="import",
        )
    sent, alone = (
        Campaign.objects.create(workspace=acme, name=name, subject=name)
        for name in ("sent to both", "sent to one")
    )
    Delivery.objects.create(workspace=acme, campaign=sent, subscriber=oldest, status="sent")
    Delivery.objects.create(workspace=acme, campaign=sent, subscriber=loud, status="sent")
    Delivery.objects.create(workspace=acme, campaign=alone, subscriber=quiet, status="sent")
    return {
        "oldest": oldest.uuid,
        "loud": loud.uuid,
        "quiet": quiet.uuid,
        "bo": bo.uuid,
        "umlaut": umlaut.uuid,
        "elsewhere": elsewhere.uuid,
        "sent": sent.pk,
        "alone": alone.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_it_merges_case_duplicates_into_the_oldest_subscriber():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(_targets(executor, ("audience", "0005_lean_tenant_keys")))
    try:
        executor.loader.build_graph()
        made = _before(
            executor.loader.project_state(
                _targets(executor, ("audience", "0005_lean_tenant_keys"))
            ).apps
        )

        executor.loader.build_graph()
        executor.migrate(_targets(executor, MIGRATION))
    finally:
        executor.loader.build_graph()
        executor.migrate(latest)

    anna = Subscriber.objects.get(uuid=made["oldest"])
    assert not Subscriber.objects.filter(uuid__in=[made["loud"], made["quiet"]]).exists()
    assert set(Subscriber.objects.values_list("uuid", flat=True)) == {
        made["oldest"],
        made["bo"],
        made["umlaut"],
        made["elsewhere"],
    }
    assert Subscriber.objects.get(uuid=made["umlaut"]).email_key == "ärger@beispiel.de"
    assert (anna.email, anna.email_key) == ("Anna@beispiel.de", "anna@beispiel.de")
    # The newest value per attribute, the newest non-empty name.
    assert anna.attributes == {"city": "Köln", "a": 1, "b": 2}
    assert anna.name == "Anna S"
    assert dict(anna.subscriptions.values_list("mailing_list__slug", "status")) == {
        "news": "unsubscribed",
        "offers": "confirmed",
        "tips": "confirmed",
    }
    assert ConsentRecord.objects.filter(subscriber=anna).count() == 3
    # One ledger row per campaign and person: the duplicate's row of a campaign both were sent
    # stays for the totals, without a subscriber.
    assert set(Delivery.objects.filter(subscriber=anna).values_list("campaign_id", flat=True)) == {
        made["sent"],
        made["alone"],
    }
    assert Delivery.objects.filter(campaign_id=made["sent"], subscriber=None).count() == 1
    merged = AuditEvent.objects.filter(event="subscriber.merged", object_id=anna.pk).order_by("id")
    assert [(e.old["merged"], e.new["into"]) for e in merged] == [
        (str(made["quiet"]), str(made["oldest"])),
        (str(made["loud"]), str(made["oldest"])),
    ]
    assert all(e.object_id == str(anna.pk) for e in merged)
    assert Subscription.objects.count() == 3 and Subscriber.objects.get(uuid=made["elsewhere"])
