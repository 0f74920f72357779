"""Each condition kind compiled and run against a hand-built audience (segment_fixtures.py),
with the expected members written out by hand; the same cases also check the reference
reading that the property test relies on."""

from __future__ import annotations

import pytest

from mailmarketer.audience.segments import count_segment, segment_queryset

from .segment_fixtures import NOW, build_audience, expected_ids

EVERYONE = {
    "ann",
    "Bob",
    "cy",
    "dee",
    "eve",
    "fay",
    "gus_x",
    "hal",
    "ivy",
    "jo",
}


@pytest.fixture
def audience(personas):
    return build_audience(personas.acme, personas.evil)


def rules(*children, match="all"):
    return {"version": 1, "root": {"type": "group", "match": match, "children": list(children)}}


def field(name, op, value):
    return {"type": "field", "field": name, "op": op, "value": value}


def attr(name, value_type, op, value=None):
    node = {"type": "attribute", "name": name, "value_type": value_type, "op": op}
    if value is not None:
        node["value"] = value
    return node


def on_list(key, status="any", member=True):
    return {"type": "list", "list": key, "status": status, "member": member}


def group(match, *children):
    return {"type": "group", "match": match, "children": list(children)}


def members(audience, acme, tree) -> set[str]:
    ids = set(segment_queryset(acme, tree, now=NOW).values_list("id", flat=True))
    by_id = {row.id: row.email.split("@")[0] for row in audience.rows}
    assert ids <= set(by_id), "a subscriber of another workspace matched"
    assert count_segment(acme, tree, now=NOW) == len(ids)
    assert expected_ids(audience, tree) == ids, "the reference reading disagrees with the SQL"
    return {by_id[i] for i in ids}


FIELD_CASES = [
    (field("email", "ends_with", "@example.com"), {"ann", "eve", "ivy", "jo"}),
    (field("email", "ends_with", "EXAMPLE.com"), {"ann", "cy", "eve", "hal", "ivy", "jo"}),
    (field("email", "eq", "BOB@EXAMPLE.ORG"), {"Bob"}),
    (field("email", "starts_with", "b"), {"Bob"}),
    # LIKE wildcards in a value are literal characters.
    (field("email", "contains", "_"), {"gus_x"}),
    (field("name", "contains", "%"), {"fay"}),
    (field("name", "contains", "0_5"), {"ivy"}),
    (field("name", "eq", ""), {"cy"}),
    (field("name", "neq", ""), EVERYONE - {"cy"}),
    (field("name", "not_contains", "o"), EVERYONE - {"Bob", "dee", "jo"}),
    (field("status", "eq", "blocklisted"), {"cy", "jo"}),
    (field("source", "neq", "import"), EVERYONE - {"Bob", "fay", "jo"}),
    # Calendar days in Europe/Berlin: Bob arrived at 00:30 on 1 March there (23:30 UTC the day
    # before), cy at 23:30 on 29 February, gus_x at 00:30 on 1 January 2024.
    (field("created_at", "before", "2024-03-01"), {"ann", "cy", "gus_x"}),
    (field("created_at", "before", "2024-01-01"), set()),
    (field("created_at", "after", "2024-02-29"), {"Bob", "dee", "eve", "fay", "hal", "ivy", "jo"}),
    (field("created_at", "between", ["2024-02-29", "2024-02-29"]), {"cy"}),
    (field("created_at", "within_last_days", 3), {"hal", "jo"}),
    (field("updated_at", "within_last_days", 3), {"hal", "ivy", "jo"}),
]

ATTRIBUTE_CASES = [
    # Numbers compare as numbers, numeric strings included ("41", "007"), words never.
    (attr("age", "number", "gte", 30), {"ann", "Bob", "jo"}),
    (attr("age", "number", "lt", 10), {"gus_x", "hal"}),
    (attr("age", "number", "eq", 7), {"hal"}),
    (attr("age", "number", "lte", 29.5), {"dee", "gus_x", "hal"}),
    (attr("age", "number", "neq", 34), EVERYONE - {"ann"}),
    (attr("age", "number", "exists"), {"ann", "Bob", "dee", "gus_x", "hal", "jo"}),
    (attr("age", "number", "not_exists"), {"cy", "eve", "fay", "ivy"}),
    (attr("age", "string", "exists"), {"Bob", "cy", "hal"}),
    (attr("score", "number", "gt", 1), {"dee", "hal", "ivy"}),
    (attr("plan", "string", "eq", "PRO"), {"ann", "Bob", "hal"}),
    (attr("plan", "string", "contains", "pro"), {"ann", "Bob", "gus_x", "hal", "jo"}),
    (attr("plan", "string", "neq", "pro"), EVERYONE - {"ann", "Bob", "hal"}),
    (attr("plan", "string", "eq", ""), {"ivy"}),
    (attr("plan", "string", "ends_with", "PLAN"), {"gus_x"}),
    (attr("vip", "boolean", "eq", True), {"ann", "Bob", "hal", "jo"}),
    (attr("vip", "boolean", "eq", False), {"cy", "dee"}),
    (attr("vip", "boolean", "neq", True), EVERYONE - {"ann", "Bob", "hal", "jo"}),
    (attr("vip", "boolean", "not_exists"), {"eve", "fay", "gus_x", "ivy"}),
    # Dates compare by their date part, timestamps included.
    (attr("joined", "date", "lt", "2024-01-01"), {"ann", "Bob", "gus_x"}),
    (attr("joined", "date", "eq", "2023-05-01"), {"ann", "Bob"}),
    (attr("joined", "date", "gte", "2024-07-08"), {"hal", "jo"}),
    (attr("joined", "date", "exists"), {"ann", "Bob", "dee", "gus_x", "hal", "jo"}),
    (attr("city", "string", "eq", "oslo"), {"ann"}),
    (attr("nobody-has-this", "string", "not_exists"), EVERYONE),
]


