"""Segment count and subscriber search at 1M subscribers on PostgreSQL, against hand-written SQL.

    .venv/bin/python benchmarks/segment_bench.py                   # 1M subscribers
    .venv/bin/python benchmarks/segment_bench.py --rows 200000 --explain

It creates a fresh database on the server of --pg-url (dropped afterwards unless --keep),
migrates it, and fills it fast with INSERT ... SELECT generate_series: one workspace, three
lists, N subscribers (20 address domains, gmail.com the most common at 30%; a name from 50 x 50
first and last names; attributes score 0-99 as a JSON number, plan free/pro/team, signup date)
and one list membership each (80% confirmed). Indexes are dropped for the load and rebuilt
from their own definitions afterwards, then the tables are analysed.

Each query is timed as the median of 5 runs after one warm-up run, two ways taking turns (so
that load from elsewhere falls on both alike): through our code
(audience.queries.search_subscribers, audience.segments.count_segment: Django, validation,
compilation and the typed-attribute SQL included) and as the hand-written SQL an expert would
write knowing the data (score is always a number; no type checks), through the same connection.
The hand-written figure is the limit: the same plan cannot be beaten from Python. The indexes
each plan uses are listed (EXPLAIN ANALYZE, with --explain printed in full).

Target (issue 3): < 300 ms on PostgreSQL for the three-rule count and for the first page of a
substring search.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST = [
    "ann", "bob", "carol", "dave", "eve", "frank", "grace", "heidi", "ivan", "judy",
    "karl", "lena", "mike", "nina", "oscar", "paula", "quinn", "rosa", "sam", "tina",
    "uma", "victor", "wendy", "xena", "yusuf", "zoe", "adam", "bella", "chris", "dora",
    "emil", "fiona", "gus", "hana", "igor", "jana", "kurt", "lisa", "marco", "nora",
    "otto", "pia", "ralf", "sara", "tom", "ulla", "vera", "walt", "yara", "zack",
]  # fmt: skip
LAST = [
    "smith", "jones", "brown", "taylor", "wilson", "evans", "thomas", "roberts", "walker",
    "wright", "white", "hall", "green", "wood", "harris", "martin", "jackson", "clarke",
    "lewis", "young", "king", "turner", "hill", "moore", "cooper", "ward", "morris", "baker",
    "parker", "bennett", "cook", "hughes", "price", "bell", "kelly", "gray", "adams", "mills",
    "mason", "shaw", "ellis", "cox", "reid", "grant", "fox", "lane", "page", "dunn", "berg",
    "lund",
]  # fmt: skip
# 20 slots: gmail.com 6 (30%), yahoo.com 3, hotmail.com 2, outlook.com 2, then 7 of 5% each.
DOMAINS = [
    "gmail.com", "gmail.com", "gmail.com", "gmail.com", "gmail.com", "gmail.com",
    "yahoo.com", "yahoo.com", "yahoo.com", "hotmail.com", "hotmail.com", "outlook.com",
    "outlook.com", "example.com", "acme.test", "web.de", "corp.example.org", "mail.ru",
    "proton.me", "uni.example.edu",
]  # fmt: skip

LOAD_SUBSCRIBERS = """
INSERT INTO audience_subscriber
    (workspace_id, uuid, email, name, status, attributes, source, created_at, updated_at)
SELECT %(ws)s,
       md5('bench' || g)::uuid,
       'user' || g || '@' || (%(domains)s::text[])[1 + (g * 7) %% 20],
       initcap((%(first)s::text[])[1 + g %% 50]) || ' '
           || initcap((%(last)s::text[])[1 + (g / 50) %% 50]),
       CASE WHEN g %% 100 = 0 THEN 'blocklisted' ELSE 'enabled' END,
       jsonb_build_object(
           'score', (g * 37) %% 100,
           'plan', (ARRAY['free', 'pro', 'team'])[1 + g %% 3],
           'signup', to_char(date '2020-01-01' + (g %% 1500), 'YYYY-MM-DD')),
       'import',
       timestamptz '2020-01-01' + g * interval '1 minute',
       timestamptz '2020-01-01' + g * interval '1 minute'
FROM generate_series(1, %(rows)s) AS g
"""

LOAD_SUBSCRIPTIONS = """
INSERT INTO audience_subscription
    (workspace_id, subscriber_id, mailing_list_id, status, status_reason, created_at,
     updated_at)
SELECT workspace_id, id, (%(lists)s::bigint[])[1 + id %% 3],
       CASE WHEN id %% 20 = 0 THEN 'unsubscribed'
            WHEN id %% 20 < 4 THEN 'unconfirmed'
            ELSE 'confirmed' END,
       'by_import', created_at, created_at
