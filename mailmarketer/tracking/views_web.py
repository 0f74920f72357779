"""The website edge: the snippet (/t/mm.js) and its collect endpoint (/t/e). Public, cookieless.

/t/e answers 204 to everything it does not refuse outright (garbage, an unknown site, a bot, a
flood, a browser that asks not to be tracked), so a client learns nothing from the answer and
never sees an error. The one exception: when neither the database nor the spool can keep a
hit, the answer is 503, because a 2xx means "stored" (DESIGN.md section 5).

A hit is stored before the answer goes out (the INSERT commits, or the spool line is fsync'd),
so a web process killed right after answering has lost nothing it acknowledged.
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

from . import queries_web, spool, web
from .models_web import HitKind

logger = logging.getLogger("mailmarketer.tracking")

BODY_MAX = 8192
KINDS = {"p": HitKind.PAGEVIEW, "o": HitKind.OUTBOUND, "d": HitKind.DOWNLOAD, "e": HitKind.EVENT}

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
        rows = _rows(request, response)
    except DatabaseError:
        # The site could not be looked up (a process that has not seen it while the database
        # is down): nothing can be checked or stored, so no 2xx.
        logger.warning("collect: the database is unavailable and the site is not known here")
        return _unavailable()
    except Exception:
        # Garbage must not become an error page; it is logged for us, not answered.
        logger.exception("collect: a hit could not be read")
        return response
    if not rows:
        return response
    try:
        web.store_rows(rows)
    except DatabaseError:
        logger.warning("collect: the database refused a hit; spooling it")
        try:
            spool.append(rows)
        except OSError:
            logger.exception("collect: neither the database nor the spool took a hit")
            return _unavailable()
    return response


def _unavailable():
    failed = HttpResponse(status=503)
    failed["Retry-After"] = "5"
    failed["Cache-Control"] = "no-store"
    return failed


def _rows(request, response) -> list[dict]:
    """The hit's row, or [] when nothing is to be stored (counted apart where that helps)."""
    if request.headers.get("DNT") == "1" or request.headers.get("Sec-GPC") == "1":
        return []
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > BODY_MAX:
        return []
    try:
        payload = json.loads(request.body[:BODY_MAX].decode("utf-8", "replace"))
    except ValueError:
        return []
    if not isinstance(payload, dict):
        return []
    site = queries_web.site_by_key(str(payload.get("s", ""))[:22])
    if site is None:
        return []
    at = now()
    origin = request.headers.get("Origin", "")
    if origin not in site.origin_list():
        web.count_apart(site, at.date(), "refused")
        return []
    _cors(response, origin)
    ip = client_ip(request) or ""
    if not flood.allow(ip, settings.TRACKING_IP_HITS_PER_MINUTE):
        web.count_apart(site, at.date(), "flood")
        return []
    ua = request.headers.get("User-Agent", "")[:1000]
    info = web.agent(ua)
    if info[5]:
        web.count_apart(site, at.date(), "bot")
        return []
    kind = KINDS.get(payload.get("k"), HitKind.PAGEVIEW)
    path, utm, _host = web.split_url(_text(payload.get("u")))
    props = payload.get("p")
    client_id = _text(payload.get("i"))[:40]
    key_material = f"{site.key}:{client_id}" if client_id else secrets.token_hex(16)
    return [
        web.hit_row(
            site,
            at=at,
            key=hashlib.sha256(key_material.encode()).hexdigest()[:32],
            kind=kind,
            path=path,
            utm=utm,
            title=_text(payload.get("t")),
            referrer=_text(payload.get("r")),
            target=_text(payload.get("g")) if kind != HitKind.PAGEVIEW else "",
            name=_text(payload.get("n")) if kind == HitKind.EVENT else "",
            props=json.dumps(props, separators=(",", ":"))[:1000]
            if isinstance(props, dict)
            else "",
            ip=ip,
            ua=ua,
            subscriber_id=_identified(site, _text(payload.get("v"))),
            agent_info=info,
        )
    ]


def _text(value) -> str:
    return value[:4096] if isinstance(value, str) else ""


def _identified(site, token: str) -> int | None:
    """The person the visitor token names, when it is genuine, of this site's workspace, and
    the person's tracking consent stands; otherwise None (the anonymous tier)."""
    if not token:
        return None
    ids = read_visitor_token(token)
    if ids is None or ids[0] != site.workspace_id:
        return None
    return ids[1] if queries_web.tracking_consent(site.workspace_id, ids[1]) else None