@pytest.mark.parametrize(("condition", "expected"), FIELD_CASES, ids=lambda v: str(v))
def test_it_selects_by_subscriber_fields(audience, personas, condition, expected):
    assert members(audience, personas.acme, rules(condition)) == expected


@pytest.mark.parametrize(("condition", "expected"), ATTRIBUTE_CASES, ids=lambda v: str(v))
def test_it_compares_attributes_by_their_type(audience, personas, condition, expected):
    assert members(audience, personas.acme, rules(condition)) == expected


def test_it_selects_by_list_membership_and_status(audience, personas):
    news, webinars = audience.lists["news"].pk, audience.lists["webinars"].pk
    acme = personas.acme
    assert members(audience, acme, rules(on_list(news, "confirmed"))) == {
        "ann",
        "fay",
        "hal",
        "jo",
    }
    assert members(audience, acme, rules(on_list(news))) == EVERYONE - {"dee", "eve", "gus_x"}
    assert members(audience, acme, rules(on_list(news, member=False))) == {"dee", "eve", "gus_x"}
    assert members(audience, acme, rules(on_list(webinars, "unsubscribed"))) == {"fay"}
    assert members(audience, acme, rules(on_list(webinars, "unconfirmed", False))) == (
        EVERYONE - {"dee"}
    )


def test_it_never_matches_through_a_list_of_another_workspace(audience, personas):
    foreign = audience.evil_list.pk
    acme = personas.acme
    assert members(audience, acme, rules(on_list(foreign))) == set()
    assert members(audience, acme, rules(on_list(foreign, member=False))) == EVERYONE
    # And from the other side: evil's own segment sees only evil's people.
    ids = set(segment_queryset(personas.evil, rules(on_list(foreign))).values_list("id", flat=True))
    assert ids == audience.evil_ids


def test_it_combines_nested_all_and_any_groups(audience, personas):
    news = audience.lists["news"].pk
    acme = personas.acme
    tree = rules(
        on_list(news, "confirmed"),
        group(
            "any", field("email", "ends_with", "@example.com"), attr("vip", "boolean", "eq", True)
        ),
    )
    assert members(audience, acme, tree) == {"ann", "hal", "jo"}
    tree = rules(
        group("all", field("status", "eq", "blocklisted"), on_list(news)),
        group("all", attr("age", "number", "gte", 30), field("source", "eq", "import")),
        match="any",
    )
    assert members(audience, acme, tree) == {"cy", "jo", "Bob"}
    deep = rules(group("all", group("any", group("all", group("any", field("name", "eq", "Eve"))))))
    assert members(audience, acme, deep) == {"eve"}


def test_it_reads_an_empty_group_as_its_operators_identity(audience, personas):
    acme = personas.acme
    assert members(audience, acme, rules()) == EVERYONE
    assert members(audience, acme, rules(match="any")) == set()
    assert members(audience, acme, rules(group("any"))) == set()
    # Found by the property test: an empty "all" inside an "any" must not vanish.
    assert members(audience, acme, rules(field("email", "eq", "a"), group("all"), match="any")) == (
        EVERYONE
    )
    assert members(
        audience, acme, rules(group("any"), field("name", "eq", "Eve"), match="any")
    ) == {"eve"}


def test_it_counts_the_benchmark_segment(audience, personas):
    """The three-rule segment benchmarks/segment_bench.py times at 1M subscribers."""
    tree = rules(
        on_list(audience.lists["news"].pk, "confirmed"),
        attr("age", "number", "gte", 30),
        field("email", "ends_with", "@example.com"),
    )
    assert members(audience, personas.acme, tree) == {"ann", "jo"}


def test_it_accepts_rules_as_json_text(audience, personas):
    text = '{"version": 1, "root": {"type": "group", "match": "all", "children": [' + (
        '{"type": "field", "field": "status", "op": "eq", "value": "blocklisted"}]}}'
    )
    assert count_segment(personas.acme, text) == 2
