"""The named SQL statements (segments/sql.py), one test each on whichever database runs the
suite, and the search indexes of migration 0004 (PostgreSQL)."""

from __future__ import annotations

import importlib
import logging

import pytest
from django.db import ProgrammingError, connection, transaction

from mailmarketer.audience.models import Subscriber
from mailmarketer.audience.queries import SubscriberFilter, filter_subscribers, search_subscribers
from mailmarketer.audience.segments import segment_queryset
from mailmarketer.audience.segments.sql import STATEMENTS, AttributeValue

# A stored value -> what each statement reads it as (None: no value of that type).
STORED = [
    # value,           string,   number, boolean, date
    (42, None, 42.0, None, None),
    (-1.5, None, -1.5, None, None),
    ("42", "42", 42.0, None, None),
    ("+7", "+7", 7.0, None, None),
    ("-0.25", "-0.25", -0.25, None, None),
    ("007", "007", 7.0, None, None),
    (" 5", " 5", None, None, None),
    ("5 ", "5 ", None, None, None),
    ("1e3", "1e3", None, None, None),
    ("1.", "1.", None, None, None),
    ("5\n", "5\n", None, None, None),
    ("forty", "forty", None, None, None),
    ("", "", None, None, None),
    (True, None, None, True, None),
    (False, None, None, False, None),
    ("TRUE", "TRUE", None, True, None),
    ("yes", "yes", None, True, None),
    ("No", "No", None, False, None),
    ("maybe", "maybe", None, None, None),
    (1, None, 1.0, None, None),
    ("2024-02-29", "2024-02-29", None, None, "2024-02-29"),
    ("2024-02-29T23:59:59+02:00", "2024-02-29T23:59:59+02:00", None, None, "2024-02-29"),
    ("24-02-29", "24-02-29", None, None, None),
    ("2024-1-5", "2024-1-5", None, None, None),
    (None, None, None, None, None),
    ([1, 2], None, None, None, None),
    ({"a": 1}, None, None, None, None),
]
TYPES = ("string", "number", "boolean", "date")


@pytest.fixture
def stored(personas):
    rows = []
    for i, (value, *_) in enumerate(STORED):
        subscriber = Subscriber.objects.create(
            workspace=personas.acme, email=f"v{i}@example.com", attributes={"x": value}
        )
        rows.append(subscriber.pk)
    Subscriber.objects.create(workspace=personas.acme, email="none@example.com", attributes={})
    return rows


@pytest.mark.parametrize("value_type", TYPES)
def test_it_reads_an_attribute_as_one_type_or_not_at_all(stored, value_type):
    column = TYPES.index(value_type) + 1
    read = dict(
        Subscriber.objects.filter(pk__in=stored)
        .annotate(v=AttributeValue("x", value_type))
        .values_list("pk", "v")
    )
    for pk, row in zip(stored, STORED, strict=True):
        expected = row[column]
        assert read[pk] == expected, f"{row[0]!r} as {value_type} on {connection.vendor}"
        assert type(read[pk]) is type(expected), f"{row[0]!r} as {value_type}"
    assert (
        Subscriber.objects.filter(email="none@example.com")
        .annotate(v=AttributeValue("x", value_type))
        .get()
        .v
        is None
    )


def test_it_has_a_statement_for_each_type_on_both_databases():
    assert {vendor: set(statements) for vendor, statements in STATEMENTS.items()} == {
        "postgresql": set(TYPES),
        "sqlite": set(TYPES),
    }
    for statements in STATEMENTS.values():
        for statement in statements.values():
            # User input goes in parameters only: nothing in the text is filled in but the
            # column, the key and the pattern.
            assert "%" not in statement.sql


def test_it_reads_attribute_names_with_dots_spaces_and_quotes_inside(personas):
    sub = Subscriber.objects.create(
        workspace=personas.acme,
        email="odd@example.com",
        attributes={"home.city": "Oslo", "Zip code": "0150", "it's": 3, "a": {"b": 9}},
    )
    for name, value_type, expected in [
        ("home.city", "string", "Oslo"),
        ("Zip code", "number", 150.0),
        ("it's", "number", 3.0),
        ("a.b", "number", None),  # a name, never a path into nested objects
    ]:
        got = Subscriber.objects.filter(pk=sub.pk).annotate(v=AttributeValue(name, value_type))
        assert got.get().v == expected, name


