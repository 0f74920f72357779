"""A real `mailmarketer web` killed with SIGKILL in the middle of a stream of hits: every hit it
answered with 2xx is in the database afterwards, once, when the worker has ingested the spool
(the dead process's file included).

Like the other real-process tests, it runs the installed script on its own SQLite database in
a temporary data directory, on 127.0.0.1, with bounded waits; the server (gunicorn's master and
its workers, in a process group of their own) is killed by its own group id.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from mailmarketer.lib.tests.processes import (
    MAILMARKETER,
    answers_healthz,
    cli_env,
    free_port,
    kill_web_mid_stream,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.slow

KEY = "killtest-site-key"
SETUP = f"""
from mailmarketer.accounts.models import Workspace
from mailmarketer.tracking.models_web import Site
ws = Workspace.objects.create(name="Acme", slug="acme")
Site.objects.create(workspace=ws, name="acme", domain="acme.test", key="{KEY}",
                    origins="https://acme.test")
"""
INGEST = "from mailmarketer.tracking.web_ingest import ingest_all; ingest_all()"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"  # noqa: E501


def post(base: str, number: int) -> int:
    body = json.dumps({"s": KEY, "k": "p", "u": f"https://acme.test/p{number}", "i": f"h{number}"})
    request = urllib.request.Request(
        f"{base}/t/e",
        data=body.encode(),
        headers={"Origin": "https://acme.test", "User-Agent": UA, "Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def start_web(env, tmp_path, port):
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen(
        [MAILMARKETER, "web", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the master and its workers
    )
    log.close()
    return proc


def key_of(number: int) -> str:
    return hashlib.sha256(f"{KEY}:h{number}".encode()).hexdigest()[:32]


PG_URL = os.environ.get("MM_TEST_DATABASE_URL", "")


@pytest.mark.skipif(not PG_URL.startswith("postgres"), reason="needs MM_TEST_DATABASE_URL")
def test_it_spools_hits_the_database_refuses_and_the_worker_replays_them_once(tmp_path):
    """The web process's role loses the right to write hits mid-stream (PostgreSQL answers
    every INSERT with an error, as it does when it is going down or read-only); /t/e does not
    write the database anyway: every hit answered 2xx is spooled, and a real worker stores the
    spool: every acknowledged hit is stored, none twice."""
    import psycopg

    name = f"mm_spool_{secrets.token_hex(4)}"
    role = f"mm_web_{secrets.token_hex(4)}"
    server = PG_URL.rsplit("/", 1)[0]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"CREATE ROLE {role} LOGIN")
    data = tmp_path / "var"
    common = {"MM_ENCRYPTION_KEY": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=",
              "MM_TRACKING_IP_HITS_PER_MINUTE": "1000000"}  # fmt: skip
    owner_env = cli_env(data, MM_DATABASE_URL=f"{server}/{name}", **common)
    user = server.replace("//postgres@", f"//{role}@")
    web_env = cli_env(data, MM_DATABASE_URL=f"{user}/{name}", **common)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = worker = None
    try:
        assert run_cli("migrate", env=owner_env, cwd=tmp_path).returncode == 0
        assert run_cli("manage", "shell", "-c", SETUP, env=owner_env, cwd=tmp_path).returncode == 0
        with psycopg.connect(f"{server}/{name}", autocommit=True) as db:
            db.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
            db.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        proc = start_web(web_env, tmp_path, port)
        wait_for(lambda: answers_healthz(base), 60, what="/healthz")
        acknowledged = [n for n in range(40) if post(base, n) == 204]
        with psycopg.connect(f"{server}/{name}", autocommit=True) as db:
            db.execute(f"REVOKE INSERT ON tracking_webhit FROM {role}")
            acknowledged += [n for n in range(40, 120) if post(base, n) == 204]
            spooled = list((data / "spool").glob("web-*"))
            assert spooled, "nothing was spooled"
            db.execute(f"GRANT INSERT ON tracking_webhit TO {role}")
        acknowledged += [n for n in range(120, 140) if post(base, n) == 204]
        assert len(acknowledged) == 140
        worker = subprocess.Popen(
            [MAILMARKETER, "worker"], env=owner_env, cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        spool = data / "spool"
        wait_for(lambda: not any(spool.iterdir()), 60, what="the spool replayed")
        with psycopg.connect(f"{server}/{name}") as db:
            stored = [k for (k,) in db.execute("SELECT key FROM tracking_webhit").fetchall()]
    finally:
        for process in (worker, proc):
            if process is not None and process.poll() is None:
                if process is proc:
                    os.killpg(proc.pid, signal.SIGTERM)
                else:
                    process.terminate()
                process.wait(timeout=20)
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {role}")
    assert len(stored) == len(set(stored)) == 140
    assert set(stored) == {key_of(n) for n in acknowledged}


def test_it_keeps_every_acknowledged_hit_when_the_web_process_is_killed(tmp_path):
    data = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(data, MM_TRACKING_IP_HITS_PER_MINUTE="1000000")
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    made = run_cli("manage", "shell", "-c", SETUP, env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen(
        [MAILMARKETER, "web", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the master and its workers
    )
    acknowledged: list[int] = []
    stop = threading.Event()

    def stream(offset: int) -> None:
        number = offset
        while not stop.is_set():
            try:
                if post(base, number) == 204:
                    acknowledged.append(number)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if stop.is_set():
                    return
                time.sleep(0.05)
            number += 4

    try:
        kill_web_mid_stream(
            proc,
            base,
            stream,
            stop,
            until=lambda: len(acknowledged) >= 300,
            timeout=60,
            what="300 acknowledged hits",
        )
    finally:
        log.close()

    ingested = run_cli("manage", "shell", "-c", INGEST, env=env, cwd=tmp_path, timeout=120)
    assert ingested.returncode == 0, ingested.stderr
    assert not list((data / "spool").glob("web-*")), "the spool was not emptied"
    with sqlite3.connect(data / "mailmarketer.sqlite3") as db:
        stored = [key for (key,) in db.execute("SELECT key FROM tracking_webhit")]
    assert len(stored) == len(set(stored))  # nothing twice
    expected = {hashlib.sha256(f"{KEY}:h{n}".encode()).hexdigest()[:32] for n in acknowledged}
    missing = expected - set(stored)
    assert len(acknowledged) >= 300 and not missing, f"{len(missing)} acknowledged hits lost"
