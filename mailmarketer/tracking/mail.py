"""Email opens and clicks: what a hit on `/t/o/<token>` or `/t/c/<token>` becomes.

Two halves. The edge (views_mail.py) reads the token (a MAC, no database), finds a click's
stored URL through a per-process cache (`link_url`), appends the hit to the spool
(mail_spool.py, one fsync shared by many requests) and answers; nothing is written to the
database while the person waits. The worker (`mail_ingest.ingest_mail_one`) then hands batches
of spooled hits to `store_hits`, the one writer of EmailEvent: per batch, one multi-row INSERT
of events and one call to facts.record_facts (opened campaign:<id>, and for a click also
clicked campaign:<id> and link:<id>; a click counts as an open), only for a person's
identified events.

Identified or anonymous (consent.identified_allowed): an identified event names the ledger row
and the person; an anonymous one names neither, only `recipient_key`, a keyed hash of the ledger
row that unique counts need. The campaign's tracking mode when the hit is ingested (seconds
after it) decides; off: nothing is stored, the redirect still works.

Machine events are stored and flagged, never dropped (classify_agent, machine_reason), decided
at ingestion, where the delivery time and the recipient's other clicks are known:
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
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection

from mailmarketer.accounts.models import TrackingMode
from mailmarketer.audience.facts import Hit, object_key, record_facts
from mailmarketer.audience.models import FactKind

from .consent import identified_allowed
from .models import (
    USER_AGENT_MAX,
    AgentClass,
    EmailEvent,
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
    needs the recipient's earlier clicks and is applied by store_hits."""
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
    # IPv4, on every hit of the edge: string work is a tenth of the ipaddress module's cost
    # (profiled, ~0.2 ms a call there), for the same answer.
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and str(int(p)) == p for p in parts):
        if all(int(p) < 256 for p in parts):
            return f"{parts[0]}.{parts[1]}.{parts[2]}.0"
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


# -- the hot path: the stored URL of a link, from a per-process cache --------------------------

# A campaign's links are stored once, when it is compiled, and never change; a click token is
# signed, so the link id in it was put there by us. The URLs are read once per process and
# campaign: the first click on any link of a campaign reads all of its links in one statement
# (a message's links are clicked together, and a scanner follows them all at once), then each
# is kept LINK_CACHE_SECONDS (so a deleted campaign's links stop redirecting soon after), and a
# click redirect touches no database at all.
LINK_CACHE_SECONDS = 300
LINK_CACHE_MAX = 50_000
_links: dict[int, tuple[str, float]] = {}
# The campaign's links by the one clicked (the campaign_id index answers the outer query).
_CAMPAIGN_LINKS_SQL = (
    "SELECT id, url FROM campaigns_campaignlink WHERE campaign_id = "
    "(SELECT campaign_id FROM campaigns_campaignlink WHERE id = %s)"
)


def link_url(link_id: int) -> str | None:
    """The stored URL of a campaign link, or None when there is none."""
    moment = time.monotonic()
    cached = _links.get(link_id)
    if cached is not None and cached[1] > moment:
        return cached[0]
    with connection.cursor() as cursor:
        cursor.execute(_CAMPAIGN_LINKS_SQL, [link_id])
        rows = cursor.fetchall()
    if len(_links) + len(rows) > LINK_CACHE_MAX:
        _links.clear()  # bounded: a process that saw that many links starts over
    expires = moment + LINK_CACHE_SECONDS
    for pk, url in rows:
        if url:
            _links[pk] = (url, expires)
    cached = _links.get(link_id)
    return cached[0] if cached is not None else None


def spool_record(*, kind: str, delivery_id: int, link_id: int | None, method: str,
                 user_agent: str, ip: str | None) -> dict:  # fmt: skip
    """What the edge writes to the spool for one hit: the time, the ids from the token, and
    what the request said (the user agent capped, the address already cut to its network: no
    whole address is ever written, even to the spool)."""
    return {
        "k": kind,
        "d": delivery_id,
        "l": link_id,
        "t": time.time(),
        "m": method,
        "u": (user_agent or "")[:USER_AGENT_MAX],
        "i": stored_ip(ip),
    }


