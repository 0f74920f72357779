"""Access-log import: Apache and nginx logs into the same rows the snippet makes (WebHit).

Formats: "combined" and "common" (Apache's and nginx's defaults), "nginx-json" (one JSON object
a line, nginx's `escape=json` log_format with the usual variable names), or any nginx
`log_format` string ("$remote_addr - $remote_user [$time_local] \"$request\" ..."), which is
compiled to one regular expression. Plain or gzip files (told by their first bytes), read line
by line: memory stays bounded by one batch of rows and the caches below, whatever the file's
size.

Every line is counted once, as one of: stored (a page view or a download), a bot (the same
maintained list as the snippet), a static asset (by extension, configurable), a duplicate (the
same line was imported before), or bad (unparseable; its number is reported, nothing of it is
stored). Lines are idempotent: a row's key is a hash of the line's text and of how many equal
lines came before it within the same second, so re-importing a file, or a rotated file that
overlaps the previous one, adds nothing twice, and two genuine equal hits in one second are both
kept.

Speed: parsing is a regular expression per line; everything else that costs (user agents, bot
checks, referrers, timestamps) is cached per distinct input, which a log repeats a lot (what
depends only on the line's second is worked out when the second changes); rows go to the
database in multi-row INSERTs of 1,000 in one transaction per batch of 20,000 lines, written by
a second thread (web.insert_tuples, which on SQLite skips Django's per-execute placeholder
rewriting).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from django.db import connection, transaction

from . import web
from .models_web import HitKind, IpMode, RollupDue, Site, VisitorSalt

STATIC_EXTENSIONS = frozenset(
    [
        "css",
        "js",
        "mjs",
        "map",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "ico",
        "webp",
        "avif",
        "bmp",
        "woff",
        "woff2",
        "ttf",
        "otf",
        "eot",
    ]
)
DOWNLOAD_EXTENSIONS = frozenset(
    [
        "pdf",
        "zip",
        "gz",
        "tgz",
        "bz2",
        "xz",
        "7z",
        "rar",
        "dmg",
        "exe",
        "msi",
        "deb",
        "rpm",
        "apk",
        "iso",
        "csv",
        "xls",
        "xlsx",
        "doc",
        "docx",
        "ppt",
        "pptx",
        "odt",
        "ods",
        "epub",
        "mp3",
        "mp4",
        "mov",
        "avi",
        "mkv",
        "wav",
    ]
)
NO_AGENT = ("", "", "", "", "", False)
# Plain strings for the hot loop: a TextChoices member's attribute access goes through the
# enum metaclass (~30 us a line in a profile of 100k lines).
PAGEVIEW, DOWNLOAD, LOG = str(HitKind.PAGEVIEW.value), str(HitKind.DOWNLOAD.value), "log"
IP_NONE, IP_KEEP = str(IpMode.NONE.value), str(IpMode.KEEP.value)
NO_UTM = ("",) * len(web.UTM_KEYS)
# The order _row writes its tuple in; a model change that moves a column fails loudly here.
ROW_ORDER = [
    "workspace_id", "site_id", "at", "kind", "source", "key", "path", "title", "referrer",
    "referrer_host", "referrer_class", "utm_source", "utm_medium", "utm_campaign", "utm_term",
    "utm_content", "target", "name", "props", "browser", "browser_version", "os", "os_version",
    "device", "ip", "ip_whole", "visitor", "status", "subscriber_id",
]  # fmt: skip
if ROW_ORDER != web.COLUMNS:
    raise RuntimeError("tracking.logs.ROW_ORDER no longer matches WebHit's columns: update _row")
BATCH_LINES = 20000
AGENTS_CACHED = 8192  # distinct user agents remembered per file (then forgotten at once)
BAD_LINES_LISTED = 20
LINE_MAX = 16384  # a longer line is bad: no real request line is that long

# A quoted field, with \" escapes (Apache) or \x22 (nginx); written as the "unrolled loop"
# ([^"\\]*(?:\\.[^"\\]*)*), which Python's engine runs ~3x faster than (?:[^"\\]|\\.)*.
_Q = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
COMMON = r"^(\S+) \S+ (\S+) \[([^\]]+)\] " + _Q + r" (\d{3}) (\S+)"
COMBINED = COMMON + " " + _Q + " " + _Q

# nginx variables -> (our field, the pattern of its value)
NGINX_VARS = {
    "remote_addr": ("ip", r"\S+"),
    "http_x_forwarded_for": ("forwarded", r"[^\"]*"),
    "remote_user": (None, r"\S+"),
    "time_local": ("time", r"[^\]]+"),
    "time_iso8601": ("time_iso", r"\S+"),
    "request": ("request", r"(?:[^\"\\]|\\.)*"),
    "request_method": ("method", r"[A-Z]+"),
    "request_uri": ("uri", r"\S+"),
    "uri": ("uri", r"\S+"),
    "status": ("status", r"\d{3}"),
    "body_bytes_sent": (None, r"\S+"),
    "bytes_sent": (None, r"\S+"),
    "http_referer": ("referrer", r"(?:[^\"\\]|\\.)*"),
    "http_user_agent": ("ua", r"(?:[^\"\\]|\\.)*"),
    "host": (None, r"\S+"),
    "server_name": (None, r"\S+"),
}


class FormatError(ValueError):
    pass


class Parsed(NamedTuple):
    ip: str
    time: str  # as in the line
    iso: bool  # time is ISO 8601 rather than Apache's 10/Oct/2000:13:55:36 -0700
    method: str
    target: str
    status: int
    referrer: str
    ua: str | None


def compile_format(fmt: str) -> Callable[[str], Parsed | None]:
    """A parser for one of the named formats or an nginx log_format string."""
    if fmt == "combined":
        return _apache_parser(re.compile(COMBINED), with_agent=True)
    if fmt == "common":
        return _apache_parser(re.compile(COMMON), with_agent=False)
    if fmt == "nginx-json":
        return _json_parser
    if "$" not in fmt:
        raise FormatError(
            f"unknown format {fmt[:60]!r}: use combined, common, nginx-json or an nginx "
            'log_format string such as \'$remote_addr - $remote_user [$time_local] "$request" '
            "$status $body_bytes_sent'"
        )
    pattern, names = [], []
    pos = 0
    for match in re.finditer(r"\$(\w+)|\$\{(\w+)\}", fmt):
        pattern.append(re.escape(fmt[pos : match.start()]))
        var = match.group(1) or match.group(2)
        name, value = NGINX_VARS.get(var, (None, r"\S*"))
        pattern.append(f"({value})")
        names.append(name)
        pos = match.end()
    pattern.append(re.escape(fmt[pos:]))
    fields = set(names)
    if "ip" not in fields or not ({"time", "time_iso"} & fields) or "status" not in fields:
        raise FormatError("the log_format must have $remote_addr, $time_local and $status")
    if "request" not in fields and "uri" not in fields:
        raise FormatError("the log_format must have $request or $request_uri")
    return _regex_parser(re.compile("^" + "".join(pattern)), tuple(names))


def _apache_parser(regex: re.Pattern, *, with_agent: bool) -> Callable[[str], Parsed | None]:
    """The hot path for Apache's (and nginx's default) formats: one match, no dict."""
    match = regex.match

    def parse(line: str) -> Parsed | None:
        found = match(line)
        if found is None:
            return None
        ip, _user, when, request, status, _size, *agent = found.groups()
        parts = request.split(" ")
        if len(parts) != 3 or parts[1][:1] not in ("/", "h") or ip == "-":
            return None
        referrer, ua = agent if with_agent else ("", None)
        return Parsed(
            ip,
            when,
            False,
            parts[0],
            parts[1],
            int(status),
            "" if referrer == "-" else _unescape(referrer),
            None if ua is None else _unescape(ua),
        )

    return parse


def _regex_parser(regex: re.Pattern, names: tuple) -> Callable[[str], Parsed | None]:
    def parse(line: str) -> Parsed | None:
        match = regex.match(line)
        if match is None:
            return None
        values = {n: v for n, v in zip(names, match.groups(), strict=True) if n}
        return _parsed(values)

    return parse


def _json_parser(line: str) -> Parsed | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    values = {}
    for var, value in data.items():
        name = NGINX_VARS.get(var, (None, ""))[0]
        if name and isinstance(value, str | int):
            values[name] = str(value)
    return _parsed(values)


def _parsed(values: dict) -> Parsed | None:
    if "request" in values:
        parts = values["request"].split(" ")
        if len(parts) != 3 or parts[1][:1] not in ("/", "h"):
            return None
        method, target = parts[0], parts[1]
    else:
        method, target = values.get("method", "GET"), values.get("uri", "")
        if not target.startswith("/"):
            return None
    status = values.get("status", "")
    ip = values.get("ip", "")
    if not status.isdigit() or not ip or ip == "-":
        return None
    iso = "time" not in values
    return Parsed(
        ip=ip,
        time=values.get("time") or values.get("time_iso") or "",
        iso=iso,
        method=method,
        target=target,
        status=int(status),
        referrer=_unescape(values.get("referrer", "")),
        # None when the format has no user agent (common): nothing to tell a bot by.
        ua=_unescape(values["ua"]) if "ua" in values else None,
    )


def _unescape(value: str) -> str:
    if value == "-":
        return ""
    if "\\" in value:
        value = value.replace('\\"', '"').replace("\\x22", '"').replace("\\\\", "\\")
    return value


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


@lru_cache(maxsize=4096)
def parse_time(text: str, iso: bool) -> datetime | None:
    """10/Oct/2000:13:55:36 -0700 (or ISO 8601) as an aware UTC datetime; None when invalid."""
    try:
        if iso:
            moment = datetime.fromisoformat(text)
        else:
            day, month, rest = text.split("/", 2)
            year, hh, mm, ss_zone = rest.split(":", 3)
            ss, zone = ss_zone.split(" ")
            sign = -1 if zone[0] == "-" else 1
            offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5]))
            from datetime import timedelta, timezone

            moment = datetime(
                int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss),
                tzinfo=timezone(timedelta(minutes=offset)),
            )  # fmt: skip
    except (ValueError, KeyError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


# -- the import --------------------------------------------------------------------------------


@dataclass
class Totals:
    lines: int = 0
    valid: int = 0  # parsed: a request line with a time and a status
    stored: int = 0  # rows added (new)
    duplicates: int = 0  # rows that were already there (a re-import)
    bots: int = 0
    static: int = 0
    bad: int = 0
    not_found: int = 0  # status 404, among the valid lines
    bad_lines: list[tuple[str, int]] = field(default_factory=list)  # (file, number), first few
    paths: set = field(default_factory=set)  # distinct paths among the valid lines

    def summary(self) -> dict:
        return {
            "lines": self.lines,
            "valid": self.valid,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "bots": self.bots,
            "static": self.static,
            "bad": self.bad,
            "not_found": self.not_found,
            "unique_paths": len(self.paths),
        }


def open_log(path: Path):
    """A binary stream of the file's lines, gunzipped when it starts with gzip's magic bytes,
    and the raw file (for progress)."""
    raw = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if head == b"\x1f\x8b":
        return io.BufferedReader(gzip.GzipFile(fileobj=raw)), raw
    return raw, raw


class Importer:
    def __init__(
        self,
        site: Site,
        fmt: str = "combined",
        *,
        static_extensions=STATIC_EXTENSIONS,
        progress: Callable[[str, int, int, int], None] | None = None,
        overlap: bool = False,
    ):
        self.site = site
        self.site_id, self.workspace_id = site.pk, site.workspace_id
        self.parse = compile_format(fmt)
        self.static = frozenset(e.lower().lstrip(".") for e in static_extensions)
        self.progress = progress
        self.totals = Totals()
        self.salts: dict[date, str] = {}
        self.site_hosts = web.own_hosts(site)
        self.ip_mode = str(site.ip_mode)
        self.overlap = overlap
        self._writer: _Writer | None = None
        self._ref = lru_cache(maxsize=16384)(self._referrer)
        # The database's form of a time, per distinct time (a log repeats each second).
        self._at = lru_cache(maxsize=4096)(connection.ops.adapt_datetimefield_value)

    def _salt(self, day: date) -> str:
        salt = self.salts.get(day)
        if salt is None:
            VisitorSalt.objects.bulk_create(
                [VisitorSalt(day=day, salt=web.secrets.token_hex(32))], ignore_conflicts=True
            )
            salt = self.salts[day] = VisitorSalt.objects.get(day=day).salt
        return salt

    def _referrer(self, referrer: str) -> tuple[str, str, str]:
        ref, host = web.referrer_parts(referrer)
        return ref, host, web.referrer_class(host, self.site_hosts)

    def run(self, paths: list[Path]) -> Totals:
        """Imports the files in order. With `overlap`, batches are written by a second thread
        while this one parses the next (both drivers release the GIL while the database
        works): on two cores that hides most of the INSERTs. Tests run without it, since a
        second connection cannot see a test's uncommitted rows."""
        if self.overlap:
            self._writer = _Writer(self)
            self._writer.start()
        try:
            for path in paths:
                self.import_file(Path(path))
        finally:
            if self._writer is not None:
                self._writer.finish()
                self._writer = None
        return self.totals

    def import_file(self, path: Path) -> None:
        stream, raw = open_log(path)
        size = path.stat().st_size
        name = str(path)
        rows: list[tuple] = []
        days: set[date] = set()
        seen_second = None
        seen: dict[bytes, int] = {}
        # What depends only on the line's second, worked out when the second changes (lines
        # come in time order): its time in the database's form and its day's salt.
        second: tuple = (None, None, None)
        totals = self.totals
        parse = self.parse
        agents: dict[str, tuple] = {}
        blake2b = hashlib.blake2b
        try:
            for number, line_bytes in enumerate(stream, start=1):
                totals.lines += 1
                if len(line_bytes) > LINE_MAX:
                    self._bad(name, number)
                    continue
                line = line_bytes.decode("utf-8", "replace").rstrip("\r\n")
                parsed = parse(line) if line else None
                if parsed is None:
                    self._bad(name, number)
                    continue
                if parsed.time != seen_second:
                    at = parse_time(parsed.time, parsed.iso)
                    if not at:
                        self._bad(name, number)
                        continue
                    # The key: the line itself, and how many equal lines came before it in
                    # the same second (lines are in time order, so one second is remembered).
                    seen_second, seen = parsed.time, {}
                    day = at.date()
                    second = (self._at(at), self._salt(day), day)
                    days.add(day)
                totals.valid += 1
                if parsed.status == 404:
                    totals.not_found += 1
                path_part, _, query = parsed.target.partition("?")
                if path_part.startswith("http"):
                    path_part = (
                        "/" + path_part.split("/", 3)[-1] if path_part.count("/") >= 3 else "/"
                    )
                totals.paths.add(path_part[: web.PATH_MAX])
                ext = path_part.rpartition(".")[2].lower() if "." in path_part[-6:] else ""
                if ext in self.static:
                    totals.static += 1
                    continue
                ua = parsed.ua
                if ua is None:
                    info = NO_AGENT
                else:
                    # Keyed by the raw string: a dict lookup, before any slicing.
                    info = agents.get(ua)
                    if info is None:
                        if len(agents) >= AGENTS_CACHED:
                            agents.clear()
                        info = agents[ua] = web.agent(ua[:1000])
                if info[5]:
                    totals.bots += 1
                    continue
                digest = blake2b(line_bytes, digest_size=16).digest()
                occurrence = seen.get(digest, 0)
                seen[digest] = occurrence + 1
                key = (
                    digest.hex()
                    if occurrence == 0
                    else blake2b(digest + occurrence.to_bytes(4, "big"), digest_size=16).hexdigest()
                )
                rows.append(self._row(parsed, second, key, path_part, query, ext, info))
                if len(rows) >= BATCH_LINES:
                    self._flush(rows, days)
                    rows, days = [], {second[2]}
                    if self.progress:
                        self.progress(name, number, raw.tell(), size)
            self._flush(rows, days)
            if self.progress:
                self.progress(name, totals.lines, size, size)
        finally:
            stream.close()
            raw.close()

    def _bad(self, name: str, number: int) -> None:
        self.totals.bad += 1
        if len(self.totals.bad_lines) < BAD_LINES_LISTED:
            self.totals.bad_lines.append((name, number))

    def _row(self, parsed: Parsed, second: tuple, key, path_part, query, ext, info) -> tuple:
        if "utm_" in query:
            _path, found, _host = web.split_url("http://x/?" + query)
            utm = tuple(found.get(k, "") for k in web.UTM_KEYS)
        else:
            utm = NO_UTM
        referrer, referrer_host, ref_class = self._ref(parsed.referrer[: web.URL_MAX * 2])
        if utm is not NO_UTM:
            ref_class = web.utm_class(dict(zip(web.UTM_KEYS, utm, strict=True))) or ref_class
        ip = parsed.ip
        if self.ip_mode == IP_NONE:
            stored_ip, whole = "", False
        elif self.ip_mode == IP_KEEP:
            stored_ip = web.valid_ip(ip)
            whole = bool(stored_ip)
        else:
            stored_ip, whole = web.truncate_ip(ip), False
        kind = DOWNLOAD if ext in DOWNLOAD_EXTENSIONS else PAGEVIEW
        path = path_part
        if len(path) > web.PATH_MAX or not path.isprintable():
            path = web.cut(path, web.PATH_MAX) or "/"
        # In web.COLUMNS order (checked by ROW_ORDER below).
        return (
            self.workspace_id, self.site_id, second[0], kind, LOG, key, path or "/", "",
            referrer, referrer_host, ref_class, *utm,
            path if kind == DOWNLOAD else "", "", "",
            *info[:5],
            stored_ip, whole,
            web.visitor_hash(second[1], self.site_id, ip, parsed.ua or ""),
            parsed.status, None,
        )  # fmt: skip

    def _flush(self, rows: list[tuple], days: set[date]) -> None:
        if not rows:
            return
        if self._writer is not None:
            self._writer.put((rows, days))
            return
        self._write(rows, days)

    def _write(self, rows: list[tuple], days: set[date]) -> None:
        with transaction.atomic():
            added = web.insert_tuples(rows, adapted=True)
            RollupDue.objects.bulk_create(
                [RollupDue(site_id=self.site.pk, day=day) for day in days], ignore_conflicts=True
            )
        self.totals.stored += added
        self.totals.duplicates += len(rows) - added


class _Writer(threading.Thread):
    """Writes the importer's batches in order, on its own database connection."""

    def __init__(self, importer: Importer):
        super().__init__(name="importlogs-writer", daemon=True)
        self.importer = importer
        self.batches: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None

    def run(self):
        try:
            while (batch := self.batches.get()) is not None:
                if self.error is None:
                    self.importer._write(*batch)
        except BaseException as exc:  # handed to the parsing thread, which raises it
            self.error = exc
            while self.batches.get() is not None:
                pass
        finally:
            connection.close()

    def put(self, batch) -> None:
        if self.error is not None:
            raise self.error
        self.batches.put(batch)

    def finish(self) -> None:
        self.batches.put(None)
        self.join()
        if self.error is not None:
            raise self.error