def test_it_matches_no_one_on_an_injection_attempt_in_a_name_or_value(personas):
    Subscriber.objects.create(workspace=personas.acme, email="p@example.com", attributes={"x": 1})
    for node in [
        {"type": "attribute", "name": "x') OR 1=1 --", "value_type": "number", "op": "exists"},
        {"type": "field", "field": "email", "op": "eq", "value": "' OR '1'='1"},
        {"type": "attribute", "name": "x", "value_type": "string", "op": "eq", "value": "'; --"},
    ]:
        rules = {"version": 1, "root": {"type": "group", "match": "all", "children": [node]}}
        assert segment_queryset(personas.acme, rules).count() == 0


# -- search indexes (migration 0004) ------------------------------------------------------------

only_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="trigram indexes exist on PostgreSQL only"
)


def plan(queryset, *settings) -> str:
    with connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(f"SET LOCAL {setting} = off")
    return queryset.explain()


def only_trigram_indexes() -> None:
    """Drops, inside the test's transaction, every other index that a workspace-scoped search
    could use instead (the rollback restores them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'audience_subscriber'::regclass"
            " AND contype = 'u'"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'ALTER TABLE audience_subscriber DROP CONSTRAINT "{name}"')
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'audience_subscriber'"
            " AND indexdef LIKE %s",
            ["%(workspace_id%"],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')


@only_postgresql
def test_it_searches_substrings_through_the_trigram_indexes(personas):
    """Django must write the very expression the index holds, UPPER(col::text), or PostgreSQL
    reads every row instead. An almost empty table has no useful statistics, so the question
    asked is whether the trigram indexes *can* serve the search: with sequential scans and
    walks of the primary key off, and no other index left, the plan must name them."""
    only_trigram_indexes()
    qs = filter_subscribers(personas.acme, SubscriberFilter(q="zqx")).order_by("-pk")[:51]
    text = plan(qs, "enable_seqscan", "enable_indexscan")
    assert "subscriber_email_trgm" in text and "subscriber_name_trgm" in text, text
    rules = {
        "version": 1,
        "root": {
            "type": "group",
            "match": "all",
            "children": [
                {"type": "field", "field": "email", "op": "ends_with", "value": "@example.com"}
            ],
        },
    }
    text = plan(segment_queryset(personas.acme, rules), "enable_seqscan")
    assert "subscriber_email_trgm" in text, text


@only_postgresql
def test_it_pages_newest_first_through_the_workspace_index(personas):
    qs = Subscriber.objects.filter(workspace=personas.acme).order_by("-pk")[:51]
    text = plan(qs, "enable_seqscan", "enable_bitmapscan", "enable_sort")
    assert "subscriber_ws_newest" in text, text


def test_it_still_searches_and_pages_on_any_database(personas):
    for i in range(5):
        Subscriber.objects.create(workspace=personas.acme, email=f"s{i}@Example.com", name=f"N{i}")
    page, cursor = search_subscribers(personas.acme, SubscriberFilter(q="EXAMPLE"), limit=3)
    assert [s.email for s in page] == ["s4@Example.com", "s3@Example.com", "s2@Example.com"]
    page, cursor = search_subscribers(
        personas.acme, SubscriberFilter(q="example"), before_id=cursor, limit=3
    )
    assert [s.email for s in page] == ["s1@Example.com", "s0@Example.com"] and cursor is None


class _RefusingEditor:
    """A schema editor on a PostgreSQL role that may not create extensions."""

    class _Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, sql, params=None):
            pass

        def fetchone(self):
            return None  # pg_trgm is not installed

    class _Connection:
        vendor = "postgresql"
        alias = "default"

        def cursor(self):
            return _RefusingEditor._Cursor()

    def __init__(self):
        self.connection = self._Connection()
        self.executed = []

    def execute(self, sql, params=None):
        if sql.startswith("CREATE EXTENSION"):
            raise ProgrammingError('permission denied to create extension "pg_trgm"')
        self.executed.append(sql)


def test_it_migrates_without_trigram_indexes_when_the_extension_is_refused(db, caplog):
    migration = importlib.import_module(
        "mailmarketer.audience.migrations.0004_subscriber_search_trigram"
    )
    editor = _RefusingEditor()
    with caplog.at_level(logging.WARNING), transaction.atomic():
        migration.forwards(None, editor)
    assert editor.executed == []
    (record,) = [r for r in caplog.records if "pg_trgm" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "permission denied to create extension" in record.getMessage()
