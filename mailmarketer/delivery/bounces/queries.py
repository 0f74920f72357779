"""Reads of bounce processing: pages of a workspace's reports (keyset, newest first)."""

from __future__ import annotations

from .models import Bounce

PAGE = 50


def bounces_page(
    workspace,
    *,
    kind=None,
    outcome=None,
    outcomes=(),
    channel=None,
    campaign_id=None,
    before: int | None = None,
    size: int = PAGE,
):
    """(rows, the id to pass as `before` for the next page, or None)."""
    rows = (
        Bounce.objects.filter(workspace=workspace)
        .select_related("subscriber", "campaign", "delivery")
        .defer("raw")
    )
    if kind:
        rows = rows.filter(kind=kind)
    if outcome:
        rows = rows.filter(outcome=outcome)
    if outcomes:
        rows = rows.filter(outcome__in=list(outcomes))
    if channel:
        rows = rows.filter(channel=channel)
    if campaign_id:
        rows = rows.filter(campaign_id=campaign_id)
    if before is not None:
        rows = rows.filter(pk__lt=before)
    page = list(rows.order_by("-pk")[: size + 1])
    more = len(page) > size
    page = page[:size]
    return page, (page[-1].pk if more and page else None)


def bounce_for(workspace, bounce_id: int) -> Bounce | None:
    return (
        Bounce.objects.filter(workspace=workspace, pk=bounce_id)
        .select_related("subscriber", "campaign", "delivery")
        .first()
    )
