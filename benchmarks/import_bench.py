"""Subscriber import benchmark: our import against the bulk-load limit, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/import_bench.py                 # 100k and 1M rows, both databases
    .venv/bin/python benchmarks/import_bench.py --rows 100000 --db sqlite

For each database and size it makes a fresh database (a temporary SQLite file; a new database on
the PostgreSQL server of --pg-url, dropped afterwards), migrates it, and then, each in its own
child process so that the peak memory measured is that of the work alone:

- import: the import job (mailmarketer.audience.importing.jobs.run_import) of a deterministic
  CSV (email, name, city, plan, score) into one list, as confirmed, exactly as the worker runs
  it: the whole-file check, then chunks of validation, deduplication, suppression and existing
  subscriber lookups, and bulk writes of subscribers, memberships and consent records.
- limit: the same rows, read with the same csv module, bulk-loaded into a bare table with no
  index or constraint: COPY on PostgreSQL, executemany in one transaction on SQLite. Nothing
  that writes these rows can be faster on this machine, so "ratio" is our rows/s over this.

Peak RSS is the child's VmHWM (the high-water mark of its resident memory, Django included).
At the largest size it also times, over the imported subscribers (after ANALYZE): a substring
search (audience.queries.search_subscribers) and a three-rule segment count (audience.segments),
the median of 5 runs each; benchmarks/segment_bench.py studies those two in depth.

Targets (issue 3): ratio >= 0.5 on PostgreSQL and >= 0.3 on SQLite; peak RSS < 300 MB and not
growing with the file (compare 100k and 1M); search and segment count < 300 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST = ["ann", "bob", "carol", "dave", "eve", "frank", "grace", "heidi", "ivan", "judy"]
LAST = ["smith", "jones", "brown", "taylor", "wilson", "evans", "thomas", "roberts", "walker"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example.com", "example.de"]
CITIES = ["Oslo", "Berlin", "Lisbon", "Rome", "Paris", "Madrid", "Vienna", "Prague", "Dublin"]
PLANS = ["free", "pro", "team"]
SEARCH = "walker4242"  # a substring a few addresses hold
BARE_TABLE = "CREATE TABLE bench_bare (email text, name text, city text, plan text, score text)"


def generate(path: Path, rows: int) -> None:
    rng = random.Random(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "city", "plan", "score"])
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            writer.writerow(
                [
                    f"{first}.{last}{i}@{rng.choice(DOMAINS)}",
                    f"{first.title()} {last.title()}",
                    rng.choice(CITIES),
                    rng.choice(PLANS),
                    rng.randrange(101),
                ]
            )


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- children ------------------------------------------------------------------------------------


def _django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
    import django

    django.setup()


def child_prepare() -> dict:
    _django()
    from django.core.management import call_command

    from mailmarketer.accounts.actors import Actor
    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.actions import do_create_list

    call_command("migrate", verbosity=0, interactive=False)
    workspace = Workspace.objects.create(name="Bench", slug="bench")
    do_create_list(workspace, name="News", slug="news", actor=Actor.system("bench"))
    return {"workspace": workspace.pk}


def child_import(path: str) -> dict:
    _django()
    from mailmarketer.accounts.actors import Actor
    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.importing import jobs
    from mailmarketer.audience.importing.mapping import mapping_for

    workspace = Workspace.objects.get(slug="bench")
    actor = Actor.system("bench")
    start = time.perf_counter()
    imp = jobs.do_create_import(
        workspace,
        file=path,
        original_name=Path(path).name,
        lists=["news"],
        confirmed=True,
        notice_text="Yes, send me the newsletter.",
        actor=actor,
    )
    mapping = mapping_for(imp.header, [], email="email", name="name")
    jobs.do_start_import(imp, mapping=mapping, actor=actor, enqueue=False)
    uploaded = time.perf_counter()
    imp = jobs.run_import(imp.pk)
    done = time.perf_counter()
    return {
        "status": imp.status,
        "error": imp.error,
        "rows": imp.rows_done,
        "created": imp.rows_created,
        "skipped": imp.rows_skipped,
        "upload_s": uploaded - start,
        "job_s": done - uploaded,
        "peak_rss_mb": peak_rss_mb(),
    }


def child_limit(path: str, url: str) -> dict:
    """The same rows, read the same way, into a bare table: the fastest way in."""
    start = time.perf_counter()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        if url.startswith("sqlite"):
            import sqlite3

            db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(BARE_TABLE)
            start = time.perf_counter()
            db.execute("BEGIN")
            db.executemany("INSERT INTO bench_bare VALUES (?, ?, ?, ?, ?)", reader)
            db.execute("COMMIT")
            db.close()
        else:
            import psycopg

            with psycopg.connect(url) as conn:
                conn.execute(BARE_TABLE)
                conn.commit()
                start = time.perf_counter()
                with conn.cursor() as cur, cur.copy("COPY bench_bare FROM STDIN") as copy:
                    for row in reader:
                        copy.write_row(row)
                conn.commit()
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


FLOOR_SQL = {
    # The same three writes the import makes for each new person (subscriber, membership,
    # consent record), as hand-written set-based SQL from a staging table: no validation, no
    # duplicate check, no lookups, nothing per row in Python. What this schema costs to fill.
    "subscriber": """
        INSERT INTO audience_subscriber
            (uuid, email, email_key, name, status, attributes, source, created_at, updated_at,
            workspace_id)
        SELECT {uuid}, email, LOWER(email), name, 'enabled', {attributes}, 'import', {now}, {now},
            {ws}
        FROM bench_stage ORDER BY LOWER(email)""",
    "subscription": """
        INSERT INTO audience_subscription (status, status_reason, created_at, updated_at,
            confirmed_at, mailing_list_id, subscriber_id, workspace_id)
        SELECT 'confirmed', 'by_import', {now}, {now}, {now}, {list}, id, workspace_id
        FROM audience_subscriber WHERE workspace_id = {ws}""",
    "consent": """
        INSERT INTO audience_consentrecord (purpose, action, source_type, source_id,
            source_label, at, user_agent, confirmed_at, notice_id, workspace_id,
            mailing_list_id, subscriber_id)
        SELECT 'email:news', 'grant', 'import', '1', 'Import: bench', {now}, '', {now},
            {notice}, workspace_id, {list}, id
        FROM audience_subscriber WHERE workspace_id = {ws}""",
}
FLOOR_FORMS = {
    "postgres": {
        "uuid": "gen_random_uuid()",
        "attributes": "jsonb_build_object('city', city, 'plan', plan, 'score', score)",
        "now": "now()",
    },
    "sqlite": {
        "uuid": "lower(hex(randomblob(16)))",
        "attributes": "json_object('city', city, 'plan', plan, 'score', score)",
        "now": "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    },
}
STAGE_TABLE = (
    "CREATE TEMP TABLE bench_stage (email text, name text, city text, plan text, score text)"
)


def child_floor(path: str, url: str) -> dict:
    """The schema's floor: the import's writes by hand-written SQL (FLOOR_SQL), the rows staged
    the fastest way (COPY, executemany), all in one transaction, into the same migrated schema."""
    _django()
    from django.db import connection

    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.actions import notice_for_text
    from mailmarketer.audience.models import MailingList

    workspace = Workspace.objects.get(slug="bench")
    values = {
        "ws": workspace.pk,
        "list": MailingList.objects.get(workspace=workspace, slug="news").pk,
        "notice": notice_for_text(workspace, "Import: bench", "Yes, send me the newsletter.").pk,
    }
    postgres = connection.vendor == "postgresql"
    values.update(FLOOR_FORMS["postgres" if postgres else "sqlite"])
    statements = {key: sql.format(**values) for key, sql in FLOOR_SQL.items()}
    seconds = {}
    connection.close()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        if postgres:
            import psycopg

            with psycopg.connect(url) as conn:
                start = time.perf_counter()
                conn.execute("SET synchronous_commit TO OFF")
                conn.execute(STAGE_TABLE)
                with conn.cursor() as cur, cur.copy("COPY bench_stage FROM STDIN") as copy:
                    for row in reader:
                        copy.write_row(row)
                seconds["stage"] = time.perf_counter() - start
                for key, sql in statements.items():
                    begun = time.perf_counter()
                    conn.execute(sql)
                    seconds[key] = time.perf_counter() - begun
                conn.commit()
        else:
            import sqlite3

            db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            start = time.perf_counter()
            db.execute("BEGIN")
            db.execute(STAGE_TABLE)
            db.executemany("INSERT INTO bench_stage VALUES (?, ?, ?, ?, ?)", reader)
            seconds["stage"] = time.perf_counter() - start
            for key, sql in statements.items():
                begun = time.perf_counter()
                db.execute(sql)
                seconds[key] = time.perf_counter() - begun
            db.execute("COMMIT")
            db.close()
    seconds["total"] = time.perf_counter() - start
    return seconds


def child_queries() -> dict:
    _django()
    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.models import MailingList
    from mailmarketer.audience.queries import SubscriberFilter, search_subscribers

    workspace = Workspace.objects.get(slug="bench")
    news = MailingList.objects.get(workspace=workspace, slug="news")
    # Fresh statistics, as autovacuum would gather soon after a million inserts: without them
    # the planner guesses the new tables are small.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    def median_ms(fn) -> float:
        fn()  # warm
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    result = {
        "search_ms": median_ms(
            lambda: search_subscribers(workspace, SubscriberFilter(q=SEARCH), limit=50)
        )
    }
    try:
        from mailmarketer.audience.segments import count_segment
    except ImportError:
        result["segment_ms"] = None
        return result
    rules = {
        "version": 1,
        "root": {
            "type": "group",
            "match": "all",
            "children": [
                {
                    "type": "attribute",
                    "name": "plan",
                    "value_type": "string",
                    "op": "eq",
                    "value": "pro",
                },
                {
                    "type": "attribute",
                    "name": "score",
                    "value_type": "number",
                    "op": "gte",
                    "value": 50,
                },
                {"type": "list", "list": news.pk, "status": "confirmed", "member": True},
            ],
        },
    }
    result["segment_count"] = count_segment(workspace, rules)
    result["segment_ms"] = median_ms(lambda: count_segment(workspace, rules))
    return result


# -- the parent --------------------------------------------------------------------------------


def _env(url: str, data_dir: Path) -> dict:
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update(
        {
            "MM_DATABASE_URL": url,
            "MM_DATA_DIR": str(data_dir),
            "MM_SECRET_KEY": secrets.token_urlsafe(50),
            "MM_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "MM_DEBUG": "false",
            "MM_LOG_LEVEL": "WARNING",
            "MM_IMPORT_MAX_MB": "4096",
            "DJANGO_SETTINGS_MODULE": "mailmarketer.settings",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _child(env: dict, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"benchmark child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pg(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def run(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="mm-import-bench-"))
    sizes = [int(s) for s in args.rows.split(",")]
    results, extras = [], {}
    try:
        for rows in sizes:
            path = work / f"people-{rows}.csv"
            start = time.perf_counter()
            generate(path, rows)
            print(
                f"generated {path.name}: {rows:,} rows, {path.stat().st_size / 2**20:.0f} MB "
                f"in {time.perf_counter() - start:.1f} s",
                file=sys.stderr,
            )
            for db in args.db.split(","):
                name = f"mm_import_bench_{rows}_{os.getpid()}"
                made = []

                def fresh(suffix: str, db=db, name=name, made=made, rows=rows) -> tuple[str, dict]:
                    """A new, migrated database, with the bench workspace and its list."""
                    if db == "sqlite":
                        url = f"sqlite:///{work / (name + suffix + '.sqlite3')}"
                    else:
                        base = args.pg_url.rsplit("/", 1)[0]
                        _pg(args.pg_url, f'CREATE DATABASE "{name + suffix}"')
                        made.append(name + suffix)
                        url = f"{base}/{name + suffix}"
                    env = _env(url, work / f"data-{db}-{rows}{suffix}")
                    _child(env, "prepare")
                    return url, env

                try:
                    url, env = fresh("")
                    print(f"{db} {rows:,}: importing…", file=sys.stderr)
                    ours = _child(env, "import", str(path))
                    if ours["status"] != "finished":
                        sys.exit(f"the import did not finish: {ours}")
                    print(f"{db} {rows:,}: bulk-loading the limit…", file=sys.stderr)
                    limit = _child(env, "limit", str(path), url)
                    print(f"{db} {rows:,}: the schema's floor…", file=sys.stderr)
                    floor_url, floor_env = fresh("_floor")
                    floor = _child(floor_env, "floor", str(path), floor_url)
                    results.append((db, rows, ours, limit, floor))
                    if rows == max(sizes):
                        extras[db] = _child(env, "queries")
                finally:
                    for made_name in made:
                        _pg(args.pg_url, f'DROP DATABASE IF EXISTS "{made_name}" WITH (FORCE)')
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"Subscriber import, {os.cpu_count()} cores. rows/s = rows / job seconds (whole-file")
    print("check + import); limit = bulk load of the same rows into a bare table; floor = the")
    print("import's three writes per row as hand-written SQL into the same schema.")
    print()
    header = (
        f"{'database':<10} {'rows':>10} {'job s':>7} {'rows/s':>8} {'limit rows/s':>13} "
        f"{'ratio':>6} {'target':>6} {'floor rows/s':>13} {'vs floor':>8} {'peak RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    for db, rows, ours, limit, floor in results:
        rate = rows / ours["job_s"]
        limit_rate = rows / limit["seconds"]
        floor_rate = rows / floor["total"]
        target = "0.5x" if db == "postgres" else "0.3x"
        print(
            f"{db:<10} {rows:>10,} {ours['job_s']:>7.1f} {rate:>8,.0f} {limit_rate:>13,.0f} "
            f"{rate / limit_rate:>5.2f}x {target:>6} {floor_rate:>13,.0f} "
            f"{rate / floor_rate:>7.2f}x {ours['peak_rss_mb']:>6.0f} MB"
        )
    print()
    print("The floor, seconds: staging the rows, then each INSERT ... SELECT.")
    for db, rows, _, limit, floor in results:
        parts = ", ".join(
            f"{key} {floor[key]:.1f}" for key in ("stage", "subscriber", "subscription", "consent")
        )
        print(
            f"{db:<10} {rows:>10,}: {parts}; total {floor['total']:.1f} "
            f"(limit {limit['seconds']:.1f})"
        )
    print()
    largest = max(sizes)
    for db, extra in extras.items():
        segment = (
            f"{extra['segment_ms']:.0f} ms ({extra['segment_count']:,} match)"
            if extra.get("segment_ms") is not None
            else "not available (segments not built)"
        )
        print(
            f"{db:<10} over {largest:,} subscribers: search {SEARCH!r}: "
            f"{extra['search_ms']:.0f} ms; segment count (plan = pro, score >= 50, confirmed "
            f"on news): {segment}"
        )
    print("targets: peak RSS < 300 MB and flat from 100k to 1M; search and segment < 300 ms on")
    print("PostgreSQL.")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        result = {
            "prepare": child_prepare,
            "import": child_import,
            "limit": child_limit,
            "floor": child_floor,
            "queries": child_queries,
        }[kind](*rest)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("MM_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where the benchmark may create and drop databases",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
