"""Per-campaign counts of ledger rows that are sent and bounced, for the campaign report.

Counting a campaign's ledger rows by status reads every row of the campaign (343 ms for a
million on PostgreSQL), so the report reads these instead. They are kept by the database
itself: triggers on delivery_delivery (migration 0006) append delta rows (+n / -n) whenever
rows enter or leave `sent` or `bounced`, whichever code path writes them (the engine, bounces,
a cancelled campaign's delete): on PostgreSQL one row per statement, campaign and status; on
SQLite one per ledger row. Appending never waits on another transaction (no shared counter
row to lock while a send batch is open); the worker's `compact_counts_one` folds the deltas
into one LedgerCount row per (campaign, status). A count is LedgerCount.n plus the campaign's
deltas not folded yet, read in one statement (counters.ledger_counts), so it is exact at every
moment, including while a campaign is still sending and after a late bounce.

No foreign key to the campaign: a campaign's rows are deleted with it and their -1 deltas must
not refer to a row that is gone at commit.
"""

from django.db import models


class LedgerCount(models.Model):
    campaign_id = models.BigIntegerField()
    status = models.CharField(max_length=10)
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign_id", "status"], name="ledgercount_unique")
        ]

    def __str__(self):
        return f"campaign {self.campaign_id} {self.status}: {self.n}"


class LedgerCountDelta(models.Model):
    campaign_id = models.BigIntegerField()
    status = models.CharField(max_length=10)
    n = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["campaign_id"], name="ledgercountdelta_campaign")]

    def __str__(self):
        return f"campaign {self.campaign_id} {self.status}: {self.n:+d}"
