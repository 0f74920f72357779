"""Website hits: from what a browser or a log line says to the row stored (models_web.WebHit).

One shape for both sources (the snippet's /t/e and `mailmarketer importlogs`): `hit_row` makes
the row's columns from captured text, cutting every field to its cap, and `store_rows` writes a
batch in one transaction: the hits (INSERT ... ON CONFLICT DO NOTHING on the idempotency key, so
a replayed or re-imported hit adds nothing), the person's "visited" facts for identified hits
(facts.record_facts, the one writer of facts), and a note that the day's roll-up is due.

Costly parsing is cached per distinct input: a user agent is parsed by ua-parser and checked
against crawlerdetect's maintained list once per process (a day of traffic has a few thousand
distinct agents; ua-parser costs ~0.1 s the first time, microseconds from the cache).

Privacy: the IP address is kept as the site says (not at all, truncated to /24 and /48, or
whole for `ip_days` days and then truncated by the privacy duty); the visitor hash is
sha256(daily salt, site, IP, user agent), and the salt of a past day is deleted by the worker,
after which no one can tell whose hash it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import secrets
from datetime import date, datetime
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

from django.db import DatabaseError, connection, transaction

from mailmarketer.audience import facts
from mailmarketer.audience.models import FactKind

from .models_web import (
    HOST_MAX,
    NAME_MAX,
    PATH_MAX,
    PROPS_MAX,
    TITLE_MAX,
    UA_FIELD_MAX,
    URL_MAX,
    UTM_MAX,
    VERSION_MAX,
    HitKind,
    HitSource,
    IpMode,
    ReferrerClass,
    Site,
    VisitorSalt,
    WebHit,
)

# Hosts (or their registrable parts) that make a referrer a search engine, a social network or
# a webmail; matched on the host's labels, so "www.google.co.uk" and "news.ycombinator.com"
# both match. Short on purpose: the rest is "other site", which is honest.
SEARCH = ("google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia", "qwant",
          "startpage", "search.brave", "kagi", "naver", "seznam")  # fmt: skip
SOCIAL = ("facebook", "fb", "instagram", "twitter", "t.co", "x.com", "linkedin", "lnkd.in",
          "reddit", "pinterest", "youtube", "tiktok", "mastodon", "news.ycombinator", "threads",
          "bsky", "tumblr", "vk", "xing", "quora")  # fmt: skip
WEBMAIL = ("mail.google", "outlook.live", "outlook.office", "mail.yahoo", "webmail", "mail.",
           "gmx", "web.de", "proton.me", "fastmail", "mail.ru")  # fmt: skip

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# The query parameter of the identified tier's visitor token (audience/links.py makes it).
TOKEN_PARAM = "mm_vt"  # noqa: S105 (a parameter name, not a secret)

COLUMNS = [f.column for f in WebHit._meta.concrete_fields if f.column != "id"]


def cut(value, limit: int) -> str:
    """Text of at most `limit` characters, NULs and other C0 controls dropped (PostgreSQL
    refuses NUL in text, and a control character in a report helps no one)."""
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    value = value[: limit * 2]
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable() or ch == " ")
    return value[:limit]


# -- user agents -------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def agent(ua: str) -> tuple[str, str, str, str, str, bool]:
    """(browser, version, os, os version, device, is bot) for a user agent string."""
    from ua_parser import parse

    result = parse(ua[:1000]).with_defaults()
    browser = result.user_agent.family
    version = result.user_agent.major or ""
    if result.user_agent.minor and result.user_agent.minor != "0":
        version += "." + result.user_agent.minor
    os_name = result.os.family
    os_version = ".".join(p for p in (result.os.major, result.os.minor) if p)
    device = _device(ua, result.device.family, os_name)
    bot = result.device.family == "Spider" or _crawler(ua)
    return (
        cut("" if browser == "Other" else browser, UA_FIELD_MAX),
        cut(version, VERSION_MAX),
        cut("" if os_name == "Other" else os_name, UA_FIELD_MAX),
        cut(os_version, VERSION_MAX),
        device,
        bot,
    )


def _device(ua: str, family: str, os_name: str) -> str:
    lowered = ua.lower()
    if (
        "ipad" in lowered
        or "tablet" in lowered
        or (os_name == "Android" and "mobile" not in lowered)
    ):
        return "tablet"
    if "mobi" in lowered or os_name in ("iOS", "Android") or family == "iPhone":
        return "mobile"
    return "desktop" if ua else ""


_detector = None


def _crawler(ua: str) -> bool:
    global _detector
    if not ua.strip():
        return True  # no user agent at all: a script, not a browser
    if _detector is None:
        from crawlerdetect import CrawlerDetect

        _detector = CrawlerDetect()
    return bool(_detector.isCrawler(ua[:1000]))


# -- referrers and addresses -----------------------------------------------------------------


def _matches(host: str, names: tuple[str, ...]) -> bool:
    padded = "." + host + "."
    return any(("." + name + ".") in padded or padded.startswith("." + name) for name in names)


def own_hosts(site: Site) -> tuple[str, ...]:
    """The hosts whose referrers are the site itself: its domain and its origins' hosts."""
    hosts = [site.domain.lower().removeprefix("www.")]
    for origin in site.origin_list():
        host = (urlsplit(origin).hostname or "").removeprefix("www.")
        if host and host not in hosts:
            hosts.append(host)
    return tuple(hosts)


