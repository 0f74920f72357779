"""Transactional messages (`POST /api/v1/tx`): one message to one person, sent by the engine
like any campaign and recorded in the ledger like any message.

The message is a campaign of kind transactional, created running with its single ledger row and
its planning done (there is no audience to plan); the engine marks it finished once sent.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.actions import suppression_for
from mailmarketer.audience.emails import InvalidEmail, normalise_email
from mailmarketer.audience.models import Subscriber
from mailmarketer.campaigns.actions import apply_fields, compile_checked, store_links
from mailmarketer.campaigns.models import Campaign

from .engine import TRANSACTIONAL_BLOCKING
from .models import Delivery

Status = Campaign.Status


TRANSACTIONAL_FIELDS = (
    "data",
    "subject",
    "body_format",
    "body",
    "text_body",
    "from_name",
    "from_email",
    "reply_to",
    "layout",
)


def find_recipient(workspace, address: str) -> Subscriber:
    """The subscriber with this address, for a transactional message. A message goes only to
    someone who is a subscriber already: the ledger names its recipient, and nothing is added
    to the audience behind the staff's back (add the person first, with no lists)."""
    try:
        email = normalise_email(address)
    except InvalidEmail as exc:
        raise ActionError(f"to: {exc}", code="invalid_email", field="to") from None
    person = Subscriber.objects.filter(workspace=workspace, email=email).first()
    if person is None:
        raise ActionError(
            f"to: {email} is not a subscriber of this workspace; add the person first (no lists "
            "needed), then send",
            code="not_a_subscriber",
            field="to",
        )
    return person


@transaction.atomic
def do_send_transactional(workspace, subscriber: Subscriber, *, actor: Actor, **fields) -> Campaign:
    """One message to one subscriber through the delivery engine: a campaign of kind
    transactional, created running with its single ledger row and its planning done (there is
    no audience to plan), which the engine sends like any other and marks finished.

    The content is compiled first, so a template that cannot render is refused (TemplateError,
    with its line) and nothing is created. Transactional mail reaches people who unsubscribed
    from marketing; a blocklisted person, and an address suppressed for a bounce, a complaint,
    erasure or by hand, are refused here as the engine would skip them at send time."""
    unknown = set(fields) - set(TRANSACTIONAL_FIELDS)
    if unknown:
        raise ActionError(f"unknown message fields: {', '.join(sorted(unknown))}")
    if subscriber.workspace_id != workspace.pk:
        raise ActionError("the subscriber belongs to another workspace", code="not_found")
    if subscriber.status == Subscriber.Status.BLOCKLISTED:
        raise Conflict("the subscriber is blocklisted: nothing is sent to them", code="blocklisted")
    suppression = suppression_for(workspace, subscriber.email)
    if suppression is not None and suppression.reason in TRANSACTIONAL_BLOCKING:
        raise Conflict(
            f"the address is suppressed ({suppression.get_reason_display().lower()}): nothing is "
            "sent to it",
            code="suppressed",
        )
    campaign = Campaign(
        workspace=workspace, kind=Campaign.Kind.TRANSACTIONAL, created_by=actor.user
    )
    apply_fields(
        campaign, {"name": str(fields.get("subject") or "")[:200] or "Transactional", **fields}
    )
    if not campaign.subject.strip():
        raise ActionError("subject is required", code="required", field="subject")
    if not (campaign.from_email or workspace.sender_email):
        raise ActionError(
            "from_email: give a from address, or set the workspace's sender address",
            code="from_required",
        )
    compiled = compile_checked(campaign)
    stamp = now()
    campaign.status = Status.RUNNING
    campaign.started_at = stamp
    campaign.audience_max_id = subscriber.pk
    campaign.planned_up_to = subscriber.pk
    campaign.planning_done = True
    campaign.save()
    store_links(campaign, compiled.links)
    Delivery.objects.create(workspace=workspace, campaign=campaign, subscriber=subscriber)
    audit(
        "campaign.transactional_queued",
        actor=actor,
        workspace=workspace,
        obj=campaign,
        new={"subscriber": str(subscriber.uuid), "subject": campaign.subject},
    )
    return campaign
