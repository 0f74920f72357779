"""The one writer of facts per person (models_facts.Fact, models_facts.FactDay).

record_facts takes the facts of many hits at once, folds those about the same person and object
in memory, and writes each table with one INSERT ... ON CONFLICT DO UPDATE per chunk that adds
the counts and widens the first/last times. Both databases run the same statement (SQLite has
had ON CONFLICT upserts since 3.24; CASE instead of GREATEST/MAX because the two spell those
differently), so two workers ingesting at once add up instead of overwriting each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from .models_facts import OBJECT_KEY_MAX

# Rows per statement: 7 parameters each stays under SQLite's 32,766-variable limit with room.
CHUNK = 500


@dataclass(frozen=True)
class Hit:
    workspace_id: int
    subscriber_id: int
    kind: str  # a models.FactKind value
    object_key: str  # see object_key()
    at: datetime  # aware


def object_key(kind: str, ident) -> str:
    """ "campaign:12", "path:3:/pricing": the type, then the id or path, cut to fit."""
    return f"{kind}:{ident}"[:OBJECT_KEY_MAX]


_FACT_SQL = """
INSERT INTO audience_fact (workspace_id, subscriber_id, kind, object_key, first_at, last_at, count)
VALUES {values}
ON CONFLICT (workspace_id, subscriber_id, kind, object_key) DO UPDATE SET
    count = audience_fact.count + excluded.count,
    first_at = CASE WHEN excluded.first_at < audience_fact.first_at
                    THEN excluded.first_at ELSE audience_fact.first_at END,
    last_at = CASE WHEN excluded.last_at > audience_fact.last_at
                   THEN excluded.last_at ELSE audience_fact.last_at END
"""

_DAY_SQL = """
INSERT INTO audience_factday (workspace_id, subscriber_id, kind, object_key, day, count)
VALUES {values}
ON CONFLICT (workspace_id, subscriber_id, kind, object_key, day) DO UPDATE SET
    count = audience_factday.count + excluded.count
"""


def record_facts(hits: Iterable[Hit]) -> int:
    """Adds the hits to the facts; returns how many distinct (person, kind, object) it touched.
    Call it inside the transaction that stores the events, so facts and events agree."""
    facts: dict[tuple, list] = {}
    days: dict[tuple, int] = {}
    for hit in hits:
        key = (hit.workspace_id, hit.subscriber_id, hit.kind, hit.object_key[:OBJECT_KEY_MAX])
        seen = facts.get(key)
        if seen is None:
            facts[key] = [hit.at, hit.at, 1]
        else:
            seen[0] = min(seen[0], hit.at)
            seen[1] = max(seen[1], hit.at)
            seen[2] += 1
        day_key = (*key, hit.at.date())
        days[day_key] = days.get(day_key, 0) + 1
    if not facts:
        return 0
    ops = connection.ops
    fact_rows = [
        (*key, ops.adapt_datetimefield_value(first), ops.adapt_datetimefield_value(last), count)
        for key, (first, last, count) in facts.items()
    ]
    day_rows = [
        (*key, ops.adapt_datefield_value(day), count) for (*key, day), count in days.items()
    ]
    with connection.cursor() as cursor:
        _upsert(cursor, _FACT_SQL, fact_rows, 7)
        _upsert(cursor, _DAY_SQL, day_rows, 6)
    return len(facts)


def _upsert(cursor, sql: str, rows: list[tuple], width: int) -> None:
    # The statement's text is built from fixed pieces only: the values are parameters.
    one = "(" + ", ".join(["%s"] * width) + ")"
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        cursor.execute(
            sql.format(values=", ".join([one] * len(chunk))),
            [value for row in chunk for value in row],
        )


def forget_fact(workspace_id: int, subscriber_id: int, kind: str, key: str) -> None:
    """Takes back a fact that staff recorded by mistake (attendance unmarked): the fact and its
    days go, as if it had never been recorded. Facts of what people did themselves are never
    taken back."""
    from .models_facts import Fact, FactDay

    scope = dict(
        workspace_id=workspace_id,
        subscriber_id=subscriber_id,
        kind=kind,
        object_key=key[:OBJECT_KEY_MAX],
    )
    Fact.objects.filter(**scope).delete()
    FactDay.objects.filter(**scope).delete()
