"""The scheduler: the worker duty that starts scheduled campaigns (lib/worker.py calls it in
every round)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils.timezone import now

from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor
from mailmarketer.campaigns.actions import store_links
from mailmarketer.campaigns.models import Campaign

from .campaign_actions import launch_fields, launch_problems
from .status import set_campaign_status

logger = logging.getLogger(__name__)

SCHEDULER = Actor.system("scheduler")


def start_scheduled_one() -> bool:
    """Start one scheduled campaign whose time has come; False when there is none.

    The claim is status.set_campaign_status's conditional UPDATE (status still 'scheduled'),
    which must change exactly one row, so with any number of workers each campaign starts once.
    A campaign that can no longer start (its workspace lost its postal address, its lists were
    deleted) goes back to draft with the reason, for staff to see."""
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
        if campaign.status != Campaign.Status.SCHEDULED:
            return True  # another worker got there first; there may be more due
        try:
            compiled = launch_problems(campaign)
        except ActionError as exc:
            reason = f"could not start at the scheduled time: {exc}"
            if set_campaign_status(
                campaign,
                Campaign.Status.DRAFT,
                actor=SCHEDULER,
                reason=reason,
                event="campaign.schedule_failed",
                fields={"scheduled_at": None},
            ):
                logger.warning("campaign %s: %s", due, campaign.status_reason)
            return True
        fields = launch_fields(campaign)
        if not set_campaign_status(
            campaign,
            Campaign.Status.RUNNING,
            actor=SCHEDULER,
            event="campaign.started",
            fields=fields,
            audit_new={"audience_max_id": fields["audience_max_id"]},
        ):
            return True  # another worker got there first; there may be more due
        store_links(campaign, compiled.links)
    logger.info("campaign %s started at its scheduled time", due)
    return True
