"""Campaign send benchmark: messages per second from launch to the last ledger row `sent`,
next to the limit of the same machine measured in the same run.

    .venv/bin/python benchmarks/send_bench.py [--recipients 100000] [--db sqlite,postgres]
                                              [--workers 1,2] [--body-kb 5] [--dkim]
                                              [--postfix] [--postfix-recipients 20000]

Sends a personalised ~5 KB HTML campaign with links and unsubscribe headers over SMTP to
Postfix's `smtp-sink` on 127.0.0.1, with real `mailmarketer worker` processes, on SQLite (1
worker) and PostgreSQL (each --workers count). Also prints each worker's peak RSS (VmHWM).
The campaign is launched once every worker has logged that it started, and the clock and the
workers' CPU time (CPU us/msg) count from the launch.

The limits, in the same run:
- Postfix's `smtp-source -d -s 8` (8 sessions, each kept open for the next message, as our
  sender keeps its connections) into the same sink with messages of the campaign's own size,
  before and after the cases: the ratio is against this one. The size is measured first: the
  campaign's message as the engine builds it (headers, HTML and text parts), ~14.8 KB for
  --body-kb 5 (`campaign message-size` on a small seeded database). Until 2026-12-05 the limit
  sent --body-kb x 1024 bytes (5,120), a third of what the campaign sends; the sink's work grows
  with the bytes (wire_bench.py: smtp-sink 65 us a message at 6.5 KB, 97 at 14.9 KB), so that
  limit was ~1.7x what the machine can carry of these messages. It is still measured and printed
  (`-l 5120`, "x 5 KB"), so that the ratios before and after the change can be compared;
- `smtp-source -s 8` without -d (a new connection per message), printed next to it;
- with --dkim, a case that signs every message with an RSA-2048 key (production always signs),
  whose limit is signing itself: `openssl speed -multi 2 -seconds 3 rsa2048` signatures/s,
  before and after the case (the mean);
- with --postfix, a case through a real Postfix (Debian's, started with its own configuration in
  a temporary directory, as the tests do; needs root) relaying to the sink: the rate a user gets
  through a local MTA, next to `smtp-source -d -s 8` into that Postfix.

Needs Debian's postfix package (`make postfix`; for the plain cases no daemon is started, only
its two test programs are used), openssl for --dkim, and, for PostgreSQL, a server on
127.0.0.1:5432 where the benchmark may create and drop a database. Runs in a `make run`
virtualenv (no test extras).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
# What smtp-source writes before its -l bytes of body ("From: <foo@vm>", "To: <foo@vm>", a Date
# and a Message-Id, and the empty line): 5,232 bytes on the wire for -l 5120.
SOURCE_HEADER_BYTES = 112
PROFILED = [sys.executable, "-m", "cProfile", "-o"]
SAMPLED = [str(BIN / "py-spy"), "record", "--rate", "250", "--format", "raw", "--nonblocking"]


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


def limit(port: int, messages: int, size: int, *, keep: bool = True) -> float:
    """smtp-source's rate with 8 sessions; keep: -d, each session's connection is kept for the
    next message (as our sender keeps its pooled connections)."""
    command = ["smtp-source", "-s", "8", "-m", str(messages), "-l", str(size)]
    if keep:
        command.insert(1, "-d")
    started = time.perf_counter()
    subprocess.run(
        [*command, f"127.0.0.1:{port}"],
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
    )
    return messages / (time.perf_counter() - started)


def signing_limit() -> float:
    """RSA-2048 signatures a second on both cores: `openssl speed -multi 2 -seconds 3 rsa2048`."""
    out = subprocess.run(
        ["openssl", "speed", "-multi", "2", "-seconds", "3", "rsa2048"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    # "rsa 2048 bits 0.000548s 0.000016s   1824.7  62500.0": sign/s is the third number.
    rows = re.findall(r"^rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)", out, re.MULTILINE)
    if not rows:
        raise SystemExit(f"cannot read openssl speed's output:\n{out[-1000:]}")
    return float(rows[-1])


def message_size(body_kb: int) -> int:
    """The mean size in bytes of the campaign's messages as the engine builds them: a small
    campaign seeded into a throwaway SQLite database and built (`campaign message-size`)."""
    work = Path(tempfile.mkdtemp(prefix="mm-send-bench-size-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
        **bench_env(f"sqlite:///{work / 'size.sqlite3'}", work),
    }
    try:

        def run(*args):
            return subprocess.run(
                args, env=env, cwd=work, check=True, capture_output=True, text=True, timeout=600
            ).stdout

        run(str(BIN / "mailmarketer"), "migrate")
        campaign = [sys.executable, "-m", "mailmarketer.delivery.testing.campaign"]
        run(*campaign, "seed", "--subscribers", "20", "--body-kb", str(body_kb))
        return json.loads(run(*campaign, "message-size"))["mean"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_env(url: str, work: Path) -> dict:
    return {
        "MM_DATABASE_URL": url,
        "MM_DATA_DIR": str(work),
        "MM_SECRET_KEY": "send-bench-secret-key-" + "b" * 30,
        "MM_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "MM_BASE_URL": "https://mail.bench.example.com",
        "MM_LOG_LEVEL": "WARNING",
        "MM_WORKER_IDLE_SLEEP_MS": "20",
        "DJANGO_SETTINGS_MODULE": "mailmarketer.settings",
    }


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its utime and stime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """The CPU time of the PostgreSQL backends serving the benchmark's database (the workers'
    connections, their heartbeat threads', the report's), from launch to the end: the
    database's cost per message, next to the workers'. Backends are looked up in
    pg_stat_activity at every poll; one that ends between two polls keeps its last reading."""

    def __init__(self, name: str | None, ignore: int | None = None):
        self.conn = None
        self.ignore = ignore
        self.start: dict[int, float] = {}
        self.last: dict[int, float] = {}
        if name is None:
            return
        import psycopg

        self.name = name
        self.conn = psycopg.connect(f"{PG}/postgres", autocommit=True)
        self.poll(launch=True)

    def poll(self, launch: bool = False) -> None:
        if self.conn is None:
            return
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)
        ).fetchall()
        for (pid,) in rows:
            if pid == self.ignore:  # the benchmark's own status poll
                continue
            seconds = cpu_seconds(pid)
            if seconds != seconds:  # gone meanwhile (nan)
                continue
            if pid not in self.start:
                self.start[pid] = seconds if launch else 0.0
            self.last[pid] = seconds

    def seconds(self) -> float:
        self.poll()
        return sum(self.last[pid] - self.start[pid] for pid in self.last)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class StatusPoller:
    """The campaign's status, read once a second during a run over one connection kept open:
    an index lookup, where the full report reads every row of the ledger."""

    QUERY = "SELECT status FROM campaigns_campaign ORDER BY id DESC LIMIT 1"

    def __init__(self, pg_name: str | None, sqlite_path: Path):
        if pg_name is not None:
            import psycopg

            self.conn = psycopg.connect(f"{PG}/{pg_name}", autocommit=True)
            self.backend_pid = self.conn.info.backend_pid
        else:
            import sqlite3

            self.conn = sqlite3.connect(sqlite_path, timeout=30, isolation_level=None)
            self.backend_pid = None

    def status(self) -> str | None:
        row = self.conn.execute(self.QUERY).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self.conn.close()


def run_case(
    db: str,
    workers: int,
    recipients: int,
    body_kb: int,
    sink_port: int,
    *,
    dkim: bool = False,
    via: str = "sink",
    profile: str = "",
    sample: str = "",
) -> dict:
    work = Path(tempfile.mkdtemp(prefix="mm-send-bench-"))
    pg_name = None
    if db == "postgres":
        pg_name = create_pg()
        url = f"{PG}/{pg_name}"
    else:
        url = f"sqlite:///{work / 'bench.sqlite3'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
        **bench_env(url, work),
    }

    def run(*args):
        return subprocess.run(
            args, env=env, cwd=work, check=True, capture_output=True, text=True, timeout=3600
        ).stdout

    procs = []
    samplers = []
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
            *(["--dkim"] if dkim else []),
        )
        seed_s = time.perf_counter() - seeded
        tag = f"{db}-{workers}w{'-dkim' if dkim else ''}{'-' + via if via != 'sink' else ''}"
        logs = [work / f"worker-{i}.log" for i in range(workers)]
        procs = []
        for i, log in enumerate(logs):
            with log.open("w") as stderr:
                procs.append(
                    subprocess.Popen(
                        # --profile: each worker under cProfile, written when it stops (SIGTERM).
                        [*PROFILED, f"{profile}/{tag}-{i}.prof", "-m", "mailmarketer.cli", "worker"]
                        if profile
                        else [str(BIN / "mailmarketer"), "worker"],
                        # INFO for the start-up line; nothing on the send path logs at INFO.
                        env={**env, "MM_LOG_LEVEL": "INFO"},
                        cwd=work,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                )
        # Launch once every worker has started (imports, checks, its first connection): on a
        # busy machine that took over 10 s, and its CPU was counted as sending's (CPU us/msg)
        # and its wait as the first message's latency.
        ready_by = time.monotonic() + 120
        while not all("started with duties" in log.read_text() for log in logs):
            if any(p.poll() is not None for p in procs) or time.monotonic() > ready_by:
                raise SystemExit("a worker did not start: " + logs[0].read_text()[-2000:])
            time.sleep(0.1)
        time.sleep(0.5)
        samplers = [
            # --py-spy: a sampling profile of each worker from launch to its end (py-spy is a
            # dev tool: pip install py-spy; needs ptrace, i.e. root here).
            subprocess.Popen(
                [*SAMPLED, "--pid", str(p.pid), "-o", f"{sample}/{tag}-{i}.txt"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i, p in enumerate(procs)
            if sample
        ]
        cpu_start = {p.pid: cpu_seconds(p.pid) for p in procs}
        poller = StatusPoller(pg_name, work / "bench.sqlite3")
        backends = BackendCpu(pg_name, ignore=poller.backend_pid)
        run(sys.executable, "-m", "mailmarketer.delivery.testing.campaign", "set-status", "running")
        deadline = time.monotonic() + 3600
        rss: dict[int, float] = {}
        while True:
            status = poller.status()
            for proc in procs:
                rss[proc.pid] = max(rss.get(proc.pid, 0), peak_rss_mb(proc.pid))
            backends.poll()
            if status in ("finished", "paused", "failed"):
                # The workers' CPU time from launch to the end: our cost per message, which a
                # busy machine changes far less than the rate.
                cpu = sum(cpu_seconds(p.pid) - cpu_start[p.pid] for p in procs)
                db_cpu = backends.seconds()
                backends.close()
                break
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker died: " + logs[0].read_text()[-2000:])
            if time.monotonic() > deadline:
                raise SystemExit("timed out")
            time.sleep(1)
        for proc in procs:
            rss[proc.pid] = max(rss.get(proc.pid, 0), peak_rss_mb(proc.pid))
        poller.close()
        # The whole report (counts by status, first and last sent) once, at the end: it reads
        # every row of the ledger, and a Django process started for it every second took a
        # good part of a core (and, at 1,000,000 rows, most of PostgreSQL's CPU) from the run.
        report = json.loads(
            run(sys.executable, "-m", "mailmarketer.delivery.testing.campaign", "report")
        )
        start = datetime.fromisoformat(report["started_at"])
        end = datetime.fromisoformat(report["last_sent_at"])
        seconds = (end - start).total_seconds()
        first = (datetime.fromisoformat(report["first_sent_at"]) - start).total_seconds()
        return {
            "db": db,
            "workers": workers,
            "dkim": dkim,
            "via": via,
            "recipients": recipients,
            "seconds": seconds,
            "rate": report["counts"].get("sent", 0) / seconds if seconds else 0,
            "first_after_s": first,
            "status": report["status"],
            "counts": report["counts"],
            "not_sent": report.get("not_sent", []),
            "rss": sorted(rss.values()),
            "cpu_us": cpu * 1e6 / max(1, report["counts"].get("sent", 0)),
            "db_cpu_us": db_cpu * 1e6 / max(1, report["counts"].get("sent", 0)),
            "seed_s": seed_s,
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*procs, *samplers]:
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
    parser.add_argument("--dkim", action="store_true", help="add a signed case (2 workers)")
    parser.add_argument("--postfix", action="store_true", help="add a case through Postfix")
    parser.add_argument("--postfix-recipients", type=int, default=20_000)
    parser.add_argument(
        "--profile", default="", help="a directory: run each worker under cProfile, .prof files"
    )
    parser.add_argument(
        "--py-spy", default="", help="a directory: sample each worker with py-spy (raw stacks)"
    )
    args = parser.parse_args()
    if args.py_spy:
        args.py_spy = str(Path(args.py_spy).resolve())
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    if not (shutil.which("smtp-sink") and shutil.which("smtp-source")):
        print("Postfix's smtp-sink and smtp-source are needed: make postfix", file=sys.stderr)
        return 2
    # The limit sends what the campaign sends: its messages' own size (see the module docstring),
    # and, for comparison with the figures before 2026-12-05, --body-kb x 1024 bytes.
    # smtp-source puts its own From, To, Date and Message-Id (~112 bytes) before its -l bytes.
    size = message_size(args.body_kb) - SOURCE_HEADER_BYTES
    old_size = args.body_kb * 1024
    sample = min(args.recipients, 50_000)
    best_db = "postgres" if "postgres" in args.db.split(",") else "sqlite"
    best_workers = 2 if best_db == "postgres" else 1
    sink, port = start_sink()
    relay = None
    try:
        kept_before = limit(port, sample, size)
        kept_small = limit(port, sample, old_size)
        fresh = limit(port, sample, size, keep=False)
        cases = []
        for db in args.db.split(","):
            counts = [1] if db == "sqlite" else [int(w) for w in args.workers.split(",")]
            for workers in counts:
                cases.append(
                    run_case(
                        db,
                        workers,
                        args.recipients,
                        args.body_kb,
                        port,
                        profile=args.profile,
                        sample=args.py_spy,
                    )
                )
                print(json.dumps(cases[-1]), file=sys.stderr, flush=True)
        signatures = None
        if args.dkim:
            # Before and after the case, like the sink's limit: one 3-second reading moved by
            # 20% with what else the machine was doing (6,500-8,200 signatures/s here).
            signed_before = signing_limit()
            cases.append(
                run_case(best_db, best_workers, args.recipients, args.body_kb, port, dkim=True)
            )
            print(json.dumps(cases[-1]), file=sys.stderr, flush=True)
            signed_after = signing_limit()
            signatures = (signed_before + signed_after) / 2
        through = None
        if args.postfix:
            sys.path.insert(0, str(ROOT))
            from mailmarketer.delivery.testing import postfix

            if not postfix.available():
                raise SystemExit("--postfix needs Debian's postfix package and root")
            relay = postfix.PostfixRelay(sink_port=port).start()
            through = limit(relay.port, min(args.postfix_recipients, sample), size)
            n = args.postfix_recipients
            cases.append(
                run_case(best_db, best_workers, n, args.body_kb, relay.port, via="postfix")
            )
            print(json.dumps(cases[-1]), file=sys.stderr, flush=True)
        kept_after = limit(port, sample, size)
    finally:
        if relay is not None:
            relay.stop()
            shutil.rmtree(relay.dir, ignore_errors=True)
        sink.terminate()
        sink.wait(timeout=10)
    kept = (kept_before + kept_after) / 2
    print(
        f"\nsend benchmark: {args.recipients} recipients, ~{args.body_kb} KB personalised HTML "
        f"({size + SOURCE_HEADER_BYTES:,} bytes a message with its headers and text part), "
        f"smtp-sink on 127.0.0.1, {os.cpu_count()} cores"
    )
    print(
        f"limit: smtp-source -d -s 8 -l {size} (connections kept) into the same sink: "
        f"{kept:,.0f} msg/s (mean of {kept_before:,.0f} before and {kept_after:,.0f} after)"
    )
    print(f"       smtp-source -s 8 (a new connection per message): {fresh:,.0f} msg/s")
    print(
        f"       smtp-source -d -s 8 -l {old_size} (the limit used until 2026-12-05, a third of "
        f"the campaign's bytes): {kept_small:,.0f} msg/s (x 5 KB)"
    )
    if signatures is not None:
        print(
            f"       openssl speed -multi 2 -seconds 3 rsa2048: {signatures:,.0f} signatures/s "
            f"(mean of {signed_before:,.0f} before and {signed_after:,.0f} after the DKIM case)"
        )
    if through is not None:
        print(f"       smtp-source -d -s 8 through Postfix to the sink: {through:,.0f} msg/s")
    print(
        f"\n{'database':<10} {'workers':>7} {'case':<14} {'sent':>9} {'seconds':>8} {'msg/s':>9} "
        f"{'x limit':>8} {'limit':<22} {'x 5 KB':>7} {'1st msg s':>9} {'peak RSS MB':>12} "
        f"{'CPU us/msg':>11} {'db CPU us/msg':>14}"
    )
    for c in cases:
        if c["dkim"]:
            case, against, name = "DKIM 2048", signatures, "openssl rsa2048 sign/s"
        elif c["via"] == "postfix":
            case, against, name = "via Postfix", through, "smtp-source -d, Postfix"
        else:
            case, against, name = "to the sink", kept, "smtp-source -d -s 8"
        rss = ", ".join(f"{r:.0f}" for r in c["rss"])
        small = f"{c['rate'] / kept_small:.2f}" if c["via"] == "sink" and not c["dkim"] else "-"
        print(
            f"{c['db']:<10} {c['workers']:>7} {case:<14} {c['counts'].get('sent', 0):>9} "
            f"{c['seconds']:>8.1f} {c['rate']:>9,.0f} {c['rate'] / against:>8.2f} {name:<22} "
            f"{small:>7} {c['first_after_s']:>9.2f} {rss:>12} {c['cpu_us']:>11.0f} "
            f"{(str(round(c['db_cpu_us'])) if c['db'] == 'postgres' else '-'):>14}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
