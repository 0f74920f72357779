"""The sending engine: the worker duties that turn ledger rows into messages on the wire.

One step of `send_one()`:
1. claim up to DELIVERY_BATCH due rows of a running campaign (ledger.claim, with a lease);
2. load the recipients in two queries and check again, at send time, that each may still be
   mailed (enabled, subscribed to one of the campaign's lists, not excluded, not suppressed);
   those who may not are `skipped`;
3. render each message (the campaign is compiled once per worker and reused) and assemble its
   bytes (parts shared by the whole campaign are built once);
4. hand the batch to the workspace's sender (pipelined SMTP connections kept open, or the
   outbox) in parts of SEND_PART messages, marking the accepted ones sent after each part, and
   record the other outcomes in one transaction at the end.

Failures, and who must act on them:
- one recipient's temporary failure (a 4xx to its RCPT or its message) requeues its row with
  backoff (1, 5, 15 ... minutes) until DELIVERY_RETRY_DEADLINE_S after it was planned, then
  fails it;
- the relay's temporary trouble (connections refused, lost or timed out, a 4xx to MAIL, or
  DELIVERY_MAX_CONSECUTIVE_FAILURES temporary failures in a row, counted by message) is nobody's
  fault among the recipients: the relay's circuit breaker opens (senders.Breaker), the rows go
  back without counting an attempt, due when the next probe is, and the worker probes the relay
  with one message at growing intervals until it accepts again; the campaign goes on by itself;
- a permanent refusal (5xx) fails the row, and a hard bounce (5.1.x) also suppresses the address
  and unsubscribes it; DELIVERY_MAX_CONSECUTIVE_FAILURES of them in a row pause the campaign;
- what a person must fix pauses the campaign and gives the batch back unsent: authentication or
  TLS refused, our envelope sender refused (any 5xx to MAIL, or 5.1.7/5.1.8), headers that cannot
  be built (a sender name with a line break), a template that cannot render, and the retry
  deadline passing while the relay was unavailable.
Every pause reason names the relay and quotes its last reply.

Leases: while a batch is being worked on, a heartbeat thread renews its rows' leases every third
of DELIVERY_LEASE_S, so the lease can be short (10 s) and a killed worker's rows are sending again
within about that, however long a relay makes a live worker wait.

`finish_one()` marks a running campaign finished once planning is done and every row is final,
and cancels the queued rows of a cancelled campaign.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import BooleanField, Case, ExpressionWrapper, F, Lookup, Q, When
from django.utils.crypto import constant_time_compare
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.emails import mask_addresses_in, suppression_hash, suppression_hashes
from mailmarketer.audience.links import message_urls
from mailmarketer.audience.models import Subscriber, Suppression
from mailmarketer.audience.queries import reconsent_hashes
from mailmarketer.campaigns import rendering
from mailmarketer.campaigns.models import Campaign
from mailmarketer.lib.idtokens import salted_hmac_sha256
from mailmarketer.lib.worker import stop_requested, worker_id

from . import dkim, ledger, mime, planner, ratelimit
from .ledger import Outcome
from .models import Delivery, DkimKey, SmtpServer
from .planner import excluded_subscriptions, mailable_subscriptions
from .prebuilt import PrebuiltBody
from .senders import BreakerState, SenderPool
from .smtp import Outgoing, PermanentError, RelayBroken, check_address
from .status import set_campaign_status
from .tracked_links import LinkTracker

logger = logging.getLogger(__name__)
# The actor of the engine's own status changes (a broken relay pauses, the last row finishes).
ENGINE = Actor.system("delivery engine")
Status = Delivery.Status
OPEN_STATUSES = (Status.QUEUED, Status.SENDING)
VERP_SALT = "mailmarketer.delivery.verp"


def verp_token(delivery_id: int) -> str:
    """`<ledger id>-<16 base32 characters of HMAC>`: short enough for a 64-character local part
    (a Django signature is not), and a bounce to a forged address names no real row.

    The same as salted_hmac(VERP_SALT, id, algorithm="sha256") in lower-case base32 (the tests
    hold it to that): the first 80 bits are 16 base32 characters, RFC 4648's alphabet in lower
    case. Once per message on the send path, from kept HMAC states (lib/idtokens)."""
    # base64.b32encode is pure Python (~1.1 us for 10 bytes, and a decode and a lower()): the
    # 80 bits as an integer, two characters per 10 bits from a table, is ~0.4 us.
    n = int.from_bytes(salted_hmac_sha256(VERP_SALT, str(delivery_id))[:10], "big")
    pair = _B32_PAIRS
    return (
        f"{delivery_id}-{pair[n >> 70]}{pair[(n >> 60) & 1023]}{pair[(n >> 50) & 1023]}"
        f"{pair[(n >> 40) & 1023]}{pair[(n >> 30) & 1023]}{pair[(n >> 20) & 1023]}"
        f"{pair[(n >> 10) & 1023]}{pair[n & 1023]}"
    )


# RFC 4648's base32 alphabet in lower case, as every pair of characters (10 bits each).
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def read_verp_token(token: str) -> int | None:
    head, _, _ = token.partition("-")
    if not head.isdigit():
        return None
    return int(head) if constant_time_compare(verp_token(int(head)), token) else None


@dataclass
class PreparedCampaign:
    """What is the same for every recipient of a campaign, built once per worker."""

    campaign: Campaign
    compiled: rendering.CompiledCampaign
    parts: mime.MessageParts
    workspace_ctx: dict
    campaign_ctx: dict
    list_ids: set[int]
    single_optin_ids: set[int]
    # (id, optin) of the campaign's lists and the ids of its excluded lists, read once: the
    # recipients check of every batch uses them (_mailable).
    lists: list[tuple[int, str]]
    exclude_list_ids: list[int]
    version: tuple
    bounce_domain: str
    # Tracked links and the open pixel (tracked_links.py); None when tracking is off.
    tracker: LinkTracker | None = None
    # The messages' body built once with holes for each recipient's values (prebuilt.py); None
    # when the campaign's messages are built the general way.
    prebuilt: PrebuiltBody | None = None


@dataclass
class EngineState:
    owner: str = field(default_factory=worker_id)
    senders: SenderPool = field(default_factory=SenderPool)
    prepared: dict[int, PreparedCampaign] = field(default_factory=dict)
    consecutive_failures: dict[int, int] = field(default_factory=dict)
    # Per campaign, the place of this worker's last claim: its next claim starts there
    # (ledger.claim's `after`).
    claimed_up_to: dict[int, tuple] = field(default_factory=dict)
    # When this worker last looked for expired leases, and when it last looked at all of them
    # (reclaim_one).
    reclaim_looked_at: object = None
    last_full_reclaim: float = 0.0
    # The running campaigns in sending order as send_one last read them, and what they looked
    # like then (_running_campaigns).
    running: list[Campaign] = field(default_factory=list)
    running_seen: list | None = None
    # Per workspace, its enabled relays as last read and the sender chosen then (_sender_for).
    relays_seen: dict[int, tuple[list, object]] = field(default_factory=dict)


_state: EngineState | None = None


def state() -> EngineState:
    global _state
    if _state is None:
        _state = EngineState()
    return _state


def reset_state() -> None:
    """Forget cached campaigns and close connections (tests; worker shutdown)."""
    global _state
    if _state is not None:
        _state.senders.close()
    _state = None


def _dkim_signer(campaign: Campaign, from_email: str):
    # Keys are stored under the ASCII (punycode) form of the domain.
    try:
        domain = mime.ascii_domain(from_email.rpartition("@")[2].lower())
    except ValueError:
        return None
    key = DkimKey.objects.filter(workspace_id=campaign.workspace_id, domain=domain).first()
    if key is None:
        return None
    from .dkim import DkimSigner

    return DkimSigner(domain=key.domain, selector=key.selector, private_pem=key.private_key)


def bounce_domain(from_email: str) -> str:
    """MM_BOUNCE_DOMAIN, or else the From address's domain: a relay accepts that as a sender's
    domain, while the host of MM_BASE_URL may be an IP address, which is not an address domain
    ("bounces+...@127.0.0.1" got "501 5.1.7 Bad sender address syntax" from Postfix)."""
    return settings.BOUNCE_DOMAIN or mime.ascii_domain(from_email.rpartition("@")[2].lower())


_ICS_METHOD = re.compile(rb"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)


def _inline_calendar(campaign: Campaign) -> tuple[str, bytes] | None:
    """(method, bytes) of a transactional message's calendar invitation (one the system made,
    a webinar's), which then also goes as the body's text/calendar alternative: what Gmail and
    Outlook need to show "add to calendar". Marketing campaigns' uploaded files stay plain
    attachments. (Only transactional campaigns ask for their attachments a second time.)"""
    if campaign.kind != Campaign.Kind.TRANSACTIONAL:
        return None
    for a in campaign.attachments.all():
        if a.content_type == "text/calendar":
            data = bytes(a.data)
            match = _ICS_METHOD.search(data)
            if match:
                return match.group(1).decode("ascii"), data
    return None


def prepare(campaign: Campaign) -> PreparedCampaign:
    """Build what the campaign's messages share. Raises ValueError (HeaderInjection among
    them) for a header that cannot be built, rendering.TemplateProblem for a bad template."""
    version = (campaign.pk, campaign.updated_at)
    cached = state().prepared.get(campaign.pk)
    if cached is not None and cached.version == version:
        cached.campaign = campaign
        return cached
    workspace = campaign.workspace
    from_email = campaign.from_email or workspace.sender_email
    from_name = campaign.from_name or workspace.sender_name or workspace.name
    lists = list(campaign.lists.all())
    parts = mime.MessageParts(
        from_name=from_name,
        from_email=from_email,
        reply_to=campaign.reply_to,
        list_id=f"{workspace.slug}.{settings.MESSAGE_ID_DOMAIN}",
        feedback_id=f"{campaign.pk}:{workspace.pk}:mailmarketer",
        extra_headers=[tuple(h) for h in campaign.headers],
        attachments=[
            (a.filename, a.content_type, bytes(a.data)) for a in campaign.attachments.all()
        ],
        dkim=_dkim_signer(campaign, from_email),
        message_id_domain=settings.MESSAGE_ID_DOMAIN,
        calendar=_inline_calendar(campaign),
    )
    compiled = rendering.compile_campaign(campaign)
    # Thousands of renders follow: split the templates so that what every recipient shares is
    # rendered once and each recipient's distinct values once each (rendering.SplitTemplate).
    compiled.split_for_sending()
    prepared = PreparedCampaign(
        campaign=campaign,
        compiled=compiled,
        parts=parts,
        workspace_ctx=rendering.workspace_context(workspace),
        campaign_ctx=rendering.campaign_context(campaign),
        list_ids={m.pk for m in lists},
        single_optin_ids={m.pk for m in lists if m.optin == "single"},
        lists=[(m.pk, m.optin) for m in lists],
        exclude_list_ids=list(campaign.exclude_lists.values_list("pk", flat=True)),
        version=version,
        bounce_domain=bounce_domain(from_email),
        tracker=LinkTracker.for_campaign(campaign),
    )
    sample = rendering.recipient_context(
        workspace=prepared.workspace_ctx,
        campaign=prepared.campaign_ctx,
        subscriber=rendering.SAMPLE_SUBSCRIBER,
        urls=rendering.sample_urls(),
        data=campaign.data,
    )
    try:
        prepared.prebuilt = PrebuiltBody.plan(compiled, prepared.tracker, parts, sample)
    except Exception:
        # Pre-building is an optimisation: whatever goes wrong with it must not stop a campaign
        # (prepare's errors pause it); its messages are then built the general way.
        logger.exception("campaign %s: building its messages the general way", campaign.pk)
    state().prepared[campaign.pk] = prepared
    return prepared


# A transactional message (a receipt, a password reset) goes to someone who asked for it, even
# after they unsubscribed from marketing; it stops only where mailing would be wrong: a
# blocklisted person, an address that bounced or complained, an erased or manually blocked one.
TRANSACTIONAL_BLOCKING = (
    Suppression.Reason.HARD_BOUNCE,
    Suppression.Reason.COMPLAINT,
    Suppression.Reason.ERASED,
    Suppression.Reason.MANUAL,
)


# The recipients check's statement, compiled once per campaign version and database (the ORM
# built and compiled it for every batch: with the batch's 200 ids as 600 placeholders, ~30 us a
# message of a worker's CPU, send13c), with the batch's ids as one parameter (ledger.in_values).
_BATCH = object()  # where the batch's ids go among the compiled statement's parameters
_people_sql: dict[tuple, tuple[str, list]] = {}
# _mailable unpacks each row in this order.
PEOPLE_FIELDS = ("id", "uuid", "email", "name", "first_name", "last_name", "attributes", "status")


class _InBatch(Lookup):
    """`field` is one of the batch's ids (ledger.in_values), the ids left as _BATCH among the
    parameters: a condition for filter(), compiled once and run for every batch."""

    lookup_name = "mm_in_batch"

    def __init__(self, field: str):
        super().__init__(F(field), None)

    def get_prep_lookup(self):
        return None

    def as_sql(self, compiler, connection):
        column, params = self.process_lhs(compiler, connection)
        sql, _ = ledger.in_values(connection, column, [])
        return sql, [*params, _BATCH]


def _among(subscriptions) -> ExpressionWrapper:
    """Whether the person is among `subscriptions`' subscribers, as a column."""
    return ExpressionWrapper(
        Q(pk__in=subscriptions.values("subscriber_id")), output_field=BooleanField()
    )


