"""Website hits through the spool: `/t/e` appends each hit's row to a group-committed spool
file (`web-<ns>-<pid>.open`, the same GroupSpool as the email hits', lib/group_spool.py) and answers
once the line is on disk; the worker duty `ingest_web_one` stores them in batches.

A line is the row `web.hit_row` made in the request (the IP already kept as the site says, the
visitor hash made), its time as ISO text, plus `vt`: the (workspace, person) a genuine visitor
token named, or nothing. Whether that person is linked (their tracking consent) is decided at
ingestion, for the whole batch in one query: a withdrawal made before the hit is stored wins.

`ingest_web_one` takes the oldest finished file, and in one transaction stores up to BATCH of its
lines past the file's progress mark (lib/group_spool.ingest_spool_file, with web.store_rows:
one multi-row INSERT ... ON CONFLICT DO NOTHING, one record_facts call for the identified
page views, the roll-up marks) and moves the mark (a RollupCursor row `w:<file>`, a byte
offset). Every step holds the lock on one RollupCursor row (LOCK), so two workers never
ingest the same lines; a worker killed anywhere leaves the batch and its mark both committed
or neither. The idempotency key would make a second pass add nothing anyway.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from django.db.models import OuterRef, Subquery

from mailmarketer.audience.models import ConsentRecord
from mailmarketer.lib import group_spool

from . import mail_spool, web
from .models import RollupCursor

logger = logging.getLogger("mailmarketer.tracking")

PREFIX = "web-"
BATCH = 2_000
LOCK = "web-ingest"

spool = group_spool.GroupSpool(PREFIX)


def append(row: dict, token_ids: tuple[int, int] | None) -> None:
    """Appends one hit durably (synced before this returns); raises OSError when the spool
    cannot take it."""
    record = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    record["vt"] = list(token_ids) if token_ids else None
    spool.append(record)


def store(rows: list[dict], token_ids: list) -> int:
    """Links the consenting people (one query for the batch) and stores the rows."""
    wanted = {tuple(ids) for ids in token_ids if ids}
    allowed = consenting(wanted) if wanted else set()
    for row, ids in zip(rows, token_ids, strict=True):
        row["subscriber_id"] = ids[1] if ids and tuple(ids) in allowed else None
    return web.store_rows(rows)


def consenting(pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The (workspace, person) pairs whose last word on tracking is a grant or confirmation."""
    people = {subscriber for _, subscriber in pairs}
    last = ConsentRecord.objects.filter(
        workspace_id=OuterRef("workspace_id"),
        subscriber_id=OuterRef("subscriber_id"),
        purpose="tracking",
    ).order_by("-at", "-id")
    rows = (
        ConsentRecord.objects.filter(subscriber_id__in=people, purpose="tracking")
        .values_list("workspace_id", "subscriber_id")
        .distinct()
        .annotate(last=Subquery(last.values("action")[:1]))
    )
    good = (ConsentRecord.Action.GRANT, ConsentRecord.Action.CONFIRM)
    return {(w, s) for w, s, action in rows if action in good and (w, s) in pairs}


def _records(chunk: bytes, path: Path) -> tuple[list[dict], list]:
    records, bad = mail_spool.read_records(chunk)
    rows, ids = [], []
    for record in records:
        try:
            record["at"] = datetime.fromisoformat(record["at"])
            token = record.pop("vt", None)
            missing = [c for c in web.COLUMNS if c not in record]
        except (KeyError, TypeError, ValueError):
            bad += 1
            continue
        if missing:
            bad += 1
            continue
        rows.append(record)
        ids.append(token if isinstance(token, list) and len(token) == 2 else None)
    if bad:
        logger.warning("web spool %s: %d torn or unreadable lines skipped", path, bad)
    return rows, ids


def _mark_name(path: Path) -> str:
    return "w:" + path.name.removeprefix(PREFIX).removesuffix(".jsonl")


def _lock() -> None:
    RollupCursor.objects.get_or_create(name=LOCK)
    RollupCursor.objects.select_for_update().get(name=LOCK)


def _store(chunk: bytes, path: Path) -> None:
    store(*_records(chunk, path))


def ingest_web_one() -> bool:
    """Worker duty: store one batch of spooled website hits; whether there was a file."""
    return group_spool.ingest_spool_file(
        PREFIX,
        lock=_lock,
        mark_model=RollupCursor,
        mark_name=_mark_name,
        store_chunk=_store,
        batch=BATCH,
    )


def ingest_all() -> int:
    """Ingests every finished file (tests, benchmarks, the shell); rounds done."""
    rounds = 0
    while ingest_web_one():
        rounds += 1
    return rounds
