"""The condition kinds of segments v1: subscriber fields, attributes, list membership.

Each kind is a validator, a compiler to a Q over Subscriber, and a describer, registered in
rules.KINDS. Negated operators (neq, not_contains, not_exists, member: false) are the exact
complement of their positive form: someone without the attribute at all is "not equal" to 5.

Text comparisons are case-insensitive (on SQLite for ASCII letters only: its LIKE and UPPER
know no other case rules).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from django.db.models import Exists, OuterRef, Q
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IEndsWith,
    IExact,
    IsNull,
    IStartsWith,
    LessThan,
    LessThanOrEqual,
)

from ..emails import mask_email
from ..models import MailingList, Subscriber, Subscription
from .rules import (
    CompileContext,
    ConditionKind,
    RuleContext,
    check_keys,
    choice,
    fail,
    iso_date,
    number,
    register_kind,
    text,
)
from .sql import AttributeValue

OP_LABELS = {
    "eq": "is",
    "neq": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "before": "is before",
    "after": "is after",
    "between": "is between",
    "within_last_days": "is within the last … days",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "exists": "has a value",
    "not_exists": "has no value",
}

# -- subscriber fields ---------------------------------------------------------------------------

TEXT_OPS = ("eq", "neq", "contains", "not_contains", "starts_with", "ends_with")
CHOICE_OPS = ("eq", "neq")
DATE_OPS = ("before", "after", "between", "within_last_days")
TEXT_LOOKUPS = {
    "eq": "iexact",
    "contains": "icontains",
    "starts_with": "istartswith",
    "ends_with": "iendswith",
}
NEGATIONS = {"neq": "eq", "not_contains": "contains", "not_exists": "exists"}

FIELDS: dict[str, dict] = {
    "email": {"label": "Email", "ops": TEXT_OPS, "kind": "text", "personal": True},
    "name": {"label": "Name", "ops": TEXT_OPS, "kind": "text", "personal": True},
    "status": {
        "label": "Status",
        "ops": CHOICE_OPS,
        "kind": "choice",
        "choices": Subscriber.Status,
    },
    "source": {
        "label": "Source",
        "ops": CHOICE_OPS,
        "kind": "choice",
        "choices": Subscriber.Source,
    },
    "created_at": {"label": "Added", "ops": DATE_OPS, "kind": "date"},
    "updated_at": {"label": "Last changed", "ops": DATE_OPS, "kind": "date"},
}
MAX_DAYS = 36500


def ops_for_field(name: str) -> tuple[str, ...]:
    return FIELDS[name]["ops"] if name in FIELDS else TEXT_OPS


def _op(node: dict, path: str, ops, subject: str) -> str:
    op = node.get("op")
    if op is None:
        fail(f"{path}.op", f"missing operator; use one of {', '.join(ops)}")
    if not isinstance(op, str) or op not in ops:
        fail(f"{path}.op", f"unknown operator {op!r} for {subject}; use one of {', '.join(ops)}")
    return op


def validate_field(node: dict, path: str, context: RuleContext) -> dict:
    check_keys(node, path, {"type", "field", "op", "value"})
    name = choice(node, "field", path, list(FIELDS), "field")
    spec = FIELDS[name]
    op = _op(node, path, spec["ops"], name)
    value = node.get("value")
    vpath = f"{path}.value"
    if spec["kind"] == "text":
        value = text(value, vpath, max_length=254, allow_empty=op in ("eq", "neq"))
    elif spec["kind"] == "choice":
        values = spec["choices"].values
        if value not in values:
            fail(vpath, f"unknown {name} {value!r}; use one of {', '.join(values)}")
    elif op == "within_last_days":
        value = number(value, vpath, integer=True, minimum=1, maximum=MAX_DAYS)
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            fail(vpath, 'expected two dates, like ["2025-01-01", "2025-01-31"]')
        value = [iso_date(value[0], f"{vpath}[0]"), iso_date(value[1], f"{vpath}[1]")]
        if value[0] > value[1]:
            fail(vpath, "the first date is after the second")
    else:
        value = iso_date(value, vpath)
    return {"field": name, "op": op, "value": value}


def _midnight(day: str, context: CompileContext, days_later: int = 0) -> datetime:
    """The start of a calendar day in the workspace's time zone."""
    start = datetime.combine(datetime.fromisoformat(day).date(), time(0))
    return (start + timedelta(days=days_later)).replace(tzinfo=context.tz)


