"""The Outbox pages: the messages the installation wrote to `var/outbox/` while no SMTP relay
is configured (lib/outbox.py).

Each workspace sees the mail sent on its behalf, and each person the system mail sent to them
(their own password resets); see lib/outbox.py. Every page needs OUTBOX_VIEW (owners, admins)
and, since messages name their recipients and carry transactional data, VIEW_PERSONAL_DATA as
well (checked in the view, as the export pages do); each look writes one audit row
(web/actions.py): the list "outbox.listed" with the count, a message or its HTML frame
"outbox.viewed" with the message id.

A message's HTML is shown only inside `<iframe sandbox="">`, from its own endpoint whose
Content-Security-Policy is `sandbox` with nothing allowed but inline styles and data: images:
no script runs, no form posts, nothing is fetched from anywhere, and the frame is an opaque
origin, so the message can neither read the app nor call out (no tracking pixels either).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actors import Actor
from mailmarketer.lib import outbox

from .actions import record_outbox_listed, record_outbox_viewed

PAGE_SIZE = 50


# The page's own policy (the global middleware only adds its default when none is set). It must
# allow framing by our own pages: the default policy's frame-ancestors 'none' would blank it.
# Images: the web's (https:) and our own campaign images (/i/ on BASE_URL, plain http on a
# local evaluation), as the campaign preview allows them.
def message_html_csp() -> str:
    return (
        "sandbox allow-same-origin; default-src 'none'; "
        f"img-src data: https: {settings.BASE_URL}/i/; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )


# The open pixel (/t/o/<token>, delivery/tracked_links.py) is taken out of what staff are shown:
# a look at the outbox is not the recipient opening the message.
OPEN_PIXEL = re.compile(r"<img\b[^>]*\bsrc=[\"'][^\"']*/t/o/[^\"']*[\"'][^>]*>", re.IGNORECASE)


def without_open_pixel(html: str) -> str:
    return OPEN_PIXEL.sub("", html)


def _refused(request):
    """The 403 page for a role that may read the outbox but not see personal data, else None."""
    if request.membership.has(p.VIEW_PERSONAL_DATA):
        return None
    return render(request, "web/forbidden.html", {"permission": p.VIEW_PERSONAL_DATA}, status=403)


def _page_number(request) -> int:
    raw = request.GET.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"page must be a whole number from 1, not {raw[:20]!r}")
    return int(raw)


@workspace_view(p.OUTBOX_VIEW)
@require_GET
@never_cache
def outbox_list(request):
    if refused := _refused(request):
        return refused
    context = {"smtp_configured": bool(settings.SMTP_URL), "entries": [], "error": ""}
    try:
        page = _page_number(request)
    except ValueError as exc:
        context["error"] = str(exc).capitalize()
        return render(request, "web/outbox.html", context, status=400)
    entries, total = outbox.list_messages(
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, viewer=_viewer(request)
    )
    if page > 1 and not entries:
        raise Http404("No such page of the outbox")
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    if entries:
        record_outbox_listed(
            request.workspace, count=len(entries), actor=Actor.from_request(request)
        )
    context.update(
        {
            "entries": entries,
            "total": total,
            "page": page,
            "pages": pages,
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < pages else None,
        }
    )
    return render(request, "web/outbox.html", context)


def _viewer(request) -> outbox.Viewer:
    return outbox.Viewer(workspace_id=request.workspace.pk, email=request.user.email)


def _message_or_404(request, message_id: str):
    message = outbox.get_message(message_id, viewer=_viewer(request))
    if message is None:
        raise Http404("No such message in the outbox")
    return message


def _record_look(request, message_id: str, part: str) -> None:
    record_outbox_viewed(
        request.workspace, message_id=message_id, part=part, actor=Actor.from_request(request)
    )


@workspace_view(p.OUTBOX_VIEW)
@require_GET
@never_cache
def outbox_message(request, message_id: str):
    if refused := _refused(request):
        return refused
    message = _message_or_404(request, message_id)
    text, html = outbox.message_parts(message)
    context = {
        "message_id": message_id,
        "subject": str(message.get("Subject", "")),
        "headers": [(name, str(value)) for name, value in message.items()],
        "text": text,
        "has_html": html is not None,
    }
    _record_look(request, message_id, "message")
    return render(request, "web/outbox_message.html", context)


@workspace_view(p.OUTBOX_VIEW)
@require_GET
@never_cache
@xframe_options_sameorigin
def outbox_message_html(request, message_id: str):
    if refused := _refused(request):
        return refused
    message = _message_or_404(request, message_id)
    _, html = outbox.message_parts(message)
    if html is None:
        raise Http404("This message has no HTML part")
    _record_look(request, message_id, "html")
    response = HttpResponse(without_open_pixel(html), content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = message_html_csp()
    return response
