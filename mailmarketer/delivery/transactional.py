"""Transactional messages (`POST /api/v1/tx`): one message to one person, sent by the engine
like any campaign and recorded in the ledger like any message. The person is a subscriber, or an
address the customer names (a receipt, a password reset of the customer's own app), which gets
a subscriber record on no list and without consent when it has none.

The message is a campaign of kind transactional, created running with its single ledger row and
its planning done (there is no audience to plan); the engine marks it finished once sent.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.actions import (
    Suppressed,
    do_create_subscriber,
    do_open_reconsent,
    suppression_for,
)
from mailmarketer.audience.emails import InvalidEmail, normalise_email
from mailmarketer.audience.models import Subscriber, Suppression
from mailmarketer.audience.queries import subscriber_by_email
from mailmarketer.campaigns.actions import apply_fields, compile_checked, store_links
from mailmarketer.campaigns.models import Attachment, Campaign

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


def _address(address) -> str:
    if not isinstance(address, str):
        raise ActionError("to must be an email address", code="invalid_email", field="to")
    try:
        return normalise_email(address)
    except InvalidEmail as exc:
        raise ActionError(f"to: {exc}", code="invalid_email", field="to") from None


def _record_for(workspace, email: str, *, actor: Actor) -> Subscriber:
    """A subscriber record for someone a transactional message goes to by address: on no list,
    with no subscription and no consent record (a receipt or a password reset is not consent to
    marketing), its source saying why it exists, for staff to see. The ledger names every
    recipient by this record, and erasure and export find the person through it."""
    try:
        return do_create_subscriber(
            workspace, email=email, source=Subscriber.Source.TRANSACTIONAL, actor=actor
        )
    except Suppressed as exc:
        raise Conflict(f"the address is suppressed: {exc}", code="suppressed", field="to") from None


@transaction.atomic
def do_send_transactional(
    workspace,
    recipient: Subscriber | str,
    *,
    actor: Actor,
    confirmation: bool = False,
    attachments: list[tuple[str, str, bytes]] | None = None,
    **fields,
) -> Campaign:
    """One message to one person through the delivery engine: a campaign of kind transactional,
    created running with its single ledger row and its planning done (there is no audience to
    plan), which the engine sends like any other and marks finished.

    `recipient` is a subscriber, or an address (`to`): the subscriber with that address, or,
    when there is none, a new subscriber record on no list marked as made by transactional mail
    (no consent is implied or recorded, so no marketing campaign includes them unless they
    subscribe later).

    The content is compiled first, so a template that cannot render is refused (TemplateError,
    with its line) and nothing is created, the new record neither. Transactional mail reaches
    people who unsubscribed from marketing; a blocklisted person, and an address suppressed for
    a bounce, a complaint, erasure or by hand, are refused here as the engine would skip them at
    send time.

    `confirmation=True` (signup's double opt-in mail, and nothing else): the message asks the
    person to confirm a sign-up, and may go to an address suppressed as erased, which is how an
    erased person signs up again. The audience records it (do_open_reconsent) and the engine
    sends exactly this message to that address; the erasure stays until they confirm.

    `attachments` are (filename, content type, bytes) the system made for this one message (a
    webinar's .ics invitation), stored with it like a campaign's attachments; never a file
    someone uploaded (those go through campaigns.actions.do_add_attachment and its checks)."""
    unknown = set(fields) - set(TRANSACTIONAL_FIELDS)
    if unknown:
        raise ActionError(f"unknown message fields: {', '.join(sorted(unknown))}")
    if isinstance(recipient, Subscriber):
        subscriber, email = recipient, recipient.email
        if subscriber.workspace_id != workspace.pk:
            raise ActionError("the subscriber belongs to another workspace", code="not_found")
    else:
        email = _address(recipient)
        subscriber = subscriber_by_email(workspace, email)
    if subscriber is not None and subscriber.status == Subscriber.Status.BLOCKLISTED:
        raise Conflict("the subscriber is blocklisted: nothing is sent to them", code="blocklisted")
    suppression = suppression_for(workspace, email)
    reconsent = (
        confirmation
        and subscriber is not None
        and suppression is not None
        and suppression.reason == Suppression.Reason.ERASED
    )
    if suppression is not None and suppression.reason in TRANSACTIONAL_BLOCKING and not reconsent:
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
    if subscriber is None:
        subscriber = _record_for(workspace, email, actor=actor)
    stamp = now()
    campaign.status = Status.RUNNING
    campaign.started_at = stamp
    campaign.audience_max_id = subscriber.pk
    campaign.planned_up_to = subscriber.pk
    campaign.planning_done = True
    campaign.save()
    store_links(campaign, compiled.links)
    for filename, content_type, data in attachments or ():
        Attachment.objects.create(
            campaign=campaign,
            filename=filename,
            content_type=content_type,
            data=data,
            size=len(data),
        )
    Delivery.objects.create(workspace=workspace, campaign=campaign, subscriber=subscriber)
    if reconsent:
        do_open_reconsent(subscriber, campaign_id=campaign.pk, actor=actor)
    audit(
        "campaign.transactional_queued",
        actor=actor,
        workspace=workspace,
        obj=campaign,
        new={"subscriber": str(subscriber.uuid), "subject": campaign.subject},
    )
    return campaign
