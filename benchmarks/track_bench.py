"""Tracking edge benchmark: click redirects, open pixels and website collect hits per second
against the server as `mailmarketer web` runs it (gunicorn, its default workers and threads),
next to the limit measured in the same run: the same server answering `/t/ok`, a constant
response from a view that touches no database.

    .venv/bin/python benchmarks/track_bench.py [--db sqlite,postgres] [--seconds 10]
                                               [--connections 16] [--recipients 20000]
                                               [--web-threads N]

Driven by Debian's `wrk` on 127.0.0.1 (each click or open a different recipient's signed
token, read from a file by a small Lua script; each collect hit a page view with its own hit
id, posted as the snippet posts it). Prints requests/s, p50 and p99 latency, non-2xx/3xx
answers and socket errors, and the events stored: every hit answered must be a row (lost =
answered - stored, never below 0; rows may exceed the answers by the requests wrk had in flight
when it stopped). Clicks, opens and collect hits are spooled by the edge and stored by the
worker's duties (tracking/mail_ingest.py, tracking/web_ingest.py): the count runs that duty
until the spool is empty first, and the time it took is printed too. Needs, for PostgreSQL, a
server on 127.0.0.1:5432 where the benchmark may create and drop a database.

A case is (seed, count, Lua template) in CASES: the seed writes what the Lua script reads.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = "postgres://postgres@127.0.0.1:5432"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"

LUA_GET = """
local paths = {}
local n = 0
for line in io.lines("%(paths)s") do n = n + 1; paths[n] = line end
local i = 0
request = function()
  i = i %% n + 1
  return wrk.format("GET", paths[i], {["User-Agent"] = "%(ua)s"})
