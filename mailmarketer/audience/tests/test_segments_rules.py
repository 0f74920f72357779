"""Validation of rule trees: each refusal names the node and says what is wrong."""

from __future__ import annotations

import pytest
from django.db.models import Q

from mailmarketer.accounts.actions import ActionError
from mailmarketer.audience.segments import (
    KINDS,
    MAX_DEPTH,
    MAX_NODES,
    ConditionKind,
    SegmentRuleError,
    count_segment,
    register_kind,
    validate_rules,
)
from mailmarketer.audience.segments.rules import check_keys


def tree(*children, match="all"):
    return {"version": 1, "root": {"type": "group", "match": match, "children": list(children)}}


def email(op="eq", value="a@example.com"):
    return {"type": "field", "field": "email", "op": op, "value": value}


def refusal(rules, **kwargs) -> str:
    with pytest.raises(SegmentRuleError) as info:
        validate_rules(rules, **kwargs)
    assert str(info.value) == f"{info.value.path}: {info.value.message}"
    return str(info.value)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            tree(email(), email(), email(op="between")),
            "rules.root.children[2].op: unknown operator 'between' for email; use one of eq, "
            "neq, contains, not_contains, starts_with, ends_with",
        ),
        (
            tree({"type": "opened", "campaign": 3}),
            # The kinds other packages register (signup's downloaded and lead, ...) follow.
            "rules.root.children[0].type: unknown condition type 'opened'; use one of group, "
            "attribute,",
        ),
        (tree({"field": "email"}), "rules.root.children[0].type: missing; use one of group"),
        (
            tree({"type": "field", "field": "phone", "op": "eq", "value": "1"}),
            "rules.root.children[0].field: unknown field 'phone'; use one of email, name, status",
        ),
        (tree(email(value=5)), "rules.root.children[0].value: expected text, got 5"),
        (tree(email(op="contains", value="")), "rules.root.children[0].value: must not be empty"),
        (
            tree({"type": "field", "field": "status", "op": "eq", "value": "gone"}),
            "rules.root.children[0].value: unknown status 'gone'; use one of enabled, blocklisted",
        ),
        (
            tree({"type": "field", "field": "created_at", "op": "before", "value": "31/01/2025"}),
            "rules.root.children[0].value: expected a date like 2025-01-31, got '31/01/2025'",
        ),
        (
            tree(
                {
                    "type": "field",
                    "field": "created_at",
                    "op": "between",
                    "value": ["2025-02-01", "2025-01-01"],
                }
            ),
            "rules.root.children[0].value: the first date is after the second",
        ),
        (
            tree({"type": "field", "field": "created_at", "op": "within_last_days", "value": 0}),
            "rules.root.children[0].value: must be at least 1",
        ),
        (
            tree({"type": "field", "field": "created_at", "op": "within_last_days", "value": True}),
            "rules.root.children[0].value: expected a whole number, got true",
        ),
        (
            tree(
                {
                    "type": "attribute",
                    "name": "age",
                    "value_type": "number",
                    "op": "gte",
                    "value": "30",
                }
            ),
            'rules.root.children[0].value: expected a number, got "30"',
        ),
        (
            tree(
                {
                    "type": "attribute",
                    "name": "age",
                    "value_type": "number",
                    "op": "contains",
                    "value": 3,
                }
            ),
            "rules.root.children[0].op: unknown operator 'contains' for a number attribute",
        ),
        (
            tree({"type": "attribute", "name": "age", "op": "eq", "value": 3}),
            "rules.root.children[0].value_type: missing value type; use one of string, number",
        ),
        (
            tree(
                {
                    "type": "attribute",
                    "name": "vip",
                    "value_type": "boolean",
                    "op": "eq",
                    "value": "yes",
                }
            ),
            "rules.root.children[0].value: expected true or false, got 'yes'",
        ),
        (
            tree(
                {
                    "type": "attribute",
                    "name": "vip",
                    "value_type": "boolean",
                    "op": "exists",
                    "value": True,
                }
            ),
            "rules.root.children[0].value: exists takes no value",
        ),
        (
            tree(
                {
                    "type": "attribute",
                    "name": 'say "hi"',
                    "value_type": "string",
                    "op": "exists",
                }
            ),
            "rules.root.children[0].name: attribute names cannot contain quotes, backslashes",
        ),
        (
            tree({"type": "list", "list": "news", "status": "confirmed"}),
            'rules.root.children[0].list: expected a whole number, got "news"',
        ),
        (
            tree({"type": "list", "list": 1, "status": "maybe"}),
            "rules.root.children[0].status: unknown subscription status 'maybe'; use one of any",
        ),
        (
            tree({"type": "list", "list": 1, "member": "yes"}),
            "rules.root.children[0].member: expected true or false, got 'yes'",
        ),
        (
            tree(email() | {"colour": "red"}),
            "rules.root.children[0].colour: unknown key 'colour'; a field node has field, op, "
            "type, value",
        ),
        (tree(match="most"), "rules.root.match: unknown match 'most'; use one of all, any"),
        (
            tree(email(), "email"),
            'rules.root.children[1]: expected an object with a type, got "email"',
        ),
        ({"root": tree()["root"]}, "rules.version: missing; this server reads version 1"),
        ({"version": 2, "root": tree()["root"]}, "rules.version: unsupported version 2"),
        ({"version": 1, "root": email()}, "rules.root: the root must be a group"),
        ({"version": 1, "root": tree()["root"], "x": 1}, "rules.x: unknown key"),
        ([], "rules: expected an object"),
        ("{not json", "rules: not valid JSON"),
    ],
)
def test_it_refuses_bad_rules_naming_the_node(rules, expected):
    assert refusal(rules).startswith(expected)


