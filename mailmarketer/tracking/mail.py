"""Email opens and clicks: what one hit on `/t/o/<token>` or `/t/c/<token>` stores.

`record_hit` is the one writer of EmailEvent. Per hit, in one transaction: at most one event row
and, when the hit is identified and a person's (not a machine's), the person's facts
(facts.record_facts: opened campaign:<id>, and for a click also clicked campaign:<id> and
link:<id>; a click counts as an open). It never
raises: a database that cannot be written loses the event, never the person's redirect.

Identified or anonymous (consent.identified_allowed): an identified event names the ledger row
and the person; an anonymous one names neither, only `recipient_key`, a keyed hash of the ledger
row that unique counts need. The campaign's tracking mode at the time of the hit decides (off:
nothing is stored, the redirect still works).

Machine events are stored and flagged, never dropped (classify_agent, machine_reason):
- opens through mail-privacy proxies and image caches: Apple Mail Privacy Protection (its
  fetches say only "Mozilla/5.0"), Google's image proxy, Yahoo's;
- clicks by link scanners: a known scanner or script user agent or none at all, a HEAD request,
  a click within TRACKING_SCANNER_WINDOW_S of delivery, or a click on another link of the same
  message within BURST_SECONDS of the last (a scanner follows every link at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.facts import Hit, object_key, record_facts
from mailmarketer.audience.models import FactKind

from .consent import identified_allowed
from .models import (
    USER_AGENT_MAX,
    AgentClass,
    EmailEventKind,
    MachineReason,
)

logger = logging.getLogger(__name__)

# Two clicks on different links of one message this close together are a scanner's.
BURST_SECONDS = 2
RECIPIENT_KEY_SALT = b"mailmarketer.tracking.recipient"

_PROXIES = (
    ("googleimageproxy", AgentClass.GOOGLE_PROXY),
    ("ggpht.com", AgentClass.GOOGLE_PROXY),
    ("yahoomailproxy", AgentClass.YAHOO_PROXY),
)
# Lower case; a substring of the user agent. Security gateways that rewrite and pre-fetch links,
# and the scripts and libraries scanners are built with.
_SCANNERS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "messagelabs",
    "symantec",
    "fortiguard",
    "trendmicro",
    "sophos",
    "safelinks",
    "bitdefender",
    "urlscan",
    "bot",
    "crawler",
    "spider",
    "scanner",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "apache-httpclient",
    "libwww",
    "headlesschrome",
    "phantomjs",
)
_MAIL_CLIENTS = ("thunderbird", "outlook", "microsoft office", "airmail", "spark", "applemail")
_BROWSERS = ("chrome", "firefox", "safari", "edg/", "opera", "gecko")


def classify_agent(user_agent: str) -> str:
    """The AgentClass of a user-agent string."""
    ua = user_agent.strip()
    if not ua:
        return AgentClass.NONE
    # Apple's privacy proxy fetches with exactly this, and no browser sends it alone.
    if ua == "Mozilla/5.0":
        return AgentClass.APPLE_MPP
    low = ua.lower()
    for needle, agent_class in _PROXIES:
        if needle in low:
            return agent_class
    if any(needle in low for needle in _SCANNERS):
        return AgentClass.SCANNER
    if any(needle in low for needle in _MAIL_CLIENTS):
        return AgentClass.MAIL_CLIENT
    if any(needle in low for needle in _BROWSERS):
        return AgentClass.BROWSER
    return AgentClass.OTHER


_PROXY_CLASSES = frozenset({AgentClass.APPLE_MPP, AgentClass.GOOGLE_PROXY, AgentClass.YAHOO_PROXY})


def machine_reason(
    *, kind: str, agent_class: str, method: str, at: datetime, sent_at: datetime | None
) -> str:
    """Why this hit is a machine's (a MachineReason), or "" for a person's; the burst rule
    needs the recipient's earlier clicks and is applied by record_hit."""
    if kind == EmailEventKind.OPEN:
        return MachineReason.PROXY if agent_class in _PROXY_CLASSES else ""
    if method == "HEAD":
        return MachineReason.HEAD
    if agent_class in (AgentClass.SCANNER, AgentClass.NONE):
        return MachineReason.SCANNER_AGENT
    window = timedelta(seconds=settings.TRACKING_SCANNER_WINDOW_S)
    if sent_at is not None and timedelta(0) <= at - sent_at < window:
        return MachineReason.FAST
    return ""