def _people_statement(prepared: PreparedCampaign) -> tuple[str, list]:
    """The statement reading a batch's people and, for a marketing campaign, whether each is
    still subscribed to one of its lists and on none of its excluded ones: the rules are the
    planner's (mailable_subscriptions, excluded_subscriptions), compiled by the ORM."""
    campaign = prepared.campaign
    lists, excluded = tuple(prepared.lists), tuple(prepared.exclude_list_ids)
    key = (connection.alias, prepared.version, lists, excluded)
    cached = _people_sql.get(key)
    if cached is not None:
        return cached
    people_query = Subscriber.objects.filter(_InBatch("pk"), workspace_id=campaign.workspace_id)
    flags = []
    if campaign.kind != Campaign.Kind.TRANSACTIONAL:
        # The subscriptions are narrowed to the batch's people: otherwise PostgreSQL hashes
        # every subscription of the campaign's lists for each batch (a hashed SubPlan: 7 ms a
        # batch at 20,000 subscribers, growing with the audience), where 200 index probes do.
        # And as `id IN (the batch's subscriptions)`, not a correlated EXISTS: PostgreSQL ran
        # both as one hashed subquery, but costed the EXISTS as 200 probes for each of the 200
        # people; past ~50,000 subscribers that estimate crossed jit_above_cost (100,000) and
        # every batch was JIT-compiled first (8 ms, 40 us a message of PostgreSQL's CPU at
        # 1,000,000 subscribers; send13f). The IN is costed as what it is (~1,000).
        mailable = mailable_subscriptions(campaign, prepared.lists).filter(
            _InBatch("subscriber_id")
        )
        people_query = people_query.annotate(mm_subscribed=_among(mailable))
        flags.append("mm_subscribed")
        if prepared.exclude_list_ids:
            excluded = excluded_subscriptions(campaign, prepared.exclude_list_ids).filter(
                _InBatch("subscriber_id")
            )
            people_query = people_query.annotate(mm_excluded=_among(excluded))
            flags.append("mm_excluded")
    statement = people_query.values_list(*PEOPLE_FIELDS, *flags).query.sql_with_params()
    if len(_people_sql) > 32:
        _people_sql.clear()
    _people_sql[key] = statement
    return statement


