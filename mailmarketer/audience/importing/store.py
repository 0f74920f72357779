"""The bulk writes of the import's hot path, below the ORM on purpose.

Why not bulk_create: building a model instance and preparing each of its fields costs some
20 µs a row, which at a million rows is most of the import's time. Here rows are plain tuples
of values already in the database's own form. New people (the bulk of an import) are staged in
a temporary table, five values a row, by COPY on PostgreSQL (its fastest way in) or one
executemany on SQLite, and made into subscribers, memberships and consent records by
INSERT ... SELECT (insert_people); memberships and consent records of people already there are
written directly, the same two ways. Statements name tables and columns from the models'
metadata (never from input); every value is a bound parameter or a COPY row. Each statement has
a test on both databases (tests/test_import_store.py).

Lookups take one parameter per value on SQLite (IN (...)) and, on PostgreSQL, one text of all
the values that the server splits (= ANY(string_to_array(...))): 10,000 placeholders, or a list
parameter quoted element by element, cost more to build and parse than the lookup itself.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from ..models import ConsentRecord, Subscriber, Subscription, Suppression

SQLITE_CACHE_KIB = 64 * 1024

SUBSCRIBER_FIELDS = (
    "workspace",
    "uuid",
    "email",
    "email_key",
    "name",
    "first_name",
    "last_name",
    "status",
    "attributes",
    "source",
    "created_at",
    "updated_at",
)
SUBSCRIPTION_FIELDS = (
    "workspace",
    "subscriber",
    "mailing_list",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "confirmed_at",
)
CONSENT_FIELDS = (
    "workspace",
    "subscriber",
    "mailing_list",
    "purpose",
    "action",
    "notice",
    "source_type",
    "source_id",
    "source_label",
    "at",
    "ip",
    "user_agent",
    "confirmed_at",
)


def _table(model, fields) -> tuple[str, str]:
    qn = connection.ops.quote_name
    columns = ", ".join(qn(model._meta.get_field(f).column) for f in fields)
    return qn(model._meta.db_table), columns


@contextmanager
def bulk_session():
    """Connection settings for the length of an import job.

    SQLite: a 64 MB page cache instead of the 2 MB default. The subscriber table's indexes on
    random keys (email, uuid) outgrow 2 MB at some tens of thousands of rows, after which each
    insert reads pages back from the file (measured: about a third of the insert time at 100k
    rows). Restored afterwards, so a worker process does not keep the memory.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (previous,) = cursor.fetchone()
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(previous)}")


