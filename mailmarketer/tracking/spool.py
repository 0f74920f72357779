"""The former website spool: where /t/e put hits the database refused, before every hit went
through the group-committed spool (web_ingest.py). Nothing writes these files now; the worker
still replays any left by an earlier version, and `append` stays for that format's tests.

Writing: one JSON line per hit appended to `<data dir>/spool/hits-<pid>.jsonl` (mode 0600),
flushed and fsync'd before the answer goes out. One file per process, so two processes never
interleave inside a line; a line torn by a crash mid-write is the one hit that was never
answered, and replay skips it.

Replaying (`replay_spool_one`, a worker duty): the oldest file is renamed to `.replaying`
(writers then start a new file), its hits are stored in file order in batches by
web.store_rows, whose idempotency key makes a second replay of the same lines add nothing,
and the file is deleted only after every batch has committed. A worker killed mid-replay leaves
the `.replaying` file, which the next round replays again: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger("mailmarketer.tracking")

BATCH = 1000
_lock = threading.Lock()


def spool_dir() -> Path:
    return Path(getattr(settings, "TRACKING_SPOOL_DIR", None) or settings.DATA_DIR / "spool")


def append(rows: list[dict]) -> None:
    """Appends the hits and fsyncs; raises OSError when even that fails (then the caller
    must not answer 2xx)."""
    directory = spool_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = "".join(json.dumps(_plain(row), separators=(",", ":")) + "\n" for row in rows)
    path = directory / f"hits-{os.getpid()}.jsonl"
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _plain(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _row(line: str) -> dict | None:
    try:
        row = json.loads(line)
        row["at"] = datetime.fromisoformat(row["at"])
    except (ValueError, KeyError, TypeError):
        return None
    return row if isinstance(row, dict) else None


def pending() -> list[Path]:
    directory = spool_dir()
    if not directory.is_dir():
        return []
    files = list(directory.glob("*.replaying")) + list(directory.glob("hits-*.jsonl"))
    return sorted(files, key=lambda p: (p.suffix != ".replaying", p.stat().st_mtime, p.name))


def replay_spool_one() -> bool:
    """Replays the oldest spool file into the database; True when there was one."""
    from .web import store_rows

    files = pending()
    if not files:
        return False
    path = files[0]
    if path.suffix != ".replaying":
        target = path.with_name(path.name + ".replaying")
        with _lock:
            path.rename(target)
        path = target
    batch: list[dict] = []
    skipped = 0
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                row = _row(line)
                if row is None:
                    skipped += 1
                    continue
                batch.append(row)
                if len(batch) >= BATCH:
                    store_rows(batch)
                    batch = []
        store_rows(batch)
    except DatabaseError:
        logger.warning("spool replay of %s stopped: the database refused; will retry", path)
        raise
    if skipped:
        logger.warning("spool replay of %s skipped %d torn or unreadable lines", path, skipped)
    path.unlink()
    return True
