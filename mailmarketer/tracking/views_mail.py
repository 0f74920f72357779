"""The email side of the `/t/` edge: the open pixel `/t/o/<token>` and the click redirect
`/t/c/<token>` (tokens made and read by audience/links.py).

Public, cookieless, and never an error page for a real hit: whatever storing the event does
(mail.record_hit never raises), the person gets their image or their redirect. A token that is
forged, altered or names a link of another campaign gets a plain "not valid" page and changes
nothing; the redirect goes only to the URL stored for the campaign (no open redirect: nothing
in the request says where to go).
"""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseRedirect
from django.utils.timezone import now
from django.views.decorators.http import require_http_methods

from mailmarketer.accounts.access import public_view
from mailmarketer.audience.links import read_click_token, read_open_token
from mailmarketer.lib.http import client_ip

from . import mail
from .models import EmailEventKind

# A transparent 1x1 GIF: the smallest image every mail client shows (43 bytes).
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
INVALID = (
    "<!doctype html><title>Link not valid</title>"
    "<p>This link is not valid. If you copied it from a message, check that it is complete.</p>"
)


def _agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


@public_view
@require_http_methods(["GET", "HEAD"])
def open_pixel(request, token: str):
    delivery_id = read_open_token(token)
    if delivery_id is not None:
        target = mail.find_target(delivery_id)
        if target is not None:
            mail.record_hit(
                target,
                kind=EmailEventKind.OPEN,
                link_id=None,
                at=now(),
                method=request.method,
                user_agent=_agent(request),
                ip=client_ip(request),
            )
    response = HttpResponse(PIXEL, content_type="image/gif")
    # Every open must reach us: no cache, shared or private, may answer for us.
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private"
    return response


@public_view
@require_http_methods(["GET", "HEAD"])
def click(request, token: str):
    ids = read_click_token(token)
    target = mail.find_target(*ids) if ids is not None else None
    if target is None or not target.url:
        return HttpResponse(INVALID, status=404, content_type="text/html; charset=utf-8")
    mail.record_hit(
        target,
        kind=EmailEventKind.CLICK,
        link_id=ids[1],
        at=now(),
        method=request.method,
        user_agent=_agent(request),
        ip=client_ip(request),
    )
    response = HttpResponseRedirect(target.url)
    response["Cache-Control"] = "no-store, private"
    return response


@public_view
@require_http_methods(["GET", "HEAD"])
def edge_ok(request):
    """The tracking edge's liveness answer: a constant, touching no database (a load balancer
    routing /t/ to its own processes probes this; benchmarks/track_bench.py measures its rate as
    the limit of the server itself)."""
    return HttpResponse(b"ok", content_type="text/plain")