@lru_cache(maxsize=8192)
def referrer_class(host: str, site_hosts: tuple[str, ...] | str) -> str:
    if not host:
        return ReferrerClass.DIRECT
    bare = host.removeprefix("www.")
    if isinstance(site_hosts, str):
        site_hosts = (site_hosts.removeprefix("www."),)
    if any(bare == own or bare.endswith("." + own) for own in site_hosts):
        return ReferrerClass.INTERNAL
    if _matches(bare, WEBMAIL):
        return ReferrerClass.EMAIL
    if _matches(bare, SEARCH):
        return ReferrerClass.SEARCH
    if _matches(bare, SOCIAL):
        return ReferrerClass.SOCIAL
    return ReferrerClass.OTHER


def utm_class(utm: dict) -> str | None:
    if not any(utm.values()):
        return None
    if utm.get("utm_medium", "").lower() in ("email", "e-mail", "newsletter"):
        return ReferrerClass.EMAIL
    return ReferrerClass.CAMPAIGN


def truncate_ip(ip: str) -> str:
    """The /24 of an IPv4 address, the /48 of an IPv6 one; "" for anything else."""
    # A dotted IPv4 address, as nearly every hit's is, by one regular expression: the
    # ipaddress module costs ~15 µs a call, and a cache of it misses on every new visitor.
    if _IPV4.fullmatch(ip):
        return ip.rpartition(".")[0] + ".0"
    return _truncate_ip(ip)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)


@lru_cache(maxsize=4096)
def _truncate_ip(ip: str) -> str:
    try:
        address = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return ""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def valid_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip.strip().strip("[]")))
    except ValueError:
        return ""


def kept_ip(site: Site, ip: str) -> tuple[str, bool]:
    """(what is stored, whether it is whole) as the site's privacy settings say."""
    if site.ip_mode == IpMode.NONE or not ip:
        return "", False
    if site.ip_mode == IpMode.KEEP:
        whole = valid_ip(ip)
        return whole, bool(whole)
    return truncate_ip(ip), False


# -- the daily salt ----------------------------------------------------------------------------

_salts: dict[date, str] = {}


def salt_for(day: date) -> str:
    """The salt of `day` (UTC), made by whichever process needs it first. A process keeps only
    the current day's, so once the worker deletes a past day's row it is gone everywhere.

    When the database cannot be read, a salt of this process's own stands in (never stored),
    so the hit can still go to the spool: its visitor hash then differs from other processes'
    for the same visitor, which can only over-count visitors that day, never lose a hit."""
    salt = _salts.get(day)
    if salt is None:
        try:
            VisitorSalt.objects.bulk_create(
                [VisitorSalt(day=day, salt=secrets.token_hex(32))], ignore_conflicts=True
            )
            salt = VisitorSalt.objects.get(day=day).salt
        except DatabaseError:
            return _fallback_salts.setdefault(day, secrets.token_hex(32))
        _salts.clear()
        _salts[day] = salt
    return salt


_fallback_salts: dict[date, str] = {}


