"""The worker duty that stores the email hits the edge spooled (mail_spool.py).

`ingest_mail_one` takes the oldest finished spool file, stores up to BATCH of its hits past the
file's progress mark through mail.store_hits, and moves the mark, in one transaction; at the
end of the file it deletes the file, then the mark (lib/group_spool.ingest_spool_file, the loop
every spool's ingestion shares). The mark is a RollupCursor row named after
the file (`m:<file>`, its byte offset), so a worker killed anywhere leaves either the batch and
its mark both committed or neither: nothing lost, nothing stored twice.

Every step holds the lock on the email roll-up's cursor row, the one roll_up_one takes first:
ingesters and the roll-up run one at a time, so an event's id is handed out and committed before
the roll-up can read past it, whatever the event's own time (a spooled hit is stored seconds
after it happened, later than the roll-up's lag), and two workers never ingest the same lines.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mailmarketer.lib import group_spool

from . import mail, mail_spool, rollups
from .models import RollupCursor

logger = logging.getLogger("mailmarketer.tracking")

BATCH = 2_000


def _mark_name(path: Path) -> str:
    return "m:" + path.name.removeprefix(mail_spool.PREFIX).removesuffix(".jsonl")


def _lock() -> None:
    RollupCursor.objects.get_or_create(name=rollups.CURSOR)
    RollupCursor.objects.select_for_update().get(name=rollups.CURSOR)


lines = group_spool.lines  # kept for callers of the former name


def _store(chunk: bytes, path: Path) -> None:
    records, bad = mail_spool.read_records(chunk)
    if bad:
        logger.warning("mail spool %s: %d torn or unreadable lines skipped", path, bad)
    mail.store_hits(records)


def ingest_mail_one() -> bool:
    """Worker duty: store one batch of spooled email hits; whether there was a file."""
    return group_spool.ingest_spool_file(
        mail_spool.PREFIX,
        lock=_lock,
        mark_model=RollupCursor,
        mark_name=_mark_name,
        store_chunk=_store,
        batch=BATCH,
    )


def ingest_all() -> int:
    """Ingests every finished file (tests, benchmarks, `mailmarketer` shell); rounds done."""
    rounds = 0
    while ingest_mail_one():
        rounds += 1
    return rounds