def nested(depth: int) -> dict:
    node = email()
    for _ in range(depth - 1):
        node = {"type": "group", "match": "any", "children": [node]}
    return tree(node)


def test_it_limits_how_deep_groups_nest():
    validate_rules(nested(MAX_DEPTH))
    message = refusal(nested(MAX_DEPTH + 1))
    assert message.startswith("rules.root" + ".children[0]" * MAX_DEPTH + ": groups nest at most 5")


def test_it_limits_how_many_nodes_a_tree_holds():
    validate_rules(tree(*[email()] * (MAX_NODES - 1)))
    message = refusal(tree(*[email()] * MAX_NODES))
    assert message == (
        f"rules.root.children[{MAX_NODES - 1}]: too many rules: a segment holds at most "
        f"{MAX_NODES} conditions and groups"
    )


def test_it_normalises_defaults_and_keeps_the_version():
    rules = {
        "version": 1,
        "root": {
            "type": "group",
            "children": [{"type": "list", "list": 4}, {"type": "group", "match": "any"}],
        },
    }
    assert validate_rules(rules) == tree(
        {"type": "list", "list": 4, "status": "any", "member": True},
        {"type": "group", "match": "any", "children": []},
    )


def test_it_refuses_a_list_of_another_workspace_when_saving(personas):
    from mailmarketer.audience.models import MailingList

    theirs = MailingList.objects.create(workspace=personas.evil, name="Theirs", slug="theirs")
    ours = MailingList.objects.create(workspace=personas.acme, name="Ours", slug="ours")
    rules = tree({"type": "list", "list": theirs.pk})
    assert refusal(rules, workspace=personas.acme) == (
        f"rules.root.children[0].list: no list with id {theirs.pk} in this workspace"
    )
    validate_rules(rules)  # the shape alone is fine: compiling a stored segment needs only that
    validate_rules(tree({"type": "list", "list": ours.pk}), workspace=personas.acme)


def test_it_is_an_action_error_the_api_can_report():
    with pytest.raises(ActionError) as info:
        validate_rules(tree({"type": "nope"}))
    assert info.value.code == "invalid_rules"


def test_it_lets_a_new_condition_kind_plug_in_without_touching_stored_rules(personas):
    """How the behaviour kinds (opened, clicked, ...) arrive: a validator and a compiler."""
    stored = tree(email(op="ends_with", value="@example.com"))
    before = validate_rules(stored)

    def validate(node, path, context):
        check_keys(node, path, {"type", "vip"})
        if not isinstance(node.get("vip"), bool):
            raise SegmentRuleError(f"{path}.vip", "expected true or false")
        return {"vip": node["vip"]}

    def compile_vip(node, context):
        return Q(attributes__vip=node["vip"])

    assert "vip_flag" not in KINDS
    register_kind(ConditionKind("vip_flag", "VIP flag", validate, compile_vip))
    try:
        assert validate_rules(stored) == before
        assert count_segment(personas.acme, tree({"type": "vip_flag", "vip": True})) == 0
        assert refusal(tree({"type": "vip_flag", "vip": 1})) == (
            "rules.root.children[0].vip: expected true or false"
        )
    finally:
        del KINDS["vip_flag"]
    assert refusal(tree({"type": "vip_flag", "vip": True})).startswith(
        "rules.root.children[0].type: unknown condition type 'vip_flag'"
    )


def test_it_refuses_to_register_a_kind_named_group():
    with pytest.raises(ValueError, match="group"):
        register_kind(ConditionKind("group", "Group", lambda *a: {}, lambda *a: Q()))