def _people(prepared: PreparedCampaign, subscriber_ids: list[int]) -> list[tuple]:
    """The batch's people as the statement's rows: PEOPLE_FIELDS, then mm_subscribed (and
    mm_excluded when the campaign excludes lists) for a marketing campaign."""
    sql, params = _people_statement(prepared)
    (ids,) = ledger.in_values(connection, "", subscriber_ids)[1]
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids if p is _BATCH else p for p in params])
        return cursor.fetchall()


def _attributes(texts: list) -> list:
    """Each person's attributes as the ORM's JSONField would convert them (a raw cursor hands
    back the stored JSON text), decoded in one call for the whole batch: one json.loads per
    person cost ~1.2 us a message, one for the batch's 200 ~0.3 (send15c)."""
    if all(type(text) is str for text in texts):
        # Each text is one JSON value as the database stored it: joined, an array of them.
        return json.loads("[" + ",".join(texts) + "]")
    return [json.loads(text) if isinstance(text, str) else text for text in texts]


def _suppressed(workspace_id: int, hashes: list[str]) -> set[str]:
    among, params = ledger.in_values(connection, "email_hash", hashes, "text")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT email_hash FROM audience_suppression"  # noqa: S608 (fixed text, no values)
            f" WHERE workspace_id = %s AND {among}",
            [workspace_id, *params],
        )
        return {digest for (digest,) in cursor.fetchall()}


