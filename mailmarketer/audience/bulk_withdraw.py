"""Withdrawing many people at once, set-based: the same rows `actions.do_unsubscribe` (all lists)
and `actions.do_add_suppression` write for one person, for a batch in a handful of statements.

Written for bounce processing (delivery/bounces/apply.py), which applies hundreds of hard
bounces and complaints in one transaction: per person, the two actions cost ~12 statements;
this costs ~7 per batch, whatever its size. The rules are the same as the two actions':
- every subscription not yet unsubscribed becomes `unsubscribed` with the given reason, and
  each gets a withdrawal consent record naming the source (IP and browser only where the
  workspace keeps them: a system source has none);
- the address is suppressed with the given reason unless it is suppressed already (any reason:
  an earlier suppression stands, as `do_add_suppression` refuses with Conflict);
- one audit row "subscriber.unsubscribed" per person whose subscriptions changed, and one
  "suppression.added" per suppression added, as the actions write.
It runs inside the caller's transaction (one atomic block: all or nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, models, transaction
from django.utils.timezone import now

from mailmarketer.accounts.actors import Actor
from mailmarketer.accounts.models import AuditEvent

from .emails import suppression_hash
from .models import ConsentRecord, Subscriber, Subscription, Suppression

Status = Subscription.Status


@dataclass(frozen=True)
class Withdrawal:
    """One person to unsubscribe from every list and suppress."""

    subscriber: Subscriber
    reason: str  # Subscription.Reason
    suppression_reason: str  # Suppression.Reason
    source_type: str  # ConsentRecord.SourceType
    source_id: str = ""
    source_label: str = ""
    note: str = ""


@dataclass
class Withdrawn:
    unsubscribed: int = 0  # subscriptions changed
    suppressed: bool = False  # a suppression added (False: the address was suppressed already)


def audit_row(actor: Actor, workspace_id, event, obj, new) -> dict:
    """An audit row as accounts.actions.audit writes it, as insert_rows takes it (the columns
    not named take their defaults)."""
    return {
        "workspace_id": workspace_id,
        "actor_user_id": actor.user.pk if actor.user is not None else None,
        "actor_token_id": actor.token.pk if actor.token is not None else None,
        "actor_label": actor.label[:200],
        "event": event,
        "object_type": obj._meta.model_name,
        "object_id": str(obj.pk),
        "object_repr": str(obj)[:200],
        "ip": actor.ip,
        "new": new,
    }


# -- inserting many rows without the ORM's per-value work ----------------------------------
# bulk_create compiles every value of every row through its field (prepare_value, as_sql): for
# a batch of 200 bounces (~1,000 rows of five models) that was most of the applier's time, and
# on SQLite it is spent holding the write lock. insert_rows writes the same rows (every concrete
# column, the same adapted values) with one plain multi-row INSERT per chunk.

_PLAIN = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BooleanField,
    models.BinaryField,
    models.ForeignKey,
)


def _adapter(field):
    """None for a value the driver takes as it is, else a function adapting it as the field's
    get_db_prep_save does (datetimes for SQLite's text, JSON, IP addresses)."""
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, _PLAIN) and not isinstance(field, models.GenericIPAddressField):
        return None
    return lambda value: field.get_db_prep_save(value, connection)


def _max_parameters() -> int:
    if connection.vendor == "sqlite":
        import sqlite3

        connection.ensure_connection()
        # The library's real limit (32,766 since SQLite 3.32), not Django's conservative 999.
        return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return 65535  # PostgreSQL's protocol limit per statement


