"""/campaigns/{campaign_id}/report: a campaign's opens, clicks and delivery figures, the same
numbers as the report page (tracking.queries.campaign_report reads the roll-ups, never raw
events). Needs analytics.view; it names nobody (counts, the campaign's links, mail domains)."""

from __future__ import annotations

from datetime import datetime

from ninja import Router, Schema

from mailmarketer.accounts import permissions as p
from mailmarketer.tracking.queries import campaign_report

from .access import require
from .campaigns import campaign_or_404
from .errors import READ_ERRORS

router = Router(tags=["reports"])


class CampaignRef(Schema):
    id: int
    name: str


class Side(Schema):
    opens: int
    unique_opens: int
    clicks: int
    unique_clicks: int


class Point(Schema):
    at: datetime
    grain: str  # "hour" | "day"
    opens: int
    clicks: int
    machine_opens: int
    machine_clicks: int


class LinkFigures(Schema):
    id: int
    url: str
    clicks: int
    unique_clicks: int
    machine: int


class DomainFigures(Schema):
    domain: str
    unique_opens: int
    unique_clicks: int
    machine_opens: int
    machine_clicks: int


class ReportOut(Schema):
    campaign: CampaignRef
    delivered: int
    bounced: int
    unsubscribes: int
    human: Side
    machine: Side
    open_rate: float | None
    click_through_rate: float | None
    click_to_open_rate: float | None
    over_time: list[Point]
    links: list[LinkFigures]
    domains: list[DomainFigures]


@router.get(
    "/campaigns/{campaign_id}/report",
    response={200: ReportOut, **READ_ERRORS},
    summary="A campaign's report",
)
@require(p.ANALYTICS_VIEW)
def get_campaign_report(request, campaign_id: str):
    """Delivered, bounced, unsubscribes; opens and clicks (total and unique) of people and of
    machines (privacy proxies, image caches, link scanners) apart; rates from people's figures
    (percentages, null while the base is 0); over time (hourly for 48 hours, then daily), per
    link and by recipient domain."""
    data = campaign_report(campaign_or_404(request, campaign_id)).as_dict()
    data["over_time"] = [
        {
            "at": row["at"],
            "grain": row["grain"],
            "opens": row["Opens"],
            "clicks": row["Clicks"],
            "machine_opens": row["Machine opens"],
            "machine_clicks": row["Machine clicks"],
        }
        for row in data["over_time"]
    ]
    return data
