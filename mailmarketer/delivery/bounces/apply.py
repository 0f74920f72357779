"""Applying a bounce, a complaint or a provider event: match it to its ledger row, act, record.

`do_process_bounce` is the one entry of every channel (receiver, mailbox, webhooks). One
transaction: the Bounce row, the ledger row's status, the unsubscription and the suppression
(through audience's actions, which write the consent withdrawals and the audit rows) commit
together or not at all; a message already recorded (same bytes, or the same provider event) is
not applied again, so an MTA retrying after a lost 250 costs nothing.

Matching, strongest first:
1. a VERP token (bounces+<token>@: the envelope recipient, then anywhere in the message) whose
   HMAC holds (engine.read_verp_token): only we can make one;
2. our Message-ID quoted in the message (<row id>.<campaign uuid>@), checked against the row
   and its campaign's uuid (122 random bits: as unguessable as the token);
3. the address the report names, looked up among the channel's workspace's subscribers: shown
   to staff, but acted on only when the channel verified the sender (a provider's signed
   webhook), since anyone can mail a DSN naming anyone.
A channel that belongs to a workspace (a mailbox, a webhook) never acts on a row of another
workspace: such a message is refused and recorded as such.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.emails import InvalidEmail, email_key, normalise_email
from mailmarketer.audience.models import Subscriber, Subscription

from .. import engine
from ..models import Delivery
from . import classify as kinds
from .models import RAW_KEEP_DAYS, Bounce, BounceSettings

logger = logging.getLogger(__name__)

BOUNCES = Actor.system("bounce processing")
Kind, Outcome, MatchedBy = Bounce.Kind, Bounce.Outcome, Bounce.MatchedBy
RAW_MAX = 10 * 1024 * 1024  # what is kept of a message (the receiver refuses larger ones)


@dataclass(frozen=True)
class Event:
    """A provider's signed event (webhooks): already verified, already classified."""

    provider: str
    event_id: str
    kind: str  # Bounce.Kind
    address: str
    status: str = ""
    diagnostic: str = ""
    message_id: str = ""  # the provider's copy of our Message-ID, when it gives one
    raw: bytes = b""


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def settings_for(workspace_id: int) -> BounceSettings:
    found = BounceSettings.objects.filter(workspace_id=workspace_id).first()
    return found or BounceSettings(workspace_id=workspace_id)


def do_process_bounce(
    raw: bytes,
    *,
    channel: str,
    workspace=None,
    envelope_recipients=(),
    actor: Actor = BOUNCES,
) -> Bounce:
    """Classify `raw` and apply it; returns the Bounce row (the existing one for a message
    received before). `workspace` is the channel's (a mailbox's) or None (the receiver)."""
    raw = bytes(raw)
    found = kinds.classify(raw)
    tokens = [*_envelope_tokens(envelope_recipients), *found.tokens]
    fields = {
        "kind": found.kind,
        "status_code": found.status[:12],
        "address": found.address[:320],
        "diagnostic": found.diagnostic[:500],
        "sender": found.sender[:320],
        "subject": found.subject[:300],
    }
    return _record(
        digest_of(raw),
        raw,
        channel=channel,
        provider="",
        workspace=workspace,
        tokens=tokens,
        message_ids=found.message_ids,
        verified=False,
        fields=fields,
        actor=actor,
    )


def do_process_event(event: Event, *, workspace, actor: Actor = BOUNCES) -> Bounce:
    """Apply a provider's event whose signature the caller verified (webhooks.py)."""
    message_ids = kinds._message_ids(event.message_id.encode("ascii", "ignore")[:300])
    fields = {
        "kind": event.kind,
        "status_code": event.status[:12],
        "address": event.address[:320],
        "diagnostic": event.diagnostic[:500],
        "sender": event.provider,
        "subject": "",
    }
    return _record(
        digest_of(f"{event.provider}:{workspace.pk}:{event.event_id}".encode()),
        event.raw,
        channel=Bounce.Channel.WEBHOOK,
        provider=event.provider,
        workspace=workspace,
        tokens=kinds._tokens(event.raw),
        message_ids=message_ids,
        verified=True,
        fields=fields,
        actor=actor,
    )


