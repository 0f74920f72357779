"""Roll-ups of email events: what every campaign report reads (never the events themselves).

`roll_up_one` is a worker duty: it reads up to BATCH events past its cursor in id order, adds
them to CampaignStat (per hour and per day, per link, per kind, human or machine) and
CampaignDomainStat (per recipient domain), and moves the cursor, all in one transaction with the
cursor row locked, so two workers never count an event twice and a crash counts it once later.

Events are stored only by the worker's ingestion of the spool (mail_ingest.py), which holds
this cursor's row lock while it inserts: on PostgreSQL ids are handed out before commit, so
without it a batch still committing could hold lower ids than events already visible. The
cursor also stops at the first event younger than LAG_SECONDS (a guard kept from when the edge
wrote events itself).

What each event adds (a click counts as an open: it adds to unique opens, not to total opens):
- open:  (open, link 0)  total +1, uniques +first_open
- click: (click, link 0) total +1, uniques +first_click; (click, its link) total +1,
  uniques +first_link_click; (open, link 0) uniques +first_open.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db import connection, transaction
from django.utils.timezone import now

from .models import EmailEvent, EmailEventKind, Grain, RollupCursor

BATCH = 5_000
LAG_SECONDS = 5
CURSOR = "email_events"
OPEN, CLICK = EmailEventKind.OPEN, EmailEventKind.CLICK

_STAT_SQL = """
INSERT INTO tracking_campaignstat
    (workspace_id, campaign_id, grain, bucket, link_id, kind, machine, total, uniques)
VALUES {values}
ON CONFLICT (campaign_id, grain, bucket, link_id, kind, machine) DO UPDATE SET
    total = tracking_campaignstat.total + excluded.total,
    uniques = tracking_campaignstat.uniques + excluded.uniques
"""
_DOMAIN_SQL = """
INSERT INTO tracking_campaigndomainstat
    (workspace_id, campaign_id, domain, kind, machine, total, uniques)
VALUES {values}
ON CONFLICT (campaign_id, domain, kind, machine) DO UPDATE SET
    total = tracking_campaigndomainstat.total + excluded.total,
    uniques = tracking_campaigndomainstat.uniques + excluded.uniques
"""
CHUNK = 500


def _contributions(event: dict):
    """(link id, kind, total, uniques) this event adds to its campaign's counts."""
    if event["kind"] == OPEN:
        yield 0, OPEN, 1, int(event["first_open"])
        return
    yield 0, CLICK, 1, int(event["first_click"])
    if event["link_id"]:
        yield event["link_id"], CLICK, 1, int(event["first_link_click"])
    if event["first_open"]:
        yield 0, OPEN, 0, 1


def roll_up_one() -> bool:
    """Worker duty: count one batch of new events into the roll-ups; whether it found any."""
    with transaction.atomic():
        RollupCursor.objects.get_or_create(name=CURSOR)
        cursor = RollupCursor.objects.select_for_update().get(name=CURSOR)
        events = list(
            EmailEvent.objects.filter(id__gt=cursor.last_id)
            .order_by("id")
            .values(
                "id",
                "workspace_id",
                "campaign_id",
                "kind",
                "at",
                "link_id",
                "domain",
                "machine",
                "first_open",
                "first_click",
                "first_link_click",
            )[:BATCH]
        )
        ripe = now() - timedelta(seconds=LAG_SECONDS)
        counted = []
        for event in events:
            if event["at"] > ripe:
                break
            counted.append(event)
        if not counted:
            return False
        add(counted)
        cursor.last_id = counted[-1]["id"]
        cursor.save(update_fields=["last_id"])
    return True


def add(events: list[dict]) -> None:
    """Add events to the roll-ups (inside the caller's transaction)."""
    stats: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    domains: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for event in events:
        at = event["at"]
        hour = at.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)
        base = (event["workspace_id"], event["campaign_id"])
        for link_id, kind, total, uniques in _contributions(event):
            for grain, bucket in ((Grain.HOUR, hour), (Grain.DAY, day)):
                row = stats[(*base, grain, bucket, link_id, kind, event["machine"])]
                row[0] += total
                row[1] += uniques
            if link_id == 0:
                row = domains[(*base, event["domain"] or "", kind, event["machine"])]
                row[0] += total
                row[1] += uniques
    ops = connection.ops
    stat_rows = [
        (ws, cid, grain, ops.adapt_datetimefield_value(bucket), link, kind, machine, t, u)
        for (ws, cid, grain, bucket, link, kind, machine), (t, u) in stats.items()
    ]
    domain_rows = [(*key, t, u) for key, (t, u) in domains.items()]
    with connection.cursor() as cursor:
        _upsert(cursor, _STAT_SQL, stat_rows, 9)
        _upsert(cursor, _DOMAIN_SQL, domain_rows, 7)


def _upsert(cursor, sql: str, rows: list[tuple], width: int) -> None:
    # Fixed pieces only in the statement's text; the values are parameters.
    one = "(" + ", ".join(["%s"] * width) + ")"
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        cursor.execute(
            sql.format(values=", ".join([one] * len(chunk))),
            [value for row in chunk for value in row],
        )