FROM audience_subscriber WHERE workspace_id = %(ws)s
"""

# The hand-written equivalents: what one would type in psql knowing the data.
SEARCH_SQL = """
SELECT * FROM audience_subscriber
WHERE workspace_id = %s AND (upper(email) LIKE upper(%s) OR upper(name) LIKE upper(%s))
ORDER BY id DESC LIMIT 51
"""
FIRST_PAGE_SQL = """
SELECT * FROM audience_subscriber WHERE workspace_id = %s ORDER BY id DESC LIMIT 51
"""
COUNT_SQL = """
SELECT count(*) FROM audience_subscriber s
WHERE s.workspace_id = %(ws)s
  AND upper(s.email) LIKE upper(%(domain)s)
  AND (s.attributes ->> 'score')::int >= %(score)s
  AND EXISTS (SELECT 1 FROM audience_subscription m
              WHERE m.subscriber_id = s.id AND m.mailing_list_id = %(list)s
                AND m.status = 'confirmed')
"""
COUNT_OR_SQL = """
SELECT count(*) FROM audience_subscriber s
WHERE s.workspace_id = %(ws)s
  AND (s.attributes ->> 'plan' = 'pro' OR upper(s.name) LIKE upper(%(name)s))
  AND NOT EXISTS (SELECT 1 FROM audience_subscription m
                  WHERE m.subscriber_id = s.id AND m.mailing_list_id = %(list)s)
"""


def paired_medians(ours, limit, runs: int = 5):
    """Median ms of each, run alternately (after one warm-up run each), so that load from
    elsewhere on the machine falls on both alike; and each one's result."""
    results = (ours(), limit())
    times: tuple[list, list] = ([], [])
    for _ in range(runs):
        for fn, spent in zip((ours, limit), times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[0]), statistics.median(times[1]), results


