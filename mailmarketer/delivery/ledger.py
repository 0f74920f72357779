"""The ledger's state changes: claiming rows with a lease, returning expired leases, and
recording what the relay said. Nothing here talks to a relay.

Claiming (why it is written this way): one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
LOCKED) RETURNING` (CLAIM_SQL; a batch's first claim chooses its rows, or a suspect row, in
`WITH ... AS MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED)`, FIRST_CLAIM_SQL); on
PostgreSQL, SKIP LOCKED lets any number of workers on any number of hosts take disjoint batches
without waiting for each other; on SQLite there is no lock clause, but every write transaction
begins IMMEDIATE (settings.py), holding the database's single write lock from BEGIN, so the
statement is atomic there too. Either way a row is `sending` for
exactly one worker until its lease expires.

Recording: a row becomes `sent` only by its lease owner, right after the relay accepted it. A
worker whose lease expired meanwhile (it was presumed dead and the row was requeued) still
records `sent` — the relay did accept it, and the truth beats the lease — so such a row can be
sent twice, which is the "duplicates only for messages in flight" half of the guarantee.

Leases are short (DELIVERY_LEASE_S, 10 s by default) because live workers renew theirs while
they work (`renew`, called by the engine's heartbeat): only a worker that stopped renewing (killed,
hung) loses its rows, and they are sending again within about a lease.

Poison rows: a row whose lease expired DELIVERY_MAX_LEASE_EXPIRIES times (each time, the worker
holding it died) becomes `dead` with its last reply kept, instead of killing workers forever.
Rows taken back keep their place in the queue (their next attempt time), so they are the next to
be claimed; a row that was in flight at two deaths is then claimed alone, so a message that
crashes its worker takes only itself down, not the 199 others of its batch.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat, Left
from django.utils.timezone import now

from .models import Delivery

Status = Delivery.Status

# Retry a temporary failure after 1, 5, 15, 30, 60 minutes, then every 2 hours until the deadline.
BACKOFF_S = (60, 300, 900, 1800, 3600)
BACKOFF_LAST_S = 7200


def backoff(attempts: int) -> timedelta:
    index = max(0, attempts - 1)
    return timedelta(seconds=BACKOFF_S[index] if index < len(BACKOFF_S) else BACKOFF_LAST_S)


@dataclass(frozen=True)
class Claimed:
    id: int
    subscriber_id: int | None
    attempts: int
    created_at: object
    # (next_attempt_at as the database returned it, id): the row's place in the claim's order,
    # for the next claim to start after (claim's `after`).
    position: tuple = ()


# Claiming in one statement: the due rows are chosen (and, on PostgreSQL, locked with SKIP LOCKED
# so that other workers take others), leased and returned by one UPDATE ... RETURNING, instead of
# a select, an update and a select of the same 200 ids (each id a parameter Django quoted).
# SQLite (3.35+) has RETURNING too; its IMMEDIATE write transactions make the statement atomic.
CLAIM_SQL = (
    "UPDATE delivery_delivery SET status = 'sending', lease_owner = %s, lease_expires_at = %s,"
    " attempts = attempts + 1"
    " WHERE id IN (SELECT id FROM delivery_delivery"
    " WHERE campaign_id = %s AND status = 'queued' AND next_attempt_at <= %s{where}"
    " ORDER BY next_attempt_at, id LIMIT %s{lock})"
    " RETURNING id, subscriber_id, attempts, created_at, next_attempt_at"
)
# Where the claim starts: after the place of the worker's last claim (its `after`). The claim
# index keeps an entry for every row ever queued until VACUUM removes the dead ones (a row
# leaves `queued` by an update, which leaves its old entry behind), and a claim from the start
# walked them all: 3,179 index pages a claim at 600,000 rows sent (3.4 ms, 25-32 us/msg of
# PostgreSQL's CPU by the end of a million; ~4 at 20,000). Every row before that place was
# claimed, by this worker or another, or is one that came back behind it (a dead worker's,
# a paused campaign's): a claim that finds fewer rows than it asked for after its place looks
# again from the start, so those are claimed before the campaign can finish, and the reclaim
# that brings a dead worker's rows back makes its worker start from the start (engine).
AFTER = " AND (next_attempt_at, id) > (%s, %s)"


# A batch's first claim: a row that was in flight at two deaths of its worker (a short index
# range of the delivery_suspect partial index, empty unless that happened) alone, or else the
# batch; one statement, where the look for a suspect row was one of its own for every batch
# (~200 us of PostgreSQL's CPU and ~125 of the worker's, send14c). The choices are MATERIALIZED
# so that each runs once, and the batch's only when no suspect row was found.
FIRST_CLAIM_SQL = (
    "WITH suspect AS MATERIALIZED (SELECT id FROM delivery_delivery"
    " WHERE campaign_id = %s AND status = 'queued' AND next_attempt_at <= %s"
    " AND lease_expiries >= 2 ORDER BY next_attempt_at, id LIMIT 1{lock}),"
    " chosen AS MATERIALIZED (SELECT id FROM delivery_delivery"
    " WHERE campaign_id = %s AND status = 'queued' AND next_attempt_at <= %s{where}"
    " AND NOT EXISTS (SELECT 1 FROM suspect) ORDER BY next_attempt_at, id LIMIT %s{lock})"
    " UPDATE delivery_delivery SET status = 'sending', lease_owner = %s, lease_expires_at = %s,"
    " attempts = attempts + 1"
    " WHERE id IN (SELECT id FROM suspect UNION ALL SELECT id FROM chosen)"
    " RETURNING id, subscriber_id, attempts, created_at, next_attempt_at, lease_expiries"
)


def _claim_sql(connection, suspect: bool = False, after: bool = False) -> str:
    lock = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    where = AFTER if after else ""
    if suspect:
        return FIRST_CLAIM_SQL.format(where=where, lock=lock)
    return CLAIM_SQL.format(where=where, lock=lock)


def iso_timestamps(cursor) -> None:
    """Have `cursor` (a Django cursor) load PostgreSQL's timestamps with time zone by
    datetime.fromisoformat (~0.3 us a value) rather than by psycopg's general loader in pure
    Python under Django's (~3.7 us: a claim's two a row were ~7 us a message of the worker's
    CPU, send14c). Output it cannot read (another DateStyle, infinity) goes to the general one."""
    if cursor.db.vendor != "postgresql":
        return
    raw = cursor.cursor
    general = raw.connection.adapters.get_loader(_timestamptz_oid(), 0)
    raw.adapters.register_loader("timestamptz", _iso_loader(general))


_ISO_LOADERS: dict = {}


def _timestamptz_oid() -> int:
    from psycopg.postgres import types

    return types["timestamptz"].oid


def _iso_loader(general):
    loader = _ISO_LOADERS.get(general)
    if loader is None:
        from psycopg.adapt import Loader

        class IsoTimestamptzLoader(Loader):
            def __init__(self, oid, context=None):
                super().__init__(oid, context)
                self._general = general(oid, context)

            def load(self, data):
                try:
                    # Always aware: PostgreSQL writes the offset of every timestamptz.
                    return datetime.fromisoformat(bytes(data).decode())
                except ValueError:
                    return self._general.load(data)

        loader = _ISO_LOADERS[general] = IsoTimestamptzLoader
    return loader


def _aware(value):
    # SQLite hands back the stored text (UTC); PostgreSQL an aware datetime.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def in_values(connection, column: str, values, sql_type: str = "bigint") -> tuple[str, list]:
    """`column` is one of `values`, as (sql, params) with ONE parameter whatever their number:
    `= ANY(array)` on PostgreSQL (index probes, where `IN (SELECT unnest(...))` got a hash join
    over every row), `IN (SELECT value FROM json_each(...))` on SQLite. A list of 200 ids as
    200 placeholders made a statement of a few kilobytes that psycopg parsed again on every call
    (it does not cache long ones) and that Django's lookups built value by value: ~20 us a
    message of a worker's CPU over a batch's statements (cProfile, send13c)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::{sql_type}[])", [pg_array(values)]
    sql = f"{column} IN (SELECT value FROM json_each(%s))"  # noqa: S608 (a column, no values)
    return sql, [json.dumps(list(values))]