def _envelope_tokens(recipients) -> list[str]:
    found = []
    for address in recipients:
        found.extend(kinds._tokens(str(address).encode("ascii", "ignore")[:400]))
    return found


def _record(
    digest, raw, *, channel, provider, workspace, tokens, message_ids, verified, fields, actor
) -> Bounce:
    # No look first: the digest's unique index tells a message seen before (rare) by refusing
    # the insert, which saves a query on every new one.
    try:
        with transaction.atomic():
            return _apply(
                digest,
                raw,
                channel,
                provider,
                workspace,
                tokens,
                message_ids,
                verified,
                fields,
                actor,
            )
    except IntegrityError:
        # The same message applied meanwhile by another receiver process: theirs stands.
        existing = Bounce.objects.filter(digest=digest).first()
        if existing is None:
            raise
        return existing


def _apply(
    digest, raw, channel, provider, workspace, tokens, message_ids, verified, fields, actor
) -> Bounce:
    bounce = Bounce(
        digest=digest,
        raw=raw[:RAW_MAX],
        raw_size=len(raw),
        channel=channel,
        provider=provider,
        workspace=workspace,
        **fields,
    )
    bounce.recipient_domain = bounce.address.rpartition("@")[2].lower()[:255]
    row, matched_by, refused = _match(workspace, tokens, message_ids)
    if refused:
        bounce.outcome, bounce.reason = Outcome.REFUSED, refused
        bounce.save()
        return bounce
    subscriber = None
    if row is not None:
        bounce.matched_by = matched_by
        bounce.delivery, bounce.campaign_id = row, row.campaign_id
        bounce.workspace = row.workspace
        subscriber = row.subscriber
    elif workspace is not None and bounce.address:
        subscriber = _by_address(workspace, bounce.address)
        if subscriber is not None:
            bounce.matched_by = MatchedBy.PROVIDER if verified else MatchedBy.ADDRESS
            row = (
                Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.SENT)
                .order_by("-sent_at", "-id")
                .first()
            )
            if row is not None:
                bounce.delivery, bounce.campaign_id = row, row.campaign_id
    bounce.subscriber = subscriber

    if bounce.kind in (Kind.AUTO_REPLY, Kind.DELAYED, Kind.UNKNOWN):
        bounce.outcome = Outcome.IGNORED
        bounce.reason = {
            Kind.AUTO_REPLY: "an auto-reply: nothing to do",
            Kind.DELAYED: "a delay warning: the relay is still trying",
        }.get(bounce.kind, "not a bounce or a complaint")
    elif not bounce.matched_by:
        bounce.outcome, bounce.reason = Outcome.UNMATCHED, "no valid token, Message-ID or address"
    elif bounce.matched_by == MatchedBy.ADDRESS:
        bounce.outcome = Outcome.NOT_ACTED
        bounce.reason = "matched by address only: anyone can send a report naming an address"
    else:
        bounce.save()
        _act(bounce, row, subscriber, actor)
    bounce.save()
    if bounce.workspace_id is not None and bounce.outcome not in (Outcome.IGNORED,):
        audit(
            "bounce.received",
            actor=actor,
            workspace=bounce.workspace,
            obj=bounce,
            new={"kind": bounce.kind, "outcome": bounce.outcome, "channel": channel},
        )
    return bounce


def _match(workspace, tokens, message_ids):
    """(row, matched_by, refusal): a refusal when a valid key names another workspace's row."""
    for token in tokens:
        row_id = engine.read_verp_token(token)
        if row_id is None:
            continue
        row = (
            Delivery.objects.select_related("subscriber__workspace", "campaign", "workspace")
            .filter(pk=row_id)
            .first()
        )
        if row is None:
            continue
        if workspace is not None and row.workspace_id != workspace.pk:
            return None, "", "the token names a delivery of another workspace"
        return row, MatchedBy.TOKEN, ""
    for row_id, campaign_hex in message_ids:
        row = Delivery.objects.select_related("subscriber", "campaign").filter(pk=row_id).first()
        if row is None or row.campaign.uuid.hex != campaign_hex:
            continue
        if workspace is not None and row.workspace_id != workspace.pk:
            return None, "", "the Message-ID names a delivery of another workspace"
        return row, MatchedBy.MESSAGE_ID, ""
    return None, "", ""


