"""A small, hand-built audience for segment tests, and a pure-Python reading of the rule tree
written from the format's documentation (segments/__init__.py, segments/sql.py), not from the
compiler: the property test holds the SQL to it.

The people are chosen for edges: numbers stored as numeric strings and as words, booleans as
"yes"/"TRUE"/1, dates as timestamps and as junk, LIKE wildcards (% and _) in names, creation
times either side of midnight in the workspace's time zone (Europe/Berlin), and a second
workspace holding the same address and its own list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mailmarketer.audience.models import MailingList, Subscriber, Subscription

NOW = datetime(2024, 7, 10, 12, 0, tzinfo=UTC)
TZ = "Europe/Berlin"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# email, name, status, source, created_at, attributes, {list key: subscription status}
PEOPLE = [
    (
        "ann@example.com",
        "Ann Lee",
        "enabled",
        "form",
        utc(2024, 1, 10, 12),
        {"age": 34, "plan": "pro", "vip": True, "joined": "2023-05-01", "city": "Oslo"},
        {"news": "confirmed"},
    ),
    (
        "Bob@example.org",
        "Bob Stone",
        "enabled",
        "import",
        # 00:30 on 1 March in Berlin: "before 2024-03-01" must not include him.
        utc(2024, 2, 29, 23, 30),
        {"age": "41", "plan": "Pro", "vip": "yes", "joined": "2023-05-01T08:00:00Z"},
        {"news": "unconfirmed", "webinars": "confirmed"},
    ),
    (
        "cy@mail.example.com",
        "",
        "blocklisted",
        "api",
        utc(2024, 2, 29, 22, 30),  # 23:30 on 29 February in Berlin
        {"age": "forty", "plan": "free", "vip": False, "joined": ""},
        {"news": "unsubscribed"},
    ),
    (
        "dee@acme.test",
        "Dee O'Neil",
        "enabled",
        "admin",
        utc(2024, 6, 15, 9),
        {"age": 29.5, "vip": "no", "joined": "2024-06-15", "score": "+7"},
        {"webinars": "unconfirmed"},
    ),
    ("eve@example.com", "Eve", "enabled", "form", utc(2024, 7, 1, 8), {}, {}),
    (
        "fay@example.co",
        "Fay 100%",
        "enabled",
        "import",
        utc(2024, 7, 2, 8),
        {"age": None, "plan": ["pro"], "vip": 1, "joined": "not a date", "score": "1e3"},
        {"news": "confirmed", "webinars": "unsubscribed"},
    ),
    (
        "gus_x@example.net",
        "Gus_x",
        "enabled",
        "api",
        utc(2023, 12, 31, 23, 30),  # already 2024 in Berlin
        {"age": -3, "plan": "PRO plan", "joined": "2023-12-31", "score": " 5"},
        {"webinars": "confirmed"},
    ),
    (
        "hal@sub.example.com",
        "Hal",
        "enabled",
        "form",
        NOW - timedelta(days=2),
        {"age": "007", "vip": "TRUE", "plan": "pro", "joined": "2024-07-08", "score": "1.5"},
        {"news": "confirmed"},
    ),
    (
        "ivy@example.com",
        "Ivy 50_50",
        "enabled",
        "admin",
        NOW - timedelta(days=10),
        {"age": {"years": 3}, "vip": "maybe", "plan": "", "score": 5},
        {"news": "unconfirmed"},
    ),
    (
        "jo@EXAMPLE.com".lower(),
        "jo",
        "blocklisted",
        "import",
        NOW - timedelta(hours=1),
        {"age": 100, "vip": True, "plan": "pro ", "joined": "2024-07-10T23:59:59+02:00"},
        {"news": "confirmed", "webinars": "confirmed"},
    ),
]

# Another workspace, with the same address and its own list: never part of acme's segments.
EVIL_PEOPLE = [
    ("ann@example.com", "Ann Lee", {"age": 34, "plan": "pro"}, "confirmed"),
    ("zed@example.com", "Zed", {"age": 50}, "confirmed"),
]


@dataclass
class Row:
    id: int
    email: str
    name: str
    status: str
    source: str
    created_at: datetime
    updated_at: datetime
    attributes: dict
    subscriptions: dict[int, str] = field(default_factory=dict)


@dataclass
class Audience:
    rows: list[Row]
    lists: dict[str, MailingList]
    evil_list: MailingList
    evil_ids: set[int]


def build_audience(acme, evil) -> Audience:
    acme.timezone = TZ
    acme.save(update_fields=["timezone"])
    lists = {
        key: MailingList.objects.create(workspace=acme, name=key.title(), slug=key)
        for key in ("news", "webinars")
    }
    rows = []
    for i, (email, name, status, source, created, attributes, subs) in enumerate(PEOPLE):
        subscriber = Subscriber.objects.create(
            workspace=acme,
            email=email,
            name=name,
            status=status,
            source=source,
            created_at=created,
            updated_at=created + timedelta(days=i),
            attributes=attributes,
        )
        row = Row(
            subscriber.pk,
            email,
            name,
            status,
            source,
            created,
            created + timedelta(days=i),
            attributes,
        )
        for key, sub_status in subs.items():
            Subscription.objects.create(
                workspace=acme,
                subscriber=subscriber,
                mailing_list=lists[key],
                status=sub_status,
                status_reason="by_admin",
            )
            row.subscriptions[lists[key].pk] = sub_status
        rows.append(row)
    evil_list = MailingList.objects.create(workspace=evil, name="News", slug="news")
    evil_ids = set()
    for email, name, attributes, sub_status in EVIL_PEOPLE:
        subscriber = Subscriber.objects.create(
            workspace=evil, email=email, name=name, attributes=attributes
        )
        Subscription.objects.create(
            workspace=evil,
            subscriber=subscriber,
            mailing_list=evil_list,
            status=sub_status,
            status_reason="by_admin",
        )
        evil_ids.add(subscriber.pk)
    return Audience(rows, lists, evil_list, evil_ids)


# -- the reference reading ------------------------------------------------------------------

_DECIMAL = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def typed(value, value_type):
    """The attribute as the documented type, or None when it holds no value of that type."""
    if value_type == "string":
        return value if isinstance(value, str) else None
    if value_type == "number":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and _DECIMAL.fullmatch(value):
            return float(value)
        return None
    if value_type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return {"true": True, "yes": True, "false": False, "no": False}.get(value.lower())
        return None
    if isinstance(value, str) and _DATE.match(value):
        return value[:10]
    return None


def _text_op(op, have: str, want: str) -> bool:
    have, want = have.lower(), want.lower()  # the fixtures are ASCII
    return {
        "eq": have == want,
        "contains": want in have,
        "starts_with": have.startswith(want),
        "ends_with": have.endswith(want),
    }[op]


NEGATED = {"neq": "eq", "not_contains": "contains", "not_exists": "exists"}


def _day_start(day: str, days_later: int = 0) -> datetime:
    y, m, d = (int(part) for part in day.split("-"))
    return datetime(y, m, d, tzinfo=ZoneInfo(TZ)) + timedelta(days=days_later)


def matches(node: dict, row: Row, now: datetime = NOW) -> bool:
    kind = node["type"]
    if kind == "group":
        results = [matches(child, row, now) for child in node["children"]]
        return all(results) if node["match"] == "all" else any(results)
    op = node.get("op")
    if op in NEGATED:
        return not matches({**node, "op": NEGATED[op]}, row, now)
    if kind == "field":
        have = getattr(row, node["field"])
        value = node["value"]
        if node["field"] in ("email", "name"):
            return _text_op(op, have, value)
        if node["field"] in ("status", "source"):
            return have == value
        if op == "before":
            return have < _day_start(value)
        if op == "after":
            return have >= _day_start(value, 1)
        if op == "between":
            return _day_start(value[0]) <= have < _day_start(value[1], 1)
        return have >= now - timedelta(days=value)
    if kind == "attribute":
        have = typed(row.attributes.get(node["name"]), node["value_type"])
        if op == "exists":
            return have is not None
        if have is None:
            return False
        want = node["value"]
        if node["value_type"] == "string":
            return _text_op(op, have, want)
        if node["value_type"] == "number":
            want = float(want)
        return {
            "eq": have == want,
            "gt": have > want,
            "gte": have >= want,
            "lt": have < want,
            "lte": have <= want,
        }[op]
    if kind == "list":
        status = row.subscriptions.get(node["list"])
        on_list = status is not None and node["status"] in ("any", status)
        return on_list if node["member"] else not on_list
    raise AssertionError(f"no reference reading for {kind!r}")


def expected_ids(audience: Audience, rules: dict, now: datetime = NOW) -> set[int]:
    return {row.id for row in audience.rows if matches(rules["root"], row, now)}