def visitor_hash(salt: str, site_id: int, ip: str, ua: str) -> str:
    material = f"{salt}\x00{site_id}\x00{ip}\x00{ua[:1000]}".encode("utf-8", "replace")
    return hashlib.sha256(material).hexdigest()[:16]


# -- building a row ----------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, dict, str]:
    """(path, UTM parameters, host) of a page URL, the visitor token's parameter left out."""
    try:
        parts = urlsplit(url[: URL_MAX * 2])
    except ValueError:
        return "/", {}, ""
    utm = {}
    if parts.query:
        for name, value in parse_qsl(parts.query, keep_blank_values=False):
            if name in UTM_KEYS:
                utm[name] = cut(value, UTM_MAX)
    path = parts.path or "/"
    return cut(path, PATH_MAX), utm, cut((parts.hostname or ""), HOST_MAX)


def referrer_parts(referrer: str) -> tuple[str, str]:
    """(referrer without its query, host): the query of a referring page can hold anything,
    a search term or someone's address, so it is not kept."""
    if not referrer:
        return "", ""
    try:
        parts = urlsplit(referrer[: URL_MAX * 2])
        host = (parts.hostname or "").lower()
    except ValueError:
        return "", ""
    if parts.scheme not in ("http", "https", "android-app") or not host:
        return "", ""
    return cut(f"{parts.scheme}://{parts.netloc}{parts.path}", URL_MAX), cut(host, HOST_MAX)


def hit_row(
    site: Site,
    *,
    at: datetime,
    key: str,
    source: str = HitSource.SNIPPET,
    kind: str = HitKind.PAGEVIEW,
    path: str,
    utm: dict | None = None,
    title: str = "",
    referrer: str = "",
    target: str = "",
    name: str = "",
    props: str = "",
    ip: str = "",
    ua: str = "",
    status: int | None = None,
    subscriber_id: int | None = None,
    agent_info: tuple | None = None,
    salt: str | None = None,
    kept: tuple[str, bool] | None = None,
    visitor: str | None = None,
) -> dict:
    """The columns of one hit (a dict, so that it can go to the spool as JSON and back).

    `kept` and `visitor`: the address as kept and the visitor hash, when they were made
    already (by /t/e, which alone saw the whole address); otherwise made here from `ip`."""
    utm = (
        {k: cut(utm.get(k, ""), UTM_MAX) for k in UTM_KEYS} if utm else dict.fromkeys(UTM_KEYS, "")
    )
    referrer, referrer_host = referrer_parts(referrer)
    browser, version, os_name, os_version, device, _bot = agent_info or agent(ua)
    stored_ip, whole = kept if kept is not None else kept_ip(site, ip)
    if visitor is None:
        visitor = visitor_hash(salt or salt_for(at.date()), site.pk, ip, ua)
    ref_class = utm_class(utm) or referrer_class(referrer_host, own_hosts(site))
    return {
        "workspace_id": site.workspace_id,
        "site_id": site.pk,
        "at": at,
        "kind": kind,
        "source": source,
        "key": key[:32],
        "path": cut(path, PATH_MAX) or "/",
        "title": cut(title, TITLE_MAX),
        "referrer": referrer,
        "referrer_host": referrer_host,
        "referrer_class": ref_class,
        **utm,
        "target": cut(target, URL_MAX),
        "name": cut(name, NAME_MAX),
        "props": cut(props, PROPS_MAX),
        "browser": browser,
        "browser_version": version,
        "os": os_name,
        "os_version": os_version,
        "device": device,
        "ip": stored_ip,
        "ip_whole": whole,
        "visitor": cut(visitor, 16),
        "status": status,
        "subscriber_id": subscriber_id,
    }


# -- storing -----------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _insert_sql(count: int, mark: str = "%s") -> str:
    one = "(" + ", ".join([mark] * len(COLUMNS)) + ")"
    # Fixed column names and placeholders only; the values are parameters.
    return (
        f"INSERT INTO {WebHit._meta.db_table} ({', '.join(COLUMNS)}) VALUES "  # noqa: S608
        + ", ".join([one] * count)
        + " ON CONFLICT (site_id, key, at) DO NOTHING"
    )