def _by_address(workspace, address: str) -> Subscriber | None:
    try:
        key = email_key(normalise_email(address))
    except InvalidEmail:
        return None
    return Subscriber.objects.filter(workspace=workspace, email_key=key).first()


def _act(bounce: Bounce, row: Delivery | None, subscriber: Subscriber | None, actor) -> None:
    from mailmarketer.audience.actions import (
        ConsentSource,
        do_add_suppression,
        do_unsubscribe,
    )
    from mailmarketer.audience.models import Suppression

    hard = bounce.kind == Kind.HARD
    if bounce.kind == Kind.SOFT and subscriber is not None:
        rules = settings_for(subscriber.workspace_id)
        since = now() - timedelta(days=rules.soft_bounce_days)
        count = (
            Bounce.objects.filter(subscriber=subscriber, kind=Kind.SOFT, received_at__gte=since)
            .exclude(outcome__in=(Outcome.NOT_ACTED, Outcome.REFUSED))
            .count()
        )
        if count < rules.soft_bounce_limit:
            bounce.outcome = Outcome.COUNTED
            bounce.reason = (
                f"soft bounce {count} of {rules.soft_bounce_limit} in {rules.soft_bounce_days} days"
            )
            return
        hard = True
        bounce.outcome = Outcome.SOFT_TO_HARD
        bounce.reason = f"{count} soft bounces in {rules.soft_bounce_days} days"
    elif bounce.kind == Kind.SOFT:
        bounce.outcome, bounce.reason = Outcome.COUNTED, "soft bounce (the person was erased)"
        return

    if row is not None and hard:
        Delivery.objects.filter(pk=row.pk, status=Delivery.Status.SENT).update(
            status=Delivery.Status.BOUNCED,
            smtp_reply=(bounce.diagnostic or bounce.status_code or "bounced later")[:500],
        )
    if subscriber is None:
        bounce.outcome = Outcome.ALREADY
        bounce.reason = "the person was erased; the address stays suppressed"
        return

    complaint = bounce.kind == Kind.COMPLAINT
    campaign = row.campaign.name if row is not None else "a campaign"
    what = "Spam complaint" if complaint else "Hard bounce"
    detail = bounce.status_code or (bounce.diagnostic[:60] if bounce.diagnostic else "")
    label = f"{what} {detail} to {campaign!r} (bounce #{bounce.pk}, {bounce.channel})"
    do_unsubscribe(
        subscriber,
        actor=actor,
        reason=Subscription.Reason.BY_COMPLAINT if complaint else Subscription.Reason.BY_BOUNCE,
        source=ConsentSource("system", str(bounce.pk), label[:200]),
    )
    reason = Suppression.Reason.COMPLAINT if complaint else Suppression.Reason.HARD_BOUNCE
    try:
        do_add_suppression(
            subscriber.workspace,
            email=subscriber.email,
            reason=reason,
            note=f"bounce #{bounce.pk}: {detail}"[:200],
            actor=actor,
        )
    except Conflict:  # suppressed already (erased, unsubscribed from all, an earlier bounce)
        if bounce.outcome != Outcome.SOFT_TO_HARD:
            bounce.outcome = Outcome.COMPLAINED if complaint else Outcome.ALREADY
    else:
        if bounce.outcome != Outcome.SOFT_TO_HARD:
            bounce.outcome = Outcome.COMPLAINED if complaint else Outcome.SUPPRESSED
    if not bounce.reason:
        bounce.reason = label[:300]


def purge_raw_one() -> bool:
    """Worker duty: empty the raw messages older than RAW_KEEP_DAYS, a chunk at a time."""
    cutoff = now() - timedelta(days=RAW_KEEP_DAYS)
    ids = list(
        Bounce.objects.filter(received_at__lt=cutoff, raw_size__gt=0)
        .order_by("id")
        .values_list("id", flat=True)[:500]
    )
    if not ids:
        return False
    Bounce.objects.filter(pk__in=ids).update(raw=b"", raw_size=0)
    return True
