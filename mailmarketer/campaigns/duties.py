"""Worker duties of campaigns (lib/worker.py calls them in every round)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor

from .actions import launch_fields, launch_problems, store_links
from .models import Campaign

logger = logging.getLogger(__name__)

SCHEDULER = Actor.system("scheduler")


def start_scheduled_one() -> bool:
    """Start one scheduled campaign whose time has come; False when there is none.

    The claim is one conditional UPDATE (status still 'scheduled') that must change exactly one
    row, so with any number of workers each campaign starts once. A campaign that can no longer
    start (its workspace lost its postal address, its lists were deleted) goes back to draft with
    the reason, for staff to see."""
    due = (
        Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now())
        .order_by("scheduled_at", "id")
        .values_list("pk", flat=True)
        .first()
    )
    if due is None:
        return False
    with transaction.atomic():
        campaign = Campaign.objects.select_related("workspace").get(pk=due)
        try:
            compiled = launch_problems(campaign)
        except ActionError as exc:
            reason = f"could not start at the scheduled time: {exc}"[:500]
            claimed = Campaign.objects.filter(pk=due, status=Campaign.Status.SCHEDULED).update(
                status=Campaign.Status.DRAFT, status_reason=reason, scheduled_at=None
            )
            if claimed == 1:
                audit(
                    "campaign.schedule_failed",
                    actor=SCHEDULER,
                    workspace=campaign.workspace,
                    obj=campaign,
                    old={"status": Campaign.Status.SCHEDULED},
                    new={"status": Campaign.Status.DRAFT, "reason": reason},
                )
                logger.warning("campaign %s: %s", due, reason)
            return True
        fields = launch_fields(campaign)
        claimed = Campaign.objects.filter(pk=due, status=Campaign.Status.SCHEDULED).update(
            status=Campaign.Status.RUNNING, status_reason="", **fields
        )
        if claimed != 1:
            return True  # another worker got there first; there may be more due
        store_links(campaign, compiled.links)
        audit(
            "campaign.started",
            actor=SCHEDULER,
            workspace=campaign.workspace,
            obj=campaign,
            old={"status": Campaign.Status.SCHEDULED},
            new={"status": Campaign.Status.RUNNING, "audience_max_id": fields["audience_max_id"]},
        )
    logger.info("campaign %s started at its scheduled time", due)
    return True
