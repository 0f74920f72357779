"""Applying a bounce, a complaint or a provider event: match it to its ledger row, act, record.

`apply_reports` is the one place the rules live, for every channel: the mailbox and the
webhooks call it with one report (`do_process_bounce`, `do_process_event`), the receiver's
queue with batches of up to 200 (`apply_pending_one`). One transaction: the Bounce rows, the
ledger rows' status, the unsubscriptions and the suppressions (through audience.bulk_withdraw,
which writes what audience's do_unsubscribe and do_add_suppression write: the consent
withdrawals and the audit rows) commit together or not at all, with a fixed number of
statements per batch; a message already recorded (same bytes, or the same provider event) is
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

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent
from mailmarketer.audience.bulk_withdraw import audit_row, insert_rows, suppression_key
from mailmarketer.audience.emails import InvalidEmail, email_key, normalise_email
from mailmarketer.audience.models import Subscriber, Subscription

from .. import engine
from ..models import Delivery
from . import classify as kinds
from .models import RAW_KEEP_DAYS, Bounce, BounceSettings, PendingReport

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


@dataclass
class Report:
    """A message or provider event ready to apply: what the classifier found, and its keys."""

    digest: str
    raw: bytes
    channel: str
    provider: str
    workspace: object  # the channel's Workspace, or None (the receiver)
    tokens: list[str]
    message_ids: list[tuple[int, str]]
    verified: bool
    fields: dict


def report_of_message(raw: bytes, *, channel: str, workspace=None, envelope_recipients=()):
    raw = bytes(raw)
    found = kinds.classify(raw)
    return Report(
        digest_of(raw),
        raw,
        channel,
        "",
        workspace,
        [*_envelope_tokens(envelope_recipients), *found.tokens],
        found.message_ids,
        False,
        {
            "kind": found.kind,
            "status_code": found.status[:12],
            "address": found.address[:320],
            "diagnostic": found.diagnostic[:500],
            "sender": found.sender[:320],
            "subject": found.subject[:300],
        },
    )


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
    report = report_of_message(
        raw, channel=channel, workspace=workspace, envelope_recipients=envelope_recipients
    )
    return _record_one(report, actor)


def do_process_event(event: Event, *, workspace, actor: Actor = BOUNCES) -> Bounce:
    """Apply a provider's event whose signature the caller verified (webhooks.py)."""
    message_ids = kinds._message_ids(event.message_id.encode("ascii", "ignore")[:300])
    report = Report(
        digest_of(f"{event.provider}:{workspace.pk}:{event.event_id}".encode()),
        event.raw,
        Bounce.Channel.WEBHOOK,
        event.provider,
        workspace,
        kinds._tokens(event.raw),
        message_ids,
        True,
        {
            "kind": event.kind,
            "status_code": event.status[:12],
            "address": event.address[:320],
            "diagnostic": event.diagnostic[:500],
            "sender": event.provider,
            "subject": "",
        },
    )
    return _record_one(report, actor)


def _envelope_tokens(recipients) -> list[str]:
    found = []
    for address in recipients:
        found.extend(kinds._tokens(str(address).encode("ascii", "ignore")[:400]))
    return found


def _record_one(report: Report, actor) -> Bounce:
    # No look first: the digest's unique index tells a message seen before (rare) by refusing
    # the insert, which saves a query on every new one.
    try:
        with transaction.atomic():
            return apply_reports([report], actor=actor)[0]
    except IntegrityError:
        # The same message applied meanwhile by another process: theirs stands.
        existing = Bounce.objects.filter(digest=report.digest).first()
        if existing is None:
            raise
        return existing


@transaction.atomic
def apply_reports(reports: list[Report], *, actor: Actor = BOUNCES) -> list[Bounce]:
    """Apply reports in order, set-based: a fixed number of statements per batch (the rows by
    their keys, the soft-bounce counts, the Bounce rows, the ledger rows, the withdrawals, the
    audit rows), whatever its size; each report has the outcome it would have had applied
    alone after the ones before it. Returns one Bounce per report (the earlier one for a
    message seen before)."""
    results: list[Bounce | None] = [None] * len(reports)
    seen = {
        b.digest: b
        for b in Bounce.objects.filter(digest__in={r.digest for r in reports}).defer("raw")
    }
    rows = _rows_for(reports)
    new: list[tuple[int, Bounce, Delivery | None]] = []
    for i, report in enumerate(reports):
        if report.digest in seen:
            results[i] = seen[report.digest]
            continue
        bounce, row = _matched(report, rows)
        seen[report.digest] = bounce
        results[i] = bounce
        new.append((i, bounce, row))
    acting = [(bounce, row) for _, bounce, row in new if not bounce.outcome]
    _count_soft(acting)
    withdrawing = _decide(acting)
    # The Bounce rows, with their outcomes, before the withdrawals that name them.
    _create([bounce for _, bounce, _ in new])
    _act(acting, withdrawing, actor)
    insert_rows(
        AuditEvent,
        [
            audit_row(
                actor,
                bounce.workspace_id,
                "bounce.received",
                bounce,
                {"kind": bounce.kind, "outcome": bounce.outcome, "channel": bounce.channel},
            )
            for _, bounce, _ in new
            if bounce.workspace_id is not None and bounce.outcome != Outcome.IGNORED
        ],
    )
    return results  # type: ignore[return-value]


