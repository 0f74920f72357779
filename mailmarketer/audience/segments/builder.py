"""The rule builder's form: a rule tree as plain form fields, so the builder works without
JavaScript (every edit is a form submission the server applies), and htmx only makes the same
submissions in place.

Each node is numbered in tree order and posts `n-<i>-type` and `n-<i>-parent` (empty for the
root) plus its own fields: groups `match`; fields `field`, `op`, `value`, `value2` (the second
date of "between"); attributes `name`, `value_type`, `op`, `value`; lists `list`, `status`,
`member`. A kind the builder has no widgets for (a later behaviour kind) round-trips as JSON
in `n-<i>-json`. The submit button `edit` says what to do: `save`, `refresh`,
`add:<kind>:<group>`, `add:group:<group>` or `remove:<node>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .kinds import (
    ATTRIBUTE_OP_LABELS,
    ATTRIBUTE_OPS,
    FIELDS,
    OP_LABELS,
    ops_for_field,
    tests_personal_data,
)
from .rules import KINDS, MAX_DEPTH, MAX_NODES, VERSION, SegmentRuleError, walk

_KEY = re.compile(r"n-(\d+)-type")
WIDGET_KINDS = ("field", "attribute", "list")
KEY_LABELS = {
    "op": "the comparison",
    "value": "the value",
    "field": "the field",
    "name": "the attribute name",
    "value_type": "the value type",
    "list": "the list",
    "status": "the status",
    "member": "the membership",
    "match": "the match",
    "type": "the kind of condition",
}


class FormError(ValueError):
    """A posted builder form that is not a tree (tampered with or truncated)."""


def empty_rules() -> dict:
    return {"version": VERSION, "root": {"type": "group", "match": "all", "children": []}}


def new_node(kind: str, lists=()) -> dict:
    if kind == "group":
        return {"type": "group", "match": "any", "children": [new_node("field")]}
    if kind == "field":
        return {"type": "field", "field": "email", "op": "ends_with", "value": ""}
    if kind == "attribute":
        return {"type": "attribute", "name": "", "value_type": "string", "op": "eq", "value": ""}
    if kind == "list":
        first = lists[0].pk if lists else None
        return {"type": "list", "list": first, "status": "confirmed", "member": True}
    raise FormError(f"the builder cannot add a {kind!r} condition")


# -- form -> tree ------------------------------------------------------------------------------


def _number(raw: str):
    raw = raw.strip()
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw  # validation names it


def _node_from_form(data, i: int, kind: str) -> dict:
    def get(key, default=""):
        return data.get(f"n-{i}-{key}", default)

    if kind == "group":
        return {"type": "group", "match": get("match", "all"), "children": []}
    if kind == "field":
        op = get("op")
        value = get("value")
        if op == "between":
            value = [value, get("value2")]
        elif op == "within_last_days":
            value = _number(value)
        return {"type": "field", "field": get("field"), "op": op, "value": value}
    if kind == "attribute":
        node = {
            "type": "attribute",
            "name": get("name").strip(),
            "value_type": get("value_type"),
            "op": get("op"),
        }
        if node["op"] not in ("exists", "not_exists"):
            value = get("value")
            if node["value_type"] == "number":
                value = _number(value)
            elif node["value_type"] == "boolean":
                value = {"true": True, "false": False}.get(value, value)
            node["value"] = value
        return node
    if kind == "list":
        raw_list = get("list").strip()
        return {
            "type": "list",
            "list": int(raw_list) if raw_list.isdigit() else raw_list or None,
            "status": get("status", "any"),
            "member": {"true": True, "false": False}.get(get("member", "true"), get("member")),
        }
    try:
        node = json.loads(get("json"))
    except ValueError:
        raise FormError(f"node {i}: not a condition the builder knows") from None
    if not isinstance(node, dict) or node.get("type") != kind:
        raise FormError(f"node {i}: its JSON does not match its type")
    return node


def rules_from_form(data) -> tuple[dict, dict[int, dict]]:
    """The tree the form describes (not yet validated) and its nodes by form number."""
    indices = sorted({int(m.group(1)) for key in data if (m := _KEY.fullmatch(key))})
    if not indices:
        rules = empty_rules()
        return rules, {0: rules["root"]}
    if len(indices) > MAX_NODES + 1:
        raise FormError(f"a segment holds at most {MAX_NODES} conditions and groups")
    nodes: dict[int, dict] = {}
    root = None
    for i in indices:
        kind = data.get(f"n-{i}-type", "")
        node = _node_from_form(data, i, kind)
        parent = data.get(f"n-{i}-parent", "")
        if parent == "":
            if root is not None or kind != "group":
                raise FormError("the form must describe exactly one outermost group")
            root = node
        else:
            owner = nodes.get(int(parent)) if parent.isdigit() else None
            if owner is None or owner.get("type") != "group":
                raise FormError(f"node {i} names a parent that is not a group before it")
            owner["children"].append(node)
        nodes[i] = node
    if root is None:
        raise FormError("the form must describe exactly one outermost group")
    return {"version": VERSION, "root": root}, nodes


def _depth_of(root: dict, target: dict, depth: int = 1) -> int | None:
    if root is target:
        return depth
    for child in root.get("children", ()) if root.get("type") == "group" else ():
        found = _depth_of(child, target, depth + 1)
        if found:
            return found
    return None


def _size(node: dict) -> int:
    if node.get("type") != "group":
        return 1
    return 1 + sum(_size(child) for child in node["children"])


def fix_choices(node: dict) -> None:
    """After a field or value type changed: an operator or value that no longer applies is
    replaced by the first that does, instead of an error (the person has not chosen yet)."""
    if node.get("type") == "group":
        for child in node["children"]:
            fix_choices(child)
    elif node.get("type") == "field" and node.get("field") in FIELDS:
        spec = FIELDS[node["field"]]
        if node.get("op") not in spec["ops"]:
            node["op"] = spec["ops"][0]
            node["value"] = 1 if node["op"] == "within_last_days" else ""
        if spec["kind"] == "choice" and node.get("value") not in spec["choices"].values:
            node["value"] = spec["choices"].values[0]
        if node["op"] == "between" and not isinstance(node.get("value"), list):
            node["value"] = ["", ""]
    elif node.get("type") == "attribute" and node.get("value_type") in ATTRIBUTE_OPS:
        ops = ATTRIBUTE_OPS[node["value_type"]]
        if node.get("op") not in ops:
            node["op"] = ops[0]
        if node["value_type"] == "boolean" and not isinstance(node.get("value"), bool):
            node["value"] = True
        if node["op"] in ("exists", "not_exists"):
            node.pop("value", None)
        else:
            node.setdefault("value", "")


def apply_edit(rules: dict, nodes: dict[int, dict], edit: str, lists=()) -> tuple[dict | None, str]:
    """Applies an add or remove; returns (the node added or None, a message when refused)."""
    root = rules["root"]
    action, _, rest = edit.partition(":")
    if action == "refresh":
        fix_choices(root)
        return None, ""
    if action == "add":
        kind, _, target = rest.partition(":")
        group = nodes.get(int(target)) if target.isdigit() else None
        if group is None or group.get("type") != "group":
            raise FormError("add to what? name a group of the form")
        if kind not in ("group", *WIDGET_KINDS):
            raise FormError(f"the builder cannot add a {kind!r} condition")
        node = new_node(kind, lists)
        if _size(root) + _size(node) > MAX_NODES:
            return None, f"A segment holds at most {MAX_NODES} conditions and groups."
        if kind == "group" and (_depth_of(root, group) or 0) >= MAX_DEPTH:
            return None, f"Groups nest at most {MAX_DEPTH} deep."
        group["children"].append(node)
        return (node["children"][0] if kind == "group" else node), ""
    if action == "remove":
        target = nodes.get(int(rest)) if rest.isdigit() else None
        if target is None or target is root:
            raise FormError("remove what? name a condition or an inner group")
        for owner in nodes.values():
            if owner.get("type") == "group" and any(c is target for c in owner["children"]):
                owner["children"] = [c for c in owner["children"] if c is not target]
                return None, ""
        raise FormError("that node is not in the tree")
    raise FormError(f"unknown edit {edit!r}")


# -- tree -> widgets -------------------------------------------------------------------------


@dataclass
class BuilderNode:
    index: int
    parent: int | None
    path: str
    depth: int
    node: dict
    children: list[BuilderNode] = field(default_factory=list)
    error: str = ""
    autofocus: bool = False
    ops: list[tuple[str, str]] = field(default_factory=list)
    value: str = ""
    value2: str = ""
    value_input: str = "text"  # text | date | number | select | none
    value_choices: list[tuple[str, str]] = field(default_factory=list)
    json: str = ""
    description: str = ""

    @property
    def type(self) -> str:
        return self.node.get("type", "")

    @property
    def is_group(self) -> bool:
        return self.type == "group"

    @property
    def can_nest(self) -> bool:
        return self.depth < MAX_DEPTH


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _widgets(b: BuilderNode, lists) -> None:
    node = b.node
    kind = node.get("type")
    value = node.get("value")
    if kind == "field":
        name = node.get("field")
        b.ops = [(op, OP_LABELS[op]) for op in ops_for_field(name)]
        spec = FIELDS.get(name, {})
        if spec.get("kind") == "choice":
            b.value_input = "select"
            b.value_choices = list(spec["choices"].choices)
        elif spec.get("kind") == "date":
            b.value_input = "number" if node.get("op") == "within_last_days" else "date"
        if node.get("op") == "between" and isinstance(value, list) and len(value) == 2:
            b.value, b.value2 = _text(value[0]), _text(value[1])
        else:
            b.value = _text(value)
    elif kind == "attribute":
        value_type = node.get("value_type")
        labels = ATTRIBUTE_OP_LABELS.get(value_type, {})
        b.ops = [(op, labels.get(op, OP_LABELS[op])) for op in ATTRIBUTE_OPS.get(value_type, ())]
        b.value = _text(value)
        if node.get("op") in ("exists", "not_exists"):
            b.value_input = "none"
        elif value_type == "boolean":
            b.value_input = "select"
            b.value_choices = [("true", "true"), ("false", "false")]
        elif value_type in ("number", "date"):
            b.value_input = value_type
    elif kind == "list":
        b.value = _text(node.get("list"))
    elif kind != "group":
        b.json = json.dumps(node)
        described = KINDS[kind].describe(node, {}) if kind in KINDS else kind
        b.description = described


def builder_tree(rules: dict, lists=(), focus: dict | None = None) -> BuilderNode:
    counter = iter(range(10_000))

    def build(node, parent, path, depth):
        b = BuilderNode(next(counter), parent, path, depth, node, autofocus=node is focus)
        _widgets(b, lists)
        if node.get("type") == "group":
            b.children = [
                build(child, b.index, f"{path}.children[{i}]", depth + 1)
                for i, child in enumerate(node.get("children", []))
            ]
        return b

    return build(rules["root"], None, "rules.root", 1)


def flatten(b: BuilderNode):
    yield b
    for child in b.children:
        yield from flatten(child)


def place_error(tree: BuilderNode, exc: SegmentRuleError) -> str:
    """Puts the error on the node it names; returns it as a sentence for the count line."""
    named = [b for b in flatten(tree) if exc.path == b.path or exc.path.startswith(b.path + ".")]
    best = max(named, key=lambda b: len(b.path), default=None)
    if best is None:
        return exc.message
    key = exc.path[len(best.path) + 1 :].split(".")[0].split("[")[0]
    subject = KEY_LABELS.get(key, key) if key else ""
    best.error = f"{subject[:1].upper()}{subject[1:]}: {exc.message}" if subject else exc.message
    label = "a group" if best.is_group else "a condition"
    return f"{label} needs attention ({subject + ': ' if subject else ''}{exc.message})"


# -- read-only summary ---------------------------------------------------------------------------


def summary(rules: dict, *, lists: dict[int, str], reveal: bool) -> dict:
    """The tree as sentences, for people who may look but not edit. Without `reveal`, values
    that single out a person (an address, a name) are masked."""
    lookups = {"lists": lists, "reveal": reveal}

    def build(node, root=False):
        if node["type"] == "group":
            return {
                "group": True,
                "root": root,
                "text": "all of" if node["match"] == "all" else "any of",
                "children": [build(child) for child in node["children"]],
            }
        kind = KINDS.get(node["type"])
        text = kind.describe(node, lookups) if kind else f"{node['type']} condition"
        return {"group": False, "text": text, "children": []}

    return build(rules["root"], root=True)


def personal_conditions(rules: dict) -> list[str]:
    """The paths of the conditions that compare a person's own data (kinds.tests_personal_data
    says which), e.g. ["rules.root.children[1]"]: what a role without
    audience.view_personal_data may not count, since each count would confirm a guess."""
    return [path for path, node in walk(rules["root"]) if tests_personal_data(node)]
