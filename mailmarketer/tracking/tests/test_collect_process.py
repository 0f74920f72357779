"""A real `mailmarketer web` killed with SIGKILL in the middle of a stream of hits: every hit it
answered with 2xx is in the database afterwards, once.

Like the other real-process tests, it runs the installed script on its own SQLite database in
a temporary data directory, on 127.0.0.1, with bounded waits; the server (gunicorn's master and
its workers, in a process group of their own) is killed by its own group id.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from mailmarketer.lib.tests.processes import MAILMARKETER, cli_env, free_port, run_cli, wait_for

pytestmark = pytest.mark.slow

KEY = "killtest-site-key"
SETUP = f"""
from mailmarketer.accounts.models import Workspace
from mailmarketer.tracking.models_web import Site
ws = Workspace.objects.create(name="Acme", slug="acme")
Site.objects.create(workspace=ws, name="acme", domain="acme.test", key="{KEY}",
                    origins="https://acme.test")
"""
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

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    try:
        wait_for(healthy, 60, what="/healthz")
        streams = [threading.Thread(target=stream, args=(n,), daemon=True) for n in range(4)]
        for thread in streams:
            thread.start()
        wait_for(lambda: len(acknowledged) >= 300, 60, what="300 acknowledged hits")
        os.killpg(proc.pid, signal.SIGKILL)  # mid-stream, no warning
        stop.set()
        proc.wait(timeout=10)
        for thread in streams:
            thread.join(timeout=10)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()

    with sqlite3.connect(data / "mailmarketer.sqlite3") as db:
        stored = [key for (key,) in db.execute("SELECT key FROM tracking_webhit")]
    assert len(stored) == len(set(stored))  # nothing twice
    expected = {hashlib.sha256(f"{KEY}:h{n}".encode()).hexdigest()[:32] for n in acknowledged}
    missing = expected - set(stored)
    assert len(acknowledged) >= 300 and not missing, f"{len(missing)} acknowledged hits lost"