def compile_field(node: dict, context: CompileContext) -> Q:
    name, op, value = node["field"], node["op"], node["value"]
    kind = FIELDS[name]["kind"]
    if op in NEGATIONS:
        # Fields are NOT NULL columns: the complement is a plain NOT.
        return ~compile_field({**node, "op": NEGATIONS[op]}, context)
    if kind == "text":
        return Q(**{f"{name}__{TEXT_LOOKUPS[op]}": value})
    if kind == "choice":
        return Q(**{name: value})
    # Dates are calendar days in the workspace's time zone: "before 1 March" is before
    # midnight starting 1 March there, "after 1 March" from the midnight ending it.
    if op == "before":
        return Q(**{f"{name}__lt": _midnight(value, context)})
    if op == "after":
        return Q(**{f"{name}__gte": _midnight(value, context, 1)})
    if op == "between":
        return Q(
            **{
                f"{name}__gte": _midnight(value[0], context),
                f"{name}__lt": _midnight(value[1], context, 1),
            }
        )
    return Q(**{f"{name}__gte": context.now - timedelta(days=value)})


def _quoted(value) -> str:
    return f"“{value}”"


def describe_field(node: dict, lookups: dict) -> str:
    name, op, value = node["field"], node["op"], node["value"]
    label = FIELDS[name]["label"]
    if FIELDS[name].get("personal") and not lookups.get("reveal", True):
        value = reveal_safe_value(node)
    if op == "between":
        return f"{label} is between {value[0]} and {value[1]}"
    if op == "within_last_days":
        return f"{label} is within the last {value} days"
    if FIELDS[name]["kind"] == "choice":
        value = FIELDS[name]["choices"](value).label
    return f"{label} {OP_LABELS[op]} {_quoted(value)}"


def tests_personal_data(node: dict) -> bool:
    """Whether a condition compares a value that belongs to a person, so that counting it (or
    seeing it) would tell who is on file or what they told us. Personal: any value of the
    email or name field, and any value of an attribute (a phone, a city, an age: nobody can say
    which attributes are harmless). Not personal: status, source, dates, list membership, an
    attribute's existence (its name is shown to everyone), and the domain of the address
    ("ends with @example.com"): that is how segments by company work."""
    kind = node.get("type")
    if kind == "attribute":
        return node.get("op") not in ("exists", "not_exists")
    if kind != "field" or not FIELDS.get(node.get("field"), {}).get("personal"):
        return False
    value = node.get("value")
    is_domain = isinstance(value, str) and value.startswith("@") and value.count("@") == 1
    return not (node["field"] == "email" and node.get("op") == "ends_with" and is_domain)


def reveal_safe_value(node: dict):
    """The value of a condition as shown to someone who may not see personal data."""
    if not tests_personal_data(node):
        return node.get("value")
    value = node["value"]
    if node.get("type") == "field" and node["field"] == "email" and "@" in value:
        return mask_email(value)
    return "•••"


# -- attributes ----------------------------------------------------------------------------------

VALUE_TYPES = ("string", "number", "boolean", "date")
ATTRIBUTE_OPS = {
    "string": (
        "eq",
        "neq",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "exists",
        "not_exists",
    ),
    "number": ("eq", "neq", "gt", "gte", "lt", "lte", "exists", "not_exists"),
    "date": ("eq", "neq", "gt", "gte", "lt", "lte", "exists", "not_exists"),
    "boolean": ("eq", "neq", "exists", "not_exists"),
}
ATTRIBUTE_OP_LABELS = {
    "date": {
        "gt": "is after",
        "gte": "is on or after",
        "lt": "is before",
        "lte": "is on or before",
    },
}
LOOKUPS = {
    "eq": Exact,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}
STRING_LOOKUPS = {
    "eq": IExact,
    "contains": IContains,
    "starts_with": IStartsWith,
    "ends_with": IEndsWith,
}
_BAD_NAME = re.compile(r'["\\\x00-\x1f\x7f]')


