"""The worker duty that stores the email hits the edge spooled (mail_spool.py).

`ingest_mail_one` takes the oldest finished spool file, stores up to BATCH of its hits past the
file's progress mark through mail.store_hits, and moves the mark, in one transaction; at the
end of the file it deletes the file, then the mark. The mark is a RollupCursor row named after
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

from django.db import transaction

from . import mail, mail_spool, rollups
from .models import RollupCursor

logger = logging.getLogger("mailmarketer.tracking")

BATCH = 2_000


def _mark_name(path: Path) -> str:
    return "m:" + path.name.removeprefix(mail_spool.PREFIX).removesuffix(".jsonl")


def _lock() -> None:
    RollupCursor.objects.get_or_create(name=rollups.CURSOR)
    RollupCursor.objects.select_for_update().get(name=rollups.CURSOR)


def _lines(data: bytes, start: int, count: int) -> tuple[bytes, int]:
    """Up to `count` lines of `data` from `start`: their bytes and where they end. A last line
    without its newline is taken as it is (the file is finished: its writer let go)."""
    end = start
    for _ in range(count):
        if end >= len(data):
            break
        newline = data.find(b"\n", end)
        end = len(data) if newline < 0 else newline + 1
    return data[start:end], end


lines = _lines  # the website hits' ingestion (web_ingest.py) reads its files the same way


def ingest_mail_one() -> bool:
    """Worker duty: store one batch of spooled email hits; whether there was a file."""
    files = mail_spool.ready_files()
    if not files:
        return False
    path = files[0]
    name = _mark_name(path)
    with transaction.atomic():
        _lock()
        # Checked under the lock: the file is deleted (before its mark) only under it.
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return True
        mark, _ = RollupCursor.objects.get_or_create(name=name)
        chunk, end = _lines(data, mark.last_id, BATCH)
        if chunk:
            records, bad = mail_spool.read_records(chunk)
            if bad:
                logger.warning("mail spool %s: %d torn or unreadable lines skipped", path, bad)
            mail.store_hits(records)
            mark.last_id = end
            mark.save(update_fields=["last_id"])
    if end >= len(data):
        with transaction.atomic():
            _lock()
            path.unlink(missing_ok=True)
            RollupCursor.objects.filter(name=name).delete()
    return True


def ingest_all() -> int:
    """Ingests every finished file (tests, benchmarks, `mailmarketer` shell); rounds done."""
    rounds = 0
    while ingest_mail_one():
        rounds += 1
    return rounds