def _mailable(
    prepared: PreparedCampaign, subscriber_ids: list[int]
) -> tuple[dict[int, dict], dict[int, str]]:
    """Recipients who may still be mailed, by subscriber id, with what rendering needs; and why
    each of the others may not (a Delivery.SkipReason)."""
    SkipReason = Delivery.SkipReason
    campaign = prepared.campaign
    marketing = campaign.kind != Campaign.Kind.TRANSACTIONAL
    enabled = Subscriber.Status.ENABLED
    # Whether each person is still subscribed and not excluded comes in the same statement as
    # the people (two EXISTS per row) rather than two more queries per batch.
    rows = _people(prepared, subscriber_ids)
    attributes = _attributes([row[6] for row in rows])
    people: dict[int, dict] = {}
    reasons: dict[int, str] = {}
    # The rows read as tuples and each person's dict made at once (a dict zipped from the
    # fields, its flags added and its values converted one by one cost ~2.6 us a message,
    # send15c); the flags stay out of it.
    for row, attrs in zip(rows, attributes, strict=True):
        sid, uid, email, name, first_name, last_name, _, status = row[:8]
        people[sid] = {
            "id": sid,
            # What the ORM's field would convert: SQLite stores a uuid as 32 hex digits.
            "uuid": uid if type(uid) is uuid.UUID else uuid.UUID(uid),
            "email": email,
            "name": name,
            "first_name": first_name,
            "last_name": last_name,
            "attributes": attrs,
            "status": status,
        }
        if status != enabled:
            reasons[sid] = SkipReason.BLOCKLISTED
        elif marketing and len(row) > 9 and row[9]:  # mm_excluded
            reasons[sid] = SkipReason.EXCLUDED
        elif marketing and not row[8]:  # mm_subscribed
            reasons[sid] = SkipReason.UNSUBSCRIBED
    for sid in subscriber_ids:
        if sid not in people:
            reasons[sid] = SkipReason.ERASED
    hashes = dict(
        zip(people, suppression_hashes([p["email"] for p in people.values()]), strict=True)
    )
    if not marketing:
        suppressions = Suppression.objects.filter(
            workspace_id=campaign.workspace_id,
            email_hash__in=list(hashes.values()),
            reason__in=TRANSACTIONAL_BLOCKING,
        )
        # A person signing up again after their erasure gets this one confirmation mail
        # (audience.Reconsent names it), and no other message.
        asked = reconsent_hashes(campaign.workspace_id, campaign.pk)
        if asked:
            suppressions = suppressions.exclude(
                reason=Suppression.Reason.ERASED, email_hash__in=asked
            )
        suppressed = set(suppressions.values_list("email_hash", flat=True))
    else:
        suppressed = _suppressed(campaign.workspace_id, list(hashes.values()))
    for sid, digest in hashes.items():
        # Suppression is the stronger statement: it holds whatever the lists say.
        if digest in suppressed and reasons.get(sid) != SkipReason.BLOCKLISTED:
            reasons[sid] = SkipReason.SUPPRESSED
    mailable = {sid: person for sid, person in people.items() if sid not in reasons}
    return mailable, reasons


def _build(prepared: PreparedCampaign, row: ledger.Claimed, person: dict) -> tuple[Outgoing, str]:
    campaign = prepared.campaign
    # One address the client would refuse must fail its own row, not the whole batch.
    check_address(person["email"], what="recipient")
    # unsubscribe_url, manage_url and view_url, made together (links.message_urls).
    unsubscribe, manage, view = message_urls(campaign.workspace_id, person["id"], campaign.pk)
    # recipient_context derives first_name and fills in what is missing.
    context = rendering.recipient_context(
        workspace=prepared.workspace_ctx,
        campaign=prepared.campaign_ctx,
        subscriber=person,
        urls={"unsubscribe_url": unsubscribe, "manage_url": manage, "view_in_browser_url": view},
        data=campaign.data,
    )
    message_id = mime.make_message_id(row.id, campaign.uuid, settings.MESSAGE_ID_DOMAIN)
    # Marketing mail carries one-click unsubscribe (RFC 8058); a transactional message, which
    # the person asked for, does not.
    list_unsubscribe = None if campaign.kind == Campaign.Kind.TRANSACTIONAL else unsubscribe
    prebuilt = prepared.prebuilt
    values = prepared.compiled.render_values(context) if prebuilt is not None else None
    built = prebuilt.body(row.id, values) if values is not None else None
    if built is not None:
        # The same bytes as below, from the body built once with this recipient's values put in.
        body, digest = built
        head = mime.message_headers(
            prepared.parts,
            to_email=person["email"],
            to_name=person["name"] or "",
            subject=values.subject,
            message_id=message_id,
            date=now(),
            list_unsubscribe_url=list_unsubscribe,
        )
        signer = prepared.parts.dkim
        if signer is None:
            data = prebuilt.message_type(head + body)
        else:
            # The DKIM-Signature header made from the header fields alone (the body's own
            # Content-Type is in its first bytes) and the message joined once with it, not
            # joined, then copied again behind the header by sign(). Its RSA signature is made
            # with the batch's others (_signed, dkim.Unsigned: ~35 us a message less).
            fields = head + body[: prebuilt.body_start - 4]
            header, signed = signer.unsigned_header(fields, digest)
            data = dkim.Unsigned(signer, header, signed, (head, body), prebuilt.message_type)
    else:
        if values is not None:
            rendered = prepared.compiled.joined(values)
        else:
            rendered = prepared.compiled.render(context)
        html, text = rendered.html, rendered.text
        if prepared.tracker is not None:
            html, text = prepared.tracker.apply(row.id, html, text)
        data = mime.build_message(
            prepared.parts,
            to_email=person["email"],
            to_name=person["name"] or "",
            subject=rendered.subject,
            html=html,
            text=text,
            message_id=message_id,
            date=now(),
            list_unsubscribe_url=list_unsubscribe,
            list_unsubscribe_mailto=None,
        )
    mail_from = mime.verp_address("bounces", prepared.bounce_domain, verp_token(row.id))
    return Outgoing(key=row.id, mail_from=mail_from, rcpt=person["email"], data=data), message_id