# Rows per INSERT: 29 parameters each stays under SQLite's 32,766-variable limit.
CHUNK = 1000


AT = COLUMNS.index("at")


def insert_tuples(rows: list[tuple], new_keys: set | None = None, adapted: bool = False) -> int:
    """INSERTs rows (values in COLUMNS order), skipping those whose key is stored; returns how
    many were new, and adds their keys to `new_keys` when given (RETURNING, on both
    databases: SQLite has had it since 3.35). `adapted`: the times are already in the
    database's form (connection.ops.adapt_datetimefield_value). Call inside a transaction."""
    adapt = connection.ops.adapt_datetimefield_value
    stored = 0
    returning = " RETURNING key" if new_keys is not None else ""
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            params = []
            for row in chunk:
                if not adapted:
                    row = list(row)
                    row[AT] = adapt(row[AT])
                params.extend(row)
            _execute(cursor, len(chunk), returning, params)
            if new_keys is None:
                stored += max(cursor.rowcount, 0)
            else:
                keys = [key for (key,) in cursor.fetchall()]
                new_keys.update(keys)
                stored += len(keys)
    return stored


def _execute(cursor, count: int, returning: str, params: list) -> None:
    """Runs the INSERT of `count` rows. On SQLite, Django's cursor rewrites each %s to ? with a
    regular expression on every execute: ~7 ms for the 29,000 placeholders of a full chunk,
    with the GIL held (the importer's parsing thread waits for it). So there the statement is
    written with ? once (cached) and run by sqlite3's own execute, inside Django's error
    translation; when something watches the statements (execute_wrapper, a debug cursor
    logging queries), through Django's cursor as before, so that they see it."""
    if (
        connection.vendor == "sqlite"
        and not connection.execute_wrappers
        and not connection.queries_logged
    ):
        import sqlite3

        with connection.wrap_database_errors:
            sqlite3.Cursor.execute(cursor.cursor, _insert_sql(count, "?") + returning, params)
        return
    cursor.execute(_insert_sql(count) + returning, params)


def store_rows(rows: list[dict]) -> int:
    """Writes the hits in one transaction; returns how many were new. Identified hits add the
    person's "visited" facts; every (site, day) touched is marked for the roll-up duty."""
    if not rows:
        return 0
    with transaction.atomic():
        new_keys: set[str] = set()
        stored = insert_tuples([tuple(row[c] for c in COLUMNS) for row in rows], new_keys)
        # Facts only for hits new here: a replayed spool line must not count twice.
        identified = [
            facts.Hit(r["workspace_id"], r["subscriber_id"], FactKind.VISITED, key, r["at"])
            for r in rows
            if r["subscriber_id"] and r["kind"] == HitKind.PAGEVIEW and r["key"] in new_keys
            for key in (
                facts.object_key("site", r["site_id"]),
                facts.object_key("path", f"{r['site_id']}:{r['path']}"),
            )
        ]
        if identified:
            facts.record_facts(identified)
        mark_due({(r["site_id"], r["at"].date()) for r in rows})
    return stored


def mark_due(pairs) -> None:
    from .models_web import RollupDue

    RollupDue.objects.bulk_create(
        [RollupDue(site_id=site_id, day=day) for site_id, day in pairs], ignore_conflicts=True
    )


def count_apart(site: Site, day: date, name: str, count: int = 1) -> None:
    """Adds to a counter of what was counted apart (bots, static assets, refused hits); best
    effort: while the database is down these counts are lost (the hits were not to be kept)."""
    if count <= 0:
        return
    from .models_web import WebCounter

    with contextlib.suppress(DatabaseError):
        _count(WebCounter._meta.db_table, site, day, name, count)


def add_count(site: Site, day: date, name: str, count: int) -> None:
    """Adds to a counter in the caller's transaction (an error fails it: the worker's batch
    and its counts commit together or not at all)."""
    from .models_web import WebCounter

    _count(WebCounter._meta.db_table, site, day, name, count)


def _count(table, site, day, name, count) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (workspace_id, site_id, day, name, count) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (site_id, day, name) "
            f"DO UPDATE SET count = {table}.count + excluded.count",
            [site.workspace_id, site.pk, connection.ops.adapt_datefield_value(day), name, count],
        )
