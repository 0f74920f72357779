"""What the page before sending shows (issue 12, "a send step that shows who gets it"): how many
people would get the campaign if it started now, the subject as one of them sees it, who it is
from, where it goes (the relays, or the local outbox where nobody receives it), and how many of a
sample of real recipients would see an empty value where a template variable stands
(campaigns/variables.py; this module picks the sample, since the audience is delivery's).

The count is the planner's audience (planner.audience: lists, exclusions, segments) minus
suppressed addresses, the rule the engine applies again just before each message; it is exact up
to EXACT_LIMIT people and an upper bound above (suppressions are then left to send time: hashing
every address on page load would make the page slow exactly when it matters most).

Templates are parsed here (jinja2's parser runs no template code); the one sample message is
rendered by campaigns.rendering.render_isolated, in a bounded child process, as every preview is.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailmarketer.audience.emails import mask_email, suppression_hash
from mailmarketer.audience.models import Suppression
from mailmarketer.campaigns import rendering, variables
from mailmarketer.campaigns.models import Campaign

from .models import SmtpServer
from .planner import audience

SAMPLE = variables.SAMPLE
EXACT_LIMIT = 200_000
# The tests and older callers name these here.
EmptyVariable = variables.EmptyVariable
_references = variables.references


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


def sample_recipients(campaign: Campaign, suppressed_hashes: set[str] | None = None) -> list[dict]:
    """Up to SAMPLE real recipients of the campaign's audience (the first by id), suppressed
    addresses left out, as rows of variables.RECIPIENT_FIELDS."""
    if suppressed_hashes is None:
        suppressed_hashes = set(
            Suppression.objects.filter(workspace_id=campaign.workspace_id).values_list(
                "email_hash", flat=True
            )
        )
    sample = []
    rows = audience(campaign).order_by("pk").values(*variables.RECIPIENT_FIELDS)
    for row in rows[: SAMPLE + len(suppressed_hashes)]:
        if suppression_hash(row["email"]) not in suppressed_hashes:
            sample.append(row)
        if len(sample) == SAMPLE:
            break
    return sample


def empty_variables(campaign: Campaign, *, reveal: bool) -> variables.EmptyReport:
    """The empty-variable report over a sample of the campaign's real recipients."""
    return variables.empty_variables(campaign, sample_recipients(campaign), reveal=reveal)


def send_check(campaign: Campaign, *, reveal: bool = False) -> SendCheck:
    """`reveal`: the viewer sees personal data (the empty-variable examples unmasked)."""
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

    sample = sample_recipients(campaign, suppressed_hashes)
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
        for row in sample[:1]
    ]
    report = variables.empty_variables(campaign, sample, reveal=reveal)

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
        sampled=report.sampled,
        sample_to=mask_email(sample[0]["email"]) if sample else "",
        sample_subject=subject,
        problem=problem,
        sender=sender,
        relays=relays,
        empty=report.empty,
    )


def _sender(campaign, workspace) -> str:
    address = campaign.from_email or workspace.sender_email
    shown = campaign.from_name or workspace.sender_name or workspace.name
    return f"{shown} <{address}>" if address else shown