def _signed(outgoing: list[Outgoing]) -> list[Outgoing]:
    """The batch's messages that _build left without their DKIM signature (a dkim.Unsigned for
    data), signed together, in a row (see dkim.Unsigned); the others as they are."""
    unsigned = [i for i, message in enumerate(outgoing) if isinstance(message.data, dkim.Unsigned)]
    if not unsigned:
        return outgoing
    outgoing = outgoing.copy()
    signed = dkim.sign_all([outgoing[i].data for i in unsigned])
    for i, data in zip(unsigned, signed, strict=True):
        message = outgoing[i]
        outgoing[i] = Outgoing(message.key, message.mail_from, message.rcpt, data)
    return outgoing


def _retry_or_fail(row: ledger.Claimed, reply: str) -> Outcome:
    deadline = row.created_at + timedelta(seconds=settings.DELIVERY_RETRY_DEADLINE_S)
    retry_at = now() + ledger.backoff(row.attempts)
    if retry_at > deadline:
        return Outcome(row.id, Status.FAILED, f"gave up after {row.attempts} attempts: {reply}")
    return Outcome(row.id, Status.QUEUED, reply, retry_at=retry_at)


def _hard_bounce(campaign: Campaign, person: dict) -> None:
    """A 5.1.x refusal: the address does not exist. Suppress it and unsubscribe everywhere."""
    from mailmarketer.audience.actions import ConsentSource, Reason, do_unsubscribe

    Suppression.objects.get_or_create(
        workspace_id=campaign.workspace_id,
        email_hash=suppression_hash(person["email"]),
        defaults={"reason": Suppression.Reason.HARD_BOUNCE},
    )
    subscriber = Subscriber.objects.filter(pk=person["id"]).first()
    if subscriber is not None:
        do_unsubscribe(
            subscriber,
            actor=Actor.system("hard bounce"),
            reason=Reason.BY_BOUNCE,
            source=ConsentSource("system", str(campaign.pk), "Hard bounce"),
        )


def _our_return_path(address: str) -> bool:
    # The VERP return path names nobody, and a refused sender is diagnosed by it.
    return address.lower().startswith("bounces+")


def pause_campaign(campaign: Campaign, reason: str) -> None:
    """Pause a running campaign for a reason staff must act on (a broken relay); nothing when it
    is no longer running (staff paused or cancelled it meanwhile).

    A reason quotes the relay, and a relay's reply may name a recipient ("550 <j@example.com>:
    ..."). The status reason is shown to every role that sees the campaign, so addresses in it
    are masked here (our own return path kept); the ledger row keeps the whole reply for the
    roles that may read it."""
    set_campaign_status(
        campaign,
        Campaign.Status.PAUSED,
        from_status=Campaign.Status.RUNNING,
        actor=ENGINE,
        reason=mask_addresses_in(reason, keep=_our_return_path),
        event="campaign.paused",
        fields={"updated_at": now()},
    )
    logger.warning("campaign %s paused: %s", campaign.pk, reason)


class Heartbeat:
    """Renews the leases of a batch's rows every third of DELIVERY_LEASE_S while the worker
    works on it, from a thread of its own (with its own database connection, closed after each
    renewal), so that a relay that keeps a live worker waiting never makes its rows look
    abandoned.

    One such thread per process, started by the first batch, renews whatever batches are being
    worked on when it wakes: a batch joins it on entering and leaves on exit. (A thread started
    and joined for each batch cost ~110-140 us of the worker's CPU a batch, send14c.) It sleeps
    a third of a lease at a time while any batch is being worked on and waits for one otherwise,
    so a batch is renewed within a third of a lease of its start, and every third after."""

    _lock = threading.Lock()
    _wake = threading.Condition(_lock)
    _batches: dict[int, tuple[str, list[int]]] = {}
    _thread: threading.Thread | None = None

    def __init__(self, owner: str, ids: list[int]):
        self.owner = owner
        self.ids = ids

    def __enter__(self) -> Heartbeat:
        cls = Heartbeat
        with cls._wake:
            cls._batches[id(self)] = (self.owner, self.ids)
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._run, name="lease-heartbeat", daemon=True)
                cls._thread.start()
            cls._wake.notify()
        return self

    def __exit__(self, *exc) -> None:
        with Heartbeat._wake:
            Heartbeat._batches.pop(id(self), None)

    @classmethod
    def _run(cls) -> None:
        while True:
            with cls._wake:
                while not cls._batches:
                    cls._wake.wait()
            time.sleep(settings.DELIVERY_LEASE_S / 3)
            with cls._wake:
                batches = list(cls._batches.values())
            if not batches:
                continue
            try:
                for owner, ids in batches:
                    try:
                        ledger.renew(ids, owner)
                    except DatabaseError:
                        logger.warning("could not renew the leases of a batch", exc_info=True)
            finally:
                connection.close()  # this thread's own connection


# A temporary failure at these steps is about the relay or our session, not one recipient.
SESSION_STEPS = frozenset({"", "CONNECT", "EHLO", "STARTTLS", "AUTH", "MAIL", "REPLY"})