end
"""

# One line in the file: the site key. Each request its own hit id (the idempotency key).
LUA_COLLECT = """
local key = io.lines("%(paths)s")()
local run = tostring(math.random(1, 1000000000))
local i = 0
request = function()
  i = i + 1
  local body = '{"s":"' .. key .. '","k":"p","u":"https://shop.example.com/p' .. (i %% 500)
    .. '","t":"Page","r":"https://www.google.com/","i":"' .. run .. '-' .. i .. '"}'
  return wrk.format("POST", "/t/e", {["User-Agent"] = "%(ua)s", ["Origin"] = "https://shop.example.com",
    ["Content-Type"] = "text/plain;charset=UTF-8"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- inside Django (this file run again with --seed or --count in the case's environment) ----


def seed_clicks(recipients: int, out: Path) -> None:
    """A sent campaign with one link and `recipients` ledger rows; their click paths to `out`."""
    from datetime import timedelta

    from django.utils.timezone import now

    from mailmarketer.audience.links import click_token
    from mailmarketer.audience.models import Subscriber
    from mailmarketer.campaigns.models import Campaign, CampaignLink
    from mailmarketer.delivery.models import Delivery

    ws = bench_workspace()
    campaign = Campaign.objects.create(
        workspace=ws, name="Bench", subject="Hi", status="finished", started_at=now()
    )
    link = CampaignLink.objects.create(
        campaign=campaign, url="https://shop.example.com/", position=0
    )
    Subscriber.objects.bulk_create(
        Subscriber(workspace=ws, email=f"p{i}@example.com") for i in range(recipients)
    )
    people = list(Subscriber.objects.filter(workspace=ws).values_list("id", flat=True))
    sent = now() - timedelta(hours=1)
    Delivery.objects.bulk_create(
        Delivery(workspace=ws, campaign=campaign, subscriber_id=p, status="sent", sent_at=sent)
        for p in people
    )
    rows = Delivery.objects.filter(campaign=campaign).values_list("id", flat=True)
    out.write_text("".join(f"/t/c/{click_token(row, link.pk)}\n" for row in rows))


def bench_workspace():
    from mailmarketer.accounts.models import Workspace

    ws, _ = Workspace.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "postal_address": "1 Bench Road"}
    )
    return ws


def seed_opens(recipients: int, out: Path) -> None:
    """The click case's ledger rows (seeded first, or here when it does not run), their open
    pixel paths to `out`."""
    from mailmarketer.audience.links import open_token
    from mailmarketer.delivery.models import Delivery

    if not Delivery.objects.exists():
        seed_clicks(recipients, out)
    rows = Delivery.objects.values_list("id", flat=True)
    out.write_text("".join(f"/t/o/{open_token(row)}\n" for row in rows))


def count_events() -> int:
    """Runs the worker's ingestion of the spooled email hits, then counts the events."""
    from mailmarketer.tracking.mail_ingest import ingest_all
    from mailmarketer.tracking.models import EmailEvent

    handed_over()
    started = time.perf_counter()
    rounds = ingest_all()
    if rounds:
        print(f"ingested in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return EmailEvent.objects.count()


def seed_site(recipients: int, out: Path) -> None:
    from mailmarketer.tracking.models_web import Site

    site = Site.objects.create(
        workspace=bench_workspace(),
        name="Shop",
        domain="shop.example.com",
        origins="https://shop.example.com",
    )
    out.write_text(site.key + "\n")


def count_hits() -> int:
    """Runs the worker's ingestion of the spooled website hits, then counts the hits."""
    from mailmarketer.tracking.models_web import WebHit
    from mailmarketer.tracking.spool import replay_spool_one
    from mailmarketer.tracking.web_ingest import ingest_all

    handed_over()
    started = time.perf_counter()
    rounds = ingest_all()
    if rounds:
        print(f"ingested in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    while replay_spool_one():
        pass
    return WebHit.objects.count()


def handed_over(timeout: float = 5.0) -> None:
    """Waits (bounded) until the web processes have handed over their open spool files (they do
    a second after their last write), so the count sees every answered hit."""
    from mailmarketer.tracking.mail_spool import spool_dir

    deadline = time.monotonic() + timeout
    while any(spool_dir().glob("*.open")) and time.monotonic() < deadline:
        time.sleep(0.2)


CASES = {
    "click /t/c": (seed_clicks, count_events, LUA_GET),
    "open /t/o": (seed_opens, count_events, LUA_GET),
    "collect /t/e": (seed_site, count_hits, LUA_COLLECT),
}


# -- latency at a fixed offered rate (open loop) ---------------------------------------------


def open_loop(port: int, requests: list[bytes], rate: float, seconds: float, max_conns: int = 64):
    """Sends requests[i % len] at the fixed times t0 + i / rate for `seconds`, whatever the
    answers do (an open loop, as real visitors arrive), on up to `max_conns` keep-alive
    connections, and measures each latency from the request's intended send time: a request
    that waited for a free connection, or for this client, counts its wait (no coordinated
    omission, unlike wrk's closed loop, where a slow answer delays the next request and hides
    the queue). Returns the sorted latencies, the answers that were not 2xx/3xx, errors and
    requests not answered within the run plus 5 s."""
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        due: asyncio.Queue = asyncio.Queue()
        latencies: list[float] = []
        counts = {"bad": 0, "errors": 0, "sent": 0}
        total = int(rate * seconds)

        async def worker():
            reader = writer = None
            while True:
                item = await due.get()
                if item is None:
                    break
                intended, raw = item
                for attempt in (0, 1):
                    try:
                        if writer is None:
                            reader, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.write(raw)
                        status, close = await read_response(reader)
                        break
                    except (OSError, asyncio.IncompleteReadError, ValueError):
                        # A keep-alive connection the server closed: once more on a new one.
                        if writer is not None:
                            writer.close()
                        reader = writer = None
                        if attempt:
                            status, close = None, True
                latencies.append(loop.time() - intended)
                if status is None:
                    counts["errors"] += 1
                elif not 200 <= status < 400:
                    counts["bad"] += 1
                if close and writer is not None:
                    writer.close()
                    reader = writer = None
            if writer is not None:
                writer.close()

        workers = [asyncio.create_task(worker()) for _ in range(max_conns)]
        start = loop.time() + 0.05
        for i in range(total):
            intended = start + i / rate
            delay = intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait((intended, requests[i % len(requests)]))
            counts["sent"] += 1
        for _ in workers:
            due.put_nowait(None)
        _done, pending = await asyncio.wait(workers, timeout=5 + seconds)
        for task in pending:
            task.cancel()
        latencies.sort()
        errors = counts["errors"] + counts["sent"] - len(latencies)
        return {
            "latencies": latencies,
            "bad": counts["bad"],
            "errors": errors,
            "answered": len(latencies) - counts["bad"] - counts["errors"],
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "max": latencies[-1] if latencies else float("nan"),
        }

    return asyncio.run(main())


async def read_response(reader) -> tuple[int, bool]:
    """(status, whether the server closes the connection) of one HTTP/1.1 response, its body
    read and dropped (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection") == "close"


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def get_requests(port: int, paths: list[str]) -> list[bytes]:
    head = f"HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {USER_AGENT}\r\n\r\n"
    return [f"GET {path} {head}".encode() for path in paths]


def collect_requests(port: int, site_key: str, count: int) -> list[bytes]:
    """Page views as the snippet posts them, each with its own hit id (so each is stored)."""
    run = secrets.token_hex(4)
    out = []
    for i in range(count):
        body = (
            f'{{"s":"{site_key}","k":"p","u":"https://shop.example.com/p{i % 500}","t":"Page",'
            f'"r":"https://www.google.com/","i":"open-{run}-{i}"}}'
        ).encode()
        out.append(
            f"POST /t/e HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {USER_AGENT}".encode()
            + b"\r\nOrigin: https://shop.example.com\r\nContent-Type: text/plain;charset=UTF-8"
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
    return out


# -- outside: the server, wrk, the table ---------------------------------------------------------


def wrk(port: int, path: str | None, script: Path | None, seconds: int, connections: int) -> dict:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        args += ["-s", str(script)]
    args.append(f"http://127.0.0.1:{port}{path or '/'}")
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout

    def seconds_of(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / {"us": 1e6, "ms": 1e3, "s": 1}[unit]

    done = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(done.group(1)) if done else 0,
        "rate": float(rate.group(1)) if rate else 0.0,
        "p50": seconds_of("50%"),
        "p99": seconds_of("99%"),
        "bad": int(bad.group(1)) if bad else 0,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "raw": out,
    }


def server_tree(root: int) -> list[int]:
    """The server's processes: gunicorn's master and its workers, found through /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    wanted, changed = {root}, True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return sorted(wanted)


def server_cpu(root: int) -> tuple[float, float]:
    """CPU seconds (user + system, and system alone) used so far by the server's processes (a
    figure the machine's load does not change much)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = system = 0
    for pid in server_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        system += int(fields[12])
    return total / tick, system / tick


def server_switches(root: int) -> int:
    """Voluntary context switches so far of every thread of the server's processes: a thread
    that blocks (on a lock, the GIL, a sync, a socket) and is woken later counts one. Each costs
    CPU beyond the Python that runs, and the edge's spool adds some per hit (track10d)."""
    count = 0
    for pid in server_tree(root):
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        count += int(line.split()[1])
            except OSError:
                continue
    return count


def spool_syncs(metrics: Path | None) -> tuple[float, float]:
    """(syncs, lines) the server's spools have counted so far (lib/group_spool.py's counters,
    read from the metrics files its processes share), or (0, 0) without them."""
    if metrics is None or not metrics.is_dir():
        return 0.0, 0.0
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics))
    totals = {"mailmarketer_spool_syncs_total": 0.0, "mailmarketer_spool_lines_total": 0.0}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals["mailmarketer_spool_syncs_total"], totals["mailmarketer_spool_lines_total"]


def measured(server, port, path, script, seconds, connections, metrics=None) -> dict:
    """wrk's figures plus the server's CPU microseconds per request (and its system part), its
    threads' voluntary context switches per request, and the spool's lines per sync (the group
    commit's mean batch)."""
    before, before_sys = server_cpu(server.pid)
    switches = server_switches(server.pid)
    syncs, lines = spool_syncs(metrics)
    result = wrk(port, path, script, seconds, connections)
    after, after_sys = server_cpu(server.pid)
    switched = server_switches(server.pid) - switches
    syncs_after, lines_after = spool_syncs(metrics)
    done = result["requests"]
    result["cpu_us"] = (after - before) / done * 1e6 if done else float("nan")
    result["sys_us"] = (after_sys - before_sys) / done * 1e6 if done else float("nan")
    result["switches"] = switched / done if done else float("nan")
    synced = syncs_after - syncs
    result["batch"] = (lines_after - lines) / synced if synced else float("nan")
    return result


def create_pg() -> str:
    import psycopg

    name = f"mm_track_bench_{secrets.token_hex(3)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the web server exited: " + proc.stderr.read()[-2000:])
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("the web server did not start listening")


