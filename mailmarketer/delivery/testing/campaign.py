"""Sets up and inspects a campaign in a real database, for tests and benchmarks that run real
worker processes (kill -9, SIGTERM, several workers) against it.

    python -m mailmarketer.delivery.testing.campaign seed --subscribers N --smtp-port P
    python -m mailmarketer.delivery.testing.campaign report      # one JSON line
    python -m mailmarketer.delivery.testing.campaign set-status paused|running
    python -m mailmarketer.delivery.testing.campaign message-size  # one JSON line

The database is whatever MM_DATABASE_URL names (migrated beforehand). Seeding writes rows in bulk,
not through the actions (a million subscribers through do_create_subscriber would take an hour),
and launches the campaign the way do_start_campaign does: status running, the audience snapshot
taken now; with --status draft it is launched later by `set-status running`, through the one
status writer (delivery/status.py), which also stamps started_at then.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

PARAGRAPH = (
    "<p>Hello {{ subscriber.first_name | default('there') }}, this autumn we roast three new "
    'single-origin coffees. Read about <a href="https://shop.example.com/autumn?utm=mail">the '
    "harvest</a>, the farmers and the tasting notes.</p>\n"
)


def body_of(kilobytes: int) -> str:
    repeats = max(1, kilobytes * 1024 // len(PARAGRAPH))
    return "".join(PARAGRAPH for _ in range(repeats)) + (
        '<p>Your city: {{ subscriber.attributes.city | default("unknown") }}. '
        '<a href="https://shop.example.com/offer/{{ subscriber.uuid }}">Your offer</a></p>'
    )


def seed(
    subscribers: int,
    smtp_port: int | None,
    body_kb: int,
    status: str = "running",
    batch: int = 5000,
    dkim: bool = False,
) -> int:
    from django.db import transaction
    from django.utils.timezone import now

    from mailmarketer.accounts.models import Workspace
    from mailmarketer.audience.models import MailingList, Subscriber, Subscription
    from mailmarketer.campaigns.models import Campaign
    from mailmarketer.delivery.models import SmtpServer

    workspace = Workspace.objects.create(
        name="Bench Coffee",
        slug="bench",
        sender_name="Bench Coffee",
        sender_email="news@bench.example.com",
        postal_address="1 Harbour Road, 5003 Bergen",
    )
    news = MailingList.objects.create(workspace=workspace, name="News", slug="news")
    cities = ["Oslo", "Bergen", "Lyon", "Porto", "Turku"]
    for start in range(0, subscribers, batch):
        with transaction.atomic():
            people = Subscriber.objects.bulk_create(
                [
                    Subscriber(
                        workspace=workspace,
                        email=f"person{i}@example.com",
                        name=f"Person {i}",
                        attributes={"city": cities[i % len(cities)], "score": i % 100},
                        source="import",
                    )
                    for i in range(start, min(subscribers, start + batch))
                ]
            )
            if people[0].pk is None:  # backends that do not return ids
                people = list(
                    Subscriber.objects.filter(workspace=workspace, pk__gt=0).order_by("pk")[
                        start : start + len(people)
                    ]
                )
            Subscription.objects.bulk_create(
                [
                    Subscription(
                        workspace=workspace,
                        subscriber=person,
                        mailing_list=news,
                        status="confirmed",
                        status_reason="by_import",
                        confirmed_at=now(),
                    )
                    for person in people
                ]
            )
    if dkim:
        from mailmarketer.delivery.dkim import generate_key
        from mailmarketer.delivery.models import DkimKey

        private_pem, public_b64 = generate_key(bits=2048)
        DkimKey.objects.create(
            workspace=workspace,
            domain="bench.example.com",
            selector="bench",
            private_key=private_pem,
            public_key=public_b64,
        )
    if smtp_port:
        SmtpServer.objects.create(
            workspace=workspace,
            name="Sink",
            host="127.0.0.1",
            port=smtp_port,
            tls_mode="none",
            max_connections=8,
        )
    campaign = Campaign.objects.create(
        workspace=workspace,
        name="Autumn roast",
        subject="Autumn, {{ subscriber.first_name }}",
        body_format="html",
        body=body_of(body_kb),
        # A draft is launched later by set-status running, which the send benchmark times from.
        status=status,
        started_at=now() if status == "running" else None,
        audience_max_id=Subscriber.objects.order_by("-pk").values_list("pk", flat=True).first(),
    )
    campaign.lists.set([news])
    return campaign.pk


def report() -> dict:
    from django.db.models import Count

    from mailmarketer.campaigns.models import Campaign
    from mailmarketer.delivery.models import Delivery

    campaign = Campaign.objects.order_by("-pk").first()
    rows = Delivery.objects.filter(campaign=campaign)
    counts = dict(rows.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    timing = rows.filter(status="sent").order_by("sent_at").values_list("sent_at", flat=True)
    first, last = timing.first(), timing.last()
    return {
        "campaign": campaign.pk if campaign else None,
        "status": campaign.status if campaign else None,
        "reason": campaign.status_reason if campaign else "",
        "planning_done": campaign.planning_done if campaign else False,
        "rows": rows.count(),
        "distinct_subscribers": rows.values("subscriber_id").distinct().count(),
        "counts": counts,
        "started_at": campaign.started_at.isoformat() if campaign and campaign.started_at else None,
        "first_sent_at": first.isoformat() if first else None,
        "last_sent_at": last.isoformat() if last else None,
        # Why rows were not sent (a few), so a benchmark that is not all `sent` says why.
        "not_sent": list(rows.exclude(status="sent").values_list("status", "smtp_reply")[:3]),
    }


def message_size(sample: int = 20) -> dict:
    """The size in bytes of the latest campaign's messages as the engine builds them (its
    `_build`, headers and both parts, DKIM-signed when the campaign is), for its first `sample`
    subscribers: what the send benchmark's limit must send to compare like with like."""
    from mailmarketer.audience.models import Subscriber
    from mailmarketer.campaigns.models import Campaign
    from mailmarketer.delivery import engine, ledger

    campaign = Campaign.objects.select_related("workspace").order_by("-pk").first()
    prepared = engine.prepare(campaign)
    sizes = []
    for subscriber in Subscriber.objects.filter(workspace_id=campaign.workspace_id)[:sample]:
        person = {name: getattr(subscriber, name) for name in engine.PEOPLE_FIELDS}
        row = ledger.Claimed(len(sizes) + 1, subscriber.pk, 1, subscriber.created_at)
        message, _ = engine._build(prepared, row, person)
        (message,) = engine._signed([message])  # a DKIM campaign's message is signed apart
        sizes.append(len(message.data))
    if not sizes:
        raise SystemExit("the campaign's workspace has no subscribers to build a message for")
    return {"mean": round(sum(sizes) / len(sizes)), "min": min(sizes), "max": max(sizes)}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailmarketer.settings")
    import django

    django.setup()
    parser = argparse.ArgumentParser(prog="python -m mailmarketer.delivery.testing.campaign")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--subscribers", type=int, required=True)
    s.add_argument("--smtp-port", type=int)
    s.add_argument("--body-kb", type=int, default=5)
    s.add_argument("--status", choices=["running", "draft"], default="running")
    s.add_argument("--dkim", action="store_true", help="sign with an RSA-2048 key")
    sub.add_parser("report")
    sub.add_parser("message-size")
    st = sub.add_parser("set-status")
    st.add_argument("status", choices=["paused", "running", "cancelled"])
    args = parser.parse_args(argv)
    if args.command == "seed":
        print(seed(args.subscribers, args.smtp_port, args.body_kb, args.status, dkim=args.dkim))
    elif args.command == "report":
        print(json.dumps(report()))
    elif args.command == "message-size":
        print(json.dumps(message_size()))
    else:
        from django.utils.timezone import now

        from mailmarketer.accounts.actors import Actor
        from mailmarketer.campaigns.models import Campaign
        from mailmarketer.delivery.status import set_campaign_status

        campaign = Campaign.objects.select_related("workspace").order_by("-pk").first()
        fields = {}
        if campaign.status == "draft" and args.status == "running":
            fields["started_at"] = now()  # the launch: the send benchmark times from here
        set_campaign_status(
            campaign, args.status, actor=Actor.system("test harness"), fields=fields
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