def deliver(campaign: Campaign, rows: list[ledger.Claimed], sender=None) -> dict[str, int]:
    """Send one claimed batch and record every outcome; returns counts by status."""
    st = state()
    with Heartbeat(st.owner, [r.id for r in rows]):
        try:
            return _deliver(
                campaign, rows, sender or st.senders.for_workspace(campaign.workspace_id)
            )
        except Exception as exc:
            # Kept on the rows, which stay leased until their lease expires: if the same rows
            # keep failing like this they become dead with this error (ledger.reclaim_expired).
            Delivery.objects.filter(
                id__in=[r.id for r in rows], status=Status.SENDING, lease_owner=st.owner
            ).update(smtp_reply=f"worker error: {exc!r}"[:500])
            raise


def _deliver(campaign: Campaign, rows: list[ledger.Claimed], sender) -> dict[str, int]:
    st = state()
    try:
        prepared = prepare(campaign)
    except (rendering.TemplateProblem, ValueError) as exc:
        # Something every message shares is wrong (a sender name with a line break, a template
        # that does not compile): a person must fix the campaign or the workspace's settings.
        ledger.release([r.id for r in rows], st.owner)
        what = "rendered" if isinstance(exc, rendering.TemplateProblem) else "built"
        pause_campaign(campaign, f"the campaign's messages cannot be {what}: {exc}")
        return {}
    people, reasons = _mailable(prepared, [r.subscriber_id for r in rows if r.subscriber_id])
    outcomes: list[Outcome] = []
    outgoing: list[Outgoing] = []
    message_ids: dict[int, str] = {}
    by_row: dict[int, tuple[ledger.Claimed, dict]] = {}
    for row in rows:
        person = people.get(row.subscriber_id)
        if person is None:
            reason = reasons.get(row.subscriber_id, Delivery.SkipReason.ERASED)
            outcomes.append(
                Outcome(row.id, Status.SKIPPED, f"skipped: {reason.label}", skip_reason=reason)
            )
            continue
        try:
            message, message_id = _build(prepared, row, person)
        except (rendering.RenderError, mime.HeaderInjection, ValueError) as exc:
            outcomes.append(Outcome(row.id, Status.FAILED, f"not sent: {exc}"))
            continue
        outgoing.append(message)
        message_ids[row.id] = message_id
        by_row[row.id] = (row, person)
    outgoing = _signed(outgoing)

    if sender.server is not None and outgoing:
        # The relay's limits hold across all workers: send what they allow now, requeue the
        # rest for when the window reopens (without counting it as an attempt).
        granted, retry_at = ratelimit.reserve_waiting(sender.server, len(outgoing))
        for message in outgoing[granted:]:
            outcomes.append(
                Outcome(
                    message.key,
                    Status.QUEUED,
                    "waiting for the relay's send limit",
                    retry_at=retry_at,
                )
            )
        held = [m.key for m in outgoing[granted:]]
        outgoing = outgoing[:granted]
        if held:
            Delivery.objects.filter(id__in=held).update(attempts=F("attempts") - 1)
    breaker = sender.breaker
    probing = breaker.state is not BreakerState.CLOSED
    envelope = {m.key: m.mail_from for m in outgoing}
    results, recorded = _send_recording(sender, outgoing, message_ids)

    limit = settings.DELIVERY_MAX_CONSECUTIVE_FAILURES
    refused_streak = st.consecutive_failures.get(campaign.pk, 0)
    pause_reason = ""
    broken: list[int] = []
    temporary: list[tuple[ledger.Claimed, str]] = []
    trouble = ""  # the relay's last words when the trouble is the relay's, not a recipient's
    for result in results:
        row, person = by_row[result.key]
        reply = f"{result.code} {result.reply}" if result.code else result.reply
        error = result.error
        if result.ok:
            if row.id not in recorded:
                outcomes.append(
                    Outcome(row.id, Status.SENT, reply, message_ids[row.id], sender.server_id)
                )
            refused_streak = breaker.failures = 0
        elif isinstance(error, RelayBroken):
            broken.append(row.id)
            if not pause_reason and error.command in ("MAIL", "RCPT"):
                pause_reason = (
                    f"{sender.label} refused our envelope sender <{envelope[row.id]}>: {reply}"
                )
            elif not pause_reason:
                pause_reason = f"{sender.label} refused us: {reply}"
        elif isinstance(error, PermanentError):
            outcomes.append(Outcome(row.id, Status.FAILED, reply))
            if error.hard_bounce:
                _hard_bounce(campaign, person)
            refused_streak += 1
            if refused_streak == limit and not pause_reason:
                pause_reason = (
                    f"{limit} messages in a row were refused by {sender.label}; "
                    f"the last reply: {reply}"
                )
        else:
            temporary.append((row, reply))
            breaker.failures += 1
            if probing or error is None or error.command in SESSION_STEPS:
                trouble = reply
            elif breaker.failures >= limit:
                trouble = f"{breaker.failures} temporary failures in a row, the last: {reply}"

    if trouble:
        # The relay's trouble, not the recipients': back off from it and probe it (the rows
        # wait for the probe without counting an attempt), unless the deadline has passed.
        probe_at = breaker.trip(trouble)
        logger.warning("%s is in trouble, next probe at %s: %s", sender.label, probe_at, trouble)
        waiting = []
        for row, reply in temporary:
            deadline = row.created_at + timedelta(seconds=settings.DELIVERY_RETRY_DEADLINE_S)
            if probe_at > deadline:
                outcomes.append(Outcome(row.id, Status.FAILED, f"gave up: {reply}"))
                pause_reason = pause_reason or (
                    f"the retry deadline passed while {sender.label} was unavailable; "
                    f"its last reply: {trouble}"
                )
            else:
                outcomes.append(Outcome(row.id, Status.QUEUED, reply, retry_at=probe_at))
                waiting.append(row.id)
        if waiting:
            Delivery.objects.filter(id__in=waiting).update(attempts=F("attempts") - 1)
    else:
        if probing and results:
            # The probe got an answer that is not temporary trouble (while probing, any
            # temporary failure is): the relay is back, even if it refused this one recipient.
            logger.warning("%s answers again", sender.label)
            breaker.succeed()
        outcomes.extend(_retry_or_fail(row, reply) for row, reply in temporary)

    ledger.record(outcomes)
    counts: dict[str, int] = {Status.SENT: len(recorded)} if recorded else {}
    if broken:
        ledger.release(broken, st.owner)
    st.consecutive_failures[campaign.pk] = 0 if pause_reason else refused_streak
    if pause_reason:
        pause_campaign(campaign, pause_reason)
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


