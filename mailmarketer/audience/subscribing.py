"""Subscribing: the one writer of memberships and of the consent they rest on.

Every path that puts people on lists calls subscribe_people: a staff member or the person on a
page (actions.do_subscribe), the API's bulk add (actions.do_bulk_add_to_list), an import
(importing/pipeline.py) and the sign-up forms to come. It takes many people at once, so an
import stays set-based: a fixed number of queries per call whatever its size (suppression,
existing subscribers, their memberships, then bulk writes through importing/store.py).

For each person, in this order:
- suppressed (the address's hash is on the suppression list): nothing is written, whether the
  person is known or not. Suppression outlives erasure, so an erased person is never re-added.
- new (no subscriber has the address, compared by emails.email_key): created, with the terms'
  `created_as` source, and subscribed to every list.
- blocklisted: nothing is written.
- otherwise, for each list (Result):
    no membership                  -> SUBSCRIBED
    unsubscribed                   -> RESUBSCRIBED when the terms allow it, else UNSUBSCRIBED_KEPT
    unconfirmed, terms say confirmed -> CONFIRMED (upgraded)
    anything else                  -> ALREADY
Each membership made, renewed or upgraded gets a consent record (a grant, with the terms'
notice and source) in the same transaction. So nobody is subscribed, and nobody who
unsubscribed is subscribed again, without a new grant in the consent ledger.

The status a list's new memberships get: confirmed when the terms say the consent is confirmed
(`confirmed=True`: staff or an importer stating it), unconfirmed when they say it is not
(`confirmed=False`), and each list's opt-in when they say nothing (`confirmed=None`: a double
opt-in list waits for the confirmation link).

Pending re-consent (RECONSENT_REASONS): an address suppressed as erased or as "unsubscribed
from everything" may sign up again, but only by confirming. A form may then keep a record of the
address (actions.do_create_subscriber with pending_reconsent) and send one confirmation mail,
which open_reconsent records (the delivery engine sends exactly that message to the suppressed
address, nothing else); confirm_reconsent, on the person's confirmation, lifts the suppression,
and only then can subscribe_people add them to lists. Suppressions for a bounce, a complaint or
by staff are not the person's to lift and have no such path.

Audit rows are the caller's: each action writes the one that suits it (per person, per call or
per import chunk).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from django.db import connection, models

from mailmarketer.lib.text import one_line_problem

from .emails import email_key, suppression_hash
from .importing.store import (
    CONSENT_FIELDS,
    SUBSCRIBER_FIELDS,
    SUBSCRIPTION_FIELDS,
    Consent,
    Store,
    json_text,
)
from .models import ConsentRecord, MailingList, Reconsent, Subscriber, Subscription, Suppression

Status = Subscription.Status
SourceType = ConsentRecord.SourceType
GRANT = ConsentRecord.Action.GRANT

# Sources that may stand for the person's own renewed wish to be mailed: the person on a form or
# their preference page, or staff acting on their word. An import or an API call is someone
# else's list, and never brings back a person who unsubscribed.
MAY_RESUBSCRIBE = frozenset({SourceType.FORM, SourceType.SUBSCRIBER, SourceType.ADMIN})


class Result(models.TextChoices):
    """What happened to one (person, list)."""

    SUBSCRIBED = "subscribed", "Subscribed (a new membership)"
    RESUBSCRIBED = "resubscribed", "Subscribed again after unsubscribing"
    CONFIRMED = "confirmed", "Upgraded from unconfirmed to confirmed"
    ALREADY = "already", "Already a member"
    UNSUBSCRIBED_KEPT = "unsubscribed_kept", "Unsubscribed earlier, kept unsubscribed"


CHANGED = frozenset({Result.SUBSCRIBED, Result.RESUBSCRIBED, Result.CONFIRMED})


@dataclass(frozen=True)
class Terms:
    """On what terms people are subscribed: where the consent came from and what it says.

    source: how (ConsentRecord.SourceType: form, import, api, admin, subscriber), with the id and
        label of the form, import, token or staff member, and the IP and browser, which are
        kept only where the workspace keeps them.
    reason: the Subscription.Reason written on each membership made or changed.
    notice_id: the consent notice shown (its exact words), or None.
    confirmed: True, False or None (each list's opt-in); see the module docstring.
    resubscribe: whether an unsubscribed membership may be renewed. Only with a new consent
        (the grant written for it) from a source in MAY_RESUBSCRIBE.
    created_as: the Subscriber.Source of people created.
    """

    source_type: str
    reason: str
    source_id: str = ""
    source_label: str = ""
    ip: str | None = None
    user_agent: str = ""
    notice_id: int | None = None
    confirmed: bool | None = None
    resubscribe: bool = False
    created_as: str = Subscriber.Source.ADMIN

    def __post_init__(self):
        if self.resubscribe and self.source_type not in MAY_RESUBSCRIBE:
            raise ValueError(
                f"a {self.source_type} source never resubscribes anyone who unsubscribed"
            )

    def status_on(self, mailing_list: MailingList) -> str:
        if self.confirmed or (
            self.confirmed is None and mailing_list.optin == MailingList.OptIn.SINGLE
        ):
            return Status.CONFIRMED
        return Status.UNCONFIRMED


@dataclass(frozen=True, slots=True)
class Person:
    """One person to subscribe. The import passes its own rows, which have these attributes."""

    email: str  # normalised (emails.normalise_email): as typed, the domain lower-cased
    key: str  # emails.email_key(email)
    hashed: str  # emails.suppression_hash(email)
    name: str = ""
    attributes_json: str = "{}"  # what the subscriber is created with; store.json_text()
    first_name: str = ""
    last_name: str = ""

    @classmethod
    def of(
        cls,
        email: str,
        name: str = "",
        attributes: dict | None = None,
        *,
        first_name: str = "",
        last_name: str = "",
    ) -> Person:
        return cls(
            email,
            email_key(email),
            suppression_hash(email),
            name,
            json_text(attributes or {}),
            first_name,
            last_name,
        )


@dataclass
class Subscribed:
    """What subscribe_people did, by position in `people`."""

    # People created, each a member of every list (with the status in `statuses`).
    created: list[int] = field(default_factory=list)
    created_uuids: list[str] = field(default_factory=list)  # aligned with created; 32 hex digits
    # Refused: position -> (suppression reason, uuid of the subscriber if there is one).
    suppressed: dict[int, tuple[str, UUID | None]] = field(default_factory=dict)
    # Refused: position -> uuid.
    blocklisted: dict[int, UUID] = field(default_factory=dict)
    # Known and enabled: position -> (subscriber id, uuid, {list id: (Result, status after)}).
    known: dict[int, tuple[int, UUID, dict[int, tuple[str, str]]]] = field(default_factory=dict)
    # Unknown while `create` was off: positions.
    missing: list[int] = field(default_factory=list)
    # The status that new (and renewed) memberships got, per list id.
    statuses: dict[int, str] = field(default_factory=dict)


def subscribe_people(
    workspace,
    people: Sequence[Person],
    lists: Sequence[MailingList],
    terms: Terms,
    *,
    at: datetime,
    create: bool = True,
) -> Subscribed:
    """Subscribes `people` (each address at most once; callers remove duplicates first) to
    `lists` (all of `workspace`) on `terms`, inside the caller's transaction. `create=False`
    leaves unknown addresses alone (reported in `missing`).

    A concurrent writer adding one of these people or memberships meanwhile makes this raise
    IntegrityError; the caller retries (looking again finds them) or fails."""
    if any(ml.workspace_id != workspace.pk for ml in lists):
        raise ValueError("a list of another workspace")  # callers look lists up in theirs
    store = Store(workspace.pk)
    keep_ip = workspace.consent_store_ip
    consent = Consent(
        terms.notice_id,
        terms.source_id[:64],
        terms.source_label[:200],
        terms.source_type,
        terms.ip if keep_ip else None,
        terms.user_agent[:400] if keep_ip else "",
    )
    outcome = Subscribed(statuses={ml.pk: terms.status_on(ml) for ml in lists})
    if not people:
        return outcome
    suppressed = store.suppressed({p.hashed for p in people})
    existing = store.existing([p.key for p in people])

    new, known = [], []
    for position, person in enumerate(people):
        current = existing.get(person.key)
        reason = suppressed.get(person.hashed) if suppressed else None
        if reason:
            outcome.suppressed[position] = (reason, current[2] if current else None)
        elif current is None:
            if create:
                new.append((position, person))
            else:
                outcome.missing.append(position)
        elif current[1] == Subscriber.Status.BLOCKLISTED:
            outcome.blocklisted[position] = current[2]
        else:
            known.append((position, current))

    confirmed_at = {
        ml.pk: at if outcome.statuses[ml.pk] == Status.CONFIRMED else None for ml in lists
    }
    if new:
        enabled = Subscriber.Status.ENABLED
        uuids = store.insert_people(
            [
                (p.email, p.key, p.name, enabled, p.attributes_json, p.first_name, p.last_name)
                for _, p in new
            ],
            source=terms.created_as,
            at=at,
            lists=[
                (ml.pk, f"email:{ml.slug}", outcome.statuses[ml.pk], confirmed_at[ml.pk])
                for ml in lists
            ],
            consent=consent,
        )
        outcome.created = [position for position, _ in new]
        outcome.created_uuids = uuids
    if known:
        _subscribe_known(store, known, lists, terms, outcome, confirmed_at, consent, at)
    return outcome


def _subscribe_known(store, known, lists, terms, outcome, confirmed_at, consent, at) -> None:
    current = {
        (sid, lid): (pk, status)
        for pk, sid, lid, status in store.memberships(
            [c[0] for _, c in known], [ml.pk for ml in lists]
        )
    }
    joining, consents = [], []
    renewed: dict[str, list[int]] = {}  # status -> membership ids
    upgraded = []
    for position, (sid, _, uid) in known:
        results = {}
        for ml in lists:
            wanted = outcome.statuses[ml.pk]
            membership = current.get((sid, ml.pk))
            if membership is None:
                joining.append((sid, ml.pk, wanted, confirmed_at[ml.pk]))
                results[ml.pk] = (Result.SUBSCRIBED, wanted)
            elif membership[1] == Status.UNSUBSCRIBED:
                if not terms.resubscribe:
                    results[ml.pk] = (Result.UNSUBSCRIBED_KEPT, Status.UNSUBSCRIBED)
                    continue
                renewed.setdefault(wanted, []).append(membership[0])
                results[ml.pk] = (Result.RESUBSCRIBED, wanted)
            elif membership[1] == Status.UNCONFIRMED and wanted == Status.CONFIRMED:
                upgraded.append(membership[0])
                results[ml.pk] = (Result.CONFIRMED, wanted)
            else:
                results[ml.pk] = (Result.ALREADY, membership[1])
                continue
            consents.append((sid, ml.pk, f"email:{ml.slug}", GRANT, confirmed_at[ml.pk]))
        outcome.known[position] = (sid, uid, results)

    store.insert_subscriptions(joining, reason=terms.reason, at=at)
    if upgraded:
        Subscription.objects.filter(pk__in=upgraded).update(
            status=Status.CONFIRMED, status_reason=terms.reason, confirmed_at=at, updated_at=at
        )
    for status, ids in renewed.items():
        Subscription.objects.filter(pk__in=ids).update(
            status=status,
            status_reason=terms.reason,
            confirmed_at=at if status == Status.CONFIRMED else None,
            unsubscribed_at=None,
            updated_at=at,
        )
    store.insert_consents(consents, consent=consent, at=at)


# Suppressions a person lifts by signing up again and confirming it: their own "stop
# everything" and their own erasure. Not a bounce, a complaint or staff's decision.
RECONSENT_REASONS = frozenset({Suppression.Reason.UNSUBSCRIBED_ALL, Suppression.Reason.ERASED})


def open_reconsent(subscriber: Subscriber, *, campaign_id: int, at: datetime) -> Reconsent:
    """Records that the confirmation mail `campaign_id` asks this suppressed address to sign
    up again: the one message the engine sends it."""
    return Reconsent.objects.create(
        workspace_id=subscriber.workspace_id,
        subscriber=subscriber,
        email_hash=suppression_hash(subscriber.email),
        campaign_id=campaign_id,
        created_at=at,
    )


def confirm_reconsent(subscriber: Subscriber, *, at: datetime) -> str | None:
    """The person confirmed signing up again: their own suppression (RECONSENT_REASONS) goes,
    and their pending re-consents are confirmed. Returns the reason lifted, or None when there
    was none to lift (a suppression of another reason stays, and nothing is confirmed)."""
    suppression = Suppression.objects.filter(
        workspace_id=subscriber.workspace_id, email_hash=suppression_hash(subscriber.email)
    ).first()
    if suppression is None or suppression.reason not in RECONSENT_REASONS:
        return None
    suppression.delete()
    Reconsent.objects.filter(subscriber=subscriber, status=Reconsent.Status.PENDING).update(
        status=Reconsent.Status.CONFIRMED, confirmed_at=at
    )
    return suppression.reason


# -- activity tracking -----------------------------------------------------------------------

TRACKING = "tracking"  # the purpose of activity-tracking consent records (no list)


def record_tracking_consent(
    subscriber: Subscriber, action: str, terms: Terms, *, at: datetime, confirmed: bool
) -> ConsentRecord:
    """One activity-tracking consent record (grant, confirm or withdraw), with the terms'
    notice (the words shown) and source. A grant waiting on a confirmation mail has no
    confirmed_at; queries.has_tracking_consent reads the newest record."""
    keep_ip = subscriber.workspace.consent_store_ip
    return ConsentRecord.objects.create(
        workspace_id=subscriber.workspace_id,
        subscriber=subscriber,
        purpose=TRACKING,
        mailing_list=None,
        action=action,
        notice_id=terms.notice_id,
        source_type=terms.source_type,
        source_id=terms.source_id[:64],
        source_label=terms.source_label[:200],
        ip=terms.ip if keep_ip else None,
        user_agent=terms.user_agent[:400] if keep_ip else "",
        at=at,
        confirmed_at=at if confirmed else None,
    )


# -- one person, set-based (the sign-up forms' path) -----------------------------------------


@dataclass(frozen=True)
class Known:
    """What the caller read about one address before subscribing it, in its own query (the
    forms read it with their limits, in one statement): the subscriber if there is one, and
    its memberships of the lists in question ({list id: status})."""

    subscriber_id: int | None = None
    status: str = ""
    uuid: UUID | None = None
    suppressed: str | None = None  # the suppression's reason
    memberships: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscribedOne:
    """What subscribe_one did: the subscriber (created or not) and, per list id, the Result
    and the membership's status after."""

    subscriber_id: int
    uuid: UUID
    created: bool
    results: dict[int, tuple[str, str]]
    tracking_consent: bool = False


def subscribe_one(
    workspace,
    person: Person,
    lists: Sequence[MailingList],
    terms: Terms,
    known: Known,
    *,
    at: datetime,
    tracking_notice_id: int | None = None,
    tracking_confirmed: bool = True,
) -> SubscribedOne | None:
    """The plain cases of subscribe_people for one person, in a fixed three statements at most
    (the subscriber, the memberships, the consent records), from what the caller read in
    `known`: an address on no suppression list, new (created with `person`'s name and
    attributes) or enabled, joining lists it is not on (SUBSCRIBED) or already on (ALREADY).
    `tracking_notice_id` adds an activity-tracking grant (record_tracking_consent's row) to the
    same insert.

    Returns None, having written nothing, for anything else (suppressed, blocklisted, a
    renewal after unsubscribing, an upgrade to confirmed, or an address created by a
    concurrent writer since `known` was read): the caller then takes subscribe_people's path,
    which decides those, in the same transaction. The rules are subscribe_people's: this is
    a shortcut for the cases where they decide nothing."""
    if known.suppressed or any(ml.workspace_id != workspace.pk for ml in lists):
        return None
    if known.subscriber_id is None and not _plain_profile(person):
        return None  # actions.do_create_subscriber names what is wrong with it
    statuses = {ml.pk: terms.status_on(ml) for ml in lists}
    results: dict[int, tuple[str, str]] = {}
    if known.subscriber_id is not None and known.status != Subscriber.Status.ENABLED:
        return None
    for ml in lists:
        current = known.memberships.get(ml.pk)
        if current is None:
            results[ml.pk] = (Result.SUBSCRIBED, statuses[ml.pk])
        elif current == Status.UNSUBSCRIBED or (
            current == Status.UNCONFIRMED and statuses[ml.pk] == Status.CONFIRMED
        ):
            return None  # nothing written yet: a known person's renewal or upgrade
        else:
            results[ml.pk] = (Result.ALREADY, current)
    joining = [ml for ml in lists if results[ml.pk][0] == Result.SUBSCRIBED]
    keep_ip = workspace.consent_store_ip
    stamp = _stamp(at)
    confirmed = {ml.pk: stamp if statuses[ml.pk] == Status.CONFIRMED else None for ml in joining}
    # The rows, with SUBSCRIBER where the subscriber's id goes (not known yet for a new one).
    memberships = [
        (
            workspace.pk,
            SUBSCRIBER,
            ml.pk,
            statuses[ml.pk],
            terms.reason,
            stamp,
            stamp,
            confirmed[ml.pk],
        )
        for ml in joining
    ]
    ip = terms.ip if keep_ip else None
    user_agent = terms.user_agent[:400] if keep_ip else ""
    source = (terms.source_type, terms.source_id[:64], terms.source_label[:200], stamp, ip)
    records = [
        (
            workspace.pk,
            SUBSCRIBER,
            ml.pk,
            f"email:{ml.slug}",
            GRANT,
            terms.notice_id,
            *source,
            user_agent,
            confirmed[ml.pk],
        )
        for ml in joining
    ]
    if tracking_notice_id is not None:
        records.append(
            (
                workspace.pk,
                SUBSCRIBER,
                None,
                TRACKING,
                GRANT,
                tracking_notice_id,
                *source,
                user_agent,
                stamp if tracking_confirmed else None,
            )
        )
    if connection.vendor == "postgresql" and (
        known.subscriber_id is None or memberships or records
    ):
        # One round trip: the subscriber (or the known one's id) and the rows that need it,
        # as data-modifying CTEs. A concurrent insert of the address makes the subscriber's
        # insert return no row, and then the rows selected from it are none: nothing written.
        if known.subscriber_id is None:
            uid, head, head_values = _subscriber_insert(workspace.pk, person, terms.created_as, at)
        else:
            uid, head, head_values = (
                known.uuid,
                "SELECT CAST(%s AS bigint) AS id",
                [known.subscriber_id],
            )
        sql, values = [f"WITH s AS ({head})"], list(head_values)
        for name, model, fields, rows in (
            ("m", Subscription, SUBSCRIPTION_FIELDS, memberships),
            ("c", ConsentRecord, CONSENT_FIELDS, records),
        ):
            if rows:
                part, part_values = _insert_from_s(model, fields, rows)
                sql.append(f", {name} AS ({part})")
                values.extend(part_values)
        sql.append(" SELECT id FROM s")
        with connection.cursor() as cursor:
            cursor.execute("".join(sql), values)
            row = cursor.fetchone()
        if row is None:
            return None  # created meanwhile by a concurrent sign-up
        subscriber_id, created = row[0], known.subscriber_id is None
        uid = UUID(str(uid))
    else:
        if known.subscriber_id is None:
            inserted = _insert_subscriber(workspace.pk, person, terms.created_as, at)
            if inserted is None:
                return None  # created meanwhile by a concurrent sign-up
            subscriber_id, uid = inserted
            created = True
        else:
            subscriber_id, uid, created = known.subscriber_id, known.uuid, False

        def fill(rows):
            return [tuple(subscriber_id if v is SUBSCRIBER else v for v in r) for r in rows]

        _insert_rows(Subscription, SUBSCRIPTION_FIELDS, fill(memberships))
        _insert_rows(ConsentRecord, CONSENT_FIELDS, fill(records))
    return SubscribedOne(
        subscriber_id, uid, created, results, tracking_consent=tracking_notice_id is not None
    )


# Why plain statements rather than bulk_create and save(): a sign-up is a handful of rows, and
# the ORM's per-row work (an instance, each field prepared, the SQL compiled) was about half of
# the web process's CPU per sign-up (profiled: some 60% of the submission's own time in
# building inserts). These are the same columns (importing/store.py's field lists), with values
# already in the database's form.
CASTS = {"uuid": "uuid", "attributes": "jsonb", "ip": "inet"}
# The order subscribe_one writes its rows in; a column added to the import's lists must be
# added there too.
assert SUBSCRIPTION_FIELDS == (
    "workspace",
    "subscriber",
    "mailing_list",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "confirmed_at",
)
assert CONSENT_FIELDS[:6] == (
    "workspace",
    "subscriber",
    "mailing_list",
    "purpose",
    "action",
    "notice",
)
assert CONSENT_FIELDS[6:] == (
    "source_type",
    "source_id",
    "source_label",
    "at",
    "ip",
    "user_agent",
    "confirmed_at",
)


def _stamp(at: datetime):
    return connection.ops.adapt_datetimefield_value(at)


@functools.cache
def _insert_sql(model, fields, width: int, rows: int, vendor: str = "") -> str:
    qn = connection.ops.quote_name
    columns = [model._meta.get_field(f).column for f in fields]
    postgres = vendor == "postgresql"
    mark = ", ".join(
        f"CAST(%s AS {CASTS[c]})" if postgres and c in CASTS else "%s" for c in columns
    )
    values = ", ".join([f"({mark})"] * rows)
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(map(qn, columns))}) VALUES {values}"  # noqa: S608 - identifiers from the models
    return sql