def _rows_for(reports: list[Report]) -> dict[int, Delivery]:
    """Every ledger row a valid token or one of our Message-IDs names, in one query."""
    wanted: set[int] = set()
    for report in reports:
        for token in report.tokens:
            row_id = engine.read_verp_token(token)
            if row_id is not None:
                wanted.add(row_id)
        wanted.update(row_id for row_id, _ in report.message_ids)
    if not wanted:
        return {}
    # Only the columns matching and acting read (model instances of every column of four
    # tables were a tenth of a batch's time); anything else is loaded on access.
    return {
        row.pk: row
        for row in Delivery.objects.select_related("subscriber", "campaign")
        .only(*ROW_FIELDS)
        .filter(pk__in=wanted)
    }


ROW_FIELDS = (
    "workspace",
    "campaign",
    "subscriber",
    "status",
    "subscriber__workspace",
    "subscriber__email",
    "subscriber__uuid",
    "campaign__uuid",
    "campaign__name",
)


def _matched(report: Report, rows: dict[int, Delivery]) -> tuple[Bounce, Delivery | None]:
    """The Bounce for a report, matched; its outcome is left empty when it is to be acted on."""
    workspace = report.workspace
    bounce = Bounce(
        digest=report.digest,
        raw=report.raw[:RAW_MAX],
        raw_size=len(report.raw),
        channel=report.channel,
        provider=report.provider,
        workspace=workspace,
        received_at=now(),
        **report.fields,
    )
    bounce.recipient_domain = bounce.address.rpartition("@")[2].lower()[:255]
    row, matched_by, refused = _match(workspace, report.tokens, report.message_ids, rows)
    if refused:
        bounce.outcome, bounce.reason = Outcome.REFUSED, refused
        return bounce, None
    subscriber = None
    if row is not None:
        bounce.matched_by = matched_by
        bounce.delivery, bounce.campaign_id = row, row.campaign_id
        bounce.workspace_id = row.workspace_id
        subscriber = row.subscriber
    elif workspace is not None and bounce.address:
        subscriber = _by_address(workspace, bounce.address)
        if subscriber is not None:
            bounce.matched_by = MatchedBy.PROVIDER if report.verified else MatchedBy.ADDRESS
            row = (
                Delivery.objects.select_related("campaign")
                .filter(subscriber=subscriber, status=Delivery.Status.SENT)
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
    return bounce, row


def _match(workspace, tokens, message_ids, rows: dict[int, Delivery]):
    """(row, matched_by, refusal): a refusal when a valid key names another workspace's row."""
    for token in tokens:
        row_id = engine.read_verp_token(token)
        row = rows.get(row_id) if row_id is not None else None
        if row is None:
            continue
        if workspace is not None and row.workspace_id != workspace.pk:
            return None, "", "the token names a delivery of another workspace"
        return row, MatchedBy.TOKEN, ""
    for row_id, campaign_hex in message_ids:
        row = rows.get(row_id)
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
    return (
        Subscriber.objects.select_related("workspace")
        .filter(workspace=workspace, email_key=key)
        .first()
    )


def _create(bounces: list[Bounce]) -> None:
    if not bounces:
        return
    insert_rows(Bounce, bounces, ids=True)


def _count_soft(acting: list[tuple[Bounce, Delivery | None]]) -> None:
    """Soft bounces: counted (outcome COUNTED) until the workspace's N within D days, the Nth
    and later treated as hard (SOFT_TO_HARD). One query for the settings and one per workspace
    for the counts; a report counts the earlier ones of its batch as if they were stored."""
    soft = [b for b, _ in acting if b.kind == Kind.SOFT]
    for bounce in soft:
        if bounce.subscriber is None:
            bounce.outcome, bounce.reason = Outcome.COUNTED, "soft bounce (the person was erased)"
    soft = [b for b in soft if b.subscriber is not None]
    if not soft:
        return
    workspaces = {b.subscriber.workspace_id for b in soft}
    rules = {w: BounceSettings(workspace_id=w) for w in workspaces}
    rules.update(
        {s.workspace_id: s for s in BounceSettings.objects.filter(workspace_id__in=workspaces)}
    )
    counts: dict[int, int] = {}
    for workspace_id in workspaces:
        since = now() - timedelta(days=rules[workspace_id].soft_bounce_days)
        people = {b.subscriber_id for b in soft if b.subscriber.workspace_id == workspace_id}
        counts.update(
            Bounce.objects.filter(subscriber_id__in=people, kind=Kind.SOFT, received_at__gte=since)
            .exclude(outcome__in=(Outcome.NOT_ACTED, Outcome.REFUSED))
            .values("subscriber_id")
            .annotate(n=Count("id"))
            .values_list("subscriber_id", "n")
        )
    for bounce in soft:
        conf = rules[bounce.subscriber.workspace_id]
        count = counts[bounce.subscriber_id] = counts.get(bounce.subscriber_id, 0) + 1
        if count < conf.soft_bounce_limit:
            bounce.outcome = Outcome.COUNTED
            bounce.reason = (
                f"soft bounce {count} of {conf.soft_bounce_limit} in {conf.soft_bounce_days} days"
            )
        else:
            bounce.outcome = Outcome.SOFT_TO_HARD
            bounce.reason = f"{count} soft bounces in {conf.soft_bounce_days} days"


def _decide(acting: list[tuple[Bounce, Delivery | None]]) -> list[Bounce]:
    """The outcome of each hard bounce (and soft one turned hard) and complaint, decided before
    any row is written (so each Bounce is written once): one query for the addresses suppressed
    already; the first report of the batch for an address suppresses it, the later ones find it
    suppressed, as they would one after the other. Returns the bounces whose person is to be
    withdrawn."""
    from mailmarketer.audience.bulk_withdraw import suppressed_already

    to_act = [b for b, _ in acting if b.outcome in ("", Outcome.SOFT_TO_HARD)]
    people = [b for b in to_act if b.subscriber is not None]
    taken = suppressed_already([b.subscriber for b in people])
    for bounce in to_act:
        if bounce.subscriber is None:
            bounce.outcome = Outcome.ALREADY
            bounce.reason = "the person was erased; the address stays suppressed"
            continue
        key = suppression_key(bounce.subscriber)
        fresh = key not in taken
        taken.add(key)
        if bounce.outcome != Outcome.SOFT_TO_HARD:
            if bounce.kind == Kind.COMPLAINT:
                bounce.outcome = Outcome.COMPLAINED
            else:
                bounce.outcome = Outcome.SUPPRESSED if fresh else Outcome.ALREADY
        if not bounce.reason:
            bounce.reason = _label(bounce, with_id=False)[:300]
    return people


def _label(bounce: Bounce, *, with_id: bool) -> str:
    what = "Spam complaint" if bounce.kind == Kind.COMPLAINT else "Hard bounce"
    detail = bounce.status_code or (bounce.diagnostic[:60] if bounce.diagnostic else "")
    campaign = bounce.delivery.campaign.name if bounce.delivery is not None else "a campaign"
    where = f"bounce #{bounce.pk}, {bounce.channel}" if with_id else bounce.channel
    return f"{what} {detail} to {campaign!r} ({where})"


# Ledger rows a hard bounce names, still `sent`, become `bounced` with the report's words as
# their reply: one prepared statement run for the whole batch (executemany), portable.
BOUNCE_ROWS_SQL = (
    "UPDATE delivery_delivery SET status = %s, smtp_reply = %s WHERE id = %s AND status = %s"
)


def _act(acting: list[tuple[Bounce, Delivery | None]], people: list[Bounce], actor) -> None:
    """Hard bounces (and soft ones turned hard) bounce their ledger row; they and complaints
    unsubscribe the person from every list and suppress the address (audience.bulk_withdraw:
    the rules of do_unsubscribe and do_add_suppression, set-based)."""
    from mailmarketer.audience.bulk_withdraw import Withdrawal, withdraw_many
    from mailmarketer.audience.models import Suppression

    bounced = [
        (
            Delivery.Status.BOUNCED,
            (b.diagnostic or b.status_code or "bounced later")[:500],
            row.pk,
            Delivery.Status.SENT,
        )
        for b, row in acting
        if row is not None
        and b.kind != Kind.COMPLAINT
        and b.outcome in (Outcome.SUPPRESSED, Outcome.ALREADY, Outcome.SOFT_TO_HARD)
    ]
    if bounced:
        with connection.cursor() as cursor:
            cursor.executemany(BOUNCE_ROWS_SQL, bounced)
    withdraw_many(
        [
            Withdrawal(
                bounce.subscriber,
                reason=(
                    Subscription.Reason.BY_COMPLAINT
                    if bounce.kind == Kind.COMPLAINT
                    else Subscription.Reason.BY_BOUNCE
                ),
                suppression_reason=(
                    Suppression.Reason.COMPLAINT
                    if bounce.kind == Kind.COMPLAINT
                    else Suppression.Reason.HARD_BOUNCE
                ),
                source_type="system",
                source_id=str(bounce.pk),
                source_label=_label(bounce, with_id=True)[:200],
                note=f"bounce #{bounce.pk}: "
                + (bounce.status_code or (bounce.diagnostic[:60] if bounce.diagnostic else "")),
            )
            for bounce in people
        ],
        actor=actor,
    )


# -- the receiver's queue: accepted (250) first, applied in batches right after -------------

BATCH = 200  # reports per transaction (see apply_pending_one)
PARK_AFTER = 3  # attempts before a report that keeps failing is parked as refused


def store_received(messages: list[tuple[bytes, list[str]]]) -> None:
    """The receiver's one write per group of messages (several sessions' at once): each kept
    as received, in one transaction, before any of them is answered 250. A message already
    waiting (an MTA retrying after a lost 250) is not stored twice."""
    # The rows are made before the transaction: on SQLite it holds the write lock (which the
    # applier's batches wait for) for the INSERT itself only.
    stamp = now()
    rows = [
        {
            "raw": raw,
            "recipients": "\n".join(rcpts)[:2000],
            "digest": digest_of(raw),
            "received_at": stamp,
            "attempts": 0,
            "last_error": "",
        }
        for raw, rcpts in messages
    ]
    with transaction.atomic():
        insert_rows(PendingReport, rows, ignore_conflicts=True)


def apply_pending_one(limit: int = BATCH) -> bool:
    """Worker duty: apply_pending, True when there was something to apply."""
    return apply_pending(limit) > 0


def apply_pending(limit: int = BATCH) -> int:
    """The bouncer's applier's work (and the worker duty's): apply up to `limit` accepted
    reports in one transaction and delete them from the queue in the same one, so a report is
    applied once whoever runs this and whenever it is killed.

    The reports are read and classified (the CPU-heavy part: the MIME parser) before the write
    transaction, which then claims those still queued: on SQLite the write lock, taken at BEGIN
    (IMMEDIATE), is held for the database work only, so the receiver's stores wait less; on
    PostgreSQL concurrent appliers skip each other's rows (SKIP LOCKED). Returns how many
    reports it read (0: the queue was empty)."""
    pending = list(PendingReport.objects.order_by("id")[:limit])
    if not pending:
        return 0
    reports = {
        p.pk: report_of_message(
            bytes(p.raw),
            channel=Bounce.Channel.SMTP,
            envelope_recipients=[r for r in p.recipients.split("\n") if r],
        )
        for p in pending
    }
    with transaction.atomic():
        claimed = set(
            PendingReport.objects.select_for_update(skip_locked=True)
            .filter(pk__in=list(reports))
            .values_list("pk", flat=True)
        )
        pending = [p for p in pending if p.pk in claimed]  # another applier took the rest
        if not pending:
            return len(reports)
        batch = [reports[p.pk] for p in pending]
        keep: set[int] = set()
        try:
            with transaction.atomic():
                apply_reports(batch)
        except OperationalError:
            raise  # the database is down or locked: the whole batch waits for the next round
        except Exception:
            logger.exception("a batch of %d reports failed: applying them one by one", len(pending))
            keep = _apply_each(pending, batch)
        PendingReport.objects.filter(pk__in=[p.pk for p in pending if p.pk not in keep]).delete()
    return len(reports)


def _apply_each(pending, reports) -> set[int]:
    """One report at a time (each in its own savepoint), so one that fails holds up no other;
    it stays queued (its attempts counted) for another round, and after PARK_AFTER it is kept
    as a refused Bounce with the reason (shown to the operator): never retried forever, never
    lost. Returns the queue rows to keep."""
    keep = set()
    for item, report in zip(pending, reports, strict=True):
        try:
            with transaction.atomic():
                apply_reports([report])
        except OperationalError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            if item.attempts + 1 < PARK_AFTER:
                PendingReport.objects.filter(pk=item.pk).update(
                    attempts=item.attempts + 1, last_error=error
                )
                keep.add(item.pk)
                continue
            if not Bounce.objects.filter(digest=report.digest).exists():
                Bounce.objects.create(
                    digest=report.digest,
                    raw=report.raw[:RAW_MAX],
                    raw_size=len(report.raw),
                    channel=report.channel,
                    kind=Kind.UNKNOWN,
                    outcome=Outcome.REFUSED,
                    reason=f"could not be processed ({type(exc).__name__})"[:300],
                )
    return keep


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