# A batch goes to the relay in parts of this many messages, and the rows the relay accepted are
# marked sent after each part, not once at the end of the batch: a worker killed mid-batch leaves
# at most one part accepted but not recorded (sent again by whoever takes its rows back), not up
# to a whole batch. Kill -9 tests on PostgreSQL with two workers gave 439 duplicates over five
# kills when a batch of 200 was recorded at its end (half a batch per kill on average).
SEND_PART = 50


def _send_recording(sender, outgoing: list[Outgoing], message_ids: dict[int, str]):
    """Send `outgoing` part by part, recording the accepted ones as sent after each part; returns
    every result, in order, and the ids recorded. After a part with any failure the rest goes in
    one call, and only the end of _deliver records it (the relay's trouble is judged on all of
    it, as before)."""
    results = []
    recorded: set[int] = set()
    start = 0
    while start < len(outgoing):
        clean = not results or all(r.ok for r in results)
        end = start + SEND_PART if clean else len(outgoing)
        part = sender.send(outgoing[start:end])
        results.extend(part)
        start = end
        if start < len(outgoing) and all(r.ok for r in part):
            accepted = [
                Outcome(
                    r.key,
                    Status.SENT,
                    f"{r.code} {r.reply}" if r.code else r.reply,
                    message_ids[r.key],
                    sender.server_id,
                )
                for r in part
            ]
            # Not the batch's last record: its commit need not wait for the disk, the last
            # one's wait covers it (ledger.RELAXED_COMMIT).
            ledger.record(accepted, durable=False)
            recorded.update(o.id for o in accepted)
    return results, recorded


# What the running campaigns look like, in sending order: one short statement of fixed text.
# send_one reads the campaigns themselves (with their workspaces, through the ORM: ~1 ms of the
# worker's CPU and ~0.3 ms of PostgreSQL's a batch, send14c) only when this changed; a change
# of a campaign that matters to sending (its content, settings, status) moves its updated_at or
# takes it out of the list.
RUNNING_SQL = (
    "SELECT id, updated_at, kind, started_at FROM campaigns_campaign WHERE status = %s"
    " ORDER BY CASE WHEN kind = %s THEN 0 ELSE 1 END, started_at, id"
)


def _running_campaigns(st: EngineState) -> list[Campaign]:
    """The running campaigns, transactional messages first (someone is waiting for that receipt
    or reset), then campaigns oldest first; the ones read before while none of them changed."""
    with connection.cursor() as cursor:
        cursor.execute(RUNNING_SQL, [Campaign.Status.RUNNING, Campaign.Kind.TRANSACTIONAL])
        seen = cursor.fetchall()
    if seen != st.running_seen:
        st.running = list(
            Campaign.objects.filter(status=Campaign.Status.RUNNING)
            .select_related("workspace")
            .annotate(marketing=Case(When(kind=Campaign.Kind.TRANSACTIONAL, then=0), default=1))
            .order_by("marketing", "started_at", "pk")
        )
        # What was seen before reading them: a change in between is seen by the next batch.
        st.running_seen = seen
    return st.running


_relays_sql: str | None = None


def _sender_for(st: EngineState, workspace_id: int):
    """SenderPool.for_workspace, whose answer is known without asking it while the workspace's
    enabled relays read the same as last time (every column) and there are none or one: the
    outbox, or that relay's sender. With two or more it chooses among them each time. (It reads
    the relays through the ORM: ~0.6 ms of the worker's CPU a batch, send14c.)"""
    global _relays_sql
    if _relays_sql is None:
        columns = ", ".join(f.column for f in SmtpServer._meta.concrete_fields)
        _relays_sql = (
            f"SELECT {columns} FROM {SmtpServer._meta.db_table}"  # noqa: S608 (no values)
            " WHERE workspace_id = %s AND enabled = %s ORDER BY id"
        )
    with connection.cursor() as cursor:
        cursor.execute(_relays_sql, [workspace_id, True])
        seen = cursor.fetchall()
    known = st.relays_seen.get(workspace_id)
    if known is not None and known[0] == seen and len(seen) <= 1:
        return known[1]
    sender = st.senders.for_workspace(workspace_id)
    st.relays_seen[workspace_id] = (seen, sender)
    return sender


def send_one() -> bool:
    """Worker duty: claim and send one batch of the oldest running campaign with due rows.
    A campaign whose relay's breaker is open waits; a half-open one sends one message, the
    probe."""
    st = state()
    for campaign in _running_campaigns(st):
        sender = _sender_for(st, campaign.workspace_id)
        breaker = sender.breaker.state
        if breaker is BreakerState.OPEN:
            continue
        limit = 1 if breaker is BreakerState.HALF_OPEN else None
        rows = ledger.claim(
            campaign.pk, st.owner, limit=limit, after=st.claimed_up_to.get(campaign.pk)
        )
        if rows:
            st.claimed_up_to[campaign.pk] = max(row.position for row in rows)
            deliver(campaign, rows, sender)
            return True
    return False


