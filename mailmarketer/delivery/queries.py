"""Reads for delivery, always inside one workspace (an id from another one finds nothing).

The ledger, for the campaign pages and the API: a campaign's progress, the ledger in keyset
pages, and its rows for an export. Nothing here masks: the callers decide what the reader may see
(audience.emails.mask_email).

Sending settings: the relays and DKIM keys of a workspace. Lists leave the secret columns unread
(deferred): a page that shows "password set" has no business decrypting the password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import BooleanField, Count, ExpressionWrapper, Q
from django.utils.timezone import now

from mailmarketer.campaigns.models import Campaign

from . import dkim
from .mime import ascii_domain
from .models import Delivery, DkimKey, SmtpServer

Status = Delivery.Status
# The order in which the pages show the statuses.
STATUS_ORDER = tuple(Status.values)
RATE_WINDOW_S = 60
LEDGER_PAGE = 50


@dataclass
class Progress:
    """How far a campaign got, from its ledger rows (see campaign_progress)."""

    counts: dict[str, int]
    total: int
    sent: int
    rate: float  # messages a second over the last minute (or since launch, when sooner)
    eta_seconds: int | None  # None: unknown (nothing sent lately, or nothing left)
    planning_done: bool
    percent: float = field(default=0.0)

    @property
    def remaining(self) -> int:
        return self.counts[Status.QUEUED] + self.counts[Status.SENDING]

    @property
    def failed(self) -> int:
        return self.counts[Status.FAILED]


def campaign_progress(campaign: Campaign) -> Progress:
    """Counts by status and the recent send rate in one statement: GROUP BY status over the
    campaign's rows, with the rows sent within the rate window counted alongside, so the numbers
    are one snapshot of the ledger and a poll every two seconds costs one round trip."""
    moment = now()
    window = RATE_WINDOW_S
    if campaign.started_at is not None:
        # A campaign launched 10 s ago has sent for 10 s, not for a minute.
        since_start = (moment - campaign.started_at).total_seconds()
        window = max(1.0, min(RATE_WINDOW_S, since_start))
    cutoff = moment - timedelta(seconds=window)
    rows = (
        Delivery.objects.filter(workspace_id=campaign.workspace_id, campaign_id=campaign.pk)
        .values("status")
        .annotate(n=Count("id"), recent=Count("id", filter=Q(sent_at__gte=cutoff)))
        .order_by()
    )
    counts = dict.fromkeys(STATUS_ORDER, 0)
    recent = 0
    for row in rows:
        counts[row["status"]] = row["n"]
        if row["status"] in (Status.SENT, Status.BOUNCED):  # a bounced row was sent first
            recent += row["recent"]
    total = sum(counts.values())
    sent = counts[Status.SENT] + counts[Status.BOUNCED]
    rate = recent / window if recent else 0.0
    remaining = counts[Status.QUEUED] + counts[Status.SENDING]
    eta = round(remaining / rate) if rate and remaining else None
    return Progress(
        counts=counts,
        total=total,
        sent=sent,
        rate=rate,
        eta_seconds=eta,
        planning_done=campaign.planning_done,
        percent=round(100 * sent / total, 1) if total else 0.0,
    )


def sent_and_total(campaigns: list[Campaign]) -> dict[int, tuple[int, int]]:
    """(sent, total) per campaign id for a page of campaigns, in one statement."""
    ids = [c.pk for c in campaigns]
    result = dict.fromkeys(ids, (0, 0))
    if not ids:
        return result
    rows = (
        Delivery.objects.filter(campaign_id__in=ids)
        .values("campaign_id")
        .annotate(
            total=Count("id"),
            sent=Count("id", filter=Q(status__in=(Status.SENT, Status.BOUNCED))),
        )
        .order_by()
    )
    for row in rows:
        result[row["campaign_id"]] = (row["sent"], row["total"])
    return result


def _ledger(campaign: Campaign, status: str | None):
    rows = Delivery.objects.filter(workspace_id=campaign.workspace_id, campaign_id=campaign.pk)
    if status:
        rows = rows.filter(status=status)
    return rows


def ledger_page(
    campaign: Campaign, *, status: str | None = None, after: int | None = None, limit=LEDGER_PAGE
) -> tuple[list[Delivery], int | None]:
    """One page of the ledger in id order (keyset: rows after `after`), with the recipient and
    the server; returns the rows and the id to continue after (None on the last page)."""
    rows = _ledger(campaign, status).select_related("subscriber", "server").order_by("id")
    if after is not None:
        rows = rows.filter(id__gt=after)
    page = list(rows[: limit + 1])
    if len(page) > limit:
        return page[:limit], page[limit - 1].pk
    return page, None


LEDGER_EXPORT_FIELDS = (
    "id",
    "subscriber__uuid",
    "subscriber__email",
    "status",
    "attempts",
    "sent_at",
    "smtp_reply",
    "server__name",
    "message_id",
)


def ledger_for_export(campaign: Campaign, *, status: str | None = None):
    """The ledger's rows as tuples of LEDGER_EXPORT_FIELDS, in id order (iterate with
    .iterator(): a million rows are never held at once)."""
    return _ledger(campaign, status).order_by("id").values_list(*LEDGER_EXPORT_FIELDS)


# -- sending settings: relays and DKIM keys ---------------------------------------------------


def _servers(workspace):
    return (
        SmtpServer.objects.filter(workspace=workspace)
        .defer("password")
        .annotate(password_set=ExpressionWrapper(~Q(password=""), output_field=BooleanField()))
    )


def smtp_servers_for(workspace) -> list[SmtpServer]:
    """The workspace's relays by name, each with `password_set` and without its password."""
    return list(_servers(workspace).order_by("name", "pk"))


def get_smtp_server(workspace, server_id) -> SmtpServer | None:
    """One relay of the workspace (with `password_set`, password unread), or None."""
    return _servers(workspace).filter(pk=server_id).first()


def uses_outbox(workspace) -> bool:
    """True when no relay is enabled: campaigns then go to the local outbox."""
    return not SmtpServer.objects.filter(workspace=workspace, enabled=True).exists()


def dkim_keys_for(workspace) -> list[DkimKey]:
    """The workspace's DKIM keys by domain, private keys unread."""
    return list(DkimKey.objects.filter(workspace=workspace).defer("private_key").order_by("domain"))


def get_dkim_key(workspace, key_id) -> DkimKey | None:
    return DkimKey.objects.filter(workspace=workspace, pk=key_id).defer("private_key").first()


def dns_record_for(key: DkimKey) -> tuple[str, str]:
    """(name, value) of the TXT record that publishes the key's public half."""
    return dkim.dns_record(key.selector, key.domain, key.public_key)


def sender_domain(workspace) -> str:
    """The domain of the workspace's sender address in ASCII, or "" when there is none."""
    domain = (workspace.sender_email or "").rpartition("@")[2].strip().lower()
    if not domain:
        return ""
    try:
        return ascii_domain(domain).lower()
    except ValueError:
        return ""
