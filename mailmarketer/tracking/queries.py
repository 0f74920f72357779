"""Reads for the campaign reports and a person's activity timeline.

Reports read the roll-ups (CampaignStat, CampaignDomainStat: rollups.py keeps them), delivery's
per-campaign ledger counts for delivered and bounced (delivery/counters.py), and the consent
ledger for unsubscribes: never the events nor the ledger rows. The timeline reads the person's
own events (one index range: emailevent_subscriber_at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Sum

from mailmarketer.audience.models import ConsentRecord
from mailmarketer.campaigns.models import Campaign, CampaignLink
from mailmarketer.delivery.counters import ledger_counts
from mailmarketer.delivery.models import Delivery
from mailmarketer.lib.charts import Chart, chart

from .models import CampaignDomainStat, CampaignStat, EmailEvent, EmailEventKind, Grain

HOURLY_SPAN = timedelta(hours=48)
TOP_DOMAINS = 20
TIMELINE_LIMIT = 200


@dataclass
class Figures:
    """One side (human or machine) of a campaign's opens and clicks."""

    opens: int = 0
    unique_opens: int = 0
    clicks: int = 0
    unique_clicks: int = 0

    def rate(self, part: int, whole: int) -> float | None:
        return round(100.0 * part / whole, 1) if whole else None


@dataclass
class Report:
    campaign: Campaign
    delivered: int
    bounced: int
    unsubscribes: int
    human: Figures
    machine: Figures
    chart: Chart
    links: list[dict] = field(default_factory=list)
    domains: list[dict] = field(default_factory=list)

    @property
    def open_rate(self) -> float | None:
        return self.human.rate(self.human.unique_opens, self.delivered)

    @property
    def ctr(self) -> float | None:
        """Click-through rate: people who clicked, of those the message reached."""
        return self.human.rate(self.human.unique_clicks, self.delivered)

    @property
    def click_to_open(self) -> float | None:
        return self.human.rate(self.human.unique_clicks, self.human.unique_opens)

    def as_dict(self) -> dict:
        def side(f: Figures) -> dict:
            return {
                "opens": f.opens,
                "unique_opens": f.unique_opens,
                "clicks": f.clicks,
                "unique_clicks": f.unique_clicks,
            }

        return {
            "campaign": {"id": self.campaign.pk, "name": self.campaign.name},
            "delivered": self.delivered,
            "bounced": self.bounced,
            "unsubscribes": self.unsubscribes,
            "human": side(self.human),
            "machine": side(self.machine),
            "open_rate": self.open_rate,
            "click_through_rate": self.ctr,
            "click_to_open_rate": self.click_to_open,
            "over_time": [
                {
                    "at": row["at"],
                    "grain": row["grain"],
                    **dict(zip(self.chart.series, row["values"], strict=True)),
                }
                for row in self.chart.rows
            ],
            "links": self.links,
            "domains": self.domains,
        }


def campaign_report(campaign: Campaign) -> Report:
    # Kept by delivery's triggers, exact at every moment (delivery/models_counts.py): counting
    # the ledger rows here read every row of the campaign.
    ledger = ledger_counts(campaign.pk)
    bounced = ledger.get("bounced", 0)
    # A bounce arriving after the relay accepted the message turns a sent row into bounced:
    # delivered is what was accepted and did not come back.
    delivered = ledger.get("sent", 0)
    human, machine = Figures(), Figures()
    totals = (
        CampaignStat.objects.filter(campaign_id=campaign.pk, grain=Grain.DAY, link_id=0)
        .values("kind", "machine")
        .annotate(total=Sum("total"), uniques=Sum("uniques"))
    )
    for row in totals:
        side = machine if row["machine"] else human
        if row["kind"] == EmailEventKind.OPEN:
            side.opens, side.unique_opens = row["total"], row["uniques"]
        else:
            side.clicks, side.unique_clicks = row["total"], row["uniques"]
    return Report(
        campaign=campaign,
        delivered=delivered,
        bounced=bounced,
        unsubscribes=unsubscribes_of(campaign),
        human=human,
        machine=machine,
        chart=over_time(campaign),
        links=links_of(campaign),
        domains=domains_of(campaign),
    )


def unsubscribes_of(campaign: Campaign) -> int:
    """People who unsubscribed through this campaign's link (the consent ledger names it)."""
    return (
        ConsentRecord.objects.filter(
            workspace_id=campaign.workspace_id,
            action=ConsentRecord.Action.WITHDRAW,
            source_type=ConsentRecord.SourceType.SUBSCRIBER,
            source_id=str(campaign.pk),
        )
        .values("subscriber_id")
        .distinct()
        .count()
    )


SERIES = ("Opens", "Clicks", "Machine opens", "Machine clicks")