def _insert_rows(model, fields, rows: list[tuple]) -> None:
    if not rows:
        return
    sql = _insert_sql(model, fields, len(fields), len(rows), connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


def _plain_profile(person: Person) -> bool:
    """A name and attributes that actions.do_create_subscriber would store as they are: one
    line, no NUL, finite numbers (json.dumps writes NaN and Infinity as bare words), attribute
    names of one line and at most 100 characters."""
    if len(person.name) > 200 or one_line_problem(person.name):
        return False
    text = person.attributes_json
    if "\\u0000" in text or "NaN" in text or "Infinity" in text:
        return False
    return all(
        isinstance(k, str) and k.strip() and len(k) <= 100 and not one_line_problem(k)
        for k in json.loads(text)
    )


SUBSCRIBER = object()  # in subscribe_one's rows: the subscriber's id, filled in on writing


def _insert_from_s(model, fields, rows: list[tuple]) -> tuple[str, list]:
    """INSERT of `rows` taking the subscriber's id from the CTE `s` (PostgreSQL): each value
    cast to its column's type, since a SELECT's parameters have none of their own."""
    shape = tuple(tuple(value is SUBSCRIBER for value in row) for row in rows)
    values = [value for row in rows for value in row if value is not SUBSCRIBER]
    return _insert_from_s_sql(model, fields, shape), values


@functools.cache
def _insert_from_s_sql(model, fields, shape: tuple[tuple[bool, ...], ...]) -> str:
    qn = connection.ops.quote_name
    columns = [model._meta.get_field(f) for f in fields]
    selects = []
    for row in shape:
        items = [
            "s.id" if is_id else f"CAST(%s AS {column.db_type(connection)})"
            for column, is_id in zip(columns, row, strict=True)
        ]
        selects.append(f"SELECT {', '.join(items)} FROM s")  # noqa: S608 - casts and marks
    names = ", ".join(qn(c.column) for c in columns)
    return f"INSERT INTO {qn(model._meta.db_table)} ({names}) {' UNION ALL '.join(selects)}"


def _subscriber_insert(workspace_id: int, person: Person, source: str, at: datetime):
    """(uuid, sql, values) of _insert_subscriber's statement, run by the caller."""
    qn = connection.ops.quote_name
    uid = Store.new_uuids(1)[0]
    stamp = _stamp(at)
    sql = _insert_sql(Subscriber, SUBSCRIBER_FIELDS, len(SUBSCRIBER_FIELDS), 1, connection.vendor)
    key = ", ".join(qn(Subscriber._meta.get_field(f).column) for f in ("workspace", "email_key"))
    value = {
        "workspace": workspace_id,
        "uuid": uid,
        "email": person.email,
        "email_key": person.key,
        "name": person.name,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "status": Subscriber.Status.ENABLED,
        "attributes": person.attributes_json,
        "source": source,
        "created_at": stamp,
        "updated_at": stamp,
    }
    # A column added to the import's list later (with a default) gets the model's default.
    values = [
        value[f] if f in value else Subscriber._meta.get_field(f).get_default()
        for f in SUBSCRIBER_FIELDS
    ]
    return uid, f"{sql} ON CONFLICT ({key}) DO NOTHING RETURNING {qn('id')}", values


def _insert_subscriber(workspace_id: int, person: Person, source: str, at: datetime):
    """(id, uuid) of a new subscriber, or None when the workspace has the address already: one
    INSERT ... ON CONFLICT DO NOTHING RETURNING, so a concurrent sign-up of the same address
    neither fails the transaction nor needs a savepoint."""
    uid, sql, values = _subscriber_insert(workspace_id, person, source, at)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return None
    return row[0], UUID(uid)


@dataclass(frozen=True)
class NewPerson:
    """One new address for subscribe_new_people: who, to which lists, on what terms (each its
    own: a form's sign-ups each have their own time, IP and browser), and whether with an
    activity-tracking grant (its notice)."""

    person: Person
    lists: Sequence[MailingList]
    terms: Terms
    at: datetime
    tracking_notice_id: int | None = None


def subscribe_new_people(workspace, people: Sequence[NewPerson]) -> dict[str, tuple[int, UUID]]:
    """subscribe_one's new-address case for many people at once, in three statements whatever
    their number (the subscribers, the memberships, the consent records), inside the caller's
    transaction. The caller has read that each address is new and on no suppression list, and
    passes each address once, with a plain profile (`plain_profile`) and the workspace's lists.

    Returns {email key: (subscriber id, uuid)} of the people created. An address a concurrent
    writer created meanwhile is not in it, and nothing is written for it (its subscriber's
    insert did nothing): the caller takes the general path for it, which decides."""
    if not people:
        return {}
    if any(ml.workspace_id != workspace.pk for p in people for ml in p.lists):
        raise ValueError("a list of another workspace")
    qn = connection.ops.quote_name
    uuids = Store.new_uuids(len(people))
    rows = []
    for entry, uid in zip(people, uuids, strict=True):
        stamp = _stamp(entry.at)
        value = {
            "workspace": workspace.pk,
            "uuid": uid,
            "email": entry.person.email,
            "email_key": entry.person.key,
            "name": entry.person.name,
            "first_name": entry.person.first_name,
            "last_name": entry.person.last_name,
            "status": Subscriber.Status.ENABLED,
            "attributes": entry.person.attributes_json,
            "source": entry.terms.created_as,
            "created_at": stamp,
            "updated_at": stamp,
        }
        rows.append(
            tuple(
                value[f] if f in value else Subscriber._meta.get_field(f).get_default()
                for f in SUBSCRIBER_FIELDS
            )
        )
    sql = _insert_sql(
        Subscriber, SUBSCRIBER_FIELDS, len(SUBSCRIBER_FIELDS), len(rows), connection.vendor
    )
    key = ", ".join(qn(Subscriber._meta.get_field(f).column) for f in ("workspace", "email_key"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql} ON CONFLICT ({key}) DO NOTHING RETURNING {qn('id')}, {qn('email_key')}",
            [v for row in rows for v in row],
        )
        ids = dict((k, i) for i, k in cursor.fetchall())
    created: dict[str, tuple[int, UUID]] = {}
    keep_ip = workspace.consent_store_ip
    memberships, records = [], []
    for entry, uid in zip(people, uuids, strict=True):
        subscriber_id = ids.get(entry.person.key)
        if subscriber_id is None:
            continue
        created[entry.person.key] = (subscriber_id, UUID(str(uid)))
        terms, stamp = entry.terms, _stamp(entry.at)
        ip = terms.ip if keep_ip else None
        user_agent = terms.user_agent[:400] if keep_ip else ""
        source = (terms.source_type, terms.source_id[:64], terms.source_label[:200], stamp, ip)
        for ml in entry.lists:
            status = terms.status_on(ml)
            confirmed = stamp if status == Status.CONFIRMED else None
            memberships.append(
                (workspace.pk, subscriber_id, ml.pk, status, terms.reason, stamp, stamp, confirmed)
            )
            records.append(
                (
                    workspace.pk,
                    subscriber_id,
                    ml.pk,
                    f"email:{ml.slug}",
                    GRANT,
                    terms.notice_id,
                    *source,
                    user_agent,
                    confirmed,
                )
            )
        if entry.tracking_notice_id is not None:
            records.append(
                (
                    workspace.pk,
                    subscriber_id,
                    None,
                    TRACKING,
                    GRANT,
                    entry.tracking_notice_id,
                    *source,
                    user_agent,
                    stamp,
                )
            )
    _insert_rows(Subscription, SUBSCRIPTION_FIELDS, memberships)
    _insert_rows(ConsentRecord, CONSENT_FIELDS, records)
    return created


plain_profile = _plain_profile  # for callers that check a profile before subscribe_new_people