def run_db(db: str, args) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="mm-track-bench-"))
    pg_name = None
    if db == "postgres":
        pg_name = create_pg()
        url = f"{PG}/{pg_name}"
    else:
        url = f"sqlite:///{work / 'bench.sqlite3'}"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_")},
        "MM_DATABASE_URL": url,
        "MM_DATA_DIR": str(work),
        "MM_SECRET_KEY": "track-bench-secret-key-" + "t" * 30,
        "MM_ENCRYPTION_KEY": "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMTI=",
        "MM_BASE_URL": f"http://127.0.0.1:{port}",
        "MM_LOG_LEVEL": "WARNING",
        # One address (wrk's) sends everything: the per-address flood limit would refuse it.
        "MM_TRACKING_IP_HITS_PER_MINUTE": "100000000",
        "DJANGO_SETTINGS_MODULE": "mailmarketer.settings",
    }

    def run(*argv):
        done = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True, timeout=1800)
        if done.returncode:
            raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    server = None
    rows = []
    try:
        run(str(BIN / "mailmarketer"), "migrate")
        server = subprocess.Popen(
            [
                str(BIN / "mailmarketer"),
                "web",
                "--bind",
                f"127.0.0.1:{port}",
                *(["--threads", str(args.web_threads)] if args.web_threads else []),
            ],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,  # the access log: one line per request
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_listening(port, server)
        wrk(port, "/t/ok", None, 2, args.connections)  # warm up every worker and thread
        limit = measured(server, port, "/t/ok", None, args.seconds, args.connections)
        # The fixed offered rate for latency: the target throughput (0.5x the limit's).
        rate = args.rate or 0.5 * limit["rate"]
        for name in CASES:
            if args.cases and not any(name.startswith(c) for c in args.cases.split(",")):
                continue
            paths = work / "paths.txt"
            run(sys.executable, __file__, "--seed", name, str(args.recipients), str(paths))
            script = work / "paths.lua"
            script.write_text(CASES[name][2] % {"paths": paths, "ua": USER_AGENT})
            before = int(run(sys.executable, __file__, "--count", name).strip())
            ours = measured(
                server, port, None, script, args.seconds, args.connections, work / "metrics"
            )
            if CASES[name][2] is LUA_COLLECT:
                key = paths.read_text().split()[0]
                requests = collect_requests(port, key, int(rate * args.open_seconds) + 1)
            else:
                requests = get_requests(port, paths.read_text().split())
            # The constant view first, then the case, at the same offered rate.
            ok_open = open_loop(port, get_requests(port, ["/t/ok"]), rate, args.open_seconds)
            case_open = open_loop(port, requests, rate, args.open_seconds)
            time.sleep(1)  # requests in flight when wrk stopped
            counted = time.monotonic()
            stored = int(run(sys.executable, __file__, "--count", name).strip()) - before
            print(f"{db} {name}: counted in {time.monotonic() - counted:.1f} s", file=sys.stderr)
            answered = ours["requests"] - ours["bad"] + case_open["answered"]
            rows.append(
                {
                    "db": db,
                    "case": name,
                    "ours": ours,
                    "limit": limit,
                    "rate": rate,
                    "open": case_open,
                    "ok_open": ok_open,
                    "stored": stored,
                    "lost": max(answered - stored, 0),
                }
            )
        return rows
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if pg_name:
            drop_pg(pg_name)
        shutil.rmtree(work, ignore_errors=True)


def inside_django(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if argv[0] == "--seed":
        CASES[argv[1]][0](int(argv[2]), Path(argv[3]))
    else:
        print(CASES[argv[1]][1]())
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--seed", "--count"):
        return inside_django(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument(
        "--web-threads",
        type=int,
        default=0,
        help="threads per web process (default: as configured)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="offered rate for the latency runs, requests/s (default: half the limit's)",
    )
    parser.add_argument("--open-seconds", type=float, default=10)
    parser.add_argument(
        "--cases",
        default="",
        help="only these cases, by the start of their names: click,open,collect (default: all)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: install Debian's wrk package")
    rows = []
    for db in args.db.split(","):
        rows += run_db(db.strip(), args)
    print()
    header = (
        f"{'db':<9}{'case':<14}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'non-3xx':>8}"
        f"{'errors':>7}{'stored':>8}{'lost':>6}{'limit/s':>9}{'lim p99':>8}{'ratio':>7}"
        f"{'cpu µs':>8}{'lim µs':>8}{'sys µs':>7}{'lim sys':>8}{'cs/req':>7}{'lim cs':>7}"
        f"{'batch':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ours, limit = row["ours"], row["limit"]
        ratio = ours["rate"] / limit["rate"] if limit["rate"] else float("nan")
        print(
            f"{row['db']:<9}{row['case']:<14}{ours['rate']:>9.0f}{ours['p50'] * 1e3:>8.1f}"
            f"{ours['p99'] * 1e3:>8.1f}{ours['bad']:>8}{ours['errors']:>7}{row['stored']:>8}"
            f"{row['lost']:>6}{limit['rate']:>9.0f}{limit['p99'] * 1e3:>8.1f}{ratio:>7.2f}"
            f"{ours['cpu_us']:>8.0f}{limit['cpu_us']:>8.0f}{ours['sys_us']:>7.0f}"
            f"{limit['sys_us']:>8.0f}{ours['switches']:>7.2f}{limit['switches']:>7.2f}"
            f"{ours.get('batch', 0):>7.2f}"
        )
    print("\nlatency at a fixed offered rate (open loop, from each request's intended send time)")
    header = (
        f"{'db':<9}{'case':<14}{'rate/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'non-3xx':>8}{'errors':>7}{'/t/ok p50':>10}{'/t/ok p99':>10}{'/t/ok max':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ours, ok = row["open"], row["ok_open"]
        print(
            f"{row['db']:<9}{row['case']:<14}{row['rate']:>8.0f}{ours['p50'] * 1e3:>8.1f}"
            f"{ours['p99'] * 1e3:>8.1f}{ours['max'] * 1e3:>8.1f}{ours['bad']:>8}"
            f"{ours['errors']:>7}{ok['p50'] * 1e3:>10.1f}{ok['p99'] * 1e3:>10.1f}"
            f"{ok['max'] * 1e3:>10.1f}"
        )
    print(
        "\nlimit: the same server answering /t/ok (constant, no database); target ratio >= 0.5, "
        "p99 < 50 ms at the offered rate, 0 lost, 0 errors; cpu µs: the server's CPU time per "
        "request (all its processes), which the machine's load changes less than the rates; "
        "sys µs: its system (kernel) part; cs/req: the server threads' voluntary context "
        "switches per request; batch: hits per spool fdatasync (by default one sync per ~50 ms, "
        "after the answers; with MM_TRACKING_SYNC_BEFORE_ANSWER=true the group commit's batch)"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
