"""Reads for the audience: list counts, finding people (keyset-paginated, so page 1,000 costs what
page 1 does), and the presentation of a person with or without their personal data."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import CharField, Count, F, Func, Q
from django.db.models.fields.json import KeyTransform, compile_json_path

from .emails import email_key, mask_email
from .models import (
    ConsentRecord,
    MailingList,
    Reconsent,
    Segment,
    Subscriber,
    Subscription,
    Suppression,
)

HIDDEN = "•••"


def lists_with_counts(workspace) -> list[MailingList]:
    """Lists with `confirmed`, `unconfirmed` and `unsubscribed` member counts, one query."""
    status = Subscription.Status
    return list(
        MailingList.objects.filter(workspace=workspace)
        .annotate(
            confirmed=Count("subscriptions", filter=Q(subscriptions__status=status.CONFIRMED)),
            unconfirmed=Count("subscriptions", filter=Q(subscriptions__status=status.UNCONFIRMED)),
            unsubscribed=Count(
                "subscriptions", filter=Q(subscriptions__status=status.UNSUBSCRIBED)
            ),
        )
        .order_by("name")
    )


def get_list(workspace, key) -> MailingList | None:
    qs = MailingList.objects.filter(workspace=workspace)
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return qs.filter(pk=int(key)).first()
    return qs.filter(slug=key).first()


def get_subscriber(workspace, key) -> Subscriber | None:
    """By uuid (what URLs and the API use) or by numeric id; always inside the workspace."""
    qs = Subscriber.objects.filter(workspace=workspace)
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return qs.filter(pk=int(key)).first()
    try:
        return qs.filter(uuid=uuid.UUID(str(key))).first()
    except ValueError:  # a malformed uuid is simply not found
        return None


def subscriber_by_email(workspace, address: str) -> Subscriber | None:
    """The workspace's subscriber with this address, whatever its case (emails.email_key).
    `address` is normalised (emails.normalise_email)."""
    return Subscriber.objects.filter(workspace=workspace, email_key=email_key(address)).first()


@dataclass
class AttributeRule:
    name: str
    op: str  # eq | contains | gt | gte | lt | lte
    value: str | int | float


@dataclass
class SubscriberFilter:
    q: str = ""  # substring of email or name
    list_id: int | None = None
    subscription_status: str = ""  # with list_id: confirmed | unconfirmed | unsubscribed
    status: str = ""  # enabled | blocklisted
    attributes: list[AttributeRule] = field(default_factory=list)
    created_from: datetime | None = None
    created_to: datetime | None = None
    segment_id: int | None = None  # the members of this segment of the workspace


ATTRIBUTE_LOOKUPS = {
    "eq": "",
    "contains": "__icontains",
    "gt": "__gt",
    "gte": "__gte",
    "lt": "__lt",
    "lte": "__lte",
}


def filter_subscribers(workspace, f: SubscriberFilter):
    qs = Subscriber.objects.filter(workspace=workspace)
    if f.q:
        qs = qs.filter(Q(email__icontains=f.q) | Q(name__icontains=f.q))
    if f.status:
        qs = qs.filter(status=f.status)
    if f.list_id:
        members = Subscription.objects.filter(mailing_list_id=f.list_id)
        if f.subscription_status:
            members = members.filter(status=f.subscription_status)
        qs = qs.filter(pk__in=members.values("subscriber_id"))
    for rule in f.attributes:
        if rule.op not in ATTRIBUTE_LOOKUPS:
            raise ValueError(f"unknown attribute comparison {rule.op!r}")
        qs = qs.filter(**{f"attributes__{rule.name}{ATTRIBUTE_LOOKUPS[rule.op]}": rule.value})
    if f.created_from:
        qs = qs.filter(created_at__gte=f.created_from)
    if f.created_to:
        qs = qs.filter(created_at__lt=f.created_to)
    if f.segment_id:
        from .segments import segment_queryset

        segment = Segment.objects.filter(workspace=workspace, pk=f.segment_id).first()
        if segment is None:  # another workspace's, or deleted: nobody
            return qs.none()
        qs = qs.filter(pk__in=segment_queryset(workspace, segment.rules).values("pk"))
    return qs


def search_subscribers(
    workspace, f: SubscriberFilter, *, before_id: int | None = None, limit: int = 50
) -> tuple[list[Subscriber], int | None]:
    """Newest first. Returns (page, cursor for the next page or None)."""
    qs = filter_subscribers(workspace, f)
    if before_id:
        qs = qs.filter(pk__lt=before_id)
    page = list(qs.order_by("-pk")[: limit + 1])
    cursor = page[limit - 1].pk if len(page) > limit else None
    return page[:limit], cursor


def subscriptions_of(subscriber) -> list[Subscription]:
    return list(
        Subscription.objects.filter(subscriber=subscriber)
        .select_related("mailing_list")
        .order_by("mailing_list__name")
    )


def consent_history(subscriber) -> list[ConsentRecord]:
    return list(
        ConsentRecord.objects.filter(subscriber=subscriber)
        .select_related("notice")
        .order_by("-at", "-id")
    )


def suppressions_of(workspace):
    return Suppression.objects.filter(workspace=workspace).order_by("-created_at", "-id")


def present_subscriber(subscriber: Subscriber, *, reveal: bool) -> dict:
    """What a staff member sees of a person: everything with `audience.view_personal_data`,
    otherwise a masked address and no name (attributes may hold personal data too, so they are
    hidden as well)."""
    return {
        "id": str(subscriber.uuid),
        "email": subscriber.email if reveal else mask_email(subscriber.email),
        "name": subscriber.name if reveal else (HIDDEN if subscriber.name else ""),
        "first_name": subscriber.first_name
        if reveal
        else (HIDDEN if subscriber.first_name else ""),
        "last_name": subscriber.last_name if reveal else (HIDDEN if subscriber.last_name else ""),
        "status": subscriber.status,
        "source": subscriber.source,
        "attributes": subscriber.attributes
        if reveal
        else {k: HIDDEN for k in subscriber.attributes},
        "created_at": subscriber.created_at,
        "updated_at": subscriber.updated_at,
        "masked": not reveal,
    }


# -- the audience pages (lists, subscribers, suppression, export) ----------------------------


def lists_of(workspace) -> list[MailingList]:
    return list(MailingList.objects.filter(workspace=workspace).order_by("name", "pk"))


def subscribers_by_uuids(workspace, uuids) -> list[Subscriber]:
    """The subscribers of this workspace among these uuids (a uuid of another workspace is
    simply not found)."""
    return list(
        Subscriber.objects.filter(workspace=workspace, uuid__in=list(uuids)).order_by("-pk")
    )


def subscriptions_by_subscriber(subscribers) -> dict[int, list[Subscription]]:
    """The subscriptions of one page of subscribers, in one query (no N+1)."""
    found: dict[int, list[Subscription]] = {s.pk: [] for s in subscribers}
    rows = (
        Subscription.objects.filter(subscriber_id__in=list(found))
        .select_related("mailing_list")
        .order_by("mailing_list__name", "pk")
    )
    for row in rows:
        found[row.subscriber_id].append(row)
    return found


def get_suppression(workspace, suppression_id: int) -> Suppression | None:
    return Suppression.objects.filter(workspace=workspace, pk=suppression_id).first()


def suppressions_page(
    workspace, *, before_id: int | None = None, limit: int = 50
) -> tuple[list[Suppression], int | None]:
    """Newest first by id (keyset, like search_subscribers). Returns (page, next cursor)."""
    qs = Suppression.objects.filter(workspace=workspace)
    if before_id:
        qs = qs.filter(pk__lt=before_id)
    page = list(qs.order_by("-pk")[: limit + 1])
    cursor = page[limit - 1].pk if len(page) > limit else None
    return page[:limit], cursor


# Which members of a list an export holds.
EXPORT_MEMBERS = {
    "active": (Subscription.Status.CONFIRMED, Subscription.Status.UNCONFIRMED),
    "confirmed": (Subscription.Status.CONFIRMED,),
    "all": tuple(Subscription.Status.values),
}

# The columns of an export row, in order (exporting.py writes them); a list's export adds the
# subscription's status and reason.
SUBSCRIBER_EXPORT_FIELDS = ("uuid", "email", "name", "status", "created_at", "attributes")


def list_members_for_export(mailing_list: MailingList, members: str):
    """The rows of a list export as tuples, in a stable order; the caller iterates with
    .iterator(chunk_size=...) so memory does not grow with the list."""
    return (
        Subscription.objects.filter(
            workspace_id=mailing_list.workspace_id,
            mailing_list=mailing_list,
            status__in=EXPORT_MEMBERS[members],
        )
        .order_by("pk")
        .values_list(
            *(f"subscriber__{name}" for name in SUBSCRIBER_EXPORT_FIELDS), "status", "status_reason"
        )
    )


def list_member_subscribers(mailing_list: MailingList, members: str):
    """The same people as list_members_for_export, as subscribers (for attribute_keys_among)."""
    return Subscriber.objects.filter(
        workspace_id=mailing_list.workspace_id,
        pk__in=Subscription.objects.filter(
            mailing_list=mailing_list, status__in=EXPORT_MEMBERS[members]
        ).values("subscriber_id"),
    )


def subscribers_for_export(subscribers):
    """Export rows of any set of subscribers (a segment's members), in a stable order."""
    return subscribers.order_by("pk").values_list(*SUBSCRIBER_EXPORT_FIELDS)


# The distinct attribute names among some subscribers, found by the database so that only the
# names come back, never the rows. The ORM cannot expand a JSON object's keys, hence one
# statement per database. {members} is the SQL Django compiled for the subscribers' ids (a
# list's members, a segment), with its own parameters: no text from a person goes into it.
_ATTRIBUTE_KEYS_SQL = {
    "postgresql": """
        SELECT DISTINCT k.key
        FROM audience_subscriber s
        CROSS JOIN LATERAL jsonb_object_keys(
            CASE WHEN jsonb_typeof(s.attributes) = 'object' THEN s.attributes
                 ELSE '{{}}'::jsonb END
        ) AS k(key)
        WHERE s.id IN ({members})
        ORDER BY k.key
        LIMIT %s
    """,
    "sqlite": """
        SELECT DISTINCT j.key
        FROM audience_subscriber s,
             json_each(CASE WHEN json_type(s.attributes) = 'object' THEN s.attributes
                            ELSE '{{}}' END) AS j
        WHERE s.id IN ({members})
        ORDER BY j.key
        LIMIT %s
    """,
}


def attribute_keys_among(subscribers, limit: int) -> list[str]:
    """Up to `limit` attribute names used by these subscribers (a queryset), sorted."""
    members, params = subscribers.order_by().values("pk").query.sql_with_params()
    sql = _ATTRIBUTE_KEYS_SQL[connection.vendor].format(members=members)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [row[0] for row in cursor.fetchall()]


# -- one list with its counts; attribute rules written as text (the API's query string) ------


def with_status_counts(lists):
    """Annotates `confirmed`, `unconfirmed` and `unsubscribed` member counts (one query)."""
    status = Subscription.Status
    return lists.annotate(
        confirmed=Count("subscriptions", filter=Q(subscriptions__status=status.CONFIRMED)),
        unconfirmed=Count("subscriptions", filter=Q(subscriptions__status=status.UNCONFIRMED)),
        unsubscribed=Count("subscriptions", filter=Q(subscriptions__status=status.UNSUBSCRIBED)),
    )


def get_list_with_counts(workspace, key) -> MailingList | None:
    """By numeric id or slug, inside the workspace, with its counts by status."""
    qs = with_status_counts(MailingList.objects.filter(workspace=workspace))
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return qs.filter(pk=int(key)).first()
    return qs.filter(slug=key).first()


class JsonKeyType(Func):
    """The JSON type of one key of a JSON column, in the database's own words: PostgreSQL's
    jsonb_typeof ('number', 'string', 'boolean', ...) or SQLite's json_type ('integer', 'real',
    'text', 'true', ...).

    Why: comparing a JSON value across types does not fail, it orders by type, and the two
    databases order differently (PostgreSQL: string < number < boolean; SQLite: number < text).
    Without this guard `age >= 30` would count a string age on one database and not the other.
    """

    output_field = CharField()

    def __init__(self, column: str, key: str):
        super().__init__(F(column))
        self.key = key

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"jsonb_typeof({column} -> %s)", [*params, self.key]

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"json_type({column}, %s)", [*params, compile_json_path([self.key])]


NUMBER_TYPES = ("number", "integer", "real")  # PostgreSQL's name, then SQLite's two
TEXT_TYPES = ("string", "text")
TEXT_OPS = ("eq", "contains", "gt", "gte", "lt", "lte")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


@dataclass
class AttributeText:
    """An attribute rule whose value arrived as text, e.g. `attr.age__gte=30`."""

    name: str
    op: str  # one of TEXT_OPS
    text: str


def number_in(text: str) -> int | float | None:
    """The number the text spells in canonical form ('30', '-2.5'), else None: '030' and '1e3'
    stay text, so a zip code keeps its leading zero."""
    if not _NUMBER.fullmatch(text):
        return None
    return float(text) if "." in text else int(text)


def with_attribute_text(subscribers, rules: list[AttributeText]):
    """Filters by rules typed from text. `eq` matches the attribute stored as that text, or as
    the number or boolean it spells (a query string carries no types; an import may have
    stored '30' where the API stored 30). `contains` looks inside text values. Ranges compare
    numbers when the text is a number, text otherwise (ISO dates order correctly as text),
    and only values of that type."""
    for i, rule in enumerate(rules):
        if rule.op not in TEXT_OPS:
            raise ValueError(f"unknown attribute comparison {rule.op!r}")
        key, kind = f"_attr{i}", f"_attr{i}_type"
        subscribers = subscribers.alias(
            **{
                key: KeyTransform(rule.name, "attributes"),
                kind: JsonKeyType("attributes", rule.name),
            }
        )
        number = number_in(rule.text)
        if rule.op == "eq":
            match = Q(**{key: rule.text})
            if number is not None:
                match |= Q(**{key: number})
            if rule.text in ("true", "false"):
                match |= Q(**{key: rule.text == "true"})
        elif rule.op == "contains":
            match = Q(**{f"{kind}__in": TEXT_TYPES, f"{key}__icontains": rule.text})
        elif number is not None:
            match = Q(**{f"{kind}__in": NUMBER_TYPES, f"{key}__{rule.op}": number})
        else:
            match = Q(**{f"{kind}__in": TEXT_TYPES, f"{key}__{rule.op}": rule.text})
        subscribers = subscribers.filter(match)
    return subscribers


def search_subscribers_by_text(
    workspace,
    f: SubscriberFilter,
    rules: list[AttributeText],
    *,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[Subscriber], int | None]:
    """search_subscribers, with attribute rules typed from text. Newest first."""
    qs = with_attribute_text(filter_subscribers(workspace, f), rules)
    if before_id:
        qs = qs.filter(pk__lt=before_id)
    page = list(qs.order_by("-pk")[: limit + 1])
    cursor = page[limit - 1].pk if len(page) > limit else None
    return page[:limit], cursor


def reconsent_hashes(workspace_id: int, campaign_id: int) -> set[str]:
    """The suppressed addresses (as hashes) that this transactional message asks to sign up
    again (models.Reconsent): the engine sends it to them despite their erasure."""
    return set(
        Reconsent.objects.filter(
            workspace_id=workspace_id, campaign_id=campaign_id, status=Reconsent.Status.PENDING
        ).values_list("email_hash", flat=True)
    )


def latest_tracking_record(workspace, subscriber) -> ConsentRecord | None:
    """The person's newest activity-tracking consent record (purpose "tracking"), or None."""
    return (
        ConsentRecord.objects.filter(
            workspace_id=workspace.pk, subscriber_id=subscriber.pk, purpose="tracking"
        )
        .order_by("-at", "-pk")
        .first()
    )


def has_tracking_consent(workspace, subscriber) -> bool:
    """Whether this person's activity may be tracked as theirs (identified tracking, DESIGN.md
    section 5): their newest tracking record is a confirmation, or a grant that needed none
    (given where no confirmation mail was due). A grant waiting on its sign-up's confirmation,
    a withdrawal, or no record at all: no. Someone of another workspace: no."""
    if subscriber is None or subscriber.workspace_id != workspace.pk:
        return False
    latest = latest_tracking_record(workspace, subscriber)
    if latest is None:
        return False
    if latest.action == ConsentRecord.Action.CONFIRM:
        return True
    return latest.action == ConsentRecord.Action.GRANT and latest.confirmed_at is not None