def over_time(campaign: Campaign) -> Chart:
    """Hourly for the first 48 hours after sending started (to the end of that UTC day), then
    daily: the hours where most activity is, without thousands of points for an old campaign."""
    rows = CampaignStat.objects.filter(campaign_id=campaign.pk, link_id=0).values(
        "grain", "bucket", "kind", "machine", "total"
    )
    start = campaign.started_at
    cutoff = None
    if start is not None:
        end = start.replace(minute=0, second=0, microsecond=0) + HOURLY_SPAN
        cutoff = end.replace(hour=0) + timedelta(days=1)
    points: dict[tuple, list[int]] = {}
    for row in rows:
        grain, bucket = row["grain"], row["bucket"]
        if cutoff is None:
            wanted = grain == Grain.DAY
        else:
            wanted = (grain == Grain.HOUR) == (bucket < cutoff)
        if not wanted:
            continue
        values = points.setdefault((bucket, grain), [0, 0, 0, 0])
        index = (0 if row["kind"] == EmailEventKind.OPEN else 1) + (2 if row["machine"] else 0)
        values[index] += row["total"]
    ordered = sorted(points)
    return chart(
        f"campaign-{campaign.pk}-time",
        "Opens and clicks over time",
        [bucket for bucket, _ in ordered],
        {label: [points[key][i] for key in ordered] for i, label in enumerate(SERIES)},
        grain=["hour" if grain == Grain.HOUR else "day" for _, grain in ordered],
    )


def links_of(campaign: Campaign) -> list[dict]:
    counts: dict[int, dict] = {}
    for row in (
        CampaignStat.objects.filter(campaign_id=campaign.pk, grain=Grain.DAY, link_id__gt=0)
        .values("link_id", "machine")
        .annotate(total=Sum("total"), uniques=Sum("uniques"))
    ):
        entry = counts.setdefault(row["link_id"], {"clicks": 0, "unique_clicks": 0, "machine": 0})
        if row["machine"]:
            entry["machine"] += row["total"]
        else:
            entry["clicks"] += row["total"]
            entry["unique_clicks"] += row["uniques"]
    empty = {"clicks": 0, "unique_clicks": 0, "machine": 0}
    return [
        {"id": link.pk, "url": link.url, **counts.get(link.pk, empty)}
        for link in CampaignLink.objects.filter(campaign=campaign).order_by("position")
    ]


def domains_of(campaign: Campaign) -> list[dict]:
    found: dict[str, dict] = {}
    for row in CampaignDomainStat.objects.filter(campaign_id=campaign.pk).values(
        "domain", "kind", "machine", "total", "uniques"
    ):
        entry = found.setdefault(
            row["domain"] or "(unknown)",
            {"unique_opens": 0, "unique_clicks": 0, "machine_opens": 0, "machine_clicks": 0},
        )
        opened = row["kind"] == EmailEventKind.OPEN
        if row["machine"]:
            entry["machine_opens" if opened else "machine_clicks"] += row["total"]
        else:
            entry["unique_opens" if opened else "unique_clicks"] += row["uniques"]
    ordered = sorted(found.items(), key=lambda kv: (-kv[1]["unique_opens"], kv[0]))
    return [{"domain": domain, **counts} for domain, counts in ordered[:TOP_DOMAINS]]


@dataclass
class TimelineEntry:
    at: datetime
    what: str  # "sent", "bounced", "open", "click"
    campaign_id: int
    campaign_name: str
    url: str = ""
    agent_class: str = ""
    user_agent: str = ""
    ip: str = ""
    machine: bool = False


def timeline_of(subscriber) -> list[TimelineEntry]:
    """The person's messages, opens and clicks, newest first (identified events only)."""
    names = {}
    entries = []
    for row in (
        Delivery.objects.filter(subscriber=subscriber, sent_at__isnull=False)
        .order_by("-sent_at")
        .values("campaign_id", "campaign__name", "status", "sent_at")[:TIMELINE_LIMIT]
    ):
        names[row["campaign_id"]] = row["campaign__name"]
        entries.append(
            TimelineEntry(
                at=row["sent_at"],
                what="bounced" if row["status"] == "bounced" else "sent",
                campaign_id=row["campaign_id"],
                campaign_name=row["campaign__name"],
            )
        )
    events = list(
        EmailEvent.objects.filter(subscriber=subscriber, workspace_id=subscriber.workspace_id)
        .order_by("-at")
        .values(
            "at", "kind", "campaign_id", "link_id", "agent_class", "user_agent", "ip", "machine"
        )[:TIMELINE_LIMIT]
    )
    missing = {e["campaign_id"] for e in events} - set(names)
    names.update(Campaign.objects.filter(pk__in=missing).values_list("pk", "name"))
    urls = dict(
        CampaignLink.objects.filter(
            pk__in={e["link_id"] for e in events if e["link_id"]}
        ).values_list("pk", "url")
    )
    for e in events:
        entries.append(
            TimelineEntry(
                at=e["at"],
                what=e["kind"],
                campaign_id=e["campaign_id"],
                campaign_name=names.get(e["campaign_id"], ""),
                url=urls.get(e["link_id"], ""),
                agent_class=e["agent_class"],
                user_agent=e["user_agent"],
                ip=e["ip"] or "",
                machine=e["machine"],
            )
        )
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:TIMELINE_LIMIT]