# -- ingestion: a batch of spooled hits into events and facts ----------------------------------


@dataclass(frozen=True)
class Target:
    """What a ledger row named by a token points at (read at ingestion)."""

    workspace_id: int
    campaign_id: int
    subscriber_id: int | None
    sent_at: datetime | None
    domain: str
    mode: str
    requires_consent: bool


# The ledger rows of a batch with their campaign's and workspace's tracking settings and the
# person's address; the placeholders are made from fixed pieces, the ids are parameters.
_TARGETS_SQL = """
SELECT d.id, d.workspace_id, d.campaign_id, d.subscriber_id, d.sent_at, s.email,
       c.tracking_mode, w.tracking_mode, w.tracking_requires_consent
FROM delivery_delivery d
JOIN campaigns_campaign c ON c.id = d.campaign_id
JOIN accounts_workspace w ON w.id = d.workspace_id
LEFT JOIN audience_subscriber s ON s.id = d.subscriber_id
WHERE d.id IN ({ids})
"""
_LINKS_SQL = "SELECT id, campaign_id FROM campaigns_campaignlink WHERE id IN ({ids})"
# What these recipients did before in these campaigns, folded: one row per recipient, kind,
# link and human/machine with the latest time.
_EARLIER_SQL = """
SELECT campaign_id, recipient_key, kind, link_id, machine, MAX(at)
FROM tracking_emailevent
WHERE campaign_id IN ({campaigns}) AND recipient_key IN ({keys})
GROUP BY campaign_id, recipient_key, kind, link_id, machine
"""
CHUNK = 500