def chunk_transaction_settings() -> None:
    """Inside each chunk's transaction, on PostgreSQL:
    - do not wait for the commit's WAL flush. Safe here because a chunk and the progress that
      records it commit together: a crash that loses the last chunks loses their progress with
      them, and a resumed job does them again;
    - check foreign keys row by row rather than queue them all for the commit (Django makes
      them DEFERRABLE INITIALLY DEFERRED). Each import row brings eight foreign-key checks;
      queued, they cost about 30% more (measured: 100,000 checked rows, 0.78 s deferred,
      0.60 s immediate, 0.43 s unchecked). The chunk writes parents before children, so
      nothing here relies on deferral."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


# Named anew when its columns changed (first and last names): a connection that made the older,
# narrower table before an upgrade keeps it until it closes.
STAGE = "mm_import_stage2"


@dataclass(frozen=True)
class Consent:
    """What each consent record written says of where it came from (ConsentRecord's fields);
    `ip` and `user_agent` only where the workspace keeps them."""

    notice_id: int | None
    source_id: str
    source_label: str
    source_type: str = ConsentRecord.SourceType.IMPORT
    ip: str | None = None
    user_agent: str = ""


def json_text(value: dict) -> str:
    # What Django's JSONField writes (json.dumps with its defaults), so values read back alike.
    return json.dumps(value)


class Store:
    """Bulk writes for one workspace, inside the caller's transaction."""

    def __init__(self, workspace_id: int):
        self.workspace_id = workspace_id
        self.postgres = connection.vendor == "postgresql"

    # -- value forms -----------------------------------------------------------------------

    def _in(self, column: str, values, *, numbers: bool = False) -> tuple[str, list]:
        if self.postgres:
            # One text parameter, split by the server. Django's psycopg cursor binds on the
            # client, and a list parameter is quoted element by element in Python: 2.5 s of a
            # 100,000-row import went there. No value here holds a line break (addresses are
            # validated, hashes hex, ids numbers).
            cast = "::bigint[]" if numbers else ""
            text = "\n".join(map(str, values))
            if text.count("\n") != len(values) - 1:
                raise ValueError("a lookup value holds a line break")
            return f"{column} = ANY(string_to_array(%s, E'\\n'){cast})", [text]
        return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)

    def _select(self, sql: str, params: list) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def suppressed(self, hashes) -> dict[str, str]:
        """{suppression hash: reason} for those of `hashes` on the suppression list."""
        if not hashes:
            return {}
        table, _ = _table(Suppression, ())
        where, params = self._in("email_hash", hashes)
        sql = f"SELECT email_hash, reason FROM {table} WHERE workspace_id = %s AND {where}"  # noqa: S608 - identifiers and placeholders
        return dict(self._select(sql, [self.workspace_id, *params]))

    def existing(self, keys: list[str]) -> dict[str, tuple[int, str, uuid.UUID]]:
        """{email key: (id, status, uuid)} of the workspace's subscribers with these keys
        (emails.email_key)."""
        if not keys:
            return {}
        table, _ = _table(Subscriber, ())
        where, params = self._in("email_key", keys)
        sql = f"SELECT email_key, id, status, uuid FROM {table} WHERE workspace_id = %s AND {where}"  # noqa: S608 - identifiers and placeholders
        # PostgreSQL hands back a UUID, SQLite the 32 hex digits Django stores there.
        return {
            key: (sid, status, uid if isinstance(uid, uuid.UUID) else uuid.UUID(uid))
            for key, sid, status, uid in self._select(sql, [self.workspace_id, *params])
        }

    def memberships(self, subscriber_ids: list[int], list_ids: list[int]) -> list[tuple]:
        """(id, subscriber id, list id, status) of these subscribers' memberships of these
        lists."""
        if not subscriber_ids or not list_ids:
            return []
        table, _ = _table(Subscription, ())
        where, params = self._in("subscriber_id", subscriber_ids, numbers=True)
        lists, list_params = self._in("mailing_list_id", list_ids, numbers=True)
        columns = "id, subscriber_id, mailing_list_id, status"
        sql = f"SELECT {columns} FROM {table} WHERE {where} AND {lists}"  # noqa: S608 - identifiers and placeholders
        return self._select(sql, [*params, *list_params])

    def stamp(self, value: datetime | None):
        """A time as the rows carry it: text, formatted once per chunk rather than once per row
        by the driver (seven times per import row). PostgreSQL reads ISO 8601 with its offset;
        SQLite gets what Django writes there."""
        if value is None:
            return None
        if self.postgres:
            return value.isoformat()
        return connection.ops.adapt_datetimefield_value(value)

    @staticmethod
    def new_uuids(n: int) -> list[str]:
        """n random (version 4) UUIDs as 32 hex digits, which both databases read as a UUID
        (and which is how Django stores one on SQLite). One read of the random source for the
        chunk, the version and variant bits set in place: building uuid.UUID objects cost
        more than the rest of a subscriber row."""
        raw = bytearray(os.urandom(16 * n))
        raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])
        raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])
        text = raw.hex()
        return [text[i : i + 32] for i in range(0, 32 * n, 32)]

    # -- writing -----------------------------------------------------------------------------

    def _insert(self, model, fields, rows: list[tuple]) -> None:
        if not rows:
            return
        table, columns = _table(model, fields)
        with connection.cursor() as cursor:
            self._write_rows(cursor, f"{table} ({columns})", len(fields), rows)

    def _write_rows(self, cursor, target: str, width: int, rows: list[tuple]) -> None:
        """`rows` into `target` (a table and its columns): COPY on PostgreSQL, one executemany
        on SQLite."""
        if self.postgres:
            # psycopg's own cursor, so its errors are turned into Django's here (a unique
            # violation must be an IntegrityError for the chunk to be retried).
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * width)
            cursor.executemany(f"INSERT INTO {target} VALUES ({marks})", rows)  # noqa: S608 - identifiers from the models

    def insert_people(
        self,
        rows: list[tuple[str, ...]],
        *,
        source: str,
        at: datetime,
        lists: list[tuple[int, str, str, datetime | None]] = (),
        consent: Consent | None = None,
    ) -> list[str]:
        """New people: (email, email key, name, status, attributes as JSON text: json_text()
        [, first name, last name]) rows of addresses not in the workspace yet, each subscribed
        to every (list id, purpose, status, confirmed at) of `lists`, with a consent record
        (`consent`) for each membership. Returns their uuids (32 hex digits), in the order of
        `rows`.

        The rows are staged once (COPY, or one executemany of eight values a row); the
        subscribers are made from the staged rows by one INSERT ... SELECT, which returns their
        ids, and the memberships and consent records from those ids by one INSERT ... SELECT
        per list each. What would otherwise be some thirty values a row for the driver to
        convert is done in SQL."""
        if not rows:
            return []
        uuids = self.new_uuids(len(rows))
        self._stage(
            [
                (email, key, name, state, attributes, uid, *(names or ("", "")))
                for (email, key, name, state, attributes, *names), uid in zip(
                    rows, uuids, strict=True
                )
            ]
        )
        people, people_columns = _table(Subscriber, SUBSCRIBER_FIELDS)
        uid, attributes = (
            ("CAST(uuid AS uuid)", "CAST(attributes AS jsonb)")
            if self.postgres
            else ("uuid", "attributes")
        )
        ts = self._time_param
        ids = self._select(
            f"INSERT INTO {people} ({people_columns}) SELECT %s, {uid}, email, email_key, name, "  # noqa: S608 - identifiers from the models
            "first_name, last_name, "
            f"status, {attributes}, %s, {ts}, {ts} FROM {STAGE} ORDER BY email_key RETURNING id",
            [self.workspace_id, source, self.stamp(at), self.stamp(at)],
        )
        # Addresses and names do not stay in the connection's temporary store after use. (A
        # DELETE on PostgreSQL would leave dead rows that nothing vacuums in a temporary table.)
        self._execute(f"TRUNCATE {STAGE}" if self.postgres else f"DELETE FROM {STAGE}", [])  # noqa: S608 - a constant
        if not lists:
            return uuids
        # The new ids, as one parameter the database splits into rows. Not a join of the staged
        # rows back to the subscribers by address: the planner answers that with a scan of the
        # whole subscriber table (a hash join), once per chunk and list, and the import became
        # quadratic (measured: 1M rows took 2.5 times as long per row as 100,000).
        numbers = ",".join(str(sid) for (sid,) in ids)
        if self.postgres:
            joined = "FROM unnest(string_to_array(%s, ',')::bigint[]) AS person(id)"
        else:
            joined = "FROM (SELECT value AS id FROM json_each(%s)) AS person"
            numbers = f"[{numbers}]"
        memberships, membership_columns = _table(Subscription, SUBSCRIPTION_FIELDS)
        consents, consent_columns = _table(ConsentRecord, CONSENT_FIELDS)
        # Either may be NULL, which PostgreSQL would otherwise take for text.
        notice = "CAST(%s AS bigint)" if self.postgres else "%s"
        ip = "CAST(%s AS inet)" if self.postgres else "%s"
        for list_id, purpose, status, confirmed_at in lists:
            self._execute(
                f"INSERT INTO {memberships} ({membership_columns}) SELECT %s, person.id, %s, "
                f"%s, %s, {ts}, {ts}, {ts} {joined}",
                [
                    self.workspace_id,
                    list_id,
                    status,
                    Subscription.Reason.BY_IMPORT,
                    self.stamp(at),
                    self.stamp(at),
                    self.stamp(confirmed_at),
                    numbers,
                ],
            )
            if consent is None:
                continue
            self._execute(
                f"INSERT INTO {consents} ({consent_columns}) SELECT %s, person.id, %s, %s, %s, "
                f"{notice}, %s, %s, %s, {ts}, {ip}, %s, {ts} {joined}",
                [
                    self.workspace_id,
                    list_id,
                    purpose,
                    ConsentRecord.Action.GRANT,
                    consent.notice_id,
                    consent.source_type,
                    consent.source_id,
                    consent.source_label,
                    self.stamp(at),
                    consent.ip,
                    consent.user_agent,
                    self.stamp(confirmed_at),
                    numbers,
                ],
            )
        return uuids

    def _stage(self, rows: list[tuple]) -> None:
        """Stages `rows` (email, email key, name, status, attributes, uuid, first name, last
        name: all text) for this transaction. The staging table is temporary, this
        connection's own, and empty outside insert_people: emptied after use, and by the
        rollback of a chunk that failed in between (on PostgreSQL at each commit as well)."""
        columns = (
            "email text, email_key text, name text, status text, attributes text, uuid text, "
            "first_name text, last_name text"
        )
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({columns}) ON COMMIT DELETE ROWS"
                )
            else:
                cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({columns})")
            self._write_rows(cursor, STAGE, 8, rows)

    @property
    def _time_param(self) -> str:
        # A bare parameter in a SELECT list is text to PostgreSQL, which it will not store in a
        # timestamp column: say what it is (stamp() gives it ISO 8601 text).
        return "CAST(%s AS timestamp with time zone)" if self.postgres else "%s"

    def _execute(self, sql: str, params: list) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    def insert_subscriptions(
        self, rows: list[tuple[int, int, str, datetime | None]], *, reason: str, at: datetime
    ) -> None:
        """(subscriber id, list id, status, confirmed at) rows of memberships that do not
        exist yet."""
        ws, stamp = self.workspace_id, self.stamp(at)
        stamps = {at: stamp, None: None}
        self._insert(
            Subscription,
            SUBSCRIPTION_FIELDS,
            [
                (
                    ws,
                    sid,
                    lid,
                    status,
                    reason,
                    stamp,
                    stamp,
                    stamps.get(confirmed) or self.stamp(confirmed),
                )
                for sid, lid, status, confirmed in rows
            ],
        )

    def insert_consents(
        self,
        rows: list[tuple[int, int, str, str, datetime | None]],
        *,
        consent: Consent,
        at: datetime,
    ) -> None:
        """(subscriber id, list id, purpose, action, confirmed at) rows of the consent ledger,
        all from one source (`consent`)."""
        ws, stamp = self.workspace_id, self.stamp(at)
        stamps = {at: stamp, None: None}
        c = consent
        self._insert(
            ConsentRecord,
            CONSENT_FIELDS,
            [
                (
                    ws,
                    sid,
                    lid,
                    purpose,
                    action,
                    c.notice_id,
                    c.source_type,
                    c.source_id,
                    c.source_label,
                    stamp,
                    c.ip,
                    c.user_agent,
                    stamps.get(confirmed) or self.stamp(confirmed),
                )
                for sid, lid, purpose, action, confirmed in rows
            ],
        )

    def update_profiles(self, rows: list[tuple], *, at: datetime) -> None:
        """(subscriber id, name, attributes[, first name, last name]) rows: the fields set as
        given (first and last name only where the row has them)."""
        if not rows:
            return
        qn = connection.ops.quote_name
        meta = Subscriber._meta
        value = "CAST(%s AS jsonb)" if self.postgres else "%s"
        stamp = self.stamp(at)
        for width in sorted({len(row) for row in rows}):
            names = f", {qn('first_name')} = %s, {qn('last_name')} = %s" if width == 5 else ""
            sql = (
                f"UPDATE {qn(meta.db_table)} SET {qn('name')} = %s, "  # noqa: S608 - identifiers from the models
                f"{qn('attributes')} = {value}{names}, "
                f"{qn('updated_at')} = %s WHERE {qn('id')} = %s AND {qn('workspace_id')} = %s"
            )
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql,
                    [
                        (name, json_text(attrs), *extra, stamp, sid, self.workspace_id)
                        for sid, name, attrs, *extra in rows
                        if len(extra) + 3 == width
                    ],
                )
