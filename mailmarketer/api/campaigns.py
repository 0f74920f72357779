"""/campaigns: write, read, start, pause, resume, cancel and test campaigns, read their delivery
ledger; /tx: one transactional message to one subscriber, through the same engine.

Campaigns are addressed by their uuid. Reading needs campaigns.view; writing, scheduling and
test sends campaigns.manage; starting, pausing, resuming, cancelling, retrying and /tx
campaigns.send (the moves' permissions are delivery.status.MOVES, the table the campaign page
uses too). Writes go through campaigns.actions (content) and delivery.campaign_actions
(sending): a template that cannot render, a bad
address, list or header is a 422 on the field it concerns (with the template's line); a
transition the status does not allow is a 409; a campaign that cannot start (no postal address,
no lists, no sender) a 400 with its code.

The ledger names people: without audience.view_personal_data their addresses are masked, and
every unmasked page writes one "subscriber.listed" audit row with the count.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from django.core import signing
from django.http import Http404
from ninja import Query, Router, Status

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience_actions
from mailmarketer.audience.emails import mask_addresses_in, mask_email, normalise_email
from mailmarketer.audience.queries import get_subscriber
from mailmarketer.campaigns import actions, queries
from mailmarketer.campaigns.actions import TemplateError
from mailmarketer.campaigns.models import Campaign
from mailmarketer.delivery import campaign_actions, transactional
from mailmarketer.delivery import queries as ledger
from mailmarketer.delivery.status import MOVES, moves_for

from .access import require
from .campaign_schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignPatch,
    CampaignQuery,
    DeliveryPage,
    DeliveryQuery,
    RetryOut,
    ScheduleIn,
    TestIn,
    TestOut,
    TransactionalIn,
    TransactionalOut,
)
from .errors import READ_ERRORS, WRITE_ERRORS, ApiError, FieldErrors
from .subscribers import reveals

router = Router(tags=["campaigns"])

CAMPAIGN_CURSOR_SALT = "mailmarketer.api.campaigns.cursor"
DELIVERY_CURSOR_SALT = "mailmarketer.api.deliveries.cursor"


# -- helpers -----------------------------------------------------------------------------------


def campaign_or_404(request, campaign_id: str) -> Campaign:
    try:
        key = uuid.UUID(campaign_id)
    except ValueError:
        key = None
    campaign = queries.get_campaign(request.workspace, str(key)) if key else None
    if campaign is None:
        raise Http404("no such campaign in this workspace")
    return campaign


@contextmanager
def field_errors():
    """An action's refusal about one field (a template with its line, an address, a list, a
    header) becomes a 422 on that field; other refusals keep their status."""
    try:
        yield
    except Conflict:
        raise
    except ActionError as exc:
        name = exc.field
        if name is None:
            raise
        raise FieldErrors([{"field": name, "message": str(exc)}]) from exc


def _ref(mailing_list) -> dict:
    return {"id": mailing_list.pk, "slug": mailing_list.slug, "name": mailing_list.name}


def summary_out(campaign: Campaign, sent: int, total: int) -> dict:
    return {
        "id": str(campaign.uuid),
        "name": campaign.name,
        "kind": campaign.kind,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "subject": campaign.subject,
        "lists": [_ref(m) for m in campaign.lists.all()],
        "sent": sent,
        "total": total,
        "scheduled_at": campaign.scheduled_at,
        "started_at": campaign.started_at,
        "finished_at": campaign.finished_at,
        "created_at": campaign.created_at,
    }


def campaign_out(campaign: Campaign) -> dict:
    campaign.refresh_from_db()
    progress = ledger.campaign_progress(campaign) if campaign.started_at else None
    out = summary_out(campaign, progress.sent if progress else 0, progress.total if progress else 0)
    out.update(
        {
            "from_name": campaign.from_name,
            "from_email": campaign.from_email,
            "reply_to": campaign.reply_to,
            "body_format": campaign.body_format,
            "body": campaign.body,
            "text_body": campaign.text_body,
            "layout": campaign.layout_id,
            "exclude_lists": [_ref(m) for m in campaign.exclude_lists.order_by("name")],
            "segment": campaign.segment_id,
            "exclude_segments": sorted(campaign.exclude_segments.values_list("pk", flat=True)),
            "headers": campaign.headers,
            "archive": campaign.archive,
            "attachments": [
                {"id": a.pk, "filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in queries.attachments_of(campaign)
            ],
            "moves": [
                move
                for move in moves_for(campaign.status)
                if move != "retry" or (progress is not None and progress.failed > 0)
            ],
            "progress": None
            if progress is None
            else {
                "counts": progress.counts,
                "total": progress.total,
                "sent": progress.sent,
                "rate": round(progress.rate, 3),
                "eta_seconds": progress.eta_seconds,
                "planning_done": progress.planning_done,
            },
            "updated_at": campaign.updated_at,
        }
    )
    return out


def _cursor(salt: str, key: int | None) -> str | None:
    return None if key is None else signing.Signer(salt=salt).sign_object({"k": key})


def _read_cursor(salt: str, raw: str) -> int | None:
    """The id a cursor of ours stands for; a 422 on `cursor` for anything else."""
    if not raw:
        return None
    try:
        key = signing.Signer(salt=salt).unsign_object(raw)["k"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        key = None
    if not isinstance(key, int):
        raise FieldErrors(
            [
                {
                    "field": "cursor",
                    "message": "not a cursor this API gave out: pass `next_cursor` of the "
                    "previous page as it is, or leave it out for the first page",
                }
            ]
        )
    return key


# -- campaigns ---------------------------------------------------------------------------------


@router.get("/campaigns", response={200: CampaignPage, **READ_ERRORS}, summary="Campaigns")
@require(p.CAMPAIGNS_VIEW)
def list_campaigns(request, filters: Query[CampaignQuery]):
    """Newest first, `limit` per page (1-200, default 50), each with `sent` of `total`; pass
    `next_cursor` back as `cursor`. `kind=transactional` lists the messages sent with /tx."""
    before = _read_cursor(CAMPAIGN_CURSOR_SALT, filters.cursor)
    found = (
        queries.campaigns_for(request.workspace, filters.status or None)
        .filter(kind=filters.kind)
        .prefetch_related("lists")
        .order_by("-pk")
    )
    if before is not None:
        found = found.filter(pk__lt=before)
    page = list(found[: filters.limit + 1])
    next_key = page[filters.limit - 1].pk if len(page) > filters.limit else None
    page = page[: filters.limit]
    counts = ledger.sent_and_total(page)
    return {
        "campaigns": [summary_out(c, *counts[c.pk]) for c in page],
        "next_cursor": _cursor(CAMPAIGN_CURSOR_SALT, next_key),
    }


@router.post("/campaigns", response={201: CampaignOut, **WRITE_ERRORS}, summary="Write a campaign")
@require(p.CAMPAIGNS_MANAGE)
def create_campaign(request, payload: CampaignIn):
    """A draft. Its content is compiled: a template that cannot render is a 422 on its field,
    with the line (`body, line 3: unknown filter 'shout'`)."""
    with field_errors():
        campaign = actions.do_create_campaign(
            request.workspace, actor=Actor.from_request(request), **payload.model_dump()
        )
    return Status(201, campaign_out(campaign))


@router.get(
    "/campaigns/{campaign_id}", response={200: CampaignOut, **READ_ERRORS}, summary="A campaign"
)
@require(p.CAMPAIGNS_VIEW)
def get_campaign(request, campaign_id: str):
    """With its content, audience, attachments and, once started, its progress."""
    return campaign_out(campaign_or_404(request, campaign_id))


@router.patch(
    "/campaigns/{campaign_id}",
    response={200: CampaignOut, **WRITE_ERRORS},
    summary="Change a draft or scheduled campaign",
)
@require(p.CAMPAIGNS_MANAGE)
def patch_campaign(request, campaign_id: str, payload: CampaignPatch):
    """Send only what changes. A campaign that has started is a 409."""
    campaign = campaign_or_404(request, campaign_id)
    with field_errors():
        actions.do_update_campaign(
            campaign, payload.model_dump(exclude_unset=True), actor=Actor.from_request(request)
        )
    return campaign_out(campaign)


@router.delete(
    "/campaigns/{campaign_id}", response={204: None, **WRITE_ERRORS}, summary="Delete a draft"
)
@require(p.CAMPAIGNS_MANAGE)
def delete_campaign(request, campaign_id: str):
    """Only drafts; anything else is a 409 (cancel it instead: its record stays)."""
    actions.do_delete_campaign(
        campaign_or_404(request, campaign_id), actor=Actor.from_request(request)
    )
    return Status(204, None)


# -- status --------------------------------------------------------------------------------------


@router.post(
    "/campaigns/{campaign_id}/start",
    response={200: CampaignOut, **WRITE_ERRORS},
    summary="Start sending now",
)
@require(MOVES["start"].permission)
def start_campaign(request, campaign_id: str):
    """From draft or scheduled. Refused with 400 `postal_address_required`, `lists_required` or
    `from_required` when it cannot be sent. The audience is fixed now: people who join later
    are not included."""
    campaign = campaign_or_404(request, campaign_id)
    campaign_actions.do_start_campaign(campaign, actor=Actor.from_request(request))
    return campaign_out(campaign)


@router.post(
    "/campaigns/{campaign_id}/schedule",
    response={200: CampaignOut, **WRITE_ERRORS},
    summary="Start at a given time",
)
@require(MOVES["schedule"].permission)
def schedule_campaign(request, campaign_id: str, payload: ScheduleIn):
    """`at` without an offset is read in the workspace's time zone; a time in the past, or
    one that does not exist or happens twice there (the clocks change), is a 422 on `at`. The
    checks of starting are made now too. Scheduling a scheduled campaign moves it."""
    campaign = campaign_or_404(request, campaign_id)
    try:
        campaign_actions.do_schedule_campaign(
            campaign, payload.at, actor=Actor.from_request(request)
        )
    except Conflict:
        raise
    except ActionError as exc:
        if exc.code in ("invalid_time", "invalid"):
            raise FieldErrors([{"field": "at", "message": str(exc)}]) from exc
        raise
    return campaign_out(campaign)


@router.post(
    "/campaigns/{campaign_id}/unschedule",
    response={200: CampaignOut, **WRITE_ERRORS},
    summary="Back to a draft",
)
@require(MOVES["unschedule"].permission)
def unschedule_campaign(request, campaign_id: str):
    campaign = campaign_or_404(request, campaign_id)
    campaign_actions.do_unschedule_campaign(campaign, actor=Actor.from_request(request))
    return campaign_out(campaign)


@router.post(
    "/campaigns/{campaign_id}/pause", response={200: CampaignOut, **WRITE_ERRORS}, summary="Pause"
)
@require(MOVES["pause"].permission)
def pause_campaign(request, campaign_id: str):
    """Messages already handed to a relay still arrive; the rest wait for resume."""
    campaign = campaign_or_404(request, campaign_id)
    campaign_actions.do_pause_campaign(
        campaign, actor=Actor.from_request(request), reason="paused via API"
    )
    return campaign_out(campaign)


@router.post(
    "/campaigns/{campaign_id}/resume",
    response={200: CampaignOut, **WRITE_ERRORS},
    summary="Resume a paused or failed campaign",
)
@require(MOVES["resume"].permission)
def resume_campaign(request, campaign_id: str):
    campaign = campaign_or_404(request, campaign_id)
    campaign_actions.do_resume_campaign(campaign, actor=Actor.from_request(request))
    return campaign_out(campaign)


@router.post(
    "/campaigns/{campaign_id}/cancel",
    response={200: CampaignOut, **WRITE_ERRORS},
    summary="Cancel for good",
)
@require(MOVES["cancel"].permission)
def cancel_campaign(request, campaign_id: str):
    """Messages not yet sent never will be; the record stays. A cancelled campaign cannot be
    resumed (clone it instead)."""
    campaign = campaign_or_404(request, campaign_id)
    campaign_actions.do_cancel_campaign(campaign, actor=Actor.from_request(request))
    return campaign_out(campaign)


@router.post(
    "/campaigns/{campaign_id}/retry",
    response={200: RetryOut, **WRITE_ERRORS},
    summary="Queue the failed messages again",
)
@require(MOVES["retry"].permission)
def retry_campaign(request, campaign_id: str):
    """Failed ledger rows go back to the queue with their attempts reset; a finished campaign
    runs again to send them, a paused or failed one sends them once resumed. No failed rows is
    a 400 `nothing_to_retry`."""
    campaign = campaign_or_404(request, campaign_id)
    count = campaign_actions.do_retry_failed(campaign, actor=Actor.from_request(request))
    return {"requeued": count, "campaign": campaign_out(campaign)}


# -- tests and the ledger ----------------------------------------------------------------------


@router.post(
    "/campaigns/{campaign_id}/test",
    response={200: TestOut, **WRITE_ERRORS},
    summary="Send a test to staff addresses",
)
@require(p.CAMPAIGNS_MANAGE)
def test_campaign(request, campaign_id: str, payload: TestIn):
    """Rendered with sample data, or as `subscriber` (needs audience.view_personal_data), sent
    to up to 10 addresses with the subject marked [Test]; not in the ledger."""
    campaign = campaign_or_404(request, campaign_id)
    subscriber = None
    if payload.subscriber is not None:
        if not reveals(request):
            raise ApiError(
                403,
                f"this token's role ({request.api_token.role}) does not have the permission "
                f"{p.VIEW_PERSONAL_DATA!r} that rendering as a subscriber needs",
            )
        subscriber = _subscriber(request, payload.subscriber, "subscriber")
    try:
        rendered = campaign_actions.do_send_test(
            campaign, payload.to, actor=Actor.from_request(request), subscriber=subscriber
        )
    except TemplateError:
        raise
    except ActionError as exc:
        raise FieldErrors([{"field": "to", "message": str(exc)}]) from exc
    # The action checked every address; the same ones, told apart as it does.
    recipients = dict.fromkeys(normalise_email(a) for a in payload.to if a.strip())
    return {"recipients": len(recipients), "subject": rendered.subject}


def _subscriber(request, raw: str, field: str):
    try:
        key = uuid.UUID(raw)
    except ValueError:
        key = None
    person = get_subscriber(request.workspace, key) if key else None
    if person is None:
        raise FieldErrors([{"field": field, "message": f"no subscriber {raw!r} here"}])
    return person


@router.get(
    "/campaigns/{campaign_id}/deliveries",
    response={200: DeliveryPage, **READ_ERRORS},
    summary="The delivery ledger",
)
@require(p.CAMPAIGNS_VIEW)
def list_deliveries(request, campaign_id: str, filters: Query[DeliveryQuery]):
    """One row per recipient in the order they were planned: status, attempts, when it was
    sent, through which relay, and the receiving server's reply. `limit` per page (1-500,
    default 50); pass `next_cursor` back as `cursor`. Addresses are masked without
    audience.view_personal_data, the recipient's and any inside `smtp_reply`; an unmasked page
    is audited."""
    campaign = campaign_or_404(request, campaign_id)
    after = _read_cursor(DELIVERY_CURSOR_SALT, filters.cursor)
    rows, last = ledger.ledger_page(
        campaign, status=filters.status or None, after=after, limit=filters.limit
    )
    reveal = reveals(request)
    if reveal and rows:
        audience_actions.record_subscribers_listed(
            request.workspace, count=len(rows), actor=Actor.from_request(request)
        )
    return {
        "deliveries": [
            {
                "id": d.pk,
                "recipient": {
                    "id": str(d.subscriber.uuid) if d.subscriber else None,
                    "email": None
                    if d.subscriber is None
                    else d.subscriber.email
                    if reveal
                    else mask_email(d.subscriber.email),
                },
                "status": d.status,
                "attempts": d.attempts,
                "sent_at": d.sent_at,
                # A relay's reply may name the recipient ("550 <j@example.com>: unknown").
                "smtp_reply": d.smtp_reply if reveal else mask_addresses_in(d.smtp_reply),
                "skip_reason": d.skip_reason,
                "server": d.server.name if d.server else None,
                "message_id": d.message_id,
            }
            for d in rows
        ],
        "next_cursor": _cursor(DELIVERY_CURSOR_SALT, last),
    }


# -- transactional -----------------------------------------------------------------------------


@router.post(
    "/tx",
    response={202: TransactionalOut, **WRITE_ERRORS},
    summary="Send one transactional message",
)
@require(p.CAMPAIGNS_SEND)
def send_transactional(request, payload: TransactionalIn):
    """One templated message (a receipt, a reminder, a password reset) to one person, by address
    (`to`) or subscriber uuid (`subscriber`), through the same engine as campaigns: queued now
    (202), sent by a worker, its ledger row readable at /campaigns/{campaign}/deliveries. An
    address that is nobody's yet gets a subscriber record on no list, with source `tx`
    (transactional mail): no marketing consent is implied or recorded, so no campaign reaches
    them unless they subscribe. People who unsubscribed from marketing still get it; blocklisted
    and bounced, complained, erased or manually suppressed addresses are a 409. No
    List-Unsubscribe, no postal-address footer."""
    if (payload.to is None) == (payload.subscriber is None):
        raise FieldErrors(
            [{"field": "to", "message": "give either `to` (an address) or `subscriber` (a uuid)"}]
        )
    fields = payload.model_dump(exclude={"to", "subscriber"})
    with field_errors():
        if payload.to is not None:
            person = payload.to
        else:
            person = _subscriber(request, payload.subscriber, "subscriber")
        campaign = transactional.do_send_transactional(
            request.workspace, person, actor=Actor.from_request(request), **fields
        )
    delivery = campaign.deliveries.get()
    return Status(
        202, {"campaign": str(campaign.uuid), "delivery": delivery.pk, "status": delivery.status}
    )
