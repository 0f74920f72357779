"""Campaign report benchmark: the report of a campaign with 10 million open and click events,
on PostgreSQL (the issue's target: under 300 ms).

    .venv/bin/python benchmarks/report_bench.py [--events 10000000] [--recipients 1000000]
                                                [--links 10] [--days 30] [--runs 20]

Makes a throwaway database on 127.0.0.1:5432, migrates it, and writes with SQL (generate_series)
a sent campaign: its links, `recipients` people and ledger rows, `events` events spread over
`days` days (a third clicks, a tenth machines', 2,000 recipient domains), and the roll-ups the
worker's roll-up makes of them, computed in SQL with the same rules as rollups.add (each event's
contributions per hour and day, link, kind and human/machine, and per domain), loading in bulk
as a restore does: the event table's indexes made after its rows, no per-row foreign-key
trigger while the events go in (about 3 minutes for 10M, not 36). Then it times
`tracking.queries.campaign_report` (what the report page and the API call) and the whole page
through Django's test client, `runs` times each, and prints the median, p95 and worst, the
statements per report, and the load average. Before that, the sent/bounced counts that
delivery's triggers appended while the ledger was seeded are read unfolded (the worst case: no
worker ran through the whole send) and then folded as the worker does, timed. The database is
dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "postgres://postgres@127.0.0.1:5432"


def setup_django(name: str) -> None:
    os.environ.update(
        MM_DATABASE_URL=f"{PG}/{name}",
        MM_SECRET_KEY="report-bench-secret-key-" + "r" * 30,
        MM_ENCRYPTION_KEY="YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMTI=",
        MM_DATA_DIR=str(Path("/tmp") / name),
        MM_BASE_URL="http://testserver",
        MM_ALLOWED_HOSTS="testserver",
        MM_LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="mailmarketer.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# Each event's contributions, as rollups._contributions says: an open adds (open, 0) total 1
# and uniques first_open; a click adds (click, 0) total 1 / first_click, (click, link) total 1
# / first_link_click, and (open, 0) uniques first_open. Sums add up, so the events are first
# counted per group in one scan ({agg}: n events, fo/fc/flc their first_* flags, co the clicks
# that were first opens), and the contributions are made of those counts.
AGG = """
SELECT workspace_id, campaign_id, {at} AS at, {domain} AS domain, machine, {link} AS link_id,
       kind, COUNT(*) AS n, COUNT(*) FILTER (WHERE first_open) AS fo,
       COUNT(*) FILTER (WHERE first_click) AS fc,
       COUNT(*) FILTER (WHERE first_link_click) AS flc,
       COUNT(*) FILTER (WHERE kind = 'click' AND first_open) AS co
FROM tracking_emailevent WHERE campaign_id = %(c)s GROUP BY 1, 2, 3, 4, 5, 6, 7
"""
CONTRIBUTIONS = """
WITH agg AS MATERIALIZED ({agg})
SELECT workspace_id, campaign_id, at, domain, machine, 0 AS link_id, kind,
       n AS total, (CASE WHEN kind = 'open' THEN fo ELSE fc END) AS uniques
FROM agg
UNION ALL
SELECT workspace_id, campaign_id, at, domain, machine, link_id, 'click', n, flc
FROM agg WHERE kind = 'click'
UNION ALL
SELECT workspace_id, campaign_id, at, domain, machine, 0, 'open', 0, co
FROM agg WHERE kind = 'click' AND co > 0
"""
HOURLY = CONTRIBUTIONS.format(
    agg=AGG.format(at="date_trunc('hour', at)", domain="''", link="link_id")
)
BY_DOMAIN = CONTRIBUTIONS.format(
    agg=AGG.format(at="NULL::timestamptz", domain="domain", link="NULL::bigint")
)


def seed(args) -> int:
    from django.db import connection
    from django.utils.timezone import now

    from mailmarketer.accounts.models import Workspace
    from mailmarketer.campaigns.models import Campaign, CampaignLink

    ws = Workspace.objects.create(name="Bench", slug="bench", postal_address="1 Bench Road")
    started = now().replace(microsecond=0) - __import__("datetime").timedelta(days=args.days)
    campaign = Campaign.objects.create(
        workspace=ws, name="Big", subject="Hi", status="finished", started_at=started
    )
    for position in range(args.links):
        CampaignLink.objects.create(
            campaign=campaign, url=f"https://shop.example.com/{position}", position=position
        )
    first_link = CampaignLink.objects.filter(campaign=campaign).order_by("pk").first().pk
    p = {
        "w": ws.pk, "c": campaign.pk, "n": args.recipients, "e": args.events, "s": started,
        "secs": args.days * 86400, "l0": first_link, "links": args.links,
    }  # fmt: skip
    steps = [
        (
            "events",
            """INSERT INTO tracking_emailevent (workspace_id, campaign_id, kind, at, link_id,
                   recipient_key, domain, agent_class, user_agent, machine, machine_reason,
                   first_open, first_click, first_link_click)
               SELECT %(w)s, %(c)s, CASE WHEN i %% 3 = 0 THEN 'click' ELSE 'open' END,
                      %(s)s + make_interval(secs => (i::bigint * 7919) %% %(secs)s),
                      CASE WHEN i %% 3 = 0 THEN %(l0)s + i %% %(links)s END,
                      'r' || (i %% %(n)s), 'd' || (i %% 2000) || '.test', 'browser', 'Mozilla/5.0',
                      i %% 10 = 0, CASE WHEN i %% 10 = 0 THEN 'head' ELSE '' END,
                      i <= %(n)s, i %% 3 = 0 AND i <= 3 * %(n)s, i %% 3 = 0 AND i <= 3 * %(n)s
               FROM generate_series(1, %(e)s) i""",
        ),
        (
            "roll-ups",
            f"""INSERT INTO tracking_campaignstat
                   (workspace_id, campaign_id, grain, bucket, link_id, kind, machine,
                    total, uniques)
               SELECT workspace_id, campaign_id, g.grain,
                      date_trunc(CASE g.grain WHEN 'h' THEN 'hour' ELSE 'day' END, at),
                      link_id, kind, machine, SUM(total), SUM(uniques)
               FROM ({HOURLY}) e CROSS JOIN (VALUES ('h'), ('d')) g(grain)
               GROUP BY 1, 2, 3, 4, 5, 6, 7""",
        ),
        (
            "domain roll-ups",
            f"""INSERT INTO tracking_campaigndomainstat
                   (workspace_id, campaign_id, domain, kind, machine, total, uniques)
               SELECT workspace_id, campaign_id, domain, kind, machine, SUM(total), SUM(uniques)
               FROM ({BY_DOMAIN}) e WHERE link_id = 0
               GROUP BY 1, 2, 3, 4, 5""",
        ),
    ]
    with connection.cursor() as cursor:
        _clone_people(cursor, ws, campaign, started, args.recipients)
        # Bulk loading as a restore does: the event table's indexes made after its rows (one
        # sort each instead of 10M random insertions each), and no per-row foreign-key trigger
        # (Django's are deferred: 10M queued checks of one workspace id). The bench's session
        # only; the rows are valid by construction.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tracking_emailevent' "
            "AND indexname NOT LIKE '%%pkey'"
        )
        indexes = cursor.fetchall()
        for index, _definition in indexes:
            cursor.execute(f'DROP INDEX "{index}"')
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for label, sql in steps:
            started_at = time.monotonic()
            if label == "events":
                cursor.execute("SET session_replication_role = replica")
            cursor.execute(sql, p)
            rows = cursor.rowcount
            if label == "events":
                cursor.execute("SET session_replication_role = DEFAULT")
            print(f"seeded {label}: {rows} rows in {time.monotonic() - started_at:.0f} s")
        started_at = time.monotonic()
        for _index, definition in indexes:
            cursor.execute(definition)
        print(f"event indexes made in {time.monotonic() - started_at:.0f} s")
        cursor.execute("ANALYZE")
    return campaign.pk


def _clone(cursor, model, template_id: int, overrides: dict[str, str], source: str, p) -> None:
    """Copies a row made by the ORM once per row of `source`, with some columns computed
    (SQL expressions over `i`): every other column, whatever the model has, as made."""
    columns = [f.column for f in model._meta.concrete_fields if f.column != "id"]
    values = [overrides.get(c, f"t.{c}") for c in columns]
    cursor.execute(
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM {model._meta.db_table} t, {source} "
        f"WHERE t.id = {int(template_id)}",
        p,
    )


def _clone_people(cursor, ws, campaign, started, recipients: int) -> None:
    """`recipients` people and their ledger rows (sent, a fiftieth bounced)."""
    import uuid

    from mailmarketer.audience.models import Subscriber
    from mailmarketer.delivery.models import Delivery

    moment = time.monotonic()
    person = Subscriber.objects.create(workspace=ws, email="template@d0.test")
    row = Delivery.objects.create(
        workspace=ws, campaign=campaign, subscriber=person, status="sent", sent_at=started
    )
    email = "'p' || i || '@d' || (i %% 2000) || '.test'"
    overrides = {"email": email}
    for field in Subscriber._meta.concrete_fields:
        if field.column in ("email_normalized", "email_lower", "email_key"):
            overrides[field.column] = email
        elif field.default is uuid.uuid4:
            overrides[field.column] = "gen_random_uuid()"
    _clone(cursor, Subscriber, person.pk, overrides, "generate_series(1, %(n)s) i",
           {"n": recipients})  # fmt: skip
    print(f"seeded people: {recipients} in {time.monotonic() - moment:.0f} s")
    moment = time.monotonic()
    _clone(
        cursor,
        Delivery,
        row.pk,
        {
            "subscriber_id": "s.id",
            "status": "CASE WHEN s.id %% 50 = 0 THEN 'bounced' ELSE 'sent' END",
        },
        "(SELECT id FROM audience_subscriber WHERE workspace_id = %(w)s AND id <> %(p)s) s",
        {"w": ws.pk, "p": person.pk},
    )
    print(f"seeded ledger in {time.monotonic() - moment:.0f} s")


def fold(campaign_id: int) -> None:
    """The ledger rows' sent/bounced deltas (appended by delivery's triggers as the ledger was
    seeded): the count read with none folded (a worker stopped through the whole send), then
    folded as the worker's duty does, timed per row."""
    from django.db import connection

    from mailmarketer.delivery import counters

    started = time.perf_counter()
    counts = counters.ledger_counts(campaign_id)
    took = time.perf_counter() - started
    print(f"ledger counts with every delta unfolded: {took * 1e3:.0f} ms {counts}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM delivery_ledgercountdelta")
        deltas = cursor.fetchone()[0]
    started, cpu = time.perf_counter(), time.process_time()
    while counters.compact_counts_one():
        pass
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"folded {deltas} deltas in {took:.1f} s "
        f"({took / max(deltas, 1) * 1e6:.1f} µs per row, our CPU {cpu / max(deltas, 1) * 1e6:.1f})"
    )
    assert counters.ledger_counts(campaign_id) == counts
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE delivery_ledgercountdelta")