def pg_array(values) -> str:
    """`values` (ints, strings, datetimes or None) as the text of a PostgreSQL array, for a
    parameter cast to the array's type (`%s::bigint[]`). psycopg dumps a list element by element
    in Python (~2 us an element for strings, ~0.7 for ints): the three columns of a part of 50
    records cost ~300 us of the worker's CPU a statement, a batch's 200 suppression hashes ~420;
    this text, quoted once as one string, ~70 (send14c, in-process timing)."""
    values = list(values)
    kinds = set(map(type, values))
    if kinds <= {int}:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds == {str}:
        # The usual case (replies, message ids, hashes): nothing to escape, joined at once.
        whole = "".join(values)
        if '"' not in whole and "\\" not in whole:
            return '{"' + '","'.join(values) + '"}'
    return "{" + ",".join(map(_array_element, values)) + "}"


def _array_element(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise TypeError("pg_array: a bool is not an element here")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        value = value.isoformat()
    elif not isinstance(value, str):
        raise TypeError(f"pg_array: cannot write a {type(value).__name__} as an array element")
    # Double quotes around every element, with its backslashes and double quotes escaped: the
    # array's own syntax (its commas, braces, spaces, the word NULL) then reads as text.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_transaction(connection, together: bool = False):
    """The transaction for a write whose statements each stand alone (or, `together`, must all
    happen or none). On PostgreSQL each such statement is a transaction of its own: an explicit
    one would add a BEGIN and a COMMIT, two more round trips to the database for each of a
    batch's claims and records. SQLite's writes keep theirs: an IMMEDIATE transaction takes the
    write lock before the statement reads (settings.py), where a statement on its own could
    read a snapshot another writer has moved past and fail."""
    if not together and connection.vendor == "postgresql":
        return nullcontext()
    return transaction.atomic()


# On PostgreSQL a claim and the record of a part of a batch (not its last) commit without
# waiting for their WAL to reach the disk: `synchronous_commit` off for that one transaction,
# set in the same round trip as the statement. Every batch ends with a record that does wait
# (engine._deliver's), and since the WAL is written in order, that wait makes the batch's earlier
# commits durable too. What it changes: a crash of PostgreSQL or of its host (not of a worker,
# whose commits the server holds and writes anyway) can lose the claims and part records of the
# batches in flight, whose rows are then sent again: at most one batch a worker, where a
# commit that waited each time left at most one part. What it gives: four of a batch's five
# waits for a WAL flush are gone; the worker waited for them with nothing else to do (send_bench,
# PostgreSQL, 2 workers, 100,000 recipients: 0.31x the limit with every commit waiting, 0.36x
# with none waiting, the same CPU a message).
RELAXED_COMMIT = "SET LOCAL synchronous_commit TO off; "


def _relaxed(connection, sql: str) -> str:
    """`sql` committed without waiting for the disk on PostgreSQL (see RELAXED_COMMIT); its
    results are then the second result set of the cursor (cursor.nextset())."""
    return RELAXED_COMMIT + sql if connection.vendor == "postgresql" else sql


def _fetch_relaxed(connection, cursor) -> list:
    if connection.vendor == "postgresql":
        cursor.nextset()
    return cursor.fetchall()


def claim(
    campaign_id: int, owner: str, limit: int | None = None, after: tuple | None = None
) -> list[Claimed]:
    """Take up to `limit` due rows of one campaign for `owner`, with a lease; in the claim's
    order, those after `after` (a Claimed.position) first, then any from the start."""
    from django.db import connection

    limit = limit or settings.DELIVERY_BATCH
    stamp = now()
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        owner[:64],
        adapt(stamp + timedelta(seconds=settings.DELIVERY_LEASE_S)),
        campaign_id,
        adapt(stamp),
    ]
    # The claims need not be one transaction: each UPDATE takes its rows atomically.
    with write_transaction(connection), connection.cursor() as cursor:
        iso_timestamps(cursor)
        # A row that was in flight at two deaths of its worker goes alone, whatever the place:
        # if it is what kills workers, it takes only itself down from then on. Once is no sign:
        # a killed worker leaves a whole batch of bystanders.
        lease, chosen = params[:2], params[2:]
        cursor.execute(
            _relaxed(connection, _claim_sql(connection, suspect=True, after=bool(after))),
            [*chosen, *chosen, *(after or ()), limit, *lease],
        )
        first = _fetch_relaxed(connection, cursor)
        rows = [row[:5] for row in first]
        suspect = len(first) == 1 and first[0][5] >= 2
        if after and not suspect and len(rows) < limit:
            cursor.execute(
                _relaxed(connection, _claim_sql(connection)), [*params, limit - len(rows)]
            )
            rows += _fetch_relaxed(connection, cursor)
    return sorted(
        (
            Claimed(row_id, subscriber_id, attempts, _aware(created), (due, row_id))
            for row_id, subscriber_id, attempts, created, due in rows
        ),
        key=lambda c: c.id,
    )


