"""Campaign send benchmark: messages per second from launch to the last ledger row `sent`,
next to the limit of the same machine measured in the same run.

    .venv/bin/python benchmarks/send_bench.py [--recipients 100000] [--db sqlite,postgres]
                                              [--workers 1,2] [--body-kb 5]

Sends a personalised ~5 KB HTML campaign with links and unsubscribe headers over SMTP to
Postfix's `smtp-sink` on 127.0.0.1, with real `mailmarketer worker` processes, on SQLite (1
worker) and PostgreSQL (each --workers count). The limit: Postfix's `smtp-source` into the same
sink with the same message size and 8 sessions. Also prints each worker's peak RSS (VmHWM).
Needs Debian's postfix package (`apt-get install --no-install-recommends postfix`; no daemon
is started, only its two test programs are used) and, for PostgreSQL, a server on
127.0.0.1:5432 where the benchmark may create and drop a database.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENCRYPTION_KEY = "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMTI="
PG = "postgres://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        ["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("smtp-sink did not start")


def limit(port: int, messages: int, size: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["smtp-source", "-s", "8", "-m", str(messages), "-l", str(size), f"127.0.0.1:{port}"],
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
    )
    return messages / (time.perf_counter() - started)


def create_pg() -> str:
    import psycopg

    name = f"mm_send_bench_{secrets.token_hex(3)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def run_case(db: str, workers: int, recipients: int, body_kb: int, sink_port: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mm-send-bench-"))
    pg_name = None
    if db == "postgres":
        pg_name = create_pg()
        url = f"{PG}/{pg_name}"
    else:
        url = f"sqlite:///{work / 'bench.sqlite3'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
        "MM_DATABASE_URL": url,
        "MM_DATA_DIR": str(work),
        "MM_SECRET_KEY": "send-bench-secret-key-" + "b" * 30,
        "MM_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "MM_BASE_URL": "https://mail.bench.example.com",
        "MM_LOG_LEVEL": "WARNING",
        "MM_WORKER_IDLE_SLEEP_MS": "20",
        "DJANGO_SETTINGS_MODULE": "mailmarketer.settings",
    }

    def run(*args):
        return subprocess.run(
            args, env=env, cwd=work, check=True, capture_output=True, text=True, timeout=3600
        ).stdout

    procs = []
    try:
        run(str(BIN / "mailmarketer"), "migrate")
        seeded = time.perf_counter()
        run(
            sys.executable,
            "-m",
            "mailmarketer.delivery.testing.campaign",
            "seed",
            "--subscribers",
            str(recipients),
            "--smtp-port",
            str(sink_port),
            "--body-kb",
            str(body_kb),
            "--status",
            "draft",
        )
        seed_s = time.perf_counter() - seeded
        procs = [
            subprocess.Popen(
                [str(BIN / "mailmarketer"), "worker"],
                env=env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        time.sleep(2)  # let the workers import and connect before the launch
        run(sys.executable, "-m", "mailmarketer.delivery.testing.campaign", "set-status", "running")
        deadline = time.monotonic() + 3600
        rss: dict[int, float] = {}
        while True:
            report = json.loads(
                run(sys.executable, "-m", "mailmarketer.delivery.testing.campaign", "report")
            )
            for proc in procs:
                rss[proc.pid] = max(rss.get(proc.pid, 0), peak_rss_mb(proc.pid))
            if report["status"] in ("finished", "paused", "failed"):
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker died: " + procs[0].stderr.read()[-2000:])
            if time.monotonic() > deadline:
                raise SystemExit("timed out")
            time.sleep(1)
        for proc in procs:
            rss[proc.pid] = max(rss.get(proc.pid, 0), peak_rss_mb(proc.pid))
        start = datetime.fromisoformat(report["started_at"])
        end = datetime.fromisoformat(report["last_sent_at"])
        seconds = (end - start).total_seconds()
        first = (datetime.fromisoformat(report["first_sent_at"]) - start).total_seconds()
        return {
            "db": db,
            "workers": workers,
            "recipients": recipients,
            "seconds": seconds,
            "rate": report["counts"].get("sent", 0) / seconds if seconds else 0,
            "first_after_s": first,
            "status": report["status"],
            "counts": report["counts"],
            "rss": sorted(rss.values()),
            "seed_s": seed_s,
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if pg_name:
            drop_pg(pg_name)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="worker counts to try on PostgreSQL")
    parser.add_argument("--body-kb", type=int, default=5)
    args = parser.parse_args()
    if not (shutil.which("smtp-sink") and shutil.which("smtp-source")):
        print(
            "Postfix's smtp-sink and smtp-source are needed: "
            "apt-get install --no-install-recommends postfix",
            file=sys.stderr,
        )
        return 2
    sink, port = start_sink()
    try:
        limit_rate = limit(port, min(args.recipients, 50_000), args.body_kb * 1024)
        cases = []
        for db in args.db.split(","):
            counts = [1] if db == "sqlite" else [int(w) for w in args.workers.split(",")]
            for workers in counts:
                result = run_case(db, workers, args.recipients, args.body_kb, port)
                cases.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
        limit_after = limit(port, min(args.recipients, 50_000), args.body_kb * 1024)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    limit_rate = (limit_rate + limit_after) / 2
    print(
        f"\nsend benchmark: {args.recipients} recipients, ~{args.body_kb} KB personalised HTML, "
        f"smtp-sink on 127.0.0.1, {os.cpu_count()} cores"
    )
    print(
        f"limit: smtp-source -s 8 -l {args.body_kb * 1024} into the same sink: "
        f"{limit_rate:,.0f} msg/s (mean of before and after)\n"
    )
    print(
        f"{'database':<10} {'workers':>7} {'sent':>9} {'seconds':>8} {'msg/s':>9} "
        f"{'x limit':>8} {'1st msg s':>9} {'peak RSS MB per worker':>24}"
    )
    for c in cases:
        rss = ", ".join(f"{r:.0f}" for r in c["rss"])
        print(
            f"{c['db']:<10} {c['workers']:>7} {c['counts'].get('sent', 0):>9} "
            f"{c['seconds']:>8.1f} {c['rate']:>9,.0f} {c['rate'] / limit_rate:>8.2f} "
            f"{c['first_after_s']:>9.2f} {rss:>24}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
