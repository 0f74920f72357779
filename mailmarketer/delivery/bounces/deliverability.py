"""The deliverability page's figures and the DNS check.

Rates: per campaign, the share of its delivered messages (rows `sent` or `bounced`) that bounced
hard (rows `bounced`) and that drew a complaint (Bounce rows of kind complaint); per sending
domain (the campaign's From domain) the same summed over the last 30 days' campaigns; per
recipient domain (the top domains by reports in 30 days) the hard bounces and complaints over
the messages delivered there by the last 30 days' campaigns. Thresholds are Gmail's bulk-sender
ones (complaints: keep under 0.1 %, never reach 0.3 %); bounces warn at 2 % and alarm at 5 %,
where mailbox providers start to throttle.

DNS: the records a sender publishes (SPF for the return path's domain, the DKIM key of each
signing domain, a DMARC policy with its reporting address), looked up with dnspython through
`resolve_txt`, which the tests replace with a stub: nothing leaves the machine in a test.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, Value
from django.db.models.functions import StrIndex, Substr
from django.utils.timezone import now

from mailmarketer.campaigns.models import Campaign
from mailmarketer.lib.charts import Chart, chart

from ..models import Delivery, DkimKey
from .models import Bounce

COMPLAINT_WARN, COMPLAINT_ALARM = 0.001, 0.003
BOUNCE_WARN, BOUNCE_ALARM = 0.02, 0.05
DAYS = 30


def level(rate: float, warn: float, alarm: float) -> str:
    return "alarm" if rate >= alarm else "warn" if rate >= warn else "ok"


@dataclass
class Rates:
    label: str
    delivered: int = 0
    bounced: int = 0
    complaints: int = 0

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.delivered if self.delivered else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.delivered if self.delivered else 0.0

    @property
    def bounce_level(self) -> str:
        return level(self.bounce_rate, BOUNCE_WARN, BOUNCE_ALARM)

    @property
    def complaint_level(self) -> str:
        return level(self.complaint_rate, COMPLAINT_WARN, COMPLAINT_ALARM)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def campaign_rates(workspace, limit: int = 20) -> list[tuple[Campaign, Rates]]:
    campaigns = list(
        Campaign.objects.filter(workspace=workspace, started_at__isnull=False).order_by(
            "-started_at"
        )[:limit]
    )
    ids = [c.pk for c in campaigns]
    delivered = dict(
        Delivery.objects.filter(campaign_id__in=ids, status__in=("sent", "bounced"))
        .values_list("campaign_id")
        .annotate(n=Count("id"))
    )
    bounced = dict(
        Delivery.objects.filter(campaign_id__in=ids, status="bounced")
        .values_list("campaign_id")
        .annotate(n=Count("id"))
    )
    complaints = dict(
        Bounce.objects.filter(workspace=workspace, campaign_id__in=ids, kind=Bounce.Kind.COMPLAINT)
        .values_list("campaign_id")
        .annotate(n=Count("id"))
    )
    return [
        (c, Rates(c.name, delivered.get(c.pk, 0), bounced.get(c.pk, 0), complaints.get(c.pk, 0)))
        for c in campaigns
    ]


def sending_domain_rates(workspace, per_campaign) -> list[Rates]:
    since = now() - timedelta(days=DAYS)
    found: dict[str, Rates] = {}
    for campaign, rates in per_campaign:
        if campaign.started_at < since:
            continue
        domain = _domain(campaign.from_email or workspace.sender_email or "")
        total = found.setdefault(domain, Rates(domain or "(no From address)"))
        total.delivered += rates.delivered
        total.bounced += rates.bounced
        total.complaints += rates.complaints
    return sorted(found.values(), key=lambda r: -r.delivered)


def recipient_domain_rates(workspace, limit: int = 10) -> list[Rates]:
    """The recipient domains with the most reports in DAYS days, each with its rates: hard
    bounces and complaints over the messages delivered to that domain by the campaigns started
    in those days (ledger rows `sent` or `bounced`, grouped by the domain of the person's
    address; one grouped query over those campaigns' rows, restricted to these domains)."""
    top = recipient_domains(workspace, limit)
    if not top:
        return []
    since = now() - timedelta(days=DAYS)
    domain = Substr("subscriber__email_key", StrIndex("subscriber__email_key", Value("@")) + 1)
    delivered = dict(
        Delivery.objects.filter(
            workspace=workspace,
            campaign__started_at__gte=since,
            status__in=(Delivery.Status.SENT, Delivery.Status.BOUNCED),
        )
        .annotate(domain=domain)
        .filter(domain__in=[d["recipient_domain"] for d in top])
        .values_list("domain")
        .annotate(n=Count("id"))
    )
    return [
        Rates(
            d["recipient_domain"],
            delivered.get(d["recipient_domain"], 0),
            d["hard"],
            d["complaints"],
        )
        for d in top
    ]


def recipient_domains(workspace, limit: int = 20) -> list[dict]:
    since = now() - timedelta(days=DAYS)
    rows = (
        Bounce.objects.filter(workspace=workspace, received_at__gte=since)
        .exclude(recipient_domain="")
        .values("recipient_domain")
        .annotate(
            hard=Count("id", filter=Q(kind=Bounce.Kind.HARD)),
            soft=Count("id", filter=Q(kind=Bounce.Kind.SOFT)),
            complaints=Count("id", filter=Q(kind=Bounce.Kind.COMPLAINT)),
            total=Count("id"),
        )
        .order_by("-total", "recipient_domain")[:limit]
    )
    return list(rows)


def daily_chart(workspace) -> Chart:
    """The reports per day as the shared chart component draws them (and tables them)."""
    days = daily(workspace)
    return chart(
        "deliverability-daily",
        "Reports per day (UTC)",
        [datetime.fromisoformat(d["day"]).replace(tzinfo=UTC) for d in days],
        {
            "Hard bounces": [d["hard"] for d in days],
            "Soft bounces": [d["soft"] for d in days],
            "Complaints": [d["complaint"] for d in days],
        },
        grain=["day"] * len(days),
    )


def daily(workspace) -> list[dict]:
    """Reports per day over DAYS days (UTC), oldest first, zero days included."""
    since = (now() - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    counts: dict[str, Counter] = defaultdict(Counter)
    for received, kind in (
        Bounce.objects.filter(
            workspace=workspace, received_at__gte=since, kind__in=("hard", "soft", "complaint")
        )
        .values_list("received_at", "kind")
        .iterator()
    ):
        counts[received.date().isoformat()][kind] += 1
    days = []
    for offset in range(DAYS):
        day = (since + timedelta(days=offset)).date().isoformat()
        days.append({"day": day, **{k: counts[day][k] for k in ("hard", "soft", "complaint")}})
    return days


# -- DNS ---------------------------------------------------------------------------------------


@dataclass
class Record:
    kind: str  # SPF, DKIM, DMARC
    name: str
    value: str  # what to publish (the expected value, or its shape)
    status: str = ""  # "", ok, missing, wrong
    found: list[str] = field(default_factory=list)
    advice: str = ""


def resolve_txt(name: str) -> list[str]:
    """TXT strings at `name` (each record's pieces joined), [] when there are none."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=5)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.Timeout:
        raise LookupError(f"no answer for {name} within 5 s") from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def records_for(workspace) -> list[Record]:
    domain = _domain(workspace.sender_email or "")
    bounce_domain = settings.BOUNCE_DOMAIN or domain
    records = []
    if bounce_domain:
        records.append(
            Record("SPF", bounce_domain, "v=spf1 include:<your relay's SPF domain> -all")
        )
    for key in DkimKey.objects.filter(workspace=workspace).order_by("domain"):
        public = "".join(
            line for line in key.public_key.splitlines() if line and not line.startswith("-----")
        )
        records.append(
            Record("DKIM", f"{key.selector}._domainkey.{key.domain}", f"v=DKIM1; k=rsa; p={public}")
        )
    if domain:
        records.append(
            Record("DMARC", f"_dmarc.{domain}", f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}")
        )
    return records


def check(records: list[Record], resolve=None) -> list[Record]:
    resolve = resolve or resolve_txt
    for record in records:
        try:
            found = resolve(record.name)
        except LookupError as exc:
            record.status, record.advice = "missing", str(exc)
            continue
        record.found = found[:5]
        if record.kind == "SPF":
            spf = [t for t in found if t.lower().startswith("v=spf1")]
            if not spf:
                record.status, record.advice = "missing", "publish an SPF record naming your relays"
            elif len(spf) > 1:
                record.status, record.advice = (
                    "wrong",
                    "more than one SPF record: receivers ignore both",
                )
            elif spf[0].rstrip().endswith("+all"):
                record.status, record.advice = "wrong", "'+all' lets anyone send as this domain"
            else:
                record.status = "ok"
        elif record.kind == "DKIM":
            expected = record.value.split("p=", 1)[1]
            values = [t.replace(" ", "") for t in found]
            if not values:
                record.status, record.advice = "missing", "publish this key's record"
            elif any(f"p={expected}" in v for v in values):
                record.status = "ok"
            else:
                record.status, record.advice = "wrong", "the published key is not this key"
        else:
            dmarc = [t for t in found if t.lower().replace(" ", "").startswith("v=dmarc1")]
            if not dmarc:
                record.status, record.advice = "missing", "publish a DMARC policy"
            elif "p=" not in dmarc[0].replace(" ", "").lower():
                record.status, record.advice = "wrong", "the policy (p=) is missing"
            elif "rua=" not in dmarc[0].lower():
                record.status, record.advice = "ok", "add rua=mailto:... to receive the reports"
            else:
                record.status = "ok"
    return records
