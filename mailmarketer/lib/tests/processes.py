"""Helpers for tests that start the real `mailmarketer` command as a subprocess.

Every process gets a clean environment (none of the test run's MM_ variables, so it reads its
own configuration, usually a temporary data directory with its own SQLite file), runs with a
temporary directory as its working directory (so no developer's .env is read), talks only to
127.0.0.1, and is bounded in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

# The console script pip installed next to this interpreter: what `make run` calls.
MAILMARKETER = str(Path(sys.executable).with_name("mailmarketer"))


def cli_env(data_dir: Path | None, **variables: str) -> dict[str, str]:
    """The environment for a subprocess: ours without any MM_ setting, plus these.

    With a data directory, MM_DEBUG defaults to true (what `make run` sets), so the process
    needs no secret key and keeps everything under that directory.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MM_") and key not in ("DJANGO_SETTINGS_MODULE", "PORT")
    }
    if data_dir is not None:
        env["MM_DATA_DIR"] = str(data_dir)
        env["MM_DEBUG"] = "true"
    env.update(variables)
    return {key: value for key, value in env.items() if value is not None}


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAILMARKETER, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll until predicate() returns something truthy (returned), or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a zombie has stopped running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    """The pids of a process's children (Linux's /proc/<pid>/task/<pid>/children)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Clean-up for a test that failed half-way: terminate by pid, then kill."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def answers_healthz(base: str) -> bool:
    """Whether the web server at `base` answers GET /healthz with 200."""
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def kill_web_mid_stream(proc, base, stream, stop, *, until, timeout, what, streams=4):
    """Once the web server (started in its own process group) answers, run `streams` threads of
    `stream(offset)` until `until()` holds, then SIGKILL the whole group mid-stream, with no
    warning. `stream` returns when `stop` is set; the group is killed whatever happens."""
    try:
        wait_for(lambda: answers_healthz(base), 60, what="/healthz")
        threads = [threading.Thread(target=stream, args=(n,), daemon=True) for n in range(streams)]
        for thread in threads:
            thread.start()
        wait_for(until, timeout, what=what)
        os.killpg(proc.pid, signal.SIGKILL)
        stop.set()
        proc.wait(timeout=10)
        for thread in threads:
            thread.join(timeout=10)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
