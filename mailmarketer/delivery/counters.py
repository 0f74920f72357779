"""Reading and compacting the per-campaign ledger counts (models_counts.py says why they exist;
migration 0006 holds the triggers that append the deltas)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Sum

from .models_counts import LedgerCount, LedgerCountDelta

COUNTED = ("sent", "bounced")
BATCH = 20_000


def ledger_counts(campaign_id: int) -> dict[str, int]:
    """{status: rows} for the campaign's sent and bounced ledger rows, exact: the folded count
    and the deltas not folded yet, in one statement (one snapshot, so a compaction committing
    in between cannot count a delta twice or not at all)."""
    folded = LedgerCount.objects.filter(campaign_id=campaign_id).values_list("status", "n")
    pending = (
        LedgerCountDelta.objects.filter(campaign_id=campaign_id)
        .values("status")
        .annotate(total=Sum("n"))
        .values_list("status", "total")
        .order_by()
    )
    counts = dict.fromkeys(COUNTED, 0)
    for status, n in folded.union(pending, all=True):
        counts[status] = counts.get(status, 0) + n
    return counts


class _Raced(Exception):
    pass


def compact_counts_one() -> bool:
    """Worker duty: folds up to BATCH of the oldest deltas into LedgerCount; whether it found
    any. The rows folded are exactly the rows read (by id, never a range: a delta with a lower
    id may commit later). Two workers folding the same deltas: the second deletes fewer rows
    than it read and rolls back, so nothing is counted twice."""
    rows = list(
        LedgerCountDelta.objects.order_by("id").values_list("id", "campaign_id", "status", "n")[
            :BATCH
        ]
    )
    if not rows:
        return False
    sums: dict[tuple[int, str], int] = {}
    for _, campaign_id, status, n in rows:
        sums[(campaign_id, status)] = sums.get((campaign_id, status), 0) + n
    try:
        with transaction.atomic():
            deleted, _ = LedgerCountDelta.objects.filter(pk__in=[row[0] for row in rows]).delete()
            if deleted != len(rows):
                raise _Raced
            for (campaign_id, status), n in sorted(sums.items()):
                if not n:
                    continue
                updated = LedgerCount.objects.filter(campaign_id=campaign_id, status=status).update(
                    n=F("n") + n
                )
                if not updated:
                    LedgerCount.objects.create(campaign_id=campaign_id, status=status, n=n)
            # A deleted campaign's counts reach 0: no row is kept for it.
            LedgerCount.objects.filter(campaign_id__in={key[0] for key in sums}, n=0).delete()
    except _Raced:
        return True
    return True
