"""Bounce receiver benchmark: DSNs per second through `mailmarketer bouncer` next to the limit,
the same aiosmtpd accepting and discarding every message. Two figures of ours: the acceptance
rate (each DSN stored durably before its 250) and the end-to-end applied rate (first DSN sent to
the last one applied: classified, the ledger row bounced, the address suppressed and
unsubscribed), plus the load-insensitive ones: the bouncer's CPU µs per DSN until the last DSN
was accepted and until the last was applied (the sink's beside them) and the statements per DSN
of the receiving and the applying paths.

    .venv/bin/python benchmarks/bounce_bench.py                    # 2,000 DSNs, SQLite
    .venv/bin/python benchmarks/bounce_bench.py --dsns 5000 --connections 4
    .venv/bin/python benchmarks/bounce_bench.py --pg-url postgres://postgres@127.0.0.1:5432/postgres

It makes a fresh database (a temporary SQLite file, or a new database on the PostgreSQL server
of --pg-url, dropped afterwards), migrates it, seeds one sent ledger row per DSN, starts the
bouncer and the discarding server as processes on 127.0.0.1, and sends the same pre-built DSNs
(Postfix-shaped, each to its row's VERP address) to each over --connections SMTP connections
kept open. The client is the same for both, so "ratio" is our DSNs/s over the limit's.

Target (issue 11): ratio >= 0.3. Afterwards it checks that every DSN was applied exactly once
(one report row each, every row bounced, every address suppressed, nothing left queued).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailmarketer.delivery.bounces.testing import count_rows, dsn  # noqa: E402

MAILMARKETER = str(Path(sys.executable).with_name("mailmarketer"))
DOMAIN = "bounce.bench.test"

SINK = """
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Discard:
    async def handle_RCPT(self, server, session, envelope, address, options):
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 discarded"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Discard(), data_size_limit=10485760, enable_SMTPUTF8=True, decode_data=False,
                     hostname="sink"), host="127.0.0.1", port=0)
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def send_all(port: int, messages: list[tuple[str, bytes]], connections: int) -> float:
    """Seconds to hand every message over, `connections` at once."""
    shares = [messages[i::connections] for i in range(connections)]
    errors: list[BaseException] = []

    def work(share):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                for rcpt, data in share:
                    client.sendmail("", [rcpt], data)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"sending failed: {errors[0]!r}")
    return time.perf_counter() - started


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU time of a process and (unless told not to) its live children so far
    (Linux /proc): the bouncer's applier is its child."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    found = Path(f"/proc/{pid}/task/{pid}/children")
    for child in found.read_text().split() if children and found.exists() else ():
        with contextlib.suppress(FileNotFoundError):  # a child that just ended
            total += cpu_seconds(int(child))
    return total


class PgServerSide:
    """On PostgreSQL, the server's own share: the CPU of the bench database's backends (their
    pids from pg_stat_activity, /proc/<pid>/stat: the server runs on this machine) and what
    they wait on, sampled every 50 ms while the DSNs flow (wait event, or "CPU" when active
    and waiting on nothing)."""

    def __init__(self, url: str, name: str):
        import psycopg

        self.admin = psycopg.connect(url, autocommit=True)
        self.name = name
        self.waits: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def pids(self) -> list[int]:
        rows = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.name],
        ).fetchall()
        return [pid for (pid,) in rows]

    def cpu(self) -> dict[int, float]:
        found = {}
        for pid in self.pids():
            with contextlib.suppress(FileNotFoundError):
                found[pid] = cpu_seconds(pid, children=False)
        return found

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(self.admin.info.dsn, autocommit=True) as sampler:
            while not self.stop.wait(0.05):
                for kind, event, state in sampler.execute(
                    "SELECT wait_event_type, wait_event, state FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self.name],
                ):
                    if state == "active":
                        key = f"{kind}:{event}" if kind else "CPU"
                    elif state and state.startswith("idle in transaction"):
                        key = "idle in transaction"
                    else:
                        continue
                    self.waits[key] = self.waits.get(key, 0) + 1

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(5)
        self.admin.close()


def database(pg_url: str | None, directory: Path):
    if not pg_url:
        return f"sqlite:///{directory / 'bench.sqlite3'}", None
    import psycopg

    name = f"mm_bounce_bench_{secrets.token_hex(4)}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = pg_url.rsplit("/", 1)[0]
    return f"{base}/{name}", name


