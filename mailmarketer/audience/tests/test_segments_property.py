"""For random rule trees over the hand-built audience, the database (SQLite or PostgreSQL) must
pick exactly the people the pure-Python reading of the documented format picks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailmarketer.audience.segments import count_segment, segment_queryset, validate_rules
from mailmarketer.audience.segments.kinds import (
    ATTRIBUTE_OPS,
    CHOICE_OPS,
    DATE_OPS,
    LIST_STATUSES,
    TEXT_OPS,
)

from .segment_fixtures import NOW, build_audience, expected_ids

TEXT_VALUES = [
    "a",
    "o",
    "ANN",
    "example.com",
    "@example.com",
    "Bob@example.org",
    "_",
    "%",
    "0_5",
    "100%",
    "x",
    "Eve",
    "pro",
    "PRO ",
    "lee",
]
DAYS = ["2023-05-01", "2023-12-31", "2024-01-01", "2024-02-29", "2024-03-01", "2024-07-08"]
NUMBERS = [-3, 0, 1, 1.5, 5, 7, 29.5, 30, 34, 41, 100, 1000]
ATTRIBUTE_NAMES = ["age", "plan", "vip", "joined", "score", "city", "missing"]


def text_condition(draw_field, op, value):
    return {"type": "field", "field": draw_field, "op": op, "value": value}


@st.composite
def field_conditions(draw):
    name = draw(st.sampled_from(["email", "name", "status", "source", "created_at", "updated_at"]))
    if name in ("email", "name"):
        op = draw(st.sampled_from(TEXT_OPS))
        pool = TEXT_VALUES + ([""] if op in ("eq", "neq") else [])
        return text_condition(name, op, draw(st.sampled_from(pool)))
    if name in ("status", "source"):
        values = ["enabled", "blocklisted"] if name == "status" else ["form", "import", "api"]
        return text_condition(
            name, draw(st.sampled_from(CHOICE_OPS)), draw(st.sampled_from(values))
        )
    op = draw(st.sampled_from(DATE_OPS))
    if op == "within_last_days":
        value = draw(st.sampled_from([1, 2, 3, 9, 11, 200, 365]))
    elif op == "between":
        value = sorted(draw(st.lists(st.sampled_from(DAYS), min_size=2, max_size=2)))
    else:
        value = draw(st.sampled_from(DAYS))
    return text_condition(name, op, value)


@st.composite
def attribute_conditions(draw):
    value_type = draw(st.sampled_from(["string", "number", "boolean", "date"]))
    op = draw(st.sampled_from(ATTRIBUTE_OPS[value_type]))
    node = {
        "type": "attribute",
        "name": draw(st.sampled_from(ATTRIBUTE_NAMES)),
        "value_type": value_type,
        "op": op,
    }
    if op in ("exists", "not_exists"):
        return node
    if value_type == "string":
        pool = TEXT_VALUES + ([""] if op in ("eq", "neq") else [])
        node["value"] = draw(st.sampled_from(pool))
    elif value_type == "number":
        node["value"] = draw(st.sampled_from(NUMBERS))
    elif value_type == "boolean":
        node["value"] = draw(st.booleans())
    else:
        node["value"] = draw(st.sampled_from(DAYS))
    return node


def list_conditions(list_ids):
    return st.fixed_dictionaries(
        {
            "type": st.just("list"),
            "list": st.sampled_from(list_ids),
            "status": st.sampled_from(LIST_STATUSES),
            "member": st.booleans(),
        }
    )


def trees(list_ids):
    condition = st.one_of(field_conditions(), attribute_conditions(), list_conditions(list_ids))

    def group(depth):
        # At most 3 levels and 3 children a group: 40 nodes, inside the limit of 50.
        child = condition if depth == 3 else st.one_of(condition, condition, group(depth + 1))
        return st.fixed_dictionaries(
            {
                "type": st.just("group"),
                "match": st.sampled_from(["all", "any"]),
                "children": st.lists(child, max_size=3),
            }
        )

    return st.builds(lambda root: {"version": 1, "root": root}, group(1))


@pytest.fixture
def audience(personas):
    return build_audience(personas.acme, personas.evil)


def test_it_matches_the_reference_reading_for_random_rule_trees(audience, personas):
    acme = personas.acme
    list_ids = [*(lst.pk for lst in audience.lists.values()), audience.evil_list.pk, 999_999]

    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(tree=trees(list_ids))
    def check(tree):
        assert validate_rules(tree) == tree  # the strategy makes normalised trees
        expected = expected_ids(audience, tree)
        ids = set(segment_queryset(acme, tree, now=NOW).values_list("id", flat=True))
        assert ids == expected
        assert count_segment(acme, tree, now=NOW) == len(expected)

    check()
