"""Planning: turning a launched campaign's audience into ledger rows, a chunk at a time.

Launch (campaign_actions.do_start_campaign) records `audience_max_id`, the highest subscriber id
at that moment; planning walks the audience in id order up to it, `DELIVERY_PLAN_CHUNK` ids per
step, so the first messages go out within a second of launch whatever the audience's size, and
people who join after launch are not included.

Each step inserts its rows with ON CONFLICT DO NOTHING (the unique (campaign, subscriber) key), so
a person on several of the campaign's lists gets one row, and two workers planning the same
campaign at once cannot make duplicates. The cursor moves with a compare-and-set, so it only ever
goes forward.

Who is in the audience: enabled subscribers with a subscription to one of the campaign's lists
that is confirmed, or unconfirmed on a single opt-in list (double opt-in lists mail only confirmed
members), made before launch; minus anyone subscribed (confirmed or unconfirmed) to an excluded
list; narrowed to the campaign's segment when it has one, minus anyone matching an excluded
segment. Suppression and unsubscription are checked again at send time (engine.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils.timezone import now

from mailmarketer.audience.models import MailingList, Subscriber, Subscription
from mailmarketer.audience.segments import segment_queryset
from mailmarketer.campaigns.models import Campaign

ACTIVE = (Subscription.Status.CONFIRMED, Subscription.Status.UNCONFIRMED)


def mailable_subscriptions(campaign: Campaign, lists: list[tuple[int, str]] | None = None):
    """Subscriptions that put a person in the campaign's audience.

    The list ids are read first and passed as values (a campaign has a handful of lists);
    `lists`, (id, optin) pairs, when the caller has read them already (the engine, per batch)."""
    if lists is None:
        lists = list(campaign.lists.values_list("pk", "optin"))
    single = [pk for pk, optin in lists if optin == MailingList.OptIn.SINGLE]
    return Subscription.objects.filter(
        workspace_id=campaign.workspace_id,
        mailing_list_id__in=[pk for pk, _ in lists],
    ).filter(
        Q(status=Subscription.Status.CONFIRMED)
        | Q(status=Subscription.Status.UNCONFIRMED, mailing_list_id__in=single)
    )


def excluded_subscriptions(campaign: Campaign, list_ids: list[int] | None = None):
    """Subscriptions that take a person out of the audience (`list_ids`: the excluded lists,
    when the caller has read them already)."""
    if list_ids is None:
        list_ids = list(campaign.exclude_lists.values_list("pk", flat=True))
    return Subscription.objects.filter(
        workspace_id=campaign.workspace_id,
        mailing_list_id__in=list_ids,
        status__in=ACTIVE,
    )


def audience(campaign: Campaign, ids: tuple[int, int] | None = None):
    """The campaign's audience as a queryset of subscribers (without the launch bounds).

    `ids`, (after, upper): only the people with after < id <= upper (a planning chunk's range),
    and every subquery narrowed to that range too. The people's range alone left PostgreSQL to
    read the subscriptions from the first subscriber up to the chunk (a merge join from the
    start of the index) or all of them (a hash join): a chunk at 500,000 of 1,000,000 read
    505,000 subscriptions for its 5,000 (124 ms, twice a chunk), so planning cost grew with the
    campaign; with the subscriptions narrowed too, 3-5 ms at any place (send13f)."""
    members = mailable_subscriptions(campaign)
    excluded = excluded_subscriptions(campaign)
    if campaign.started_at:
        members = members.filter(created_at__lte=campaign.started_at)
    people = Subscriber.objects.filter(
        workspace_id=campaign.workspace_id, status=Subscriber.Status.ENABLED
    )
    if ids is not None:
        after, upper = ids
        people = people.filter(pk__gt=after, pk__lte=upper)
        members = members.filter(subscriber_id__gt=after, subscriber_id__lte=upper)
        excluded = excluded.filter(subscriber_id__gt=after, subscriber_id__lte=upper)
    people = people.filter(pk__in=members.values("subscriber_id")).exclude(
        pk__in=excluded.values("subscriber_id")
    )
    workspace = campaign.workspace

    def segment(rules):
        matching = segment_queryset(workspace, rules)
        if ids is not None:
            matching = matching.filter(pk__gt=ids[0], pk__lte=ids[1])
        return matching.values("pk")

    if campaign.segment_id:
        people = people.filter(pk__in=segment(campaign.segment.rules))
    for excluded_segment in campaign.exclude_segments.all():
        people = people.exclude(pk__in=segment(excluded_segment.rules))
    return people


# One chunk is planned inside the database: the audience query's ids go straight into the ledger,
# with no Python object per person (bulk_create of 5,000 rows profiled at ~0.6 s on SQLite; this
# is a single statement). ON CONFLICT DO NOTHING keeps one row per (campaign, subscriber); the
# "WHERE true" is SQLite's price for parsing an upsert after a SELECT, harmless on PostgreSQL.
_INSERT_CHUNK = (
    "INSERT INTO delivery_delivery (workspace_id, campaign_id, subscriber_id, status, attempts,"
    " next_attempt_at, lease_owner, smtp_reply, message_id, created_at)"
    " SELECT %s, %s, chunk.id, 'queued', 0, %s, '', '', '', %s FROM "
)
_KEEP_PLANNED = " ON CONFLICT (campaign_id, subscriber_id) DO NOTHING"
PLAN_SQL = _INSERT_CHUNK + "({audience}) AS chunk WHERE true" + _KEEP_PLANNED
CHUNK_BOUNDS_SQL = "SELECT COUNT(*), MAX(chunk.id) FROM ({audience}) AS chunk"
# On PostgreSQL the chunk's ids are read once, for the insert and for the cursor's next place,
# in one statement (a data-modifying WITH): the two statements above run the audience query
# twice (send13f). SQLite has no INSERT inside WITH.
_WITH_CHUNK = "WITH chunk AS MATERIALIZED ({audience}), planned AS ("
PLAN_ONCE_SQL_PG = (
    _WITH_CHUNK  # noqa: S608 (fixed text, no values)
    + _INSERT_CHUNK
    + "chunk"
    + _KEEP_PLANNED
    + ") SELECT COUNT(*), MAX(chunk.id) FROM chunk"
)


def plan_chunk(campaign: Campaign, limit: int | None = None) -> int:
    """Plan the next chunk; returns how many ids it covered (0 when planning is complete).

    The campaign's row is locked while its chunk is planned, and the cursor read under the
    lock: two workers whose planned rows ran out at the same moment plan one chunk each, one
    after the other, instead of both running the same chunk's query and inserts (the second's
    all conflicts)."""
    from django.db import connection

    limit = limit or settings.DELIVERY_PLAN_CHUNK
    if campaign.planned_up_to == 0 and connection.vendor == "postgresql":
        # Fresh statistics before the first chunk: right after an import PostgreSQL has none
        # for the new rows, guesses "1 row" everywhere and picks nested loops that took 0.8-3 s
        # for 5,000 people (5 ms once analysed). ANALYZE samples, so it is quick at any size.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE audience_subscriber, audience_subscription")
    stamp = connection.ops.adapt_datetimefield_value(now())
    with transaction.atomic():
        cursor_row = (
            Campaign.objects.select_for_update(no_key=True)
            .filter(pk=campaign.pk)
            .values_list("planned_up_to", "planning_done")
            .first()
        )
        if cursor_row is None or cursor_row[1]:
            campaign.planning_done = True
            return 0
        after = cursor_row[0]
        upper = campaign.audience_max_id or 0
        chunk = audience(campaign, (after, upper)).order_by("pk").values("id")[:limit]
        audience_sql, audience_params = chunk.query.sql_with_params()
        plan_params = [campaign.workspace_id, campaign.pk, stamp, stamp]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    PLAN_ONCE_SQL_PG.format(audience=audience_sql),
                    [*audience_params, *plan_params],
                )
                count, last = cursor.fetchone()
            else:
                cursor.execute(CHUNK_BOUNDS_SQL.format(audience=audience_sql), audience_params)
                count, last = cursor.fetchone()
                if count:
                    cursor.execute(
                        PLAN_SQL.format(audience=audience_sql), [*plan_params, *audience_params]
                    )
        done = count < limit
        Campaign.objects.filter(pk=campaign.pk, planned_up_to=after).update(
            planned_up_to=last or after, planning_done=done
        )
    campaign.planned_up_to = last or after
    campaign.planning_done = done
    return count


def plan_one() -> bool:
    """Worker duty: one planning step of the oldest running campaign still being planned."""
    campaign = (
        Campaign.objects.filter(status=Campaign.Status.RUNNING, planning_done=False)
        .order_by("started_at", "pk")
        .first()
    )
    if campaign is None:
        return False
    plan_chunk(campaign)
    return True