def renew(ids: list[int], owner: str) -> int:
    """Extend the lease of rows `owner` still holds (the heartbeat of a worker at work)."""
    if not ids:
        return 0
    return Delivery.objects.filter(id__in=ids, status=Status.SENDING, lease_owner=owner).update(
        lease_expires_at=now() + timedelta(seconds=settings.DELIVERY_LEASE_S)
    )


# Whether any lease has expired, by the in-flight index in its order: an index scan marks the
# entries of rows long recorded as dead as it passes them (a bitmap scan, which the updates
# below got, never does), so that later looks skip them without reading the table. With `since`,
# only leases that expired since then: the index keeps an entry for every row ever claimed
# until VACUUM removes the dead ones, and each look walked them all, reading the table for each
# (15,266 table pages a look at 600,000 rows sent: 31-68 us/msg of PostgreSQL's CPU by the end
# of a million, ~0.3 at 20,000).
EXPIRED_SQL = (
    "SELECT id FROM delivery_delivery WHERE status = 'sending' AND lease_expires_at < %s"
    "{since} ORDER BY lease_expires_at LIMIT 1"
)


def reclaim_expired(campaign_id: int | None = None, since=None) -> int:
    """Return rows whose lease expired (their worker died) to the queue, giving back the attempt
    the dead worker counted, since nobody knows whether it reached the relay; a row whose lease
    expired DELIVERY_MAX_LEASE_EXPIRIES times becomes dead instead. Returns how many rows moved.

    `since`: look only for leases that expired at or after it (the caller looked for the older
    ones before; engine.reclaim_one)."""
    from django.db import connection

    stamp = now()
    adapt = connection.ops.adapt_datetimefield_value
    if campaign_id is None:
        with connection.cursor() as cursor:
            cursor.execute(
                EXPIRED_SQL.format(since=" AND lease_expires_at >= %s" if since else ""),
                [adapt(stamp), *([adapt(since)] if since else [])],
            )
            if cursor.fetchone() is None:
                return 0
    rows = Delivery.objects.filter(status=Status.SENDING, lease_expires_at__lt=stamp)
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    limit = settings.DELIVERY_MAX_LEASE_EXPIRIES
    with transaction.atomic():
        dead = rows.filter(lease_expiries__gte=limit - 1).update(
            status=Status.DEAD,
            lease_owner="",
            lease_expires_at=None,
            lease_expiries=F("lease_expiries") + 1,
            smtp_reply=Left(
                Concat(
                    Value(f"dead: its worker stopped {limit} times while sending it; last: "),
                    F("smtp_reply"),
                ),
                500,
            ),
        )
        # next_attempt_at stays: the rows keep their place at the head of the queue.
        requeued = rows.filter(lease_expiries__lt=limit - 1).update(
            status=Status.QUEUED,
            lease_owner="",
            lease_expires_at=None,
            lease_expiries=F("lease_expiries") + 1,
            attempts=F("attempts") - 1,
        )
    return dead + requeued


