"""The email hits' spool: where `/t/c/` and `/t/o/` put a hit before they answer, so the
answer waits on one append to a file (shared with other requests' appends, one fsync for many),
never on the database. The worker's `ingest_mail_one` (mail_ingest.py) stores them in batches.

Writing (`append`), group commit: a request adds its line to the open batch; whoever finds no
flush in progress becomes the flusher, takes the whole batch, writes it with one `write` and
one `fdatasync`, and wakes the others. Each request returns only once its own line is on disk,
so a web process killed with SIGKILL right after a redirect has lost nothing it answered.

Files: one per process at a time, `mail-<ns>-<pid>.open`, held under an exclusive `flock` while
the process writes it. After ROTATE_SECONDS (or on the first write after that) the writer
renames it to `.jsonl` and closes it; a daemon thread does that in an idle process too, so a
quiet process's hits reach the worker within seconds. The worker ingests only files no writer
holds: `.jsonl` files, and `.open` files whose `flock` it can take (their process died; the lock
went with it). No timing assumption decides when a file is finished.

Lines are short JSON objects; a line torn by a crash mid-write was never answered, and the
reader skips it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger("mailmarketer.tracking")

ROTATE_SECONDS = 1.0
PREFIX = "mail-"


def spool_dir() -> Path:
    return Path(getattr(settings, "TRACKING_SPOOL_DIR", None) or settings.DATA_DIR / "spool")


class _Batch:
    __slots__ = ("done", "error", "lines")

    def __init__(self):
        self.lines: list[bytes] = []
        self.done = False
        self.error: OSError | None = None


class GroupSpool:
    """One per process and prefix (`spool` here, `web_ingest.spool` for website hits); safe for
    the threads of a gthread worker."""

    def __init__(self, prefix: str = PREFIX):
        self.prefix = prefix
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition(threading.Lock())
        self.open = _Batch()
        self.flushing = False
        self.fd: int | None = None
        self.path: Path | None = None
        self.opened_at = 0.0
        self.rotator: threading.Thread | None = None

    def append(self, record: dict) -> None:
        """Appends one hit durably; raises OSError when the file cannot take it."""
        if self.pid != os.getpid():  # forked after the parent used it: nothing is shared
            self._reset()
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        with self.cond:
            batch = self.open
            batch.lines.append(line)
            while not batch.done:
                if self.flushing:
                    self.cond.wait()
                    continue
                self.flushing = True
                todo, self.open = self.open, _Batch()
                self.cond.release()
                try:
                    todo.error = self._write(b"".join(todo.lines))
                finally:
                    self.cond.acquire()
                    todo.done = True
                    self.flushing = False
                    self.cond.notify_all()
            if batch.error is not None:
                raise batch.error

    def _write(self, data: bytes) -> OSError | None:
        """Runs outside the lock, by one flusher at a time."""
        try:
            if self.fd is not None and time.monotonic() - self.opened_at >= ROTATE_SECONDS:
                self._finish()
            if self.fd is None:
                self._start()
            view = memoryview(data)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
            os.fdatasync(self.fd)
            return None
        except OSError as error:
            logger.exception("mail spool: a batch of %d bytes could not be written", len(data))
            self._abandon()
            return error

    def _start(self) -> None:
        directory = spool_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{self.prefix}{time.time_ns():020d}-{os.getpid()}.open"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd, self.path, self.opened_at = fd, path, time.monotonic()
        if self.rotator is None:
            self.rotator = threading.Thread(target=self._rotate_idle, daemon=True)
            self.rotator.start()

    def _finish(self) -> None:
        """Hands the current file to the worker: renamed while still locked, then closed."""
        fd, path = self.fd, self.path
        self.fd = self.path = None
        try:
            os.rename(path, path.with_suffix(".jsonl"))
        finally:
            os.close(fd)

    def _abandon(self) -> None:
        """After a failed write: the file is left to the worker as a dead writer's (its lock
        goes with the descriptor), and the next batch starts a new one."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self._finish()

    def _rotate_idle(self) -> None:
        while True:
            time.sleep(ROTATE_SECONDS / 2)
            with self.cond:
                if self.pid != os.getpid():
                    return
                due = self.fd is not None and time.monotonic() - self.opened_at >= ROTATE_SECONDS
                if due and not self.flushing:
                    try:
                        self._finish()
                    except OSError:
                        logger.exception("mail spool: a file could not be handed over")

    def close(self) -> None:
        """Hands over the current file now (tests, and a process stopping cleanly)."""
        with self.cond:
            while self.flushing:
                self.cond.wait()
            if self.fd is not None and self.pid == os.getpid():
                self._finish()


spool = GroupSpool()


def append(record: dict) -> None:
    spool.append(record)


# -- the reader's side (mail_ingest.py) ----------------------------------------------------------


def ready_files(prefix: str = PREFIX) -> list[Path]:
    """Files no writer holds, oldest first (names start with their creation time). An
    `.open` file whose lock can be taken belonged to a process that died: it is renamed to
    `.jsonl` here, under the lock, and ingested like the others."""
    directory = spool_dir()
    if not directory.is_dir():
        return []
    for path in directory.glob(f"{prefix}*.open"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # just handed over
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live writer's
        try:
            if path.exists():
                os.rename(path, path.with_suffix(".jsonl"))
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return sorted(directory.glob(f"{prefix}*.jsonl"), key=lambda p: p.name)


def read_records(data: bytes) -> tuple[list[dict], int]:
    """The hits in `data` (a finished file's bytes from some offset), and how many lines were
    torn or unreadable (skipped)."""
    records, bad = [], 0
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad
