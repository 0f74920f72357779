"""Test support for bounce processing: DSNs and complaints shaped as Postfix and the feedback
loops make them, for a ledger row (its VERP token and Message-ID) or for a token of the test's
choosing (a forged one)."""

from __future__ import annotations

import contextlib
import secrets


def token_for(row) -> str:
    from mailmarketer.delivery import engine

    return engine.verp_token(row.pk)


def message_id_for(row) -> str:
    return f"<{row.pk}.{row.campaign.uuid.hex}@acme.test>"


def dsn(
    address: str,
    *,
    token: str = "",
    message_id: str = "",
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "550 5.1.1 <{address}>: Recipient address rejected: User unknown",
    domain: str = "bounce.acme.test",
    nonce: str = "1",
) -> bytes:
    to = f"bounces+{token}@{domain}" if token else f"bounces@{domain}"
    quoted_id = f"Message-ID: {message_id}\n" if message_id else ""
    return f"""Return-Path: <>
Date: Thu,  3 Dec 2026 10:15:02 +0000 (UTC)
From: MAILER-DAEMON@mail.acme.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B{nonce}"
Message-Id: <{nonce}.dsn@mail.acme.test>

--B{nonce}
Content-Type: text/plain

The mail system

--B{nonce}
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.acme.test

Final-Recipient: rfc822; {address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic.format(address=address)}

--B{nonce}
Content-Type: text/rfc822-headers

Return-Path: <{to}>
From: Acme <news@acme.test>
To: {address}
{quoted_id}
--B{nonce}--
""".replace("\n", "\r\n").encode()


def arf(address: str, *, token: str = "", nonce: str = "1") -> bytes:
    mail_from = f"bounces+{token}@bounce.acme.test" if token else "news@acme.test"
    return f"""From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>
To: fbl@acme.test
Subject: FW: Autumn news
MIME-Version: 1.0
Message-ID: <{nonce}.arf@arf.mail.yahoo.com>
Content-Type: multipart/report; report-type=feedback-report; boundary="A{nonce}"

--A{nonce}
Content-Type: text/plain

This is an email abuse report.

--A{nonce}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Yahoo!-Mail-Feedback/2.0
Version: 0.1
Original-Mail-From: <{mail_from}>
Original-Rcpt-To: <{address}>

--A{nonce}--
""".replace("\n", "\r\n").encode()


@contextlib.contextmanager
def process_database(tmp_path, connection):
    """A database URL of the test's own for real processes: a SQLite file, or a fresh PostgreSQL
    database (dropped afterwards) when the suite runs on PostgreSQL."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'bounces.sqlite3'}"
        return
    import psycopg

    conf = connection.settings_dict
    name = f"mm_bounces_{secrets.token_hex(4)}"
    host, port = conf["HOST"] or "127.0.0.1", conf["PORT"] or 5432
    admin = psycopg.connect(
        host=host,
        port=port,
        user=conf["USER"],
        password=conf["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )
    admin.execute(f'CREATE DATABASE "{name}"')
    password = f":{conf['PASSWORD']}" if conf["PASSWORD"] else ""
    try:
        yield f"postgres://{conf['USER']}{password}@{host}:{port}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# -- a real database for process tests and the benchmark:
#    python -m mailmarketer.delivery.bounces.testing seed --rows N --domain D   (JSON lines)
#    python -m mailmarketer.delivery.bounces.testing report                     (one JSON line)


def seed(rows: int, domain: str, slug: str = "bounce") -> list[dict]:
    """A workspace with `rows` people <i>@`domain` and a sent campaign: a ledger row each."""
    from django.db import transaction
    from django.utils.timezone import now

    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.emails import email_key
    from mailmarketer.audience.models import MailingList, Subscriber, Subscription
    from mailmarketer.campaigns.models import Campaign
    from mailmarketer.delivery.models import Delivery

    with transaction.atomic():
        workspace = Workspace.objects.create(
            name=f"Bounce Test {slug}", slug=slug, sender_email="news@acme.test"
        )
        news = MailingList.objects.create(workspace=workspace, name="News", slug="news")
        people = Subscriber.objects.bulk_create(
            Subscriber(
                workspace=workspace, email=f"p{i}@{domain}", email_key=email_key(f"p{i}@{domain}")
            )
            for i in range(rows)
        )
        Subscription.objects.bulk_create(
            Subscription(
                workspace=workspace,
                subscriber=p,
                mailing_list=news,
                status=Subscription.Status.CONFIRMED,
            )
            for p in people
        )
        campaign = Campaign.objects.create(
            workspace=workspace,
            name="Autumn news",
            subject="Hi",
            body="Hi",
            status=Campaign.Status.FINISHED,
            started_at=now(),
        )
        ledger = Delivery.objects.bulk_create(
            Delivery(
                workspace=workspace,
                campaign=campaign,
                subscriber=p,
                status=Delivery.Status.SENT,
                sent_at=now(),
                attempts=1,
            )
            for p in people
        )
    if not all(row.pk for row in ledger):  # backends that return no ids from bulk_create
        ledger = list(Delivery.objects.filter(campaign=campaign).order_by("id"))
    from mailmarketer.delivery import engine

    emails = {p.pk: p.email for p in people}
    return [
        {"id": row.pk, "token": engine.verp_token(row.pk), "email": emails[row.subscriber_id]}
        for row in ledger
    ]


def report() -> dict:
    from collections import Counter

    from mailmarketer.audience.models import Suppression
    from mailmarketer.delivery.bounces.models import Bounce, PendingReport
    from mailmarketer.delivery.models import Delivery

    return {
        "bounces": Bounce.objects.count(),
        "outcomes": dict(Counter(Bounce.objects.values_list("outcome", flat=True))),
        "suppressed": Suppression.objects.count(),
        "bounced_rows": Delivery.objects.filter(status=Delivery.Status.BOUNCED).count(),
        "pending": PendingReport.objects.count(),
    }


def statements(rows: int) -> dict:
    """Statements per DSN of the receiving path (store_received, one group) and the applying
    path (apply_pending_one until the queue is empty), for `rows` hard-bounce DSNs to a fresh
    workspace's rows: the load-insensitive figure of the benchmark."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from mailmarketer.delivery.bounces.apply import apply_pending_one, store_received

    slug = f"statements-{secrets.token_hex(3)}"
    messages = [
        (
            dsn(r["email"], token=r["token"], domain="bounce.bench.test", nonce=f"s{r['id']}"),
            [f"bounces+{r['token']}@bounce.bench.test"],
        )
        for r in seed(rows, f"{slug}.test", slug=slug)
    ]
    with CaptureQueriesContext(connection) as stored:
        store_received(messages)
    with CaptureQueriesContext(connection) as applied:
        while apply_pending_one():
            pass
    return {
        "dsns": rows,
        "store_statements": len(stored.captured_queries),
        "apply_statements": len(applied.captured_queries),
    }


def main(argv=None) -> int:
    import argparse
    import json
    import os

    import django

    parser = argparse.ArgumentParser(prog="python -m mailmarketer.delivery.bounces.testing")
    sub = parser.add_subparsers(dest="command", required=True)
    seeding = sub.add_parser("seed")
    seeding.add_argument("--rows", type=int, required=True)
    seeding.add_argument("--domain", default="dead.example")
    sub.add_parser("report")
    sub.add_parser("statements").add_argument("--rows", type=int, default=400)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
    django.setup()
    if args.command == "seed":
        for row in seed(args.rows, args.domain):
            print(json.dumps(row))
    elif args.command == "statements":
        print(json.dumps(statements(args.rows)))
    else:
        print(json.dumps(report()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def count_rows(database_url: str, table: str = "delivery_bounce") -> int:
    """Rows of a table of a process test's database, read directly (a Django process per poll
    costs a second of CPU)."""
    sql = f"SELECT count(*) FROM {table}"  # noqa: S608 - a table name of ours, never input
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with contextlib.closing(
            sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
        ) as db:
            return db.execute(sql).fetchone()[0]
    import psycopg

    with psycopg.connect(database_url) as db:
        return db.execute(sql).fetchone()[0]
