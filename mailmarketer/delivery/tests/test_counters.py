"""The per-campaign sent/bounced counts (counters.py, triggers of migration 0006) agree with a
count of the ledger rows whatever writes them, before and after the worker folds the deltas."""

import pytest
from django.db.models import Count

from mailmarketer.delivery import counters, ledger, planner
from mailmarketer.delivery.ledger import Outcome
from mailmarketer.delivery.models import Delivery, LedgerCount, LedgerCountDelta
from mailmarketer.testing import add_people, launch

Status = Delivery.Status


@pytest.fixture
def campaign(personas, staff, news):
    add_people(personas.acme, [news], 10, staff)
    campaign = launch(personas.acme, [news])
    planner.plan_chunk(campaign, limit=100)
    return campaign


def counted(campaign):
    rows = dict(
        Delivery.objects.filter(campaign=campaign, status__in=["sent", "bounced"])
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {"sent": rows.get("sent", 0), "bounced": rows.get("bounced", 0)}


def fold():
    while counters.compact_counts_one():
        pass


def test_counts_follow_the_engine_a_late_bounce_and_a_delete(campaign):
    assert counters.ledger_counts(campaign.pk) == {"sent": 0, "bounced": 0}
    claimed = ledger.claim(campaign.pk, "w1", limit=6)
    ledger.record(
        [Outcome(row.id, Status.SENT, "250 ok", f"<{row.id}@x>", None) for row in claimed[:5]]
        + [Outcome(claimed[5].id, Status.FAILED, "550 no such user")]
    )
    # Live while the campaign is still sending, before the worker folded anything.
    assert counters.ledger_counts(campaign.pk) == counted(campaign) == {"sent": 5, "bounced": 0}
    fold()
    assert LedgerCountDelta.objects.count() == 0
    assert counters.ledger_counts(campaign.pk) == {"sent": 5, "bounced": 0}
    # A bounce arriving later moves one from delivered to bounced.
    Delivery.objects.filter(pk=claimed[0].id).update(status=Status.BOUNCED)
    row = Delivery.objects.get(pk=claimed[1].id)
    row.status = Status.BOUNCED
    row.save()
    assert counters.ledger_counts(campaign.pk) == counted(campaign) == {"sent": 3, "bounced": 2}
    # Saving a row without changing its status adds nothing.
    row.smtp_reply = "again"
    row.save()
    assert counters.ledger_counts(campaign.pk) == {"sent": 3, "bounced": 2}
    fold()
    assert counters.ledger_counts(campaign.pk) == {"sent": 3, "bounced": 2}
    Delivery.objects.filter(pk=claimed[2].id).delete()
    assert counters.ledger_counts(campaign.pk) == counted(campaign) == {"sent": 2, "bounced": 2}
    # Bulk updates and rows inserted as sent count too (the triggers see every write).
    Delivery.objects.filter(campaign=campaign, status=Status.QUEUED).update(status=Status.SENT)
    Delivery.objects.create(workspace=campaign.workspace, campaign=campaign, status=Status.SENT)
    fold()
    assert counters.ledger_counts(campaign.pk) == counted(campaign)


def test_a_deleted_campaign_leaves_no_count(campaign):
    claimed = ledger.claim(campaign.pk, "w1", limit=3)
    ledger.record([Outcome(row.id, Status.SENT, "250 ok", "<a@x>", None) for row in claimed])
    fold()
    assert LedgerCount.objects.filter(campaign_id=campaign.pk).exists()
    pk = campaign.pk
    campaign.delete()
    fold()
    assert not LedgerCount.objects.filter(campaign_id=pk).exists()
    assert counters.ledger_counts(pk) == {"sent": 0, "bounced": 0}


def test_folding_in_batches_and_twice_counts_each_delta_once(campaign, monkeypatch):
    monkeypatch.setattr(counters, "BATCH", 3)
    claimed = ledger.claim(campaign.pk, "w1", limit=10)
    ledger.record([Outcome(row.id, Status.SENT, "250 ok", "<a@x>", None) for row in claimed])
    Delivery.objects.filter(pk__in=[row.id for row in claimed[:4]]).update(status=Status.BOUNCED)
    # SQLite's triggers append a delta per row, PostgreSQL's one per statement and status.
    deltas = LedgerCountDelta.objects.count()
    assert counters.compact_counts_one() is True
    assert LedgerCountDelta.objects.count() == max(deltas - 3, 0)
    assert counters.ledger_counts(campaign.pk) == {"sent": 6, "bounced": 4}
    fold()
    assert counters.compact_counts_one() is False
    assert counters.ledger_counts(campaign.pk) == {"sent": 6, "bounced": 4}


def test_a_second_worker_folding_the_same_deltas_rolls_back(campaign, monkeypatch):
    claimed = ledger.claim(campaign.pk, "w1", limit=4)
    ledger.record([Outcome(row.id, Status.SENT, "250 ok", "<a@x>", None) for row in claimed])
    deltas = LedgerCountDelta.objects.count()
    real_delete = counters.LedgerCountDelta.objects.filter

    # The other worker deleted one of the deltas this one read, between its read and delete.
    def filter_after_race(*args, **kwargs):
        if "pk__in" in kwargs:
            LedgerCountDelta.objects.filter(pk=kwargs["pk__in"][0]).delete()
        return real_delete(*args, **kwargs)

    monkeypatch.setattr(counters.LedgerCountDelta.objects, "filter", filter_after_race)
    assert counters.compact_counts_one() is True
    monkeypatch.undo()
    # Nothing folded by the loser (the simulated winner's delete ran inside its transaction,
    # so it is rolled back with it).
    assert LedgerCountDelta.objects.count() == deltas
    assert not LedgerCount.objects.filter(campaign_id=campaign.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_rows_already_there_and_its_reverse_drops_the_triggers(campaign):
    """Backwards to 0005 and forwards again (what upgrading a database with sent campaigns
    does): the counts start from the rows already in the ledger."""
    from django.core.management import call_command

    claimed = ledger.claim(campaign.pk, "w1", limit=3)
    ledger.record([Outcome(row.id, Status.SENT, "250 ok", "<a@x>", None) for row in claimed])
    Delivery.objects.filter(pk=claimed[0].id).update(status=Status.BOUNCED)
    call_command("migrate", "delivery", "0005", verbosity=0)
    Delivery.objects.filter(pk=claimed[1].id).update(status=Status.BOUNCED)  # no trigger now
    call_command("migrate", "delivery", verbosity=0)
    assert counters.ledger_counts(campaign.pk) == counted(campaign) == {"sent": 1, "bounced": 2}