def validate_attribute(node: dict, path: str, context: RuleContext) -> dict:
    check_keys(node, path, {"type", "name", "value_type", "op", "value"})
    name = text(node.get("name"), f"{path}.name", max_length=100, allow_empty=False)
    if not name.strip():
        fail(f"{path}.name", "must not be empty")
    if _BAD_NAME.search(name):
        fail(f"{path}.name", "attribute names cannot contain quotes, backslashes or line breaks")
    value_type = choice(node, "value_type", path, VALUE_TYPES, "value type")
    op = _op(node, path, ATTRIBUTE_OPS[value_type], f"a {value_type} attribute")
    vpath = f"{path}.value"
    normalised = {"name": name, "value_type": value_type, "op": op}
    if op in ("exists", "not_exists"):
        if node.get("value") is not None:
            fail(vpath, f"{op} takes no value")
        return normalised
    value = node.get("value")
    if value_type == "string":
        value = text(value, vpath, max_length=500, allow_empty=op in ("eq", "neq"))
    elif value_type == "number":
        value = number(value, vpath)
    elif value_type == "boolean":
        if not isinstance(value, bool):
            fail(vpath, f"expected true or false, got {value!r}")
    else:
        value = iso_date(value, vpath)
    return {**normalised, "value": value}


def compile_attribute(node: dict, context: CompileContext) -> Q:
    op, value_type = node["op"], node["value_type"]
    value = AttributeValue(node["name"], value_type)
    if op == "exists":
        return Q(IsNull(value, False))
    if op in NEGATIONS:
        # The attribute's value is NULL where a row has none of this type; NOT (NULL) would
        # drop those rows, so the complement names them explicitly.
        positive = compile_attribute({**node, "op": NEGATIONS[op]}, context)
        return ~positive if op == "not_exists" else Q(IsNull(value, True)) | ~positive
    lookup = STRING_LOOKUPS[op] if value_type == "string" else LOOKUPS[op]
    return Q(lookup(value, node["value"]))


def describe_attribute(node: dict, lookups: dict) -> str:
    op, value_type = node["op"], node["value_type"]
    label = ATTRIBUTE_OP_LABELS.get(value_type, {}).get(op, OP_LABELS[op])
    subject = f"Attribute {_quoted(node['name'])} ({value_type})"
    if op in ("exists", "not_exists"):
        return f"{subject} {label}"
    value = node["value"]
    if not lookups.get("reveal", True):
        value = reveal_safe_value(node)
    elif value_type == "boolean":
        value = "true" if value else "false"
    return f"{subject} {label} {_quoted(value)}"


# -- list membership ---------------------------------------------------------------------------

LIST_STATUSES = ("any", *Subscription.Status.values)


def validate_list(node: dict, path: str, context: RuleContext) -> dict:
    check_keys(node, path, {"type", "list", "status", "member"})
    list_id = node.get("list")
    if list_id is None:
        fail(f"{path}.list", "missing; give the id of a list")
    number(list_id, f"{path}.list", integer=True, minimum=1)
    status = choice(node, "status", path, LIST_STATUSES, "subscription status", default="any")
    member = node.get("member", True)
    if not isinstance(member, bool):
        fail(f"{path}.member", f"expected true or false, got {member!r}")
    if (
        context.workspace is not None
        and not MailingList.objects.filter(workspace=context.workspace, pk=list_id).exists()
    ):
        fail(f"{path}.list", f"no list with id {list_id} in this workspace")
    return {"list": list_id, "status": status, "member": member}


def compile_list(node: dict, context: CompileContext) -> Q:
    # A correlated EXISTS (a semi-join to the planner) rather than IN: the anti-join for
    # "not a member" stays as cheap as the join, and both stay inside the workspace, on the
    # same shard under Citus. A list of another workspace matches no one.
    members = Subscription.objects.filter(
        workspace_id=context.workspace.pk,
        mailing_list_id=node["list"],
        subscriber_id=OuterRef("pk"),
    )
    if node["status"] != "any":
        members = members.filter(status=node["status"])
    exists = Exists(members)
    return Q(exists) if node["member"] else ~Q(exists)


def describe_list(node: dict, lookups: dict) -> str:
    name = lookups.get("lists", {}).get(node["list"])
    list_label = _quoted(name) if name else f"#{node['list']} (deleted)"
    status = "" if node["status"] == "any" else f" as {node['status']}"
    verb = "Is on the list" if node["member"] else "Is not on the list"
    return f"{verb} {list_label}{status}"


FIELD = register_kind(
    ConditionKind("field", "Subscriber field", validate_field, compile_field, describe_field)
)
ATTRIBUTE = register_kind(
    ConditionKind(
        "attribute", "Attribute", validate_attribute, compile_attribute, describe_attribute
    )
)
LIST = register_kind(
    ConditionKind("list", "List membership", validate_list, compile_list, describe_list)
)