# How long one call of the worker's sending duty keeps sending batches before the worker's other
# duties get their turn. A round of the other duties costs about two dozen queries (every app's
# housekeeping: rollups, purges, the task queue, reminders) whatever was sent: with 1 s rounds a
# py-spy profile of a PostgreSQL worker put them at ~19% of its time (10% of its CPU, the rest
# waiting for the database). What cannot wait that long runs inside the round: the reclaim of a
# dead worker's rows (reclaim_one, itself throttled to ten looks a lease), and planning when the
# planned rows run out (planner.plan_one), so neither a killed worker's recovery (< 15 s) nor a
# large campaign's next chunk waits for the round's end. A stop request ends the round between
# batches (lib.worker.stop_requested), and a pause, a cancel or a transactional message is seen
# at the next batch, as before; what waits up to a round is the other apps' housekeeping (and a
# scheduled campaign's start, and a finished campaign's "finished", which the planner's end of
# work also brings forward: the round ends as soon as nothing is due and nothing to plan).
SEND_ROUND_S = 5.0


def send_some(clock=time.monotonic) -> bool:
    """Worker duty: send batches (send_one, each claimed, sent and recorded before the next is
    claimed, so no more is in flight than before) for up to SEND_ROUND_S, then let the round's
    other duties run. Between batches it looks for a dead worker's rows (reclaim_one, throttled)
    and, when no row is due, plans the next chunk (planner.plan_one) and goes on; the round ends
    early when nothing is due and nothing is left to plan, or when the worker is asked to stop."""
    found = False
    deadline = clock() + SEND_ROUND_S
    while not stop_requested():
        # Before each claim: rows taken back from a dead worker keep their place at the head of
        # the queue, so this very claim sends them (its recovery is measured until then).
        reclaim_one()
        if not (send_one() or planner.plan_one()):
            break
        found = True
        if clock() >= deadline:
            break
    return found


_last_purge = 0.0
_last_reclaim = 0.0
# Between two looks at every lease, a look covers the leases that expired since a minute before
# the last look: a lease that expired earlier and was not there to be seen then was written
# (claimed or renewed) more than a minute and a lease before it committed, which does not
# happen, and the look at every lease each minute would find it anyway.
RECLAIM_OVERLAP = timedelta(seconds=60)
RECLAIM_FULL_S = 60


def reclaim_one() -> bool:
    """Worker duty (also run by send_some before each claim): return expired leases (rows of a
    worker that died) to the queue, looked for twenty times per lease period rather than before
    every batch (one read of the partial index of rows in flight), so they wait at most a
    twentieth of a lease after it ends; once an hour, forget old rate-limit counters."""
    global _last_purge, _last_reclaim
    clock = time.monotonic()
    if clock - _last_purge > 3600:
        _last_purge = clock
        ratelimit.purge_old_windows()
    if clock - _last_reclaim < settings.DELIVERY_LEASE_S / 20:
        return False
    _last_reclaim = clock
    st = state()
    full = st.reclaim_looked_at is None or clock - st.last_full_reclaim > RECLAIM_FULL_S
    looked_at = now()
    since = None if full else st.reclaim_looked_at - RECLAIM_OVERLAP
    moved = ledger.reclaim_expired(since=since)
    st.reclaim_looked_at = looked_at
    if full:
        st.last_full_reclaim = clock
    if moved == 0:
        return False
    # The rows taken back keep their place at the head of the queue: the next claim starts
    # from the start, so that it sends them.
    st.claimed_up_to.clear()
    return True


def finish_one() -> bool:
    """Worker duty: finish running campaigns whose rows are all final; cancel the queued rows of
    cancelled campaigns."""
    did = False
    for campaign in Campaign.objects.filter(status=Campaign.Status.CANCELLED):
        if Delivery.objects.filter(campaign=campaign, status=Status.QUEUED).update(
            status=Status.CANCELLED, smtp_reply="cancelled before sending"
        ):
            did = True
    running = Campaign.objects.filter(status=Campaign.Status.RUNNING, planning_done=True)
    for campaign in running:
        # Queued and sending are the only open statuses: one look each into the partial index
        # that holds only them (delivery_claim_queued, delivery_inflight), whatever the
        # campaign's size (an exclude() of the final ones would walk all of its rows).
        rows = Delivery.objects.filter(campaign=campaign)
        if any(rows.filter(status=status).exists() for status in OPEN_STATUSES):
            continue
        if set_campaign_status(
            campaign,
            Campaign.Status.FINISHED,
            actor=ENGINE,
            event="campaign.finished",
            fields={"finished_at": now(), "updated_at": now()},
        ):
            did = True
    return did


def send_test_message(campaign: Campaign, rendered, to: str) -> None:
    """Send one rendered message to a staff address (a test send): not recorded in the ledger,
    no List-Unsubscribe to a real person, subject marked as a test."""
    prepared = prepare(campaign)
    message_id = mime.make_message_id(0, str(campaign.uuid), settings.MESSAGE_ID_DOMAIN)
    data = mime.build_message(
        prepared.parts,
        to_email=to,
        to_name="",
        subject=f"[Test] {rendered.subject}",
        html=rendered.html,
        text=rendered.text,
        message_id=message_id,
        date=now(),
        list_unsubscribe_url=f"{settings.BASE_URL}/f/u/test",
        list_unsubscribe_mailto=None,
    )
    sender = state().senders.for_workspace(campaign.workspace_id)
    mail_from = mime.verp_address("bounces", prepared.bounce_domain, "test")
    (result,) = sender.send([Outgoing(key=0, mail_from=mail_from, rcpt=to, data=data)])
    if not result.ok:
        raise result.error or PermanentError(result.reply, result.code)