def measure(campaign_id: int, runs: int) -> None:
    from django.db import connection
    from django.test import Client

    from mailmarketer.accounts.models import Membership, User
    from mailmarketer.campaigns.models import Campaign
    from mailmarketer.tracking import queries

    campaign = Campaign.objects.get(pk=campaign_id)
    times = []
    cpu = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        queries.campaign_report(campaign)
        times.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu) / runs
    statements = []

    def count(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - started, sql))

    with connection.execute_wrapper(count):
        queries.campaign_report(campaign)
    user = User.objects.create_user(email="bench@example.com", password="x" * 20)
    Membership.objects.create(user=user, workspace=campaign.workspace, role="owner")
    client = Client()
    client.force_login(user)
    page = f"/app/{campaign.workspace.slug}/campaigns/{campaign.pk}/report/"
    pages = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(page)
        pages.append(time.perf_counter() - started)
    assert response.status_code == 200, response.status_code
    load = os.getloadavg()
    print(
        f"\ncampaign report ({runs} runs): median {statistics.median(times) * 1e3:.0f} ms, "
        f"p95 {p95(times) * 1e3:.0f} ms, worst {max(times) * 1e3:.0f} ms, "
        f"{len(statements)} statements, our CPU {cpu * 1e3:.1f} ms per report"
    )
    print(
        f"report page (the whole request): median {statistics.median(pages) * 1e3:.0f} ms, "
        f"p95 {p95(pages) * 1e3:.0f} ms, worst {max(pages) * 1e3:.0f} ms; target < 300 ms"
    )
    print("statements of one report, slowest first:")
    for took, sql in sorted(statements, reverse=True):
        print(f"  {took * 1e3:7.1f} ms  {' '.join(sql.split())[:110]}")
    print(f"load average: {load[0]:.1f} {load[1]:.1f}")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--links", type=int, default=10)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import psycopg

    name = f"mm_report_bench_{secrets.token_hex(3)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        setup_django(name)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        campaign_id = seed(args)
        fold(campaign_id)
        measure(campaign_id, args.runs)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
