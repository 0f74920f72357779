"""Empty variables: how many real recipients would see nothing where a template variable stands.

    report = empty_variables(campaign, people, reveal=...)   # people: subscriber dicts
    report.sampled, report.empty -> [EmptyVariable(expression, empty, examples)]

The sample (up to SAMPLE real recipients of the campaign's audience) is the caller's: who the
audience is belongs to delivery (planner.audience), which sits above this package; see
delivery/send_check.py, which shows this report on the page before sending and, as a fragment,
on the campaign's preview page.

What counts: each `subscriber.<field>` or `subscriber.attributes.<name>` the subject, body or
text body prints, taken with the value each person's template context gives it
(rendering.recipient_context, so a first name made from a full name counts as there). Left out
are the ones the author already decided about: printed through a `default` filter, or inside
`{% if %}` on the same value. An empty value is none, or text of spaces only (a 0 is a value).

The templates are only parsed here (jinja2's parser runs no template code), never rendered:
looking a value up in a context is all a variable does, and 200 recipients times three parts
rendered in the bounded child process would make the page wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jinja2 import Environment, nodes

from mailmarketer.audience.emails import mask_email

from . import rendering
from .models import Campaign

SAMPLE = 200
EXAMPLES = 5
# What a recipient's row must hold for recipient_context (as the engine reads it).
RECIPIENT_FIELDS = ("id", "uuid", "email", "name", "first_name", "last_name", "attributes")
_DEFAULT_FILTERS = frozenset({"default", "d"})
_SUBSCRIBER_FIELDS = frozenset({"email", "name", "first_name", "last_name", "uuid"})


@dataclass
class EmptyVariable:
    expression: str  # "subscriber.first_name", "subscriber.attributes.city"
    empty: int  # of the sampled recipients
    examples: list[str] = field(default_factory=list)  # addresses, masked unless revealed

    @property
    def name(self) -> str:
        return self.expression


@dataclass
class EmptyReport:
    sampled: int
    empty: list[EmptyVariable]

    def __bool__(self) -> bool:
        return bool(self.empty)


def references(source: str) -> list[tuple[str, tuple[str, ...]]]:
    """(expression, path) of each `subscriber...` printed without a `default` filter, e.g.
    ("subscriber.attributes.city", ("attributes", "city")), in the order first printed. Those
    inside `{% if <the same> %}` are left out. A template that does not parse gives none (the
    renderer reports it, with its line)."""
    return list(_walk(source)[0].items())


def _walk(source: str) -> tuple[dict[str, tuple[str, ...]], set[tuple[str, ...]]]:
    """references() as a dict, and the paths printed through a `default` somewhere."""
    found: dict[str, tuple[str, ...]] = {}
    defaulted: set[tuple[str, ...]] = set()
    try:
        tree = Environment().parse(source)  # noqa: S701 - parsed, never rendered
    except Exception:
        return found, defaulted

    def path_of(node) -> tuple[str, ...] | None:
        parts: list[str] = []
        while True:
            if isinstance(node, nodes.Getattr):
                parts.append(node.attr)
                node = node.node
            elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                parts.append(str(node.arg.value))
                node = node.node
            else:
                break
        if isinstance(node, nodes.Name) and node.name == "subscriber" and parts:
            return tuple(reversed(parts))
        return None

    def printed(expr) -> tuple[str, ...] | None:
        # Through filters (`| title`, `| upper`): empty in, empty out, unless one is `default`.
        while isinstance(expr, nodes.Filter):
            if expr.name in _DEFAULT_FILTERS:
                inner = expr.node
                while isinstance(inner, nodes.Filter):
                    inner = inner.node
                if path := path_of(inner):
                    defaulted.add(path)
                return None
            expr = expr.node
        return path_of(expr)

    def guarded_by(test) -> set[tuple[str, ...]]:
        candidates = [test, *test.find_all((nodes.Getattr, nodes.Getitem))]
        return {p for n in candidates if (p := path_of(n))}

    def visit(node, guarded: frozenset):
        if isinstance(node, nodes.If):
            inner = guarded | guarded_by(node.test)
            for child in node.body:
                visit(child, frozenset(inner))
            for child in [*node.elif_, *node.else_]:
                visit(child, guarded)
            return
        if isinstance(node, nodes.Output):
            for expr in node.nodes:
                path = printed(expr)
                if path and path not in guarded and _known(path):
                    found.setdefault("subscriber." + ".".join(path), path)
            return
        for child in node.iter_child_nodes():
            visit(child, guarded)

    visit(tree, frozenset())
    return found, defaulted


def _known(path: tuple[str, ...]) -> bool:
    return (len(path) == 1 and path[0] in _SUBSCRIBER_FIELDS) or (
        len(path) == 2 and path[0] == "attributes"
    )


def _value(person: dict, path: tuple[str, ...]):
    if path[0] == "attributes":
        attributes = person.get("attributes")
        return attributes.get(path[1]) if isinstance(attributes, dict) else None
    return person.get(path[0])


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def archive_subscriber(campaign: Campaign) -> dict:
    """Who the public archive shows the campaign to: nobody's data, but no blanks either where
    a variable without a fallback stands. Names read "there" ("Hello there,"), an attribute
    "your <its name>" ("We ship to your city"); a `default` the author wrote still applies,
    since a variable printed with one anywhere is left empty."""
    person = {"uuid": "", "email": "", "name": "", "first_name": "", "attributes": {}}
    found, defaulted = {}, set()
    for source in campaign_sources(campaign):
        more, with_default = _walk(source)
        found.update(more)
        defaulted |= with_default
    for path in found.values():
        if path in defaulted:
            continue
        if path[0] == "attributes":
            person["attributes"][path[1]] = "your " + path[1].replace("_", " ").strip()
        elif path[0] in ("name", "first_name"):
            person[path[0]] = "there"
    return person


def campaign_sources(campaign: Campaign) -> list[str]:
    return [campaign.subject, campaign.body, campaign.text_body or ""]


def empty_variables(campaign: Campaign, people: Iterable[dict], *, reveal: bool) -> EmptyReport:
    """The report over `people` (rows with RECIPIENT_FIELDS, at most SAMPLE of them used):
    for each variable some of them lack, how many and up to EXAMPLES of their addresses (in
    full only when `reveal`, the viewer's audience.view_personal_data)."""
    workspace_ctx = rendering.workspace_context(campaign.workspace)
    campaign_ctx = rendering.campaign_context(campaign)
    urls = rendering.sample_urls()
    persons = [
        rendering.recipient_context(
            workspace=workspace_ctx, campaign=campaign_ctx, subscriber=row, urls=urls
        )["subscriber"]
        for row, _ in zip(people, range(SAMPLE), strict=False)
    ]
    found = dict(ref for source in campaign_sources(campaign) for ref in references(source))
    empty = []
    for expression, path in found.items():
        blank = [p["email"] for p in persons if _is_empty(_value(p, path))]
        if blank:
            empty.append(
                EmptyVariable(
                    expression=expression,
                    empty=len(blank),
                    examples=[a if reveal else mask_email(a) for a in blank[:EXAMPLES]],
                )
            )
    return EmptyReport(sampled=len(persons), empty=empty)
