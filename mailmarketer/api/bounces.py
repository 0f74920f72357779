"""/bounces and /suppressions: the reports received about sent mail, and the addresses never to
be mailed again, thin over delivery.bounces and audience's suppression actions.

- `GET /bounces` needs campaigns.view; addresses and diagnostics are masked without
  audience.view_personal_data (an unmasked page is audited, as the staff pages are).
- `GET /suppressions` needs audience.view (entries are hashes: an address is looked up with
  `email=`); adding and removing need audience.manage, removing a complaint's suppression needs
  an owner's token, and an erasure's suppression is never removed (the person asked to be
  forgotten and not mailed again). A removal names its reason, kept in the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.core import signing
from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import actions as audience
from mailmarketer.audience.emails import mask_addresses_in, mask_email, suppression_hash
from mailmarketer.audience.models import Suppression
from mailmarketer.delivery.bounces import queries
from mailmarketer.delivery.bounces.models import Bounce

from .access import require
from .errors import ApiError
from .schemas import Error

router = Router(tags=["bounces"])

READ_ERRORS = {400: Error, 401: Error, 403: Error, 422: Error, 429: Error}
WRITE_ERRORS = {**READ_ERRORS, 404: Error, 409: Error}
SALT = "mailmarketer.api.bounces.cursor"
SUPPRESSION_SALT = "mailmarketer.api.suppressions.cursor"

Kind = Literal["hard", "soft", "complaint", "auto_reply", "delayed", "unknown"]
Outcome = Literal[
    "suppressed",
    "soft_to_hard",
    "counted",
    "complained",
    "already",
    "ignored",
    "not_acted",
    "unmatched",
    "refused",
]
Reason = Literal["unsubscribed_all", "hard_bounce", "complaint", "erased", "manual"]


def _encode(salt: str, before: int | None) -> str | None:
    return None if before is None else signing.Signer(salt=salt).sign_object({"before": before})


def _decode(salt: str, raw: str) -> int | None:
    if not raw:
        return None
    try:
        before = signing.Signer(salt=salt).unsign_object(raw[:200])["before"]
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        before = None
    if not isinstance(before, int):
        raise ApiError(
            422,
            "cursor: not a cursor this API gave out: pass `next_cursor` of the previous page",
            code="invalid",
        )
    return before


class BounceOut(Schema):
    id: int
    received_at: datetime
    kind: Kind
    outcome: Outcome
    channel: Literal["smtp", "imap", "webhook"]
    provider: str
    matched_by: str = Field(description='token, message_id, address, provider, or "" (unmatched)')
    status_code: str
    address: str = Field(description="Masked without audience.view_personal_data")
    recipient_domain: str
    diagnostic: str
    reason: str
    campaign_id: int | None
    delivery_id: int | None


class BouncesOut(Schema):
    bounces: list[BounceOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class BounceFilters(Schema):
    kind: Kind | None = None
    outcome: Outcome | None = None
    channel: Literal["smtp", "imap", "webhook"] | None = None
    campaign_id: int | None = Field(None, ge=1, le=2**62)
    cursor: str = Field("", max_length=200, description="`next_cursor` of the previous page")
    limit: int = Field(50, ge=1, le=500)


def _bounce(b: Bounce, reveal: bool) -> dict:
    keep = lambda a: a.lower().startswith("bounces")  # noqa: E731 - our return path names nobody
    return {
        "id": b.pk,
        "received_at": b.received_at,
        "kind": b.kind,
        "outcome": b.outcome,
        "channel": b.channel,
        "provider": b.provider,
        "matched_by": b.matched_by,
        "status_code": b.status_code,
        "address": b.address if reveal or not b.address else mask_email(b.address),
        "recipient_domain": b.recipient_domain,
        "diagnostic": b.diagnostic if reveal else mask_addresses_in(b.diagnostic, keep=keep),
        "reason": b.reason if reveal else mask_addresses_in(b.reason, keep=keep),
        "campaign_id": b.campaign_id,
        "delivery_id": b.delivery_id,
    }


@router.get("/bounces", response={200: BouncesOut, **READ_ERRORS})
@require(p.CAMPAIGNS_VIEW)
def list_bounces(request, filters: Query[BounceFilters]):
    """Reports received about mail this workspace sent, newest first."""
    before = _decode(SALT, filters.cursor)
    page, next_id = queries.bounces_page(
        request.workspace,
        kind=filters.kind,
        outcome=filters.outcome,
        channel=filters.channel,
        campaign_id=filters.campaign_id,
        before=before,
        size=filters.limit,
    )
    reveal = p.VIEW_PERSONAL_DATA in request.api_token.permissions
    if reveal and page:
        audience.record_subscribers_listed(
            request.workspace, count=len(page), actor=Actor.for_token(request.api_token)
        )
    return {"bounces": [_bounce(b, reveal) for b in page], "next_cursor": _encode(SALT, next_id)}


class SuppressionOut(Schema):
    id: int
    email_hash: str = Field(description="SHA-256 of the lower-cased address")
    reason: Reason
    note: str
    created_at: datetime


class SuppressionsOut(Schema):
    suppressions: list[SuppressionOut]
    next_cursor: str | None


class SuppressionFilters(Schema):
    reason: Reason | None = None
    email: str = Field("", max_length=320, description="Look one address up")
    cursor: str = Field("", max_length=200)
    limit: int = Field(50, ge=1, le=500)


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    email: StrictStr = Field(max_length=320)
    reason: Literal["manual", "hard_bounce", "complaint", "unsubscribed_all"] = "manual"
    note: StrictStr = Field("", max_length=200)


class SuppressionRemoval(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: StrictStr = Field(min_length=3, max_length=200, description="Why, for the audit log")


def _suppression(s: Suppression) -> dict:
    return {
        "id": s.pk,
        "email_hash": s.email_hash,
        "reason": s.reason,
        "note": s.note,
        "created_at": s.created_at,
    }


@router.get("/suppressions", response={200: SuppressionsOut, **READ_ERRORS})
@require(p.AUDIENCE_VIEW)
def list_suppressions(request, filters: Query[SuppressionFilters]):
    """Addresses never mailed or added again, newest first (kept as hashes)."""
    before = _decode(SUPPRESSION_SALT, filters.cursor)
    rows = Suppression.objects.filter(workspace=request.workspace)
    if filters.reason:
        rows = rows.filter(reason=filters.reason)
    if filters.email:
        rows = rows.filter(email_hash=suppression_hash(audience.valid_email(filters.email)))
    if before is not None:
        rows = rows.filter(pk__lt=before)
    page = list(rows.order_by("-pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "suppressions": [_suppression(s) for s in page],
        "next_cursor": _encode(SUPPRESSION_SALT, page[-1].pk) if more and page else None,
    }


@router.post("/suppressions", response={201: SuppressionOut, **WRITE_ERRORS})
@require(p.AUDIENCE_MANAGE)
def add_suppression(request, body: SuppressionIn):
    """Suppress an address (it is unsubscribed from nothing here: it is never mailed again)."""
    entry = audience.do_add_suppression(
        request.workspace,
        email=body.email,
        reason=body.reason,
        note=body.note,
        actor=Actor.for_token(request.api_token),
    )
    return Status(201, _suppression(entry))


@router.delete("/suppressions/{suppression_id}", response={204: None, **WRITE_ERRORS})
@require(p.AUDIENCE_MANAGE)
def remove_suppression(request, suppression_id: int, body: SuppressionRemoval):
    """Remove an entry, naming why. A complaint's needs an owner's token; an erasure's stays."""
    entry = Suppression.objects.filter(workspace=request.workspace, pk=suppression_id).first()
    if entry is None:
        raise ApiError(404, "no such suppression")
    if entry.reason == Suppression.Reason.ERASED:
        raise ApiError(409, "an erased person's suppression is never removed", code="erased")
    if entry.reason == Suppression.Reason.COMPLAINT and request.api_token.role != "owner":
        raise ApiError(
            403, "only an owner may remove a spam complaint's suppression", code="forbidden"
        )
    audience.do_remove_suppression(
        entry, actor=Actor.for_token(request.api_token), note=body.reason
    )
    return Status(204, None)