def insert_rows(model, objects: list, *, ids: bool = False, ignore_conflicts=False) -> None:
    """INSERT `objects` of `model` (an auto-increment primary key) in as few statements as the
    driver's parameter limit allows. Each is an unsaved instance (its defaults set by the
    constructor, as for bulk_create), or a dict of column attnames (cheaper to make than an
    instance: the columns it does not name take their field's default). With `ids`, each
    instance gets its new primary key (RETURNING, in VALUES order: SQLite 3.35+ and
    PostgreSQL, which bulk_create relies on as well). With `ignore_conflicts`, a row that
    breaks a unique constraint is left out (ON CONFLICT DO NOTHING: PostgreSQL, SQLite 3.24+),
    as bulk_create(ignore_conflicts=True) does. No signals are sent, as with bulk_create."""
    if not objects:
        return
    if ids and ignore_conflicts:
        raise ValueError("a row left out has no id to give back")
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    if isinstance(objects[0], dict):
        if ids:
            raise ValueError("ids are given back to model instances only")
        objects = [_Row({**_defaults(fields, row), **row}) for row in objects]
    else:
        for field in fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                for obj in objects:
                    field.pre_save(obj, True)
    adapters = [(field.attname, _adapter(field)) for field in fields]
    quote = connection.ops.quote_name
    # The model's own table and column names, quoted; every value is a parameter.
    table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields)
    head = f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
    tail = f" RETURNING {quote(model._meta.pk.column)}" if ids else ""
    if ignore_conflicts:
        tail = " ON CONFLICT DO NOTHING"
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    chunk = max(1, _max_parameters() // len(fields))
    with connection.cursor() as cursor:
        for start in range(0, len(objects), chunk):
            part = objects[start : start + chunk]
            params = [
                value if adapt is None else adapt(value)
                for obj in part
                for name, adapt in adapters
                for value in (getattr(obj, name),)
            ]
            cursor.execute(head + ", ".join([row] * len(part)) + tail, params)
            if ids:
                for obj, (pk,) in zip(part, cursor.fetchall(), strict=True):
                    obj.pk = pk
                    obj._state.adding = False
            else:
                for obj in part:
                    if not isinstance(obj, _Row):
                        obj._state.adding = False


class _Row(dict):
    """A dict row read the way an instance is (getattr by attname)."""

    __getattr__ = dict.__getitem__


def _defaults(fields, row: dict) -> dict:
    stamp = now()
    return {
        f.attname: (
            stamp
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
            else f.get_default()
        )
        for f in fields
        if f.attname not in row
    }


def suppression_key(subscriber: Subscriber) -> tuple[int, str]:
    return subscriber.workspace_id, suppression_hash(subscriber.email)


def suppressed_already(subscribers) -> set[tuple[int, str]]:
    """The suppression_key of each of these people whose address is suppressed (one query)."""
    keys = {suppression_key(s) for s in subscribers}
    if not keys:
        return set()
    return (
        set(
            Suppression.objects.filter(
                workspace_id__in={w for w, _ in keys}, email_hash__in={h for _, h in keys}
            ).values_list("workspace_id", "email_hash")
        )
        & keys
    )


@transaction.atomic
def withdraw_many(withdrawals: list[Withdrawal], *, actor: Actor) -> list[Withdrawn]:
    """Apply each withdrawal, in order (the first of two for one person decides its reasons);
    returns what each did."""
    results = [Withdrawn() for _ in withdrawals]
    if not withdrawals:
        return results
    stamp = now()
    first: dict[int, int] = {}  # subscriber id -> index of its first withdrawal
    for i, item in enumerate(withdrawals):
        first.setdefault(item.subscriber.pk, i)

    # Subscriptions: one read (locked on PostgreSQL, as do_unsubscribe locks), one update per
    # reason, one insert of the withdrawal records.
    subscriptions = (
        Subscription.objects.filter(subscriber_id__in=list(first))
        .exclude(status=Status.UNSUBSCRIBED)
        .select_for_update(of=("self",))
        .order_by("id")
        .values_list("id", "subscriber_id", "mailing_list_id", "mailing_list__slug")
    )
    by_reason: dict[str, list[int]] = {}
    records = []
    for subscription_id, subscriber_id, list_id, list_slug in subscriptions:
        index = first[subscriber_id]
        item = withdrawals[index]
        by_reason.setdefault(item.reason, []).append(subscription_id)
        results[index].unsubscribed += 1
        records.append(
            {
                "workspace_id": item.subscriber.workspace_id,
                "subscriber_id": item.subscriber.pk,
                "purpose": f"email:{list_slug}",
                "mailing_list_id": list_id,
                "action": ConsentRecord.Action.WITHDRAW,
                "source_type": item.source_type,
                "source_id": item.source_id[:64],
                "source_label": item.source_label[:200],
                # A system source (bounce processing) has no IP or browser to keep.
                "ip": None,
                "user_agent": "",
            }
        )
    for reason, ids in by_reason.items():
        Subscription.objects.filter(pk__in=ids).update(
            status=Status.UNSUBSCRIBED,
            status_reason=reason,
            unsubscribed_at=stamp,
            updated_at=stamp,
        )
    insert_rows(ConsentRecord, records)

    # Suppressions: one read of those that exist, one insert of the new ones.
    hashes: dict[tuple[int, str], int] = {}
    for i, item in enumerate(withdrawals):
        key = (item.subscriber.workspace_id, suppression_hash(item.subscriber.email))
        hashes.setdefault(key, i)
    workspaces = {w for w, _ in hashes}
    existing = set(
        Suppression.objects.filter(
            workspace_id__in=workspaces, email_hash__in=[h for _, h in hashes]
        ).values_list("workspace_id", "email_hash")
    )
    added = [
        (
            i,
            Suppression(
                workspace_id=w,
                email_hash=h,
                reason=withdrawals[i].suppression_reason,
                note=withdrawals[i].note[:200],
                created_at=stamp,
            ),
        )
        for (w, h), i in hashes.items()
        if (w, h) not in existing
    ]
    insert_rows(Suppression, [s for _, s in added], ids=True)

    audits = []
    for i, done in enumerate(results):
        if done.unsubscribed:
            item = withdrawals[i]
            audits.append(
                audit_row(
                    actor,
                    item.subscriber.workspace_id,
                    "subscriber.unsubscribed",
                    item.subscriber,
                    {"count": done.unsubscribed, "reason": item.reason, "all": False},
                )
            )
    for i, suppression in added:
        results[i].suppressed = True
        audits.append(
            audit_row(
                actor,
                suppression.workspace_id,
                "suppression.added",
                suppression,
                {"reason": suppression.reason},
            )
        )
    insert_rows(AuditEvent, audits)
    return results
