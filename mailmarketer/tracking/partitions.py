"""Month partitions of the web hits table on PostgreSQL (migration 0003_..._trackweb makes the
table partitioned by range of `at`, with a default partition for anything outside the months
made). On SQLite the same table has no partitions and every function here does nothing.

Partitions are named tracking_webhit_pYYYYMM and made three months ahead by the worker
(make_ahead, run every round but costing one catalogue query when there is nothing to do), so
the default partition stays empty in normal operation; an access log of an older month makes its
month first (ensure_month). Retention drops a month whole once every site's retention has
passed its end (drop_older_than), instead of deleting its rows one by one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.db import connection

TABLE = "tracking_webhit"
AHEAD = 3
_made: set[str] = set()


def enabled() -> bool:
    return connection.vendor == "postgresql"


def _month(day: date, add: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + add
    return date(index // 12, index % 12 + 1, 1)


def name_of(month: date) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def existing() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [TABLE],
        )
        return {name for (name,) in cursor.fetchall()}


def ensure_month(day: date) -> bool:
    """Makes the partition of `day`'s month if missing; True when it made one."""
    if not enabled():
        return False
    month = _month(day)
    name = name_of(month)
    if name in _made:
        return False
    if name in existing():
        _made.add(name)
        return False
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    nxt = _month(month, 1)
    end = datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
    with connection.cursor() as cursor:
        # The name is made from digits only (name_of); the bounds are parameters' text.
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    _made.add(name)
    return True


def make_ahead(today: date | None = None) -> bool:
    today = today or datetime.now(UTC).date()
    made = False
    for add in range(AHEAD + 1):
        made |= ensure_month(_month(today, add))
    return made


def drop_older_than(moment: datetime) -> bool:
    """Drops the month partitions that end before `moment`; True when it dropped one."""
    limit = _month(moment.date())  # the month holding `moment` is kept
    dropped = False
    for name in sorted(existing()):
        suffix = name.rsplit("_p", 1)[-1]
        if not suffix.isdigit() or len(suffix) != 6:
            continue  # the default partition
        month = date(int(suffix[:4]), int(suffix[4:]), 1)
        if month < limit:
            with connection.cursor() as cursor:
                # Deferred foreign-key checks of rows written earlier in this transaction
                # must run first: PostgreSQL refuses to drop a table with pending ones.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"DROP TABLE {name}")
            _made.discard(name)
            dropped = True
    return dropped
