"""A campaign's delivery ledger: who was sent what, when, through which server, with which SMTP
reply; filtered by status, in keyset pages of 50 (id order), and exported as CSV.

Masking: without audience.view_personal_data the recipient is shown masked (j•••@example.com);
a page shown unmasked writes one "subscriber.listed" audit row with the count, as the audience
pages do. The SMTP reply is text from another server: only ever shown escaped, and with every
address in it masked likewise ("550 <j•••@example.com>: unknown"). The CSV export shows it whole,
since only those who may see personal data may export.

The export needs audience.export and audience.view_personal_data (the decorator names the
first, the view checks the second); it is streamed, written once per export in the audit log
(before the first row, so an interrupted download is on record too), and every text cell that a
spreadsheet would run as a formula is neutralised (audience/exporting.py).
"""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils.http import content_disposition_header
from django.utils.timezone import now
from django.views.decorators.http import require_GET, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience_actions
from mailmarketer.audience.emails import mask_addresses_in, mask_email
from mailmarketer.audience.exporting import BOM, csv_cell
from mailmarketer.campaigns.views_campaigns import campaign_or_404, subnav

from . import queries as ledger
from .forms import LedgerFilterForm

EXPORT_CHUNK = 2000
EXPORT_COLUMNS = (
    "ledger_id",
    "subscriber_uuid",
    "email",
    "status",
    "attempts",
    "sent_at",
    "smtp_reply",
    "server",
    "message_id",
)
ERASED = "(erased)"


def _forbidden(request, permission: str):
    return render(request, "web/forbidden.html", {"permission": permission}, status=403)


def _can_export(membership) -> bool:
    return membership.has(p.AUDIENCE_EXPORT) and membership.has(p.VIEW_PERSONAL_DATA)


def _recipient(delivery, reveal: bool) -> str:
    subscriber = delivery.subscriber
    if subscriber is None:
        return ERASED
    return subscriber.email if reveal else mask_email(subscriber.email)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def campaign_ledger(request, campaign_id: int):
    campaign = campaign_or_404(request, campaign_id)
    return _ledger_page(request, campaign, LedgerFilterForm(request.GET))


def _ledger_page(request, campaign, form, *, error: str = "", status: int = 200):
    reveal = request.membership.has(p.VIEW_PERSONAL_DATA)
    rows, after = [], None
    chosen = ""
    if form.is_valid():
        chosen = form.cleaned_data["status"]
        page, after = ledger.ledger_page(
            campaign, status=chosen or None, after=form.cleaned_data["after"]
        )
        rows = [
            {
                "d": d,
                "recipient": _recipient(d, reveal),
                "reply": d.smtp_reply if reveal else mask_addresses_in(d.smtp_reply),
            }
            for d in page
        ]
        if reveal and rows:
            audience_actions.record_subscribers_listed(
                request.workspace, count=len(rows), actor=Actor.from_request(request)
            )
    else:
        error = "Fix the filter below to see the ledger."
        status = 400
    base = {"status": chosen} if chosen else {}
    progress = ledger.campaign_progress(campaign)
    context = {
        "subnav": subnav(request, "campaigns"),
        "campaign": campaign,
        "form": form,
        "rows": rows,
        "masked": not reveal,
        "chosen": chosen,
        "progress": progress,
        "status_links": [
            {
                "value": value,
                "label": label,
                "count": progress.counts[value],
                "query": urlencode({"status": value}),
            }
            for value, label in ledger.Delivery.Status.choices
        ],
        "paged": form.is_valid() and form.cleaned_data["after"] is not None,
        "first_url": "?" + urlencode(base),
        "next_url": "?" + urlencode({**base, "after": after}) if after else "",
        "can_export": _can_export(request.membership),
        "error": error,
    }
    return render(request, "delivery/ledger.html", context, status=status)


class _Line:
    """csv.writer's file: hands each line back instead of keeping it."""

    def write(self, text: str) -> str:
        return text


def ledger_csv(rows):
    writer = csv.writer(_Line())
    yield BOM + writer.writerow(EXPORT_COLUMNS)
    for pk, subscriber_uuid, email, status, attempts, sent_at, reply, server, message_id in rows:
        yield writer.writerow(
            [
                csv_cell(pk),
                csv_cell(str(subscriber_uuid) if subscriber_uuid else ""),
                csv_cell(email if subscriber_uuid else ERASED),
                csv_cell(status),
                csv_cell(attempts),
                csv_cell(sent_at),
                csv_cell(reply),
                csv_cell(server or ""),
                csv_cell(message_id),
            ]
        )


@workspace_view(p.AUDIENCE_EXPORT)
@require_POST
def campaign_ledger_export(request, campaign_id: int):
    if not request.membership.has(p.VIEW_PERSONAL_DATA):
        return _forbidden(request, p.VIEW_PERSONAL_DATA)
    if not request.membership.has(p.CAMPAIGNS_VIEW):
        return _forbidden(request, p.CAMPAIGNS_VIEW)
    campaign = campaign_or_404(request, campaign_id)
    form = LedgerFilterForm(request.POST)
    if not form.is_valid():
        return _ledger_page(
            request,
            campaign,
            LedgerFilterForm({}),
            error="Choose one of the statuses listed to export, or all of them.",
            status=400,
        )
    status = form.cleaned_data["status"] or None
    rows = ledger.ledger_for_export(campaign, status=status)
    audience_actions.record_audience_export(
        request.workspace,
        source=campaign,
        fmt="csv",
        members=f"ledger:{status or 'all'}",
        count=rows.count(),
        actor=Actor.from_request(request),
    )
    response = StreamingHttpResponse(
        ledger_csv(rows.iterator(chunk_size=EXPORT_CHUNK)),
        content_type="text/csv; charset=utf-8",
    )
    name = f"campaign-{campaign.pk}-ledger{'-' + status if status else ''}-{now():%Y%m%d-%H%M}.csv"
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "no-store"  # personal data: no cache may keep a copy
    return response
