"""The delivery guarantees, with real processes: `mailmarketer worker` processes sending a
campaign to a real SMTP server process on 127.0.0.1, killed (-9), stopped (SIGTERM), paused and
resumed, or run three at a time.

Each test makes its own database (a SQLite file, or a fresh PostgreSQL database when the suite
runs on PostgreSQL), migrates it with the real command, seeds it in bulk, and reads the outcome
from the ledger and from the server's log of accepted messages (written before each 250 reply, so
"received" is known even across kills). Every process is bounded in time and stopped by its pid.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from mailmarketer.lib.tests.processes import MAILMARKETER, cli_env, stop, wait_for

pytestmark = pytest.mark.slow

BATCH = 100
ENCRYPTION_KEY = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE="


@pytest.fixture
def database_url(tmp_path):
    """A database of the test's own, on the engine the suite runs on."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'crash.sqlite3'}"
        return
    import psycopg

    settings = connection.settings_dict
    name = f"mm_process_{secrets.token_hex(4)}"
    admin = psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    admin.execute(f'CREATE DATABASE "{name}"')
    user = settings["USER"]
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    host = settings["HOST"] or "127.0.0.1"
    yield f"postgres://{user}{password}@{host}:{settings['PORT'] or 5432}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


class RecoveryWatch(threading.Thread):
    """How long, from its start (just after a kill), until every row the killed worker held is
    sending again: held by another worker or final, none still held by it or waiting queued."""

    def __init__(self, setup: Setup, owner: str):
        super().__init__(daemon=True)
        self.setup = setup
        self.started_at = time.monotonic()
        self.ids = setup.ids(self.HELD, (owner,))
        self.owner = owner
        self.seconds: float | None = None
        self.start()

    HELD = "SELECT id FROM delivery_delivery WHERE status = 'sending' AND lease_owner = %s"
    TAKEN_BACK = "SELECT id FROM delivery_delivery WHERE status = 'queued' AND lease_expiries > 0"

    def run(self) -> None:
        deadline = self.started_at + 120
        while time.monotonic() < deadline:
            waiting = set(self.setup.ids(self.HELD, (self.owner,)))
            waiting |= set(self.setup.ids(self.TAKEN_BACK, ()))
            if not waiting & set(self.ids):
                self.seconds = time.monotonic() - self.started_at
                return
            time.sleep(0.2)


