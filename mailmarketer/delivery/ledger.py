"""The ledger's state changes: claiming rows with a lease, returning expired leases, and
recording what the relay said. Nothing here talks to a relay.

Claiming (why it is written this way): on PostgreSQL, `SELECT ... FOR UPDATE SKIP LOCKED` lets
any number of workers on any number of hosts take disjoint batches without waiting for each
other; on SQLite, `select_for_update` is a no-op but every write transaction begins IMMEDIATE
(settings.py), holding the database's single write lock from BEGIN, so the select-then-update
pair is atomic there too. Either way a row is `sending` for exactly one worker until its lease
expires.

Recording: a row becomes `sent` only by its lease owner, right after the relay accepted it. A
worker whose lease expired meanwhile (it was presumed dead and the row was requeued) still
records `sent` — the relay did accept it, and the truth beats the lease — so such a row can be
sent twice, which is the "duplicates only for messages in flight" half of the guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.timezone import now

from .models import Delivery

Status = Delivery.Status

# Retry a temporary failure after 1, 5, 15, 30, 60 minutes, then every 2 hours until the deadline.
BACKOFF_S = (60, 300, 900, 1800, 3600)
BACKOFF_LAST_S = 7200


def backoff(attempts: int) -> timedelta:
    index = max(0, attempts - 1)
    return timedelta(seconds=BACKOFF_S[index] if index < len(BACKOFF_S) else BACKOFF_LAST_S)


@dataclass(frozen=True)
class Claimed:
    id: int
    subscriber_id: int | None
    attempts: int
    created_at: object


def claim(campaign_id: int, owner: str, limit: int | None = None) -> list[Claimed]:
    """Take up to `limit` due rows of one campaign for `owner`, with a lease."""
    limit = limit or settings.DELIVERY_BATCH
    stamp = now()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(campaign_id=campaign_id, status=Status.QUEUED, next_attempt_at__lte=stamp)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Delivery.objects.filter(id__in=ids).update(
            status=Status.SENDING,
            lease_owner=owner[:64],
            lease_expires_at=stamp + timedelta(seconds=settings.DELIVERY_LEASE_S),
            attempts=F("attempts") + 1,
        )
        rows = Delivery.objects.filter(id__in=ids).values_list(
            "id", "subscriber_id", "attempts", "created_at"
        )
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


def reclaim_expired(campaign_id: int | None = None) -> int:
    """Return rows whose lease expired (their worker died) to the queue; the attempt a dead
    worker counted is given back, since nobody knows whether it reached the relay."""
    rows = Delivery.objects.filter(status=Status.SENDING, lease_expires_at__lt=now())
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    return rows.update(
        status=Status.QUEUED, lease_owner="", lease_expires_at=None, next_attempt_at=now()
    )


def release(ids: list[int], owner: str) -> int:
    """Give claimed rows back unsent (a graceful stop, a pause, a broken relay)."""
    if not ids:
        return 0
    return Delivery.objects.filter(id__in=ids, status=Status.SENDING, lease_owner=owner).update(
        status=Status.QUEUED,
        lease_owner="",
        lease_expires_at=None,
        attempts=F("attempts") - 1,
    )


@dataclass
class Outcome:
    """What happened to one claimed row."""

    id: int
    status: str  # a Delivery.Status
    reply: str = ""
    message_id: str = ""
    server_id: int | None = None
    retry_at: object = None  # for a requeue


def record(outcomes: list[Outcome]) -> None:
    """Write a batch of outcomes in one transaction: one bulk UPDATE (CASE per row) for each of
    sent, requeued and otherwise final rows, each writing only the fields that kind sets."""
    if not outcomes:
        return
    stamp = now()
    lease_fields = ["status", "smtp_reply", "lease_owner", "lease_expires_at"]
    groups: dict[str, tuple[list[str], list[Delivery]]] = {
        "sent": ([*lease_fields, "sent_at", "message_id", "server_id"], []),
        "queued": ([*lease_fields, "next_attempt_at"], []),
        "final": (lease_fields, []),
    }
    for outcome in outcomes:
        row = Delivery(
            id=outcome.id,
            status=outcome.status,
            smtp_reply=outcome.reply[:500],
            lease_owner="",
            lease_expires_at=None,
        )
        if outcome.status == Status.SENT:
            row.sent_at = stamp
            row.message_id = outcome.message_id[:200]
            row.server_id = outcome.server_id
            groups["sent"][1].append(row)
        elif outcome.status == Status.QUEUED:
            row.next_attempt_at = outcome.retry_at or stamp
            groups["queued"][1].append(row)
        else:
            groups["final"][1].append(row)
    with transaction.atomic():
        for fields, rows in groups.values():
            if rows:
                Delivery.objects.bulk_update(rows, fields, batch_size=500)
