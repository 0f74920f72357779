"""Segments: saved rule trees over one workspace's subscribers, compiled to one parameterised
query (people never write SQL). Members are computed when asked, never stored.

Public API (the UI, the REST API and benchmarks/ use these):

    validate_rules(rules, *, workspace=None) -> dict
        The normalised tree, or raises SegmentRuleError(path, message), an ActionError with
        code "invalid_rules" whose str() reads e.g.
        "rules.root.children[2].op: unknown operator 'between' for email; use one of eq, ...".
        `rules` may be a dict or a JSON string. With `workspace`, referenced lists must belong
        to it (do this before saving); without, only the shape is checked.
    segment_queryset(workspace, rules, *, now=None) -> QuerySet[Subscriber]
        The workspace's subscribers matching the rules, unordered. Validates first.
    count_segment(workspace, rules, *, now=None) -> int
        How many match: one COUNT(*) query. `now` fixes "within the last N days" (tests).
    SegmentRuleError, register_kind(ConditionKind(...)), MAX_DEPTH, MAX_NODES
    actions:  do_create_segment, do_update_segment, do_delete_segment (segments.actions)
    reads:    segments_for, get_segment (segments.queries)

The rule tree, version 1:

    {"version": 1,
     "root": {"type": "group", "match": "all" | "any", "children": [<node>, ...]}}

A node is a group (nested at most MAX_DEPTH deep, the root counting as one; MAX_NODES nodes in
all) or a condition, whose "type" names its kind. An empty group is its operator's identity:
"all" of nothing matches everyone, "any" of nothing matches no one. Kinds now:

    {"type": "field", "field": F, "op": OP, "value": V}
        email, name:          eq neq contains not_contains starts_with ends_with (text,
                              case-insensitive; ends_with "@example.com" is the domain)
        status:               eq neq ("enabled" | "blocklisted")
        source:               eq neq ("form" | "import" | "api" | "admin")
        created_at, updated_at: before | after "YYYY-MM-DD", between ["YYYY-MM-DD", "YYYY-MM-DD"]
                              (both days included), within_last_days N. Days are calendar days
                              in the workspace's time zone.
    {"type": "attribute", "name": "plan", "value_type": T, "op": OP, "value": V}
        string:  eq neq contains not_contains starts_with ends_with exists not_exists
        number:  eq neq gt gte lt lte exists not_exists (numbers compare numerically; a numeric
                 string such as "42" from a CSV import counts as a number)
        date:    eq neq gt gte lt lte exists not_exists (value "YYYY-MM-DD"; stored ISO dates
                 and timestamps compare by their date)
        boolean: eq neq exists not_exists (value true | false)
        "exists" means the attribute holds a value of that type (segments/sql.py says exactly
        what counts); exists and not_exists take no value.
    {"type": "list", "list": <list id>, "status": "confirmed" | "unconfirmed" | "unsubscribed"
     | "any", "member": true | false}

Every negated operator (neq, not_contains, not_exists, member false) is the exact complement of
its positive form, so someone with no "plan" at all is "plan neq pro".

Adding a kind (the behaviour rules: opened, clicked, visited, registered) is a
`register_kind(ConditionKind(type, label, validate, compile, describe))` from the package that
owns the data, with a compiler returning a Q (typically a workspace-scoped Exists). Stored
segments do not change; a kind not registered is refused at validation with the known types.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.utils import timezone

from ..models import Subscriber
from . import kinds  # noqa: F401 - registers the v1 condition kinds
from .rules import (
    KINDS,
    MAX_DEPTH,
    MAX_NODES,
    CompileContext,
    ConditionKind,
    SegmentRuleError,
    compile_node,
    count_conditions,
    register_kind,
    validate_rules,
    walk,
)

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "MAX_NODES",
    "ConditionKind",
    "SegmentRuleError",
    "count_conditions",
    "count_segment",
    "register_kind",
    "segment_queryset",
    "validate_rules",
    "walk",
]


def segment_queryset(workspace, rules, *, now=None):
    rules = validate_rules(rules)
    context = CompileContext(
        workspace=workspace, now=now or timezone.now(), tz=ZoneInfo(workspace.timezone)
    )
    return Subscriber.objects.filter(workspace=workspace).filter(
        compile_node(rules["root"], context)
    )


def count_segment(workspace, rules, *, now=None) -> int:
    return segment_queryset(workspace, rules, now=now).count()
