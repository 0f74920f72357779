"""Staff pages of email tracking: a campaign's report (and a comparison with another
campaign), and a person's activity timeline (an htmx fragment on their page).

Permissions: the report needs analytics.view (analysts read it; it names nobody: counts, the
campaign's links and mail domains). The timeline needs audience.view; without
audience.view_personal_data its user agents and networks are masked, and an unmasked look is
audited ("subscriber.activity_viewed"), as the person's page is.
"""

from __future__ import annotations

import uuid

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import queries as audience_queries
from mailmarketer.campaigns import queries as campaign_queries

from . import queries

MASK = "•••"


def _campaign_or_404(request, campaign_id) -> object:
    campaign = campaign_queries.get_campaign(request.workspace, int(campaign_id))
    if campaign is None:
        raise Http404("No such campaign in this workspace")
    return campaign


@workspace_view(p.ANALYTICS_VIEW)
@require_GET
def campaign_report(request, campaign_id: int):
    campaign = _campaign_or_404(request, campaign_id)
    report = queries.campaign_report(campaign)
    other = None
    compare_id = (request.GET.get("compare") or "").strip()[:20]
    if compare_id.isdigit():
        found = campaign_queries.get_campaign(request.workspace, int(compare_id))
        if found is not None and found.pk != campaign.pk:
            other = queries.campaign_report(found)
    choices = (
        campaign_queries.campaigns_for(request.workspace)
        .filter(started_at__isnull=False)
        .exclude(pk=campaign.pk)
        .only("pk", "name")[:200]
    )
    return render(
        request,
        "tracking/campaign_report.html",
        {"campaign": campaign, "report": report, "other": other, "choices": choices},
    )


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def subscriber_activity(request, sid: str):
    try:
        key = uuid.UUID(sid)
    except ValueError:
        raise Http404("No such subscriber in this workspace") from None
    subscriber = audience_queries.get_subscriber(request.workspace, key)
    if subscriber is None:
        raise Http404("No such subscriber in this workspace")
    reveal = request.membership.has(p.VIEW_PERSONAL_DATA)
    entries = queries.timeline_of(subscriber)
    if not reveal:
        for entry in entries:
            entry.user_agent = MASK if entry.user_agent else ""
            entry.ip = MASK if entry.ip else ""
    response = render(
        request, "tracking/_activity.html", {"entries": entries, "masked": not reveal}
    )
    if reveal and entries:
        audit(
            "subscriber.activity_viewed",
            actor=Actor.from_request(request),
            workspace=request.workspace,
            obj=subscriber,
        )
    return response
