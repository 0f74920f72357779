"""The email side of the `/t/` edge: the open pixel `/t/o/<token>` and the click redirect
`/t/c/<token>` (tokens made and read by audience/links.py).

Public, cookieless, and never an error page for a real hit. The hot path writes no database:
the token is a MAC checked without one, a click's stored URL comes from a per-process cache
(mail.link_url), and the hit is appended to the spool (mail_spool.py, fsync'd, shared with
other requests) before the answer goes out; the worker stores it (mail_ingest.py). If even the
spool cannot take it, the hit is lost (logged), never the person's image or redirect.

A token that is forged or altered gets a plain "not valid" page and changes nothing; the
redirect goes only to a URL stored for a campaign (no open redirect: nothing in the request
says where to go).
"""

from __future__ import annotations

import logging

from django.http import HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from mailmarketer.accounts.access import public_view
from mailmarketer.audience.links import read_click_token, read_open_token
from mailmarketer.lib.http import client_ip

from . import mail, mail_spool

logger = logging.getLogger("mailmarketer.tracking")

# A transparent 1x1 GIF: the smallest image every mail client shows (43 bytes).
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
# Read on phones mostly (a link in a message): the viewport, so that it is not shown tiny.
INVALID = (
    '<!doctype html><html lang="en"><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Link not valid</title>"
    "<p>This link is not valid. If you copied it from a message, check that it is complete.</p>"
)


def _agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


def _spool(request, kind: str, delivery_id: int, link_id: int | None) -> None:
    record = mail.spool_record(
        kind=kind,
        delivery_id=delivery_id,
        link_id=link_id,
        method=request.method,
        user_agent=_agent(request),
        ip=client_ip(request),
    )
    try:
        mail_spool.append(record)
    except OSError:
        logger.error("tracking hit lost: the spool refused it (ledger row %s)", delivery_id)


@public_view
@require_http_methods(["GET", "HEAD"])
def open_pixel(request, token: str):
    delivery_id = read_open_token(token)
    if delivery_id is not None:
        _spool(request, "o", delivery_id, None)
    response = HttpResponse(PIXEL, content_type="image/gif")
    # Every open must reach us: no cache, shared or private, may answer for us.
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private"
    return response


@public_view
@require_http_methods(["GET", "HEAD"])
def click(request, token: str):
    ids = read_click_token(token)
    url = mail.link_url(ids[1]) if ids is not None else None
    if url is None:
        return HttpResponse(INVALID, status=404, content_type="text/html; charset=utf-8")
    _spool(request, "c", ids[0], ids[1])
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "no-store, private"
    return response


@public_view
@require_http_methods(["GET", "HEAD"])
def edge_ok(request):
    """The tracking edge's liveness answer: a constant, touching no database (a load balancer
    routing /t/ to its own processes probes this; benchmarks/track_bench.py measures its rate as
    the limit of the server itself)."""
    return HttpResponse(b"ok", content_type="text/plain")
