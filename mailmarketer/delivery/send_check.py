"""What the page before sending shows (issue 12, "a send step that shows who gets it"): how many
people would get the campaign if it started now, the subject as one of them sees it, who it is
from, where it goes (the relays, or the local outbox where nobody receives it), and how many of a
sample of real recipients would see an empty value where a template variable stands.

The count is the planner's audience (planner.audience: lists, exclusions, segments) minus
suppressed addresses, the rule the engine applies again just before each message; it is exact up
to EXACT_LIMIT people and an upper bound above (suppressions are then left to send time: hashing
every address on page load would make the page slow exactly when it matters most).

Templates are parsed here (jinja2's parser runs no template code); the one sample message is
rendered by campaigns.rendering.render_isolated, in a bounded child process, as every preview is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import Environment, nodes

from mailmarketer.audience.emails import mask_email, suppression_hash
from mailmarketer.audience.models import Suppression
from mailmarketer.campaigns import rendering
from mailmarketer.campaigns.models import Campaign

from .models import SmtpServer
from .planner import audience

SAMPLE = 200
EXACT_LIMIT = 200_000
EXAMPLES = 3
_DEFAULT_FILTERS = {"default", "d"}
_SUBSCRIBER_FIELDS = {"email", "name", "first_name", "uuid"}


@dataclass
class EmptyVariable:
    expression: str  # "subscriber.first_name", "subscriber.attributes.city"
    empty: int  # of the sampled recipients
    examples: list[str] = field(default_factory=list)  # masked addresses


@dataclass
class SendCheck:
    recipients: int
    exact: bool
    sampled: int
    sample_to: str  # masked
    sample_subject: str
    problem: str  # a template that cannot render, in the renderer's words
    sender: str
    relays: list[str]  # enabled relays' names; empty: the local outbox
    empty: list[EmptyVariable]

    @property
    def outbox(self) -> bool:
        return not self.relays


def _references(source: str) -> list[tuple[str, tuple[str, ...]]]:
    """(expression, path) of each `subscriber...` printed without a `default` filter, e.g.
    ("subscriber.attributes.city", ("attributes", "city")). Those inside `{% if <the same> %}`
    are left out: the author already decided what an empty value shows."""
    try:
        tree = Environment().parse(source)  # noqa: S701 - parsed, never rendered
    except Exception:  # a template error is reported by the render, with its line
        return []
    found: dict[str, tuple[str, ...]] = {}

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
                if isinstance(expr, nodes.Filter) and expr.name in _DEFAULT_FILTERS:
                    continue
                path = path_of(expr)
                if path and path not in guarded and _known(path):
                    found.setdefault("subscriber." + ".".join(path), path)
            return
        for child in node.iter_child_nodes():
            visit(child, guarded)

    visit(tree, frozenset())
    return list(found.items())


def _known(path: tuple[str, ...]) -> bool:
    return (len(path) == 1 and path[0] in _SUBSCRIBER_FIELDS) or (
        len(path) == 2 and path[0] == "attributes"
    )


def _value(person: dict, path: tuple[str, ...]):
    if path[0] == "attributes":
        return (person.get("attributes") or {}).get(path[1])
    return person.get(path[0])


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def send_check(campaign: Campaign) -> SendCheck:
    workspace = campaign.workspace
    people = audience(campaign)
    total = people.count()
    exact = total <= EXACT_LIMIT
    suppressed_hashes = set(
        Suppression.objects.filter(workspace=workspace).values_list("email_hash", flat=True)
    )
    if exact and suppressed_hashes:
        total -= sum(
            1
            for email in people.values_list("email", flat=True).iterator(chunk_size=5000)
            if suppression_hash(email) in suppressed_hashes
        )

    sample = []
    for row in people.order_by("pk").values("id", "uuid", "email", "name", "attributes")[
        : SAMPLE + len(suppressed_hashes)
    ]:
        if suppression_hash(row["email"]) not in suppressed_hashes:
            sample.append(row)
        if len(sample) == SAMPLE:
            break
    workspace_ctx = rendering.workspace_context(workspace)
    campaign_ctx = rendering.campaign_context(campaign)
    contexts = [
        rendering.recipient_context(
            workspace=workspace_ctx,
            campaign=campaign_ctx,
            subscriber=row,
            urls=rendering.sample_urls(),
            data=campaign.data,
        )
        for row in sample
    ]

    empty = []
    sources = [campaign.subject, campaign.body, campaign.text_body or ""]
    references = dict(ref for source in sources for ref in _references(source))
    for expression, path in references.items():
        blank = [
            ctx["subscriber"] for ctx in contexts if _is_empty(_value(ctx["subscriber"], path))
        ]
        if blank:
            empty.append(
                EmptyVariable(
                    expression=expression,
                    empty=len(blank),
                    examples=[mask_email(p["email"]) for p in blank[:EXAMPLES]],
                )
            )

    subject, problem = "", ""
    if contexts:
        try:
            subject = rendering.render_isolated(campaign, contexts[0]).subject
        except (rendering.TemplateProblem, rendering.RenderError) as exc:
            problem = str(exc)
    sender = _sender(campaign, workspace)
    relays = list(
        SmtpServer.objects.filter(workspace=workspace, enabled=True)
        .order_by("pk")
        .values_list("name", flat=True)
    )
    return SendCheck(
        recipients=max(total, 0),
        exact=exact,
        sampled=len(contexts),
        sample_to=mask_email(sample[0]["email"]) if sample else "",
        sample_subject=subject,
        problem=problem,
        sender=sender,
        relays=relays,
        empty=empty,
    )


def _sender(campaign, workspace) -> str:
    address = campaign.from_email or workspace.sender_email
    shown = campaign.from_name or workspace.sender_name or workspace.name
    return f"{shown} <{address}>" if address else shown
