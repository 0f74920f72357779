"""Access-log import benchmark: `importlogs` next to Debian's GoAccess on the same file.

    .venv/bin/python benchmarks/logs_bench.py                  # 1M lines, SQLite
    .venv/bin/python benchmarks/logs_bench.py --lines 200000 --db postgres

Generates a deterministic Apache combined log (IPv4 and IPv6 clients, ~50 user agents of which a
few are bots, pages, static assets, downloads, 404s, referrers, and one broken line in a
thousand), then, in the same run:

- ours: tracking.logs.Importer into a fresh database (a temporary SQLite file, or a new database
  on the PostgreSQL server of --pg-url, dropped afterwards), everything it does for real:
  parsing, user agents, bots, static assets, idempotency keys, visitor hashes, INSERTs;
- the limit: `goaccess FILE --log-format=COMBINED -o report.json` (C, one core), which parses and
  aggregates but stores nothing row by row.

Prints lines/s for both and the ratio (target >= 1.0), and the totals side by side: requests,
valid, not found (404), unique paths. Run it on a quiet machine: only the ratio of one run means
anything (DESIGN.md section 6).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{v} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.5.0",
]
REFERRERS = ["-", "-", "-", "https://www.google.com/", "https://t.co/abc", "https://example.org/p"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def generate(path: Path, lines: int) -> None:
    rng = random.Random(lines)
    agents = [b.format(v=v) for b in BROWSERS for v in range(110, 119)] + BOTS
    pages = [f"/blog/post-{i}" for i in range(1500)] + ["/", "/pricing", "/about", "/contact"]
    static = [f"/static/{n}" for n in ("app.css", "app.js", "logo.png", "font.woff2")]
    ips = [
        f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{i % 250 + 1}"
        for i in range(4000)
    ]
    ips += [f"2001:db8:{i:x}::{i % 97 + 1:x}" for i in range(500)]
    start = 1_790_000_000  # 2026-09-21
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            t = time.gmtime(start + i // 20)
            stamp = (
                f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
            )
            if i % 1000 == 999:
                f.write(f'{rng.choice(ips)} - - [{stamp}] "GET /broken\n')
                continue
            roll = rng.random()
            if roll < 0.2:
                target, status = rng.choice(static), 200
            elif roll < 0.23:
                target, status = f"/missing/{rng.randrange(300)}", 404
            elif roll < 0.25:
                target, status = f"/files/guide-{rng.randrange(20)}.pdf", 200
            else:
                target, status = rng.choice(pages), rng.choice((200, 200, 200, 304))
            f.write(
                f'{rng.choice(ips)} - - [{stamp}] "GET {target} HTTP/1.1" {status} '
                f'{rng.randrange(100, 50000)} "{rng.choice(REFERRERS)}" "{rng.choice(agents)}"\n'
            )


def run_ours(log: Path, db: str, pg_url: str) -> tuple[float, dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="mm-logs-bench-"))
    os.environ["MM_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("MM_SECRET_KEY", "bench-" + secrets.token_hex(20))
    os.environ.setdefault("MM_ENCRYPTION_KEY", "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdDE=")
    pg_name = None
    if db == "postgres":
        import psycopg

        pg_name = f"mm_logs_bench_{secrets.token_hex(4)}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {pg_name}")
        os.environ["MM_DATABASE_URL"] = pg_url.rsplit("/", 1)[0] + "/" + pg_name
    else:
        os.environ["MM_DATABASE_URL"] = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "mailmarketer.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from mailmarketer.accounts.models import Workspace
    from mailmarketer.tracking.logs import Importer
    from mailmarketer.tracking.models_web import Site

    try:
        call_command("migrate", verbosity=0, interactive=False)
        workspace = Workspace.objects.create(name="Bench", slug="bench")
        site = Site.objects.create(workspace=workspace, name="bench", domain="bench.test")
        started, cpu = time.perf_counter(), time.process_time()
        totals = Importer(site, overlap=True).run([log])
        elapsed = time.perf_counter() - started
        return elapsed, time.process_time() - cpu, totals.summary()
    finally:
        connections.close_all()
        if pg_name:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
        shutil.rmtree(data_dir, ignore_errors=True)


def run_goaccess(log: Path, out_dir: Path) -> tuple[float, dict]:
    report = out_dir / "report.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        ["goaccess", str(log), "--log-format=COMBINED", "-o", str(report), "--no-global-config"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=1800,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data = json.loads(report.read_text())
    general = data["general"]
    not_found = 0
    for group in data.get("status_codes", {}).get("data", []):
        for child in group.get("items", []):
            if str(child.get("data", "")).startswith("404"):
                not_found += child["hits"]["count"]
    # GoAccess files each distinct path under one of three: pages, static files (downloads
    # count there too) and 404s; the panels' lists are cut at --max-items, the counts are not.
    unique = sum(
        general.get(k) or 0 for k in ("unique_files", "unique_static_files", "unique_not_found")
    )
    return (
        elapsed,
        cpu,
        {
            "lines": general.get("total_requests"),
            "valid": general.get("valid_requests"),
            "bad": general.get("failed_requests"),
            "not_found": not_found,
            "unique_paths": unique,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if shutil.which("goaccess") is None:
        sys.exit("goaccess is missing: apt-get install goaccess")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="mm-logs-") as tmp:
        log = Path(tmp) / "access.log"
        generate(log, args.lines)
        g_time, g_cpu, g_totals = run_goaccess(log, Path(tmp))
        o_time, o_cpu, o_totals = run_ours(log, args.db, args.pg_url)
    ours, limit = args.lines / o_time, args.lines / g_time
    print(f"access log: {args.lines:,} combined lines, database {args.db}")
    print(f"{'':<14}{'lines/s':>12}{'seconds':>10}{'CPU s':>10}{'lines/CPU s':>14}")
    print(
        f"{'importlogs':<14}{ours:>12,.0f}{o_time:>10.2f}{o_cpu:>10.2f}{args.lines / o_cpu:>14,.0f}"
    )
    print(
        f"{'goaccess':<14}{limit:>12,.0f}{g_time:>10.2f}{g_cpu:>10.2f}{args.lines / g_cpu:>14,.0f}"
    )
    print(f"ratio (ours / goaccess), wall clock: {ours / limit:.2f}  (target >= 1.0)")
    print(f"ratio (ours / goaccess), per CPU second: {g_cpu / o_cpu:.2f}")
    print(f"{'totals':<14}{'ours':>12}{'goaccess':>12}")
    for name in ("lines", "valid", "bad", "not_found", "unique_paths"):
        mark = "" if o_totals.get(name) == g_totals.get(name) else "  differs"
        print(f"{name:<14}{o_totals.get(name)!s:>12}{g_totals.get(name)!s:>12}{mark}")
    print(
        f"ours also: {o_totals['stored']:,} stored, {o_totals['bots']:,} bots and "
        f"{o_totals['static']:,} static assets counted apart"
    )


if __name__ == "__main__":
    main()