def indexes_in(plan: str) -> str:
    names = sorted(
        set(re.findall(r"(?:Index|Index Only) Scan(?: Backward)? (?:using|on) (\w+)", plan))
    )
    if "Seq Scan on audience_subscriber" in plan:
        names.append("seq scan of subscribers")
    if "Seq Scan on audience_subscription" in plan:
        names.append("seq scan of subscriptions")
    return ", ".join(names) or "-"


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("MM_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where this role may create databases",
    )
    parser.add_argument("--explain", action="store_true", help="print each plan in full")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    import psycopg

    name = f"mm_segment_bench_{secrets.token_hex(3)}"
    with psycopg.connect(args.pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    print(f"database {name} on {urlsplit(args.pg_url).hostname}")
    try:
        return run(args, database_url(args.pg_url, name))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(args.pg_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args, url: str) -> int:
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "MM_DATABASE_URL": url,
            "MM_SECRET_KEY": secrets.token_urlsafe(50),
            "MM_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "MM_DATA_DIR": tempfile.mkdtemp(prefix="mm-segment-bench-"),
            "MM_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "mailmarketer.settings",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.models import MailingList
    from mailmarketer.audience.queries import SubscriberFilter, search_subscribers
    from mailmarketer.audience.segments import count_segment

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    workspace = Workspace.objects.create(name="Bench", slug="bench")
    lists = [
        MailingList.objects.create(workspace=workspace, name=n.title(), slug=n)
        for n in ("news", "webinars", "offers")
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
            "('audience_subscriber', 'audience_subscription') AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint)"
        )
        secondary = cursor.fetchall()
        for index, _ in secondary:
            cursor.execute(f'DROP INDEX "{index}"')
        cursor.execute(
            LOAD_SUBSCRIBERS,
            {
                "ws": workspace.pk,
                "rows": args.rows,
                "domains": DOMAINS,
                "first": FIRST,
                "last": LAST,
            },
        )
        cursor.execute(LOAD_SUBSCRIPTIONS, {"ws": workspace.pk, "lists": [lst.pk for lst in lists]})
        loaded = time.perf_counter()
        for _, definition in secondary:
            cursor.execute(definition)
        indexed = time.perf_counter()
        cursor.execute("VACUUM ANALYZE audience_subscriber")
        cursor.execute("VACUUM ANALYZE audience_subscription")
        cursor.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
        trigram = cursor.fetchone() is not None
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    print(
        f"PostgreSQL {version}; {args.rows:,} subscribers and memberships loaded in "
        f"{loaded - started:.1f} s, {len(secondary)} indexes rebuilt in {indexed - loaded:.1f} s"
        f"; pg_trgm {'installed' if trigram else 'MISSING: substring search scans'}"
    )

    news = lists[0]

    def hand(sql, params):
        def go():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()

        return go

    def explained(fn) -> str:
        """EXPLAIN ANALYZE of the one query fn runs, exactly as our code sent it."""
        with CaptureQueriesContext(connection) as captured:
            fn()
        (query,) = [q["sql"] for q in captured.captured_queries if "audience_" in q["sql"]]
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query)
            return "\n".join(row[0] for row in cursor.fetchall())

    rows = []

    def search(label, q):
        f = SubscriberFilter(q=q)
        if q:
            like = f"%{q}%"
            sql, params = SEARCH_SQL, [workspace.pk, like, like]
        else:
            sql, params = FIRST_PAGE_SQL, [workspace.pk]
        ours, limit, ((page, _), _) = paired_medians(
            lambda: search_subscribers(workspace, f, limit=50), hand(sql, params)
        )
        plan = explained(lambda: search_subscribers(workspace, f, limit=50))
        rows.append((label, f"{len(page)} shown", ours, limit, indexes_in(plan), plan))

    search("search: first page, no filter", "")
    search('search "user123456" (rare: 1 row)', "user123456")
    search('search "user99999" (rare: 11 rows)', "user99999")
    search('search "user1000" (111 rows, all among the oldest)', "user1000")
    search('search "zoe lund" (name, 0.04%)', "zoe lund")
    search('search "walker" (name, 2%)', "walker")
    search('search "proton" (5%)', "proton")
    search('search "example" (15%, three domains)', "example")
    search('search "gmail" (common: 30%)', "gmail")
    search('search "zzzq" (no match at all)', "zzzq")
    search('search "us" (2 letters, every row)', "us")
    # Too short for a trigram: only a scan can answer, and a rare pair reads every row.
    search('search "qx" (2 letters, no match)', "qx")

    def segment(label, rules, sql, params):
        ours, limit, (count, hand_count) = paired_medians(
            lambda: count_segment(workspace, rules), hand(sql, params)
        )
        assert count == hand_count[0][0], (label, count, hand_count)
        plan = explained(lambda: count_segment(workspace, rules))
        rows.append((label, f"{count:,}", ours, limit, indexes_in(plan), plan))

    def three_rules(domain):
        return {
            "version": 1,
            "root": {
                "type": "group",
                "match": "all",
                "children": [
                    {"type": "list", "list": news.pk, "status": "confirmed", "member": True},
                    {
                        "type": "attribute",
                        "name": "score",
                        "value_type": "number",
                        "op": "gte",
                        "value": 50,
                    },
                    {"type": "field", "field": "email", "op": "ends_with", "value": domain},
                ],
            },
        }

    for domain, share in (("@example.com", "5%"), ("@gmail.com", "30%")):
        segment(
            f"count: news confirmed AND score >= 50 AND email ends with {domain} ({share})",
            three_rules(domain),
            COUNT_SQL,
            {"ws": workspace.pk, "domain": f"%{domain}", "score": 50, "list": news.pk},
        )
    segment(
        'count: (plan = pro OR name contains "walker") AND not on news',
        {
            "version": 1,
            "root": {
                "type": "group",
                "match": "all",
                "children": [
                    {
                        "type": "group",
                        "match": "any",
                        "children": [
                            {
                                "type": "attribute",
                                "name": "plan",
                                "value_type": "string",
                                "op": "eq",
                                "value": "pro",
                            },
                            {"type": "field", "field": "name", "op": "contains", "value": "walker"},
                        ],
                    },
                    {"type": "list", "list": news.pk, "status": "any", "member": False},
                ],
            },
        },
        COUNT_OR_SQL,
        {"ws": workspace.pk, "name": "%walker%", "list": news.pk},
    )

    width = max(len(r[0]) for r in rows)
    print()
    print(
        f"{'query':<{width}}  {'result':>12}  {'ours ms':>8}  {'SQL ms':>8}  {'ratio':>5}  indexes"
    )
    for label, result, ours, limit, indexes, _ in rows:
        print(
            f"{label:<{width}}  {result:>12}  {ours:8.1f}  {limit:8.1f}  {ours / limit:5.2f}  "
            f"{indexes}"
        )
    print(
        "\nmedian of 5 runs after a warm-up, ours and SQL alternating; "
        "'SQL' is the hand-written query (the limit)"
    )
    one, five, fifteen = os.getloadavg()
    print(
        f"load average at the end: {one:.1f} {five:.1f} {fifteen:.1f} "
        f"(1, 5, 15 min) on {os.cpu_count()} cores: anything else running slows both columns"
    )
    if args.explain:
        for label, *_, plan in rows:
            print(f"\n== {label}\n{plan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
