"""The group-committed spool's files: reserved whole, synced in place, read back without the
reservation. (Group commit itself and the hand-over are tested with the email hits, in
tracking/tests/test_mail_ingest.py.)"""

from __future__ import annotations

import os
import time

import pytest

from mailmarketer.lib import group_spool


@pytest.fixture
def spool(settings, tmp_path):
    settings.TRACKING_SPOOL_DIR = tmp_path / "spool"
    spool = group_spool.GroupSpool("test-")
    yield spool
    spool.close()


def test_it_syncs_records_without_changing_the_files_size(spool, monkeypatch):
    sizes = []
    real = os.fdatasync

    def sync(fd):
        real(fd)
        sizes.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fdatasync", sync)
    for n in range(3):
        spool.append({"n": n})
    # Every sync saw the reserved size: the size, and so the inode, never changed.
    assert sizes == [group_spool.PREALLOCATE] * 3
    spool.close()
    (path,) = group_spool.ready_files("test-")
    assert path.read_bytes() == b'{"n":0}\n{"n":1}\n{"n":2}\n'  # the reservation cut


def test_a_dead_writers_reserved_file_is_read_without_its_zeros(spool):
    spool.append({"n": 1})
    spool.append({"n": 2})
    # The process dies here: its file keeps the name .open and the zeros of its reservation.
    os.close(spool.fd)
    spool.fd = None
    (path,) = group_spool.ready_files("test-")
    assert path.stat().st_size == group_spool.PREALLOCATE
    data = group_spool.file_bytes(path)
    assert data == b'{"n":1}\n{"n":2}\n'
    assert group_spool.read_records(path.read_bytes()) == ([{"n": 1}, {"n": 2}], 0)


def test_a_batch_that_does_not_fit_the_reservation_starts_a_new_file(spool, monkeypatch):
    monkeypatch.setattr(group_spool, "PREALLOCATE", 40)
    for n in range(10):
        spool.append({"n": n, "pad": "x" * 8})  # 24 bytes a line: one line per file
    spool.close()
    files = group_spool.ready_files("test-")
    assert len(files) == 10
    records = [r for path in files for r in group_spool.read_records(path.read_bytes())[0]]
    assert [r["n"] for r in records] == list(range(10))


def test_it_counts_syncs_and_lines(spool):
    syncs, lines = spool._synced._value.get(), spool._lined._value.get()
    spool.append({"n": 1})
    assert (spool._synced._value.get(), spool._lined._value.get()) == (syncs + 1, lines + 1)


def test_a_busy_spool_waits_a_gap_so_the_next_line_shares_the_sync(spool, monkeypatch):
    import threading

    syncs = []
    real_sync, real_sleep = os.fdatasync, group_spool.time.sleep
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real_sync(fd)))
    spool.gap, spool.last = 0.0005, time.monotonic()  # appends have come 0.5 ms apart
    helpers = []

    def sleep(seconds):
        # While the flusher waits, another request appends (it joins the waiting batch).
        assert seconds == pytest.approx(0.0005, rel=0.5)
        helper = threading.Thread(target=spool.append, args=({"n": 2},))
        helpers.append(helper)
        helper.start()
        deadline = time.monotonic() + 5
        while len(spool.open.lines) < 2 and time.monotonic() < deadline:
            real_sleep(0.001)

    monkeypatch.setattr(group_spool, "_gather_sleep", sleep)
    spool.append({"n": 1})
    helpers[0].join(5)
    assert len(syncs) == 1  # one sync for both lines
    spool.close()
    (path,) = group_spool.ready_files("test-")
    assert sorted(r["n"] for r in group_spool.read_records(path.read_bytes())[0]) == [1, 2]


def test_a_quiet_spool_syncs_at_once(spool, monkeypatch):
    def sleep(seconds):
        raise AssertionError("a quiet process must not wait before it syncs")

    monkeypatch.setattr(group_spool, "_gather_sleep", sleep)
    spool.append({"n": 1})  # the first append: nothing came before it
    spool.last -= 1.0  # the next one comes a second later
    spool.append({"n": 2})


def test_an_append_that_does_not_wait_for_the_sync_is_written_then_synced_soon(
    settings, tmp_path, monkeypatch
):
    settings.TRACKING_SPOOL_DIR = tmp_path / "spool"
    synced = []
    real = os.fdatasync

    def sync(fd):
        real(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fdatasync", sync)
    spool = group_spool.GroupSpool("after-", lambda: False)
    try:
        spool.append({"n": 1})
        assert synced == []  # answered before any sync...
        assert spool.path.read_bytes().startswith(b'{"n":1}\n')  # ...but written: in the file
        deadline = time.monotonic() + 5
        while not synced and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(synced) == 1  # the spool's own thread synced it, once
        spool.append({"n": 2})
    finally:
        spool.close()
    assert len(synced) == 2  # what was written since is synced before the file is handed over
    (path,) = group_spool.ready_files("after-")
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n'


def test_the_tracking_spools_wait_for_the_sync_only_when_the_setting_says(
    settings, tmp_path, monkeypatch
):
    from mailmarketer.tracking import mail_spool

    settings.TRACKING_SPOOL_DIR = tmp_path / "spool"
    synced = []
    monkeypatch.setattr(os, "fdatasync", synced.append)
    monkeypatch.setattr(group_spool, "SYNC_AFTER_S", 30)  # the spool's thread stays asleep
    monkeypatch.setattr(group_spool, "ROTATE_SECONDS", 60)
    spool = mail_spool.GroupSpool("choice-")
    try:
        settings.TRACKING_SYNC_BEFORE_ANSWER = True
        spool.append({"n": 1})
        assert len(synced) == 1
        settings.TRACKING_SYNC_BEFORE_ANSWER = False
        spool.append({"n": 2})
        assert len(synced) == 1 and spool.dirty  # written, not synced on the way
    finally:
        spool.close()
