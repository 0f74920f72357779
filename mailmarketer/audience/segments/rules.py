"""The rule tree: its versioned envelope, groups, the registry of condition kinds, and the
validation that every tree passes before it is stored or compiled.

A condition kind is one `type` value with a validator (node -> normalised node, raising
SegmentRuleError naming the offending path) and a compiler (normalised node -> Q). Groups are
not a kind: they are the tree itself. Behaviour kinds (opened, clicked, visited, registered)
register here from their own package, so stored segments never need rewriting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from django.db.models import Q

from mailmarketer.accounts.actions import ActionError

VERSION = 1
MAX_DEPTH = 5  # groups, counting the root
MAX_NODES = 50  # groups and conditions together
MATCHES = ("all", "any")


class SegmentRuleError(ActionError):
    """A rule tree that cannot be used; `path` names the node (rules.root.children[2].op)."""

    code = "invalid_rules"

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclass
class RuleContext:
    """What validation may look at: the workspace, when references (lists) are to be checked."""

    workspace: object | None = None
    nodes: int = 0


@dataclass(frozen=True)
class CompileContext:
    workspace: object  # accounts.Workspace
    now: datetime
    tz: tzinfo


@dataclass(frozen=True)
class ConditionKind:
    type: str
    label: str
    # (node, path, context) -> the normalised node without "type"; raise SegmentRuleError
    validate: Callable[[dict, str, RuleContext], dict]
    # (normalised node, context) -> a Q over Subscriber, workspace-scoped when it queries
    # another table
    compile: Callable[[dict, CompileContext], Q]
    # (normalised node, lookups) -> a sentence for people, e.g. "Email ends with “@acme.test”"
    describe: Callable[[dict, dict], str] = field(default=lambda node, lookups: node["type"])


KINDS: dict[str, ConditionKind] = {}


def register_kind(kind: ConditionKind) -> ConditionKind:
    if kind.type == "group":
        raise ValueError("'group' is the tree itself, not a condition kind")
    KINDS[kind.type] = kind
    return kind


def known_types() -> list[str]:
    return ["group", *sorted(KINDS)]


# -- helpers for kinds' validators ------------------------------------------------------------


def fail(path: str, message: str):
    raise SegmentRuleError(path, message)


def check_keys(node: dict, path: str, allowed: set[str]) -> None:
    for key in node:
        if key not in allowed:
            fail(
                f"{path}.{key}" if isinstance(key, str) else path,
                f"unknown key {key!r}; a {node.get('type')} node has {', '.join(sorted(allowed))}",
            )


def choice(node: dict, key: str, path: str, choices, what: str, default=None) -> str:
    value = node.get(key, default)
    if value is None:
        fail(f"{path}.{key}", f"missing {what}; use one of {', '.join(choices)}")
    if not isinstance(value, str) or value not in choices:
        fail(f"{path}.{key}", f"unknown {what} {value!r}; use one of {', '.join(choices)}")
    return value


def text(value, path: str, *, max_length: int, allow_empty: bool) -> str:
    if not isinstance(value, str):
        fail(path, f"expected text, got {json.dumps(value)}")
    if not allow_empty and not value:
        fail(path, "must not be empty")
    if len(value) > max_length:
        fail(path, f"is longer than {max_length} characters")
    return value


def number(value, path: str, *, integer=False, minimum=None, maximum=None) -> int | float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        fail(
            path, f"expected {'a whole number' if integer else 'a number'}, got {json.dumps(value)}"
        )
    if value != value or value in (float("inf"), float("-inf")):
        fail(path, "expected a finite number")
    if minimum is not None and value < minimum:
        fail(path, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        fail(path, f"must be at most {maximum}")
    return value


def iso_date(value, path: str) -> str:
    if not isinstance(value, str):
        fail(path, f"expected a date like 2025-01-31, got {json.dumps(value)}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or len(value) != 10:
        fail(path, f"expected a date like 2025-01-31, got {value!r}")
    return value


# -- the tree -----------------------------------------------------------------------------------


def _load(rules):
    if isinstance(rules, (str, bytes)):
        try:
            return json.loads(rules)
        except ValueError as exc:
            fail("rules", f"not valid JSON ({exc})")
    return rules


def validate_rules(rules, *, workspace=None) -> dict:
    """The normalised tree, or SegmentRuleError naming the first bad node.

    With `workspace`, references are checked too (a list must belong to it); without, only the
    shape is, which is what compiling a stored segment needs (a list deleted since matches no
    one rather than breaking the segment).
    """
    rules = _load(rules)
    if not isinstance(rules, dict):
        fail("rules", 'expected an object like {"version": 1, "root": {"type": "group", ...}}')
    for key in rules:
        if key not in ("version", "root"):
            fail(f"rules.{key}", "unknown key; the rules object has version and root")
    version = rules.get("version")
    if version is None:
        fail("rules.version", f"missing; this server reads version {VERSION}")
    if isinstance(version, bool) or version != VERSION:
        fail("rules.version", f"unsupported version {version!r}; this server reads {VERSION}")
    root = rules.get("root")
    if not isinstance(root, dict) or root.get("type") != "group":
        fail("rules.root", 'the root must be a group: {"type": "group", "match": "all", ...}')
    context = RuleContext(workspace=workspace)
    return {"version": VERSION, "root": _node(root, "rules.root", 1, context)}


def _node(node, path: str, depth: int, context: RuleContext) -> dict:
    if not isinstance(node, dict):
        fail(path, f"expected an object with a type, got {json.dumps(node)[:60]}")
    context.nodes += 1
    if context.nodes > MAX_NODES:
        fail(path, f"too many rules: a segment holds at most {MAX_NODES} conditions and groups")
    kind_name = node.get("type")
    if kind_name == "group":
        return _group(node, path, depth, context)
    if kind_name is None:
        fail(f"{path}.type", f"missing; use one of {', '.join(known_types())}")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        fail(
            f"{path}.type",
            f"unknown condition type {kind_name!r}; use one of {', '.join(known_types())}",
        )
    return {"type": kind_name, **kind.validate(node, path, context)}


def _group(node: dict, path: str, depth: int, context: RuleContext) -> dict:
    check_keys(node, path, {"type", "match", "children"})
    if depth > MAX_DEPTH:
        fail(path, f"groups nest at most {MAX_DEPTH} deep (counting the outermost)")
    match = choice(node, "match", path, MATCHES, "match", default="all")
    children = node.get("children", [])
    if not isinstance(children, list):
        fail(f"{path}.children", "expected a list of conditions and groups")
    return {
        "type": "group",
        "match": match,
        "children": [
            _node(child, f"{path}.children[{i}]", depth + 1, context)
            for i, child in enumerate(children)
        ],
    }


def walk(node: dict, path: str = "rules.root") -> Iterator[tuple[str, dict]]:
    """Every node of a normalised tree with its path, groups before their children."""
    yield path, node
    if node["type"] == "group":
        for i, child in enumerate(node["children"]):
            yield from walk(child, f"{path}.children[{i}]")


def count_conditions(rules: dict) -> int:
    return sum(1 for _, node in walk(rules["root"]) if node["type"] != "group")


def compile_node(node: dict, context: CompileContext) -> Q:
    if node["type"] != "group":
        return KINDS[node["type"]].compile(node, context)
    parts = [compile_node(child, context) for child in node["children"]]
    if not parts:
        # An empty group is the identity of its operator: "all of nothing" is everyone,
        # "any of nothing" is no one. Not Q() for everyone: Django drops an empty Q from an
        # OR, which would turn "any of (x, everyone)" into "x".
        return Q(pk__isnull=False) if node["match"] == "all" else Q(pk__in=[])
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part if node["match"] == "all" else combined | part
    return combined