def recipient_key(delivery_id: int) -> str:
    """A keyed hash of the ledger row: the same for every hit of one message, and naming nobody
    without the secret key."""
    key = hashlib.sha256(RECIPIENT_KEY_SALT + settings.SECRET_KEY.encode()).digest()
    digest = hmac.new(key, str(delivery_id).encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def stored_ip(ip: str | None) -> str | None:
    """The address as kept with an event: its network only (/24 for IPv4, /48 for IPv6), so a
    report can tell networks apart and nobody's own address is kept."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


@dataclass(frozen=True)
class Target:
    """What a valid token points at."""

    delivery_id: int
    workspace_id: int
    campaign_id: int
    subscriber_id: int | None
    sent_at: datetime | None
    domain: str
    mode: str
    requires_consent: bool
    url: str | None = None  # the stored URL of a click


# The hot path is three statements written out rather than built by the ORM: building the
# queries cost ~1.7 ms each on this machine class, ten times running them (profiled with
# benchmarks/track_bench.py's data), and a click redirect is what a campaign's readers wait on.

# The ledger row, its campaign's and workspace's tracking settings, the person's address, and
# (for a click) the link, only when it belongs to the row's campaign.
_TARGET_SQL = """
SELECT d.workspace_id, d.campaign_id, d.subscriber_id, d.sent_at, s.email,
       c.tracking_mode, w.tracking_mode, w.tracking_requires_consent, l.url
FROM delivery_delivery d
JOIN campaigns_campaign c ON c.id = d.campaign_id
JOIN accounts_workspace w ON w.id = d.workspace_id
LEFT JOIN audience_subscriber s ON s.id = d.subscriber_id
LEFT JOIN campaigns_campaignlink l ON l.id = %s AND l.campaign_id = d.campaign_id
WHERE d.id = %s
"""

# What this recipient did before in this campaign, folded: one row per kind, link and
# human/machine with the latest time (at most 2 x 2 x links rows, whatever the hits).
_EARLIER_SQL = """
SELECT kind, link_id, machine, MAX(at)
FROM tracking_emailevent
WHERE campaign_id = %s AND recipient_key = %s
GROUP BY kind, link_id, machine
"""

_INSERT_SQL = """
INSERT INTO tracking_emailevent
    (workspace_id, campaign_id, kind, at, subscriber_id, delivery_id, link_id, recipient_key,
     domain, agent_class, user_agent, machine, machine_reason, ip, first_open, first_click,
     first_link_click)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def find_target(delivery_id: int, link_id: int | None = None) -> Target | None:
    """The ledger row (and for a click, the stored link of the same campaign), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_TARGET_SQL, [link_id or 0, delivery_id])
        row = cursor.fetchone()
    if row is None:
        return None
    ws, campaign, person, sent_at, email, campaign_mode, ws_mode, requires, url = row
    if link_id is not None and url is None:
        return None
    if isinstance(sent_at, str) or (sent_at is not None and sent_at.tzinfo is None):
        sent_at = _aware(sent_at)
    return Target(
        delivery_id=delivery_id,
        workspace_id=ws,
        campaign_id=campaign,
        subscriber_id=person,
        sent_at=sent_at,
        domain=(email or "").rpartition("@")[2].lower()[:100],
        mode=campaign_mode or ws_mode,
        requires_consent=bool(requires),
        url=url,
    )


def _aware(value) -> datetime:
    """A time as SQLite hands it back to a raw cursor (text, UTC) made aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def record_hit(
    target: Target,
    *,
    kind: str,
    link_id: int | None,
    at: datetime,
    method: str = "GET",
    user_agent: str = "",
    ip: str | None = None,
) -> bool:
    """Store one hit (see the module docstring); whether it was stored."""
    if target.mode == TrackingMode.OFF:
        return False
    try:
        with transaction.atomic():
            return _record(target, kind, link_id, at, method, user_agent, ip)
    except DatabaseError:
        logger.exception("tracking hit not stored (campaign %s)", target.campaign_id)
        return False


def _record(target: Target, kind, link_id, at, method, user_agent, ip) -> bool:
    user_agent = (user_agent or "")[:USER_AGENT_MAX]
    agent_class = classify_agent(user_agent)
    reason = machine_reason(
        kind=kind, agent_class=agent_class, method=method, at=at, sent_at=target.sent_at
    )
    key = recipient_key(target.delivery_id)
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(_EARLIER_SQL, [target.campaign_id, key])
        earlier = [(k, link, bool(m), _aware(last)) for k, link, m, last in cursor.fetchall()]
    is_click = kind == EmailEventKind.CLICK
    if is_click and not reason:
        since = at - timedelta(seconds=BURST_SECONDS)
        if any(k == EmailEventKind.CLICK and link != link_id and last >= since
               for k, link, _, last in earlier):  # fmt: skip
            reason = MachineReason.BURST
    machine = bool(reason)
    seen = {(k, link) for k, link, m, _ in earlier if m == machine}
    identified = identified_allowed(
        mode=target.mode,
        requires_consent=target.requires_consent,
        workspace_id=target.workspace_id,
        subscriber_id=target.subscriber_id,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL,
            [
                target.workspace_id,
                target.campaign_id,
                kind,
                ops.adapt_datetimefield_value(at),
                target.subscriber_id if identified else None,
                target.delivery_id if identified else None,
                link_id,
                key,
                target.domain,
                agent_class,
                user_agent,
                machine,
                reason,
                stored_ip(ip),
                not seen,
                is_click and not any(k == EmailEventKind.CLICK for k, _ in seen),
                is_click and (EmailEventKind.CLICK, link_id) not in seen,
            ],
        )
    # Facts are what segments read ("opened campaign X"): a proxy's prefetch or a scanner's
    # click is nobody's behaviour, so only a person's events become facts.
    if identified and not machine:
        ws, person = target.workspace_id, target.subscriber_id
        campaign = object_key("campaign", target.campaign_id)
        hits = [Hit(ws, person, FactKind.OPENED, campaign, at)]
        if is_click:
            hits.append(Hit(ws, person, FactKind.CLICKED, campaign, at))
            hits.append(Hit(ws, person, FactKind.CLICKED, object_key("link", link_id), at))
        record_facts(hits)
    return True