class Setup:
    def __init__(self, tmp_path: Path, database_url: str):
        self.database_url = database_url
        self.dir = tmp_path
        self.env = cli_env(
            None,
            MM_DATA_DIR=str(tmp_path),
            MM_DATABASE_URL=database_url,
            MM_SECRET_KEY="process-test-secret-key-" + "s" * 30,
            MM_ENCRYPTION_KEY=ENCRYPTION_KEY,
            MM_BASE_URL="http://127.0.0.1:8000",
            MM_DELIVERY_BATCH=str(BATCH),
            MM_WORKER_IDLE_SLEEP_MS="50",
            MM_LOG_LEVEL="WARNING",
        )
        self.log = tmp_path / "received.tsv"
        self.procs: list[subprocess.Popen] = []

    def run(self, *args, timeout=180):
        result = subprocess.run(
            args,
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    def start_server(self) -> int:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailmarketer.delivery.testing.smtpd",
                "--port",
                "0",
                "--log",
                str(self.log),
                "--max-seconds",
                "600",
            ],
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("ready "), line
        return int(line.split()[1])

    def seed(self, subscribers: int) -> None:
        self.run(MAILMARKETER, "migrate")
        port = self.start_server()
        self.run(
            sys.executable,
            "-m",
            "mailmarketer.delivery.testing.campaign",
            "seed",
            "--subscribers",
            str(subscribers),
            "--smtp-port",
            str(port),
            "--body-kb",
            "2",
        )

    def report(self) -> dict:
        out = self.run(sys.executable, "-m", "mailmarketer.delivery.testing.campaign", "report")
        return json.loads(out)

    def set_status(self, status: str) -> bool:
        """Whether the status changed; False when the campaign had finished already (on a quiet
        machine a worker can send every message before the test gets to pause it)."""
        result = subprocess.run(
            [sys.executable, "-m", "mailmarketer.delivery.testing.campaign", "set-status", status],
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0 and "cannot go from finished" in result.stderr:
            return False
        assert result.returncode == 0, result.stderr[-2000:]
        return True

    def worker(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [MAILMARKETER, "worker"],
            env=self.env,
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def worker_started(self) -> subprocess.Popen:
        """A worker past start-up (its SIGTERM handler installed: it logged that it started),
        for the end of a test, when there may be nothing left for it to send."""
        log = self.dir / f"worker-{len(self.procs)}.log"
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [MAILMARKETER, "worker"],
                env={**self.env, "MM_LOG_LEVEL": "INFO"},
                cwd=self.dir,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.procs.append(proc)
        wait_for(lambda: "started with duties" in log.read_text(), 60, what="the worker to start")
        return proc

    def lines_received(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def worker_sending(self) -> subprocess.Popen:
        """A worker that is past start-up: the server has received something from it since."""
        before = self.lines_received()
        worker = self.worker()
        wait_for(lambda: self.lines_received() > before, 60, what="the worker to send")
        return worker

    def ids(self, sql: str, params: tuple) -> list[int]:
        """Ids from the test's own database, read directly (a Django process per poll would cost
        a second of CPU each)."""
        if self.database_url.startswith("sqlite:///"):
            import sqlite3

            with sqlite3.connect(self.database_url.removeprefix("sqlite:///"), timeout=30) as db:
                return [row[0] for row in db.execute(sql.replace("%s", "?"), params)]
        import psycopg

        with psycopg.connect(self.database_url) as db:
            return [row[0] for row in db.execute(sql, params)]

    def watch_recovery(self, worker: subprocess.Popen) -> RecoveryWatch:
        """Measure, from now (just after `worker` was killed), how long until its rows are
        sending again: none held by it any more, none taken back from it still waiting."""
        return RecoveryWatch(self, f"{socket.gethostname()[:48]}:{worker.pid}")

    def received(self) -> Counter:
        if not self.log.exists():
            return Counter()
        return Counter(line.split("\t")[0] for line in self.log.read_text().splitlines() if line)

    def wait_finished(self, timeout=240) -> dict:
        return wait_for(
            lambda: (r := self.report())["status"] == "finished" and r,
            timeout,
            interval=0.5,
            what="the campaign to finish",
        )

    def close(self):
        for proc in self.procs:
            stop(proc)


@pytest.fixture
def setup(tmp_path, database_url):
    s = Setup(tmp_path, database_url)
    yield s
    s.close()


def check_every_recipient_once_in_the_ledger(report: dict, subscribers: int) -> None:
    assert report["rows"] == subscribers
    assert report["distinct_subscribers"] == subscribers
    assert report["counts"] == {"sent": subscribers}


def test_it_skips_nobody_and_duplicates_only_in_flight_messages_across_kill_9(setup):
    subscribers, kills = 20000, 5
    setup.seed(subscribers)
    rng = random.Random(os.getpid())
    watches = []
    for _ in range(kills):
        worker = setup.worker_sending()
        time.sleep(rng.uniform(0.0, 1.5))
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        watches.append(setup.watch_recovery(worker))
    worker = setup.worker_started()
    report = setup.wait_finished()
    for watch in watches:
        watch.join(130)
    recoveries = [watch.seconds for watch in watches]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    check_every_recipient_once_in_the_ledger(report, subscribers)
    received = setup.received()
    assert len(received) == subscribers  # every recipient reached the server at least once
    duplicates = sum(received.values()) - subscribers
    # At most the batch in flight at each kill can be sent twice.
    assert duplicates <= kills * BATCH, duplicates
    # Live workers renew their leases, so a lease can be short (MM_DELIVERY_LEASE_S, 10 s): a
    # killed worker's rows are sending again within 15 s (measured from outside, so this
    # includes the polls' own start-up).
    print(f"recovery after each kill -9: {', '.join(f'{s:.1f} s' for s in recoveries)}")
    print(f"duplicates: {duplicates} over {kills} kills")
    assert None not in recoveries and max(recoveries) < 15, recoveries


def test_it_sends_nothing_twice_across_sigterm_pause_and_resume(setup):
    subscribers = 12000
    setup.seed(subscribers)
    rng = random.Random(os.getpid() + 1)
    for round_ in range(4):
        if setup.report()["status"] == "finished":
            break  # a quiet machine sent everything already: nothing left to interrupt
        worker = setup.worker_sending()
        time.sleep(rng.uniform(0.0, 0.8))
        finished = False
        if round_ % 2:
            finished = not setup.set_status("paused")
            if not finished:
                time.sleep(0.5)
                setup.set_status("running")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        if finished:
            break
    worker = setup.worker_started()
    report = setup.wait_finished()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    check_every_recipient_once_in_the_ledger(report, subscribers)
    received = setup.received()
    assert len(received) == subscribers
    assert max(received.values()) == 1, received.most_common(3)


def test_it_shares_one_campaign_between_three_workers_without_duplicates(setup):
    subscribers = 6000
    setup.seed(subscribers)
    workers = [setup.worker_started() for _ in range(3)]
    report = setup.wait_finished()
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    assert [w.wait(timeout=30) for w in workers] == [0, 0, 0]
    check_every_recipient_once_in_the_ledger(report, subscribers)
    received = setup.received()
    assert len(received) == subscribers
    assert max(received.values()) == 1, received.most_common(3)
