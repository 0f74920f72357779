"""Reads for the signup pages: what an unsubscribe link points at."""

from __future__ import annotations

from dataclasses import dataclass

from mailmarketer.audience.actions import suppression_for
from mailmarketer.audience.models import MailingList, Subscriber, Subscription
from mailmarketer.audience.tokens import UnsubscribeRequest
from mailmarketer.campaigns.models import Campaign


@dataclass
class UnsubscribeTarget:
    request: UnsubscribeRequest
    # None when the person is gone (erased or deleted since the message was sent): there is
    # nothing left to do, and the page must not say more than that.
    subscriber: Subscriber | None
    # The campaign's lists; None means every list (no campaign named, the campaign deleted
    # since, or a campaign sent to a segment without lists).
    lists: list[MailingList] | None

    @property
    def campaign_id(self) -> int | None:
        return self.request.campaign_id


def _campaign_lists(workspace_id: int, campaign_id: int) -> list[MailingList]:
    through = Campaign.lists.through.objects.filter(campaign_id=campaign_id)
    return list(
        MailingList.objects.filter(
            workspace_id=workspace_id, pk__in=through.values("mailinglist_id")
        ).order_by("name")
    )


def unsubscribe_target(request: UnsubscribeRequest) -> UnsubscribeTarget | None:
    """What a verified token points at, or None when it names a campaign of another workspace
    (a token we never make: treated as not valid)."""
    lists = None
    if request.campaign_id:
        owner = (
            Campaign.objects.filter(pk=request.campaign_id)
            .values_list("workspace_id", flat=True)
            .first()
        )
        if owner is not None and owner != request.workspace_id:
            return None
        if owner is not None:
            lists = _campaign_lists(request.workspace_id, request.campaign_id) or None
    subscriber = (
        Subscriber.objects.select_related("workspace")
        .filter(workspace_id=request.workspace_id, pk=request.subscriber_id)
        .first()
    )
    return UnsubscribeTarget(request, subscriber, lists)


def active_subscriptions(target: UnsubscribeTarget) -> list[Subscription]:
    """The person's memberships the link would end (not yet unsubscribed), by list name."""
    if target.subscriber is None:
        return []
    qs = (
        Subscription.objects.filter(subscriber=target.subscriber)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .select_related("mailing_list")
        .order_by("mailing_list__name")
    )
    if target.lists is not None:
        qs = qs.filter(mailing_list__in=target.lists)
    return list(qs)


def is_suppressed(target: UnsubscribeTarget) -> bool:
    if target.subscriber is None:
        return False
    return suppression_for(target.subscriber.workspace, target.subscriber.email) is not None