def _chunks(values: list, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def _targets(ids: list[int]) -> dict[int, Target]:
    found = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(ids):
            cursor.execute(_TARGETS_SQL.format(ids=_marks(chunk)), chunk)
            for row in cursor.fetchall():
                pk, ws, campaign, person, sent_at, email, c_mode, w_mode, requires = row
                found[pk] = Target(
                    workspace_id=ws,
                    campaign_id=campaign,
                    subscriber_id=person,
                    sent_at=None if sent_at is None else _aware(sent_at),
                    domain=(email or "").rpartition("@")[2].lower()[:100],
                    mode=c_mode or w_mode,
                    requires_consent=bool(requires),
                )
    return found


def _link_campaigns(ids: list[int]) -> dict[int, int]:
    found = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(ids):
            cursor.execute(_LINKS_SQL.format(ids=_marks(chunk)), chunk)
            found.update(cursor.fetchall())
    return found


def _earlier(campaigns: list[int], keys: list[str]) -> dict[tuple, dict[tuple, datetime]]:
    """{(campaign, recipient key): {(kind, link, machine): latest time}}."""
    found: dict[tuple, dict[tuple, datetime]] = defaultdict(dict)
    with connection.cursor() as cursor:
        for chunk in _chunks(keys, CHUNK - len(campaigns)):
            cursor.execute(
                _EARLIER_SQL.format(campaigns=_marks(campaigns), keys=_marks(chunk)),
                [*campaigns, *chunk],
            )
            for campaign, key, kind, link, machine, last in cursor.fetchall():
                found[(campaign, key)][(kind, link, bool(machine))] = _aware(last)
    return found


def _aware(value) -> datetime:
    """A time as SQLite hands it back to a raw cursor (text, UTC) made aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass
class _Hit:
    kind: str
    delivery_id: int
    link_id: int | None
    at: datetime
    method: str
    user_agent: str
    ip: str | None


def _hit(record: dict) -> _Hit | None:
    """A spooled record read back, or None when it is not one the edge wrote."""
    try:
        kind = {"c": EmailEventKind.CLICK, "o": EmailEventKind.OPEN}[record["k"]]
        delivery_id = int(record["d"])
        link_id = int(record["l"]) if kind == EmailEventKind.CLICK else None
        at = datetime.fromtimestamp(float(record["t"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    ip = record.get("i")
    return _Hit(
        kind=kind,
        delivery_id=delivery_id,
        link_id=link_id,
        at=at,
        method=str(record.get("m") or "GET")[:8],
        user_agent=str(record.get("u") or "")[:USER_AGENT_MAX],
        ip=stored_ip(ip) if isinstance(ip, str) else None,
    )


def store_hits(records: list[dict]) -> int:
    """Stores a batch of spooled hits, in time order, inside the caller's transaction: one
    multi-row INSERT of events and one call to record_facts; returns how many events.

    Everything that needs the database is decided here, not in the request: the ledger row
    and its campaign (a click's link must be of that campaign, else nothing is stored), the
    tracking mode now (off: nothing), identified or anonymous, the machine flags that need the
    delivery time or the recipient's other clicks (fast, burst), and the firsts."""
    hits = sorted(filter(None, map(_hit, records)), key=lambda h: h.at)
    if not hits:
        return 0
    targets = _targets(sorted({h.delivery_id for h in hits}))
    links = _link_campaigns(sorted({h.link_id for h in hits if h.link_id is not None}))
    keys = {pk: recipient_key(pk) for pk in targets}
    campaigns = sorted({t.campaign_id for t in targets.values()})
    state = _earlier(campaigns, sorted(set(keys.values()))) if targets else {}
    allowed: dict[tuple, bool] = {}
    events: list[EmailEvent] = []
    facts: list[Hit] = []
    for hit in hits:
        target = targets.get(hit.delivery_id)
        if target is None or target.mode == TrackingMode.OFF:
            continue
        is_click = hit.kind == EmailEventKind.CLICK
        if is_click and links.get(hit.link_id) != target.campaign_id:
            continue
        agent_class = classify_agent(hit.user_agent)
        reason = machine_reason(
            kind=hit.kind,
            agent_class=agent_class,
            method=hit.method,
            at=hit.at,
            sent_at=target.sent_at,
        )
        key = keys[hit.delivery_id]
        earlier = state.setdefault((target.campaign_id, key), {})
        if is_click and not reason:
            since = hit.at - timedelta(seconds=BURST_SECONDS)
            if any(k == EmailEventKind.CLICK and link != hit.link_id and last >= since
                   for (k, link, _), last in earlier.items()):  # fmt: skip
                reason = MachineReason.BURST
        machine = bool(reason)
        seen = {(k, link) for (k, link, m) in earlier if m == machine}
        who = (target.mode, target.workspace_id, target.subscriber_id, target.requires_consent)
        if who not in allowed:
            allowed[who] = identified_allowed(
                mode=target.mode,
                requires_consent=target.requires_consent,
                workspace_id=target.workspace_id,
                subscriber_id=target.subscriber_id,
            )
        identified = allowed[who]
        events.append(
            EmailEvent(
                workspace_id=target.workspace_id,
                campaign_id=target.campaign_id,
                kind=hit.kind,
                at=hit.at,
                subscriber_id=target.subscriber_id if identified else None,
                delivery_id=hit.delivery_id if identified else None,
                link_id=hit.link_id,
                recipient_key=key,
                domain=target.domain,
                agent_class=agent_class,
                user_agent=hit.user_agent,
                machine=machine,
                machine_reason=reason,
                ip=hit.ip,
                first_open=not seen,
                first_click=is_click and not any(k == EmailEventKind.CLICK for k, _ in seen),
                first_link_click=is_click and (EmailEventKind.CLICK, hit.link_id) not in seen,
            )
        )
        mark = (hit.kind, hit.link_id, machine)
        earlier[mark] = max(earlier.get(mark, hit.at), hit.at)
        # Facts are what segments read ("opened campaign X"): a proxy's prefetch or a
        # scanner's click is nobody's behaviour, so only a person's events become facts.
        if identified and not machine:
            ws, person = target.workspace_id, target.subscriber_id
            campaign = object_key("campaign", target.campaign_id)
            facts.append(Hit(ws, person, FactKind.OPENED, campaign, hit.at))
            if is_click:
                facts.append(Hit(ws, person, FactKind.CLICKED, campaign, hit.at))
                link = object_key("link", hit.link_id)
                facts.append(Hit(ws, person, FactKind.CLICKED, link, hit.at))
    EmailEvent.objects.bulk_create(events, batch_size=CHUNK)
    record_facts(facts)
    return len(events)