def drop(pg_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsns", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--pg-url", default="")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="mm-bounce-bench-"))
    url, pg_name = database(args.pg_url, directory)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
        "MM_DATA_DIR": str(directory),
        "MM_DATABASE_URL": url,
        "MM_SECRET_KEY": "bounce-bench-secret-key-" + "b" * 30,
        "MM_ENCRYPTION_KEY": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=",
        "MM_BASE_URL": "http://127.0.0.1:8000",
        "MM_BOUNCER_DOMAINS": DOMAIN,
        "MM_BOUNCER_RATE_PER_MINUTE": "1000000",
        "MM_LOG_LEVEL": "WARNING",
    }
    procs: list[subprocess.Popen] = []
    try:

        def run(*command):
            subprocess.run(
                command, env=env, cwd=directory, check=True, capture_output=True, timeout=600
            )

        run(MAILMARKETER, "migrate")

        def helper(*command) -> str:
            return subprocess.run(
                [sys.executable, "-m", "mailmarketer.delivery.bounces.testing", *command],
                env=env,
                cwd=directory,
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            ).stdout

        seeded = subprocess.run(
            [
                sys.executable,
                "-m",
                "mailmarketer.delivery.bounces.testing",
                "seed",
                "--rows",
                str(args.dsns),
                "--domain",
                "gone.bench.test",
            ],
            env=env,
            cwd=directory,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        rows = [json.loads(line) for line in seeded.stdout.splitlines()]
        messages = [
            (
                f"bounces+{row['token']}@{DOMAIN}",
                dsn(row["email"], token=row["token"], domain=DOMAIN, nonce=str(row["id"])),
            )
            for row in rows
        ]
        size = sum(len(m) for _, m in messages) / len(messages)

        sink = subprocess.Popen(
            [sys.executable, "-c", SINK], env=env, stdout=subprocess.PIPE, text=True
        )
        procs.append(sink)
        sink_port = int(sink.stdout.readline().split()[1])
        limit_s = send_all(sink_port, messages, args.connections)
        sink_cpu = cpu_seconds(sink.pid)

        port = free_port()
        bouncer = subprocess.Popen(
            [MAILMARKETER, "bouncer", "--listen", f"127.0.0.1:{port}"],
            env=env,
            cwd=directory,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(bouncer)
        assert bouncer.stdout.readline().startswith("bouncer listening")
        time.sleep(3)  # the applier child starting Django: not counted
        idle_cpu = cpu_seconds(bouncer.pid)
        idle_receiver = cpu_seconds(bouncer.pid, children=False)
        server = PgServerSide(url, pg_name) if pg_name else None
        if server:
            idle_server = server.cpu()
            server.thread.start()
        started = time.perf_counter()
        ours_s = send_all(port, messages, args.connections)
        accept_cpu = cpu_seconds(bouncer.pid) - idle_cpu  # (the applier waits for a pause)
        deadline = time.monotonic() + 600
        while count_rows(url) < args.dsns and time.monotonic() < deadline:
            time.sleep(0.05)
        applied_s = time.perf_counter() - started
        bouncer_cpu = cpu_seconds(bouncer.pid) - idle_cpu
        receiver_cpu = cpu_seconds(bouncer.pid, children=False) - idle_receiver
        if server:
            server_cpu = sum(t - idle_server.get(pid, 0.0) for pid, t in server.cpu().items())
            server.close()
        time.sleep(1)  # anything applied twice would show up now
        found = json.loads(helper("report"))
        bouncer.terminate()  # and its applier: the statement count below must be this run's
        bouncer.wait(60)
        counted = json.loads(helper("statements", "--rows", "400"))

        ours, limit = args.dsns / ours_s, args.dsns / limit_s
        engine = "PostgreSQL" if pg_name else "SQLite"
        print(
            f"bounce receiver, {args.dsns} DSNs of ~{size / 1024:.1f} KB, "
            f"{args.connections} connections, {engine}"
        )
        print(f"{'':34} {'DSNs/s':>10} {'seconds':>9} {'CPU µs/DSN':>11}")
        print(
            f"{'bouncer accepting (stored, 250)':34} {ours:>10.0f} {ours_s:>9.2f} "
            f"{accept_cpu / args.dsns * 1e6:>11.0f}"
        )
        print(
            f"{'bouncer end to end (applied)':34} {args.dsns / applied_s:>10.0f} "
            f"{applied_s:>9.2f} {bouncer_cpu / args.dsns * 1e6:>11.0f}"
        )
        print(
            f"{'  of which the receiver':34} {'':>10} {'':>9} "
            f"{receiver_cpu / args.dsns * 1e6:>11.0f}"
        )
        print(
            f"{'  of which the applier':34} {'':>10} {'':>9} "
            f"{(bouncer_cpu - receiver_cpu) / args.dsns * 1e6:>11.0f}"
        )
        print(
            f"{'aiosmtpd accepting, discarding':34} {limit:>10.0f} {limit_s:>9.2f} "
            f"{sink_cpu / args.dsns * 1e6:>11.0f}"
        )
        if server:
            print(
                f"{'PostgreSQL backends (server side)':34} {'':>10} {'':>9} "
                f"{server_cpu / args.dsns * 1e6:>11.0f}"
            )
            samples = sum(server.waits.values()) or 1
            print(
                "  backends' samples (active: CPU or wait event; idle in transaction): "
                + ", ".join(
                    f"{key} {count / samples:.0%}"
                    for key, count in sorted(server.waits.items(), key=lambda kv: -kv[1])[:6]
                )
            )
        print(f"{'ratio accepting':34} {ours / limit:>10.2f}   (target >= 0.3)")
        print(f"{'ratio end to end':34} {args.dsns / applied_s / limit:>10.2f}")
        per = counted["dsns"]
        print(
            f"statements per DSN: receiving {counted['store_statements'] / per:.3f}, "
            f"applying {counted['apply_statements'] / per:.3f} ({per} DSNs: one group commit, "
            "then batches of 200; the ledger update, one executemany, counted once)"
        )
        print(
            f"applied {found['bounces']} of {args.dsns} once, ledger rows bounced "
            f"{found['bounced_rows']}, suppressed {found['suppressed']}, "
            f"left queued {found['pending']}, load average {os.getloadavg()[0]:.2f}"
        )
        once = found["bounces"] == found["bounced_rows"] == found["suppressed"] == args.dsns
        return 0 if once and found["pending"] == 0 else 1
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if pg_name:
            drop(args.pg_url, pg_name)


if __name__ == "__main__":
    raise SystemExit(main())