def release(ids: list[int], owner: str) -> int:
    """Give claimed rows back unsent (a graceful stop, a pause, a broken relay)."""
    if not ids:
        return 0
    return Delivery.objects.filter(id__in=ids, status=Status.SENDING, lease_owner=owner).update(
        status=Status.QUEUED,
        lease_owner="",
        lease_expires_at=None,
        attempts=F("attempts") - 1,
    )


@dataclass
class Outcome:
    """What happened to one claimed row."""

    id: int
    status: str  # a Delivery.Status
    reply: str = ""
    message_id: str = ""
    server_id: int | None = None
    retry_at: object = None  # for a requeue
    skip_reason: str = ""  # a Delivery.SkipReason, for a skipped row


# Recording a batch: one UPDATE ... FROM (VALUES ...) per kind of outcome, because the rows differ
# in their replies, message ids and retry times. Django's bulk_update builds a CASE WHEN per row
# and field, which profiled at 0.8 s per 200-row batch (63% of a worker's time); this statement
# runs in milliseconds. UPDATE ... FROM is PostgreSQL's and SQLite's (3.33+) alike, and VALUES
# columns are named column1, column2, ... in both. A row skipped because its person was not
# found (SkipReason.ERASED) forgets the person's id, which a chunk planned while the person was
# being deleted can keep (models.Delivery.subscriber).
RECORD_SQL = {
    "sent": (
        "UPDATE delivery_delivery SET status = 'sent', smtp_reply = v.column2,"
        " message_id = v.column3, sent_at = %s, server_id = %s, lease_owner = '',"
        " lease_expires_at = NULL"
        " FROM (VALUES {values}) AS v WHERE delivery_delivery.id = CAST(v.column1 AS BIGINT)"
    ),
    "queued": (
        "UPDATE delivery_delivery SET status = 'queued', smtp_reply = v.column2,"
        " next_attempt_at = v.column3, lease_owner = '', lease_expires_at = NULL"
        " FROM (VALUES {values}) AS v WHERE delivery_delivery.id = CAST(v.column1 AS BIGINT)"
    ),
    "final": (
        "UPDATE delivery_delivery SET status = v.column3, smtp_reply = v.column2,"
        " skip_reason = v.column4, lease_owner = '', lease_expires_at = NULL,"
        " subscriber_id = CASE WHEN v.column4 = 'erased' THEN NULL"
        " ELSE delivery_delivery.subscriber_id END"
        " FROM (VALUES {values}) AS v WHERE delivery_delivery.id = CAST(v.column1 AS BIGINT)"
    ),
}
# On PostgreSQL the same statements take each column as one array (unnest(...) AS v): a
# statement of constant text with a handful of parameters, where VALUES made one of 150
# placeholders per part of 50 that psycopg parsed again on every call (send13c).
RECORD_SQL_PG = {
    "sent": (
        "UPDATE delivery_delivery SET status = 'sent', smtp_reply = v.reply,"
        " message_id = v.message_id, sent_at = %s, server_id = %s, lease_owner = '',"
        " lease_expires_at = NULL"
        " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, reply, message_id)"
        " WHERE delivery_delivery.id = v.id"
    ),
    "queued": (
        "UPDATE delivery_delivery SET status = 'queued', smtp_reply = v.reply,"
        " next_attempt_at = v.retry_at, lease_owner = '', lease_expires_at = NULL"
        " FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS v(id, reply, retry_at)"
        " WHERE delivery_delivery.id = v.id"
    ),
    "final": (
        "UPDATE delivery_delivery SET status = v.status, smtp_reply = v.reply,"
        " skip_reason = v.skip_reason, lease_owner = '', lease_expires_at = NULL,"
        " subscriber_id = CASE WHEN v.skip_reason = 'erased' THEN NULL"
        " ELSE delivery_delivery.subscriber_id END"
        " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])"
        " AS v(id, reply, status, skip_reason)"
        " WHERE delivery_delivery.id = v.id"
    ),
}
RECORD_CHUNK = 1000


