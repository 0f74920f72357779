"""Group-committed spool files: where a public edge (tracking's `/t/c/`, `/t/o/`, `/t/e`, the
sign-up forms) puts a record before it answers, so the answer waits on one append to a file
(shared with other requests' appends, one fdatasync for many), never on the database; and the
one loop by which a worker duty stores those records in batches (`ingest_spool_file`).

Writing (`GroupSpool.append`), group commit: a request adds its line to the open batch;
whoever finds no flush in progress becomes the flusher, takes the whole batch, writes it with
one `write` and one `fdatasync`, and wakes the others. In a busy process (appends less than
GATHER_MAX_S apart) the flusher first waits one mean gap, so that the next request's line
joins the batch. Each request returns only once its own
line is on disk, so a web process killed with SIGKILL right after an answer has lost nothing
it answered.

Files: one per process and prefix at a time, `<prefix><ns>-<pid>.open`, held under an
exclusive `flock` while the process writes it. After ROTATE_SECONDS (or on the first write
after that) the writer renames it to `.jsonl` and closes it; a daemon thread does that in an
idle process too, so a quiet process's records reach the worker within seconds. The worker
ingests only files no writer holds: `.jsonl` files, and `.open` files whose `flock` it can take
(their process died; the lock went with it). No timing assumption decides when a file is
finished.

Each file is reserved whole when it is started (PREALLOCATE bytes, posix_fallocate) and written
in place, so a sync never changes the file's size: on ext4 a size change makes every fdatasync
commit the journal too (measured: ~40% more CPU per sync, and longer). The writer cuts the
unused reservation when it hands the file over; a writer that died left it as zeros, which the
reader drops (`file_bytes`).

Lines are short JSON objects; a line torn by a crash mid-write was never answered, and the
reader skips it.

Reading (`ingest_spool_file`): the oldest finished file of a prefix; in one transaction, under
the kind's lock, up to `batch` lines past the file's progress mark (a row of the caller's mark
model: the file's byte offset) are stored by the kind's callback and the mark is moved. A
worker killed anywhere leaves the batch and its mark both committed or neither: nothing lost,
nothing stored twice. At the end of the file the file is deleted, then its mark.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from prometheus_client import Counter

logger = logging.getLogger("mailmarketer.spool")

# How well the group commit groups: lines / syncs is the mean batch (on /metrics, and read by
# benchmarks/track_bench.py from the metrics files).
SYNCS = Counter("mailmarketer_spool_syncs", "Spool batches synced (one fdatasync each).", ["spool"])
LINES = Counter("mailmarketer_spool_lines", "Spool records written durably.", ["spool"])

ROTATE_SECONDS = 1.0
# Bytes reserved when a file is started (posix_fallocate), written in place from offset 0, so
# that a sync never changes the file's size: ext4's fdatasync then flushes the data without a
# journal commit for the inode (measured in-process: see benchmarks/README.md, "track10c").
# A second of a busy process's hits is ~0.3-1 MB; a batch that does not fit starts a new file.
PREALLOCATE = 1 << 20
# Group commit's gathering: when appends come faster than one each GATHER_MAX_S, the flusher
# waits one mean gap before it syncs, so the request about to append shares the sync instead of
# paying for its own (a sync costs ~70-170 µs of CPU here, more than the rest of a click); not
# when GATHER_LINES already wait, nor when the process is quiet (no latency added then).
# Measured with track_bench (SQLite, load 5-9): lines per sync 1.5-2.1 -> 3.1-3.5, CPU per hit
# -5 to -11% against the limit's (benchmarks/README.md, "track10c").
GATHER_MAX_S = 0.002
GATHER_LINES = 4
# A spool that answers once its line is written (`sync_before_answer` false: the tracking hits
# by default) syncs what was written at most this long after (a thread of its own), and before
# it hands a file over.
SYNC_AFTER_S = 0.05
_gather_sleep = time.sleep  # (the tests replace it)


def spool_dir() -> Path:
    """One directory for every prefix (`TRACKING_SPOOL_DIR`, its historical name, overrides)."""
    return Path(getattr(settings, "TRACKING_SPOOL_DIR", None) or settings.DATA_DIR / "spool")


class _Batch:
    __slots__ = ("done", "error", "lines")

    def __init__(self):
        self.lines: list[bytes] = []
        self.done = False
        self.error: OSError | None = None


class GroupSpool:
    """One per process and prefix; safe for the threads of a gthread worker."""

    def __init__(self, prefix: str, sync_before_answer: Callable[[], bool] | None = None):
        """`sync_before_answer` (read at each append; always true when not given): whether an
        append returns only once its line is fdatasync'd (survives a power loss) or once it is
        written to the kernel (survives the process's death; synced within SYNC_AFTER_S)."""
        self.prefix = prefix
        self.sync_before_answer = sync_before_answer or (lambda: True)
        self._synced = SYNCS.labels(prefix.rstrip("-"))
        self._lined = LINES.labels(prefix.rstrip("-"))
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition(threading.Lock())
        self.open = _Batch()
        self.flushing = False
        self.fd: int | None = None
        self.path: Path | None = None
        self.opened_at = 0.0
        self.offset = 0  # where the next batch goes in the current file
        self.reserved = 0  # the file's preallocated size
        self.rotator: threading.Thread | None = None
        self.gap = 0.01  # seconds between appends, a moving mean
        self.last = 0.0
        self.dirty = False  # written since the last sync (appends that do not wait for one)

    def append(self, record: dict) -> None:
        """Appends one record durably; raises OSError when the file cannot take it."""
        if self.pid != os.getpid():  # forked after the parent used it: nothing is shared
            self._reset()
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        if not self.sync_before_answer():
            with self.cond:
                while self.flushing:
                    self.cond.wait()
                error = self._write(line, sync=False)
            if error is not None:
                raise error
            self._lined.inc()
            return
        arrived = time.monotonic()
        with self.cond:
            # The mean gap between appends (exponentially weighted, each gap capped at 10 ms).
            self.gap += (min(arrived - self.last, 0.01) - self.gap) / 8
            self.last = arrived
            batch = self.open
            batch.lines.append(line)
            while not batch.done:
                if self.flushing:
                    self.cond.wait()
                    continue
                self.flushing = True
                # Busy: the next line is due within the gap; waiting that long for it (asleep,
                # the lock free) shares this sync with it, for a gap's latency.
                gather = self.gap < GATHER_MAX_S and not self.open.lines[GATHER_LINES - 1 :]
                todo = None
                self.cond.release()
                try:
                    if gather:
                        _gather_sleep(self.gap)
                    with self.cond:
                        todo, self.open = self.open, _Batch()
                    todo.error = self._write(b"".join(todo.lines))
                    if todo.error is None:
                        self._synced.inc()
                        self._lined.inc(len(todo.lines))
                finally:
                    self.cond.acquire()
                    if todo is not None:
                        todo.done = True
                    self.flushing = False
                    self.cond.notify_all()
            if batch.error is not None:
                raise batch.error

    def _write(self, data: bytes, sync: bool = True) -> OSError | None:
        """Runs outside the lock, by one flusher at a time (or, with sync false, under it)."""
        try:
            if self.fd is not None and (
                time.monotonic() - self.opened_at >= ROTATE_SECONDS
                or (self.reserved and self.offset and self.offset + len(data) > self.reserved)
            ):
                self._finish()
            if self.fd is None:
                self._start()
            view = memoryview(data)
            while view:
                written = os.pwrite(self.fd, view, self.offset)
                self.offset += written
                view = view[written:]
            if sync:
                os.fdatasync(self.fd)
            else:
                self.dirty = True
            return None
        except OSError as error:
            logger.exception(
                "%sspool: a batch of %d bytes could not be written", self.prefix, len(data)
            )
            self._abandon()
            return error

    def _start(self) -> None:
        directory = spool_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{self.prefix}{time.time_ns():020d}-{os.getpid()}.open"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.posix_fallocate(fd, 0, PREALLOCATE)
            self.reserved = PREALLOCATE
        except OSError:
            self.reserved = 0  # a file system without it: every batch grows the file
        os.fsync(fd)  # the name and the reserved size, once per file
        self.fd, self.path, self.opened_at, self.offset = fd, path, time.monotonic(), 0
        if self.rotator is None:
            self.rotator = threading.Thread(target=self._rotate_idle, daemon=True)
            self.rotator.start()

    def _finish(self) -> None:
        """Hands the current file to the worker: renamed while still locked, then closed."""
        fd, path = self.fd, self.path
        self.fd = self.path = None
        try:
            if self.dirty:
                self.dirty = False
                try:
                    os.fdatasync(fd)
                    self._synced.inc()
                except OSError:  # handed over all the same: the lines are written
                    logger.exception("%sspool: a file could not be synced", self.prefix)
            if self.reserved:
                os.ftruncate(fd, self.offset)  # the unused reservation (readers skip it anyway)
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
        """Hands over an idle process's file after ROTATE_SECONDS, and syncs what appends that
        did not wait for a sync wrote (outside the lock, on a duplicate of the descriptor, so
        that appends go on meanwhile)."""
        while True:
            # Often only where appends do not wait for their sync (the sign-ups' spool always does).
            time.sleep(ROTATE_SECONDS / 2 if self.sync_before_answer() else SYNC_AFTER_S)
            copy = None
            with self.cond:
                if self.pid != os.getpid():
                    return
                due = self.fd is not None and time.monotonic() - self.opened_at >= ROTATE_SECONDS
                if due and not self.flushing:
                    try:
                        self._finish()
                    except OSError:
                        logger.exception("%sspool: a file could not be handed over", self.prefix)
                elif self.dirty and self.fd is not None:
                    self.dirty = False
                    copy = os.dup(self.fd)
            if copy is not None:
                try:
                    os.fdatasync(copy)
                    self._synced.inc()
                except OSError:
                    logger.exception("%sspool: written lines could not be synced", self.prefix)
                finally:
                    os.close(copy)

    def close(self) -> None:
        """Hands over the current file now (tests, and a process stopping cleanly)."""
        with self.cond:
            while self.flushing:
                self.cond.wait()
            if self.fd is not None and self.pid == os.getpid():
                self._finish()


# -- the reader's side ---------------------------------------------------------------------------


def ready_files(prefix: str) -> list[Path]:
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
    """The records in `data` (a finished file's bytes from some offset), and how many lines
    were torn or unreadable (skipped)."""
    records, bad = [], 0
    for line in data.split(b"\n"):
        if not line or not line.strip(b"\0"):
            continue  # blank, or the unused reservation of a file whose writer died
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


def file_bytes(path: Path) -> bytes:
    """A finished file's records: its bytes without the zeros of an unused reservation (a
    writer that died before handing the file over left them; records never hold a NUL byte,
    which JSON escapes)."""
    return path.read_bytes().rstrip(b"\0")


def lines(data: bytes, start: int, count: int) -> tuple[bytes, int]:
    """Up to `count` lines of `data` from `start`: their bytes and where they end. A last line
    without its newline is taken as it is (the file is finished: its writer let go)."""
    end = start
    for _ in range(count):
        if end >= len(data):
            break
        newline = data.find(b"\n", end)
        end = len(data) if newline < 0 else newline + 1
    return data[start:end], end


def ingest_spool_file(
    prefix: str,
    *,
    lock: Callable[[], None],
    mark_model,
    mark_name: Callable[[Path], str],
    store_chunk: Callable[[bytes, Path], object],
    batch: int,
    mark_field: str = "last_id",
) -> bool:
    """Stores one batch of the oldest finished file of `prefix`; whether there was a file.

    `lock()` takes the kind's ingestion lock inside the transaction (two workers never ingest
    the same lines; the file is deleted only under it); `mark_model` is a model with a unique
    `name` and an integer `mark_field`, one row per file being ingested (`mark_name(path)`);
    `store_chunk(chunk, path)` stores the lines of `chunk` (up to `batch` whole lines, the
    last maybe torn) in the caller's transaction."""
    files = ready_files(prefix)
    if not files:
        return False
    path = files[0]
    name = mark_name(path)
    with transaction.atomic():
        lock()
        # Checked under the lock: the file is deleted (before its mark) only under it.
        try:
            data = file_bytes(path)
        except FileNotFoundError:
            return True  # another worker finished it
        mark, _ = mark_model.objects.get_or_create(name=name)
        chunk, end = lines(data, getattr(mark, mark_field), batch)
        if chunk:
            store_chunk(chunk, path)
            setattr(mark, mark_field, end)
            mark.save(update_fields=[mark_field])
    if end >= len(data):
        with transaction.atomic():
            lock()
            path.unlink(missing_ok=True)
            mark_model.objects.filter(name=name).delete()
    return True
