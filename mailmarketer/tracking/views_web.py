"""The website edge: the snippet (/t/mm.js) and its collect endpoint (/t/e). Public, cookieless.

/t/e answers 204 to everything it does not refuse outright (garbage, an unknown site, a bot, a
flood, a browser that asks not to be tracked), so a client learns nothing from the answer and
never sees an error. The one exception: when neither the spool nor the database can keep a
hit, the answer is 503, because a 2xx means "stored" (DESIGN.md section 5).

The hot path writes no database and parses little: the site and its origins come from a
per-process cache (queries_web), the origin, DNT/GPC and flood checks are in memory, the address
is cut here as the site says (only what may be stored is ever written, even to the spool) and
the visitor hash made from the whole one; the hit's captured text, capped, is appended to the
spool as it came (web_ingest.py: group commit, synced before the answer). The worker then does
the rest in batches: user agent and bots, referrer class, UTM, each field cut to its column, and
whether a visitor token's person has consented. The counters of hits refused and floods are
summed in the process and written at most every COUNT_SECONDS (best effort); bots are counted
by the worker, with the batch.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import secrets
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from django.utils.timezone import now
from django.views.decorators.csrf import csrf_exempt

from mailmarketer.accounts.access import public_view
from mailmarketer.audience.links import read_visitor_token
from mailmarketer.lib.http import client_ip

from . import queries_web, web, web_ingest

logger = logging.getLogger("mailmarketer.tracking")

BODY_MAX = 8192

SNIPPET_PATH = Path(__file__).parent / "static" / "tracking" / "mm.js"
_snippet = SNIPPET_PATH.read_bytes()
_snippet_gz = gzip.compress(_snippet, 9, mtime=0)
_snippet_etag = '"' + hashlib.sha256(_snippet).hexdigest()[:20] + '"'


@public_view
def snippet(request):
    if request.headers.get("If-None-Match") == _snippet_etag:
        response = HttpResponse(status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(_snippet_gz, content_type="text/javascript; charset=utf-8")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(_snippet, content_type="text/javascript; charset=utf-8")
    response["ETag"] = _snippet_etag
    response["Vary"] = "Accept-Encoding"
    # A day fresh, then a week served while revalidating: a new version reaches every site
    # within a day, and the browser rarely waits for us.
    response["Cache-Control"] = "public, max-age=86400, stale-while-revalidate=604800"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


# -- flood limit ------------------------------------------------------------------------------


class FloodLimit:
    """Hits per IP address per minute, in this process (a fixed window, forgotten every
    minute, so memory is bounded by one minute's addresses). One address over the limit is
    refused; every other address goes on as before."""

    def __init__(self):
        self.window = 0
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def allow(self, ip: str, limit: int) -> bool:
        minute = int(time.monotonic() // 60)
        with self.lock:
            if minute != self.window:
                self.window, self.counts = minute, {}
            count = self.counts.get(ip, 0) + 1
            self.counts[ip] = count
        return count <= limit


flood = FloodLimit()


def _cors(response, origin: str) -> None:
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Access-Control-Max-Age"] = "86400"
    response["Vary"] = "Origin"


@csrf_exempt
@public_view
def collect(request):
    response = HttpResponse(status=204)
    response["Cache-Control"] = "no-store"
    if request.method == "OPTIONS":
        return response  # the snippet's requests are simple ones; nothing to preflight
    if request.method != "POST":
        return response
    try:
        hit = _record(request, response)
    except DatabaseError:
        # The site could not be looked up (a process that has not seen it while the database
        # is down): nothing can be checked or stored, so no 2xx.
        logger.warning("collect: the database is unavailable and the site is not known here")
        return _unavailable()
    except Exception:
        # Garbage must not become an error page; it is logged for us, not answered.
        logger.exception("collect: a hit could not be read")
        return response
    flush_counts()
    if hit is None:
        return response
    record, token_ids = hit
    try:
        web_ingest.append(record, token_ids)
    except OSError:
        logger.warning("collect: the spool refused a hit; storing it in the database")
        try:
            web_ingest.store_records([record], [token_ids])
        except DatabaseError:
            logger.exception("collect: neither the spool nor the database took a hit")
            return _unavailable()
    return response


def _unavailable():
    failed = HttpResponse(status=503)
    failed["Retry-After"] = "5"
    failed["Cache-Control"] = "no-store"
    return failed


def _record(request, response) -> tuple[dict, tuple[int, int] | None] | None:
    """The hit as the spool keeps it (web_ingest.raw_record) and the ids a genuine visitor
    token names, or None when nothing is to be kept (counted apart where that helps).

    Only what must be decided here is: whether to keep the hit at all (the browser's wish, the
    site and its origins, the flood limit), and what of the address may be written anywhere
    (the site's IP mode; the visitor hash needs the whole address, so it is made here too).
    The rest (user agent, bots, referrer class, UTM, cutting each field to its column) is the
    worker's, at ingestion (web_ingest.py): the answer does not wait for it."""
    if request.headers.get("DNT") == "1" or request.headers.get("Sec-GPC") == "1":
        return None
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > BODY_MAX:
        return None
    try:
        payload = json.loads(request.body[:BODY_MAX].decode("utf-8", "replace"))
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    site = queries_web.site_by_key(str(payload.get("s", ""))[:22])
    if site is None:
        return None
    at = now()
    origin = request.headers.get("Origin", "")
    if origin not in queries_web.allowed_origins(site):
        count_apart(site, at.date(), "refused")
        return None
    _cors(response, origin)
    ip = client_ip(request) or ""
    if not flood.allow(ip, settings.TRACKING_IP_HITS_PER_MINUTE):
        count_apart(site, at.date(), "flood")
        return None
    ua = request.META.get("HTTP_USER_AGENT", "")[:1000]
    client_id = _text(payload.get("i"))[:40]
    key_material = f"{site.key}:{client_id}" if client_id else secrets.token_hex(16)
    kept, whole = web.kept_ip(site, ip)
    record = web_ingest.raw_record(
        site,
        at=at,
        key=hashlib.sha256(key_material.encode()).hexdigest()[:32],
        kind=payload.get("k"),
        fields={name: _text(payload.get(name)) for name in ("u", "t", "r", "g", "n")},
        props=payload.get("p"),
        ua=ua,
        ip=kept,
        whole=whole,
        visitor=web.visitor_hash(web.salt_for(at.date()), site.pk, ip, ua),
    )
    return record, _token_ids(site, _text(payload.get("v")))


def _text(value) -> str:
    return value[:4096] if isinstance(value, str) else ""


def _token_ids(site, token: str) -> tuple[int, int] | None:
    """(workspace, person) the visitor token names, when it is genuine and of this site's
    workspace; otherwise None (the anonymous tier). Whether the person's tracking consent
    stands is asked when the hit is stored (web_ingest.store)."""
    if not token:
        return None
    ids = read_visitor_token(token)
    if ids is None or ids[0] != site.workspace_id:
        return None
    return ids


# -- counters of what was counted apart --------------------------------------------------------

COUNT_SECONDS = 5.0
_counts: dict[tuple, int] = {}
_counts_lock = threading.Lock()
_counts_written = [time.monotonic()]


def count_apart(site, day, name: str) -> None:
    """Adds one to a counter in this process; flush_counts writes them."""
    key = (site.pk, site.workspace_id, day, name)
    with _counts_lock:
        _counts[key] = _counts.get(key, 0) + 1


def flush_counts(force: bool = False) -> None:
    """Writes the counters summed since the last write, at most every COUNT_SECONDS unless
    `force`; best effort (lost while the database is down, or with the process)."""
    if not _counts or (not force and time.monotonic() - _counts_written[0] < COUNT_SECONDS):
        return
    with _counts_lock:
        todo = dict(_counts)
        _counts.clear()
        _counts_written[0] = time.monotonic()
    for (site_id, workspace_id, day, name), count in todo.items():
        stand_in = _SiteIds(site_id, workspace_id)
        web.count_apart(stand_in, day, name, count)


class _SiteIds:
    __slots__ = ("pk", "workspace_id")

    def __init__(self, pk: int, workspace_id: int):
        self.pk, self.workspace_id = pk, workspace_id