def _run_record(cursor, kind: str, rows: list[tuple], leading: list, durable: bool = True) -> None:
    if cursor.db.vendor == "postgresql":
        columns = [pg_array(column) for column in zip(*rows, strict=True)]
        sql = RECORD_SQL_PG[kind] if durable else _relaxed(cursor.db, RECORD_SQL_PG[kind])
        cursor.execute(sql, [*leading, *columns])
        return
    for start in range(0, len(rows), RECORD_CHUNK):
        chunk = rows[start : start + RECORD_CHUNK]
        row = "(" + ", ".join(["%s"] * len(chunk[0])) + ")"
        values = ", ".join([row] * len(chunk))
        params = [*leading, *(value for row in chunk for value in row)]
        cursor.execute(RECORD_SQL[kind].format(values=values), params)


def record(outcomes: list[Outcome], durable: bool = True) -> None:
    """Write a batch of outcomes in one transaction, one statement per kind of outcome.
    `durable=False`: a part's record, followed by the batch's own (see RELAXED_COMMIT): on
    PostgreSQL its commit does not wait for the disk. Only for outcomes of one kind (a
    transaction of several kinds waits as before)."""
    if not outcomes:
        return
    from django.db import connection

    adapt = connection.ops.adapt_datetimefield_value
    stamp = now()
    sent, queued, final = [], [], []
    server_id = None
    for outcome in outcomes:
        reply = outcome.reply[:500]
        if outcome.status == Status.SENT:
            sent.append((outcome.id, reply, outcome.message_id[:200]))
            server_id = outcome.server_id
        elif outcome.status == Status.QUEUED:
            queued.append((outcome.id, reply, adapt(outcome.retry_at or stamp)))
        else:
            final.append((outcome.id, reply, str(outcome.status), str(outcome.skip_reason)))
    kinds = [
        (k, rows) for k, rows in (("sent", sent), ("queued", queued), ("final", final)) if rows
    ]
    with write_transaction(connection, together=len(kinds) > 1), connection.cursor() as cursor:
        relaxed = not durable and len(kinds) == 1
        for kind, rows in kinds:
            leading = [adapt(stamp), server_id] if kind == "sent" else []
            _run_record(cursor, kind, rows, leading, durable=not relaxed)
