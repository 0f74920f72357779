"""/sites: the workspace's websites and their statistics, thin over tracking (analytics.view).

`/sites/{id}/stats?from&to&dimension` reads roll-ups only: without `dimension` it answers the
range's figures next to the previous range and the series over time; with one it answers the
top values of that dimension (pages, referrers, browsers, ...).
"""

from __future__ import annotations

from datetime import date, datetime

from django.http import Http404
from ninja import Query, Router, Schema
from pydantic import Field

from mailmarketer.accounts import permissions as p
from mailmarketer.tracking import queries_web
from mailmarketer.tracking.views_report import MAX_DAYS
from mailmarketer.tracking.views_sites import snippet_for

from .access import require
from .errors import ApiError
from .schemas import Error

router = Router(tags=["websites"])

READ_ERRORS = {401: Error, 403: Error, 429: Error}
ONE_ERRORS = {**READ_ERRORS, 404: Error, 422: Error}


class SiteOut(Schema):
    id: int
    name: str
    domain: str
    key: str = Field(description="The snippet's data-site")
    origins: list[str]
    ip_mode: str
    ip_days: int
    retention_days: int
    snippet: str
    created_at: datetime


class SitesOut(Schema):
    sites: list[SiteOut]


class Figures(Schema):
    hits: int
    pageviews: int
    visitors: int = Field(description="Sum of each day's distinct visitors")
    visits: int
    bounces: int
    duration: int = Field(description="Seconds, summed over visits")
    bounce_rate: float | None = Field(description="Percent of visits with one page view")
    visit_duration: int | None = Field(description="Mean seconds per visit")


class Point(Schema):
    start: datetime
    period: str
    visitors: int
    pageviews: int
    visits: int


class TopRow(Schema):
    value: str
    hits: int
    pageviews: int
    visitors: int
    visits: int
    bounces: int
    duration: int
    bounce_rate: float | None


class StatsOut(Schema):
    site: int
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    current: Figures | None = None
    previous: Figures | None = None
    series: list[Point] | None = None
    dimension: str | None = None
    top: list[TopRow] | None = None


class StatsQuery(Schema):
    date_from: date | None = Field(None, alias="from")
    date_to: date | None = Field(None, alias="to")
    dimension: str | None = Field(None, description=", ".join(queries_web.RANK_BY))
    limit: int = Field(20, ge=1, le=100)


def site_out(site) -> dict:
    return {
        "id": site.pk,
        "name": site.name,
        "domain": site.domain,
        "key": site.key,
        "origins": site.origin_list(),
        "ip_mode": site.ip_mode,
        "ip_days": site.ip_days,
        "retention_days": site.retention_days,
        "snippet": snippet_for(site),
        "created_at": site.created_at,
    }


@router.get("/sites", response={200: SitesOut, **READ_ERRORS}, summary="Websites")
@require(p.ANALYTICS_VIEW)
def all_sites(request):
    return {"sites": [site_out(s) for s in queries_web.sites_of(request.workspace)]}


@router.get(
    "/sites/{site_id}/stats",
    response={200: StatsOut, **ONE_ERRORS},
    summary="A website's statistics",
    by_alias=True,
)
@require(p.ANALYTICS_VIEW)
def site_stats(request, site_id: int, query: Query[StatsQuery]):
    """From roll-ups. Default range: the last 30 days; at most 366 days."""
    from datetime import timedelta

    from django.utils.timezone import now

    site = queries_web.get_site(request.workspace, site_id)
    if site is None:
        raise Http404("no such site in this workspace")
    last = query.date_to or now().date()
    first = query.date_from or last - timedelta(days=29)
    if first > last:
        raise ApiError(422, "from: must not be after to")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(422, f"from, to: at most {MAX_DAYS} days at once")
    out: dict = {"site": site.pk, "from": first, "to": last}
    if query.dimension:
        if query.dimension not in queries_web.RANK_BY:
            raise ApiError(
                422, f"dimension: one of {', '.join(queries_web.RANK_BY)}", code="invalid"
            )
        out["dimension"] = query.dimension
        out["top"] = queries_web.site_top(site, first, last, query.dimension, query.limit)
    else:
        totals = queries_web.site_totals(site, first, last)
        out["current"], out["previous"] = totals["current"], totals["previous"]
        out["series"] = queries_web.site_series(site, first, last)
    return out
