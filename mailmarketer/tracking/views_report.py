"""The website report (analytics.view): figures over a date range next to the range before it,
visitors and page views over time, and the top values of each dimension. Reads roll-ups only
(queries_web), never hits. Everything captured from outside (paths, referrers, titles, user
agents, event names) reaches the page through Django's autoescaping, and nothing of it is put in
an attribute that runs code."""

from __future__ import annotations

from datetime import date, timedelta

from django.http import Http404
from django.shortcuts import render
from django.utils.timezone import now

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view

from . import queries_web

MAX_DAYS = 366


def date_range(params) -> tuple[date, date, str]:
    """(first, last, error) from ?from=YYYY-MM-DD&to=YYYY-MM-DD; the last 30 days by default,
    and on any error (named in the message), never more than MAX_DAYS."""
    today = now().date()
    default = (today - timedelta(days=29), today)
    raw_from, raw_to = params.get("from", ""), params.get("to", "")
    if not raw_from and not raw_to:
        return *default, ""
    try:
        first = date.fromisoformat(raw_from[:10]) if raw_from else default[0]
        last = date.fromisoformat(raw_to[:10]) if raw_to else today
    except ValueError:
        return *default, "from/to: use dates written YYYY-MM-DD; showing the last 30 days."
    if first > last:
        return *default, "from: must not be after to; showing the last 30 days."
    if (last - first).days >= MAX_DAYS:
        return last - timedelta(days=MAX_DAYS - 1), last, f"At most {MAX_DAYS} days at once."
    return first, last, ""


def report_data(site, first, last) -> dict:
    return {
        "totals": queries_web.site_totals(site, first, last),
        "series": queries_web.site_series(site, first, last),
        "tops": [
            {
                "dimension": dimension,
                "label": queries_web.DIMENSION_LABELS[dimension],
                "rank": queries_web.RANK_BY[dimension],
                "rows": queries_web.site_top(site, first, last, dimension, limit=10),
            }
            for dimension in queries_web.RANK_BY
        ],
    }


@workspace_view(p.ANALYTICS_VIEW)
def site_report(request, site_id: int):
    site = queries_web.get_site(request.workspace, site_id)
    if site is None:
        raise Http404("No such site")
    first, last, error = date_range(request.GET)
    data = report_data(site, first, last)
    current, previous, change = (data["totals"][k] for k in ("current", "previous", "change"))
    figures = [
        (label, current[key], previous[key], change[key], unit)
        for label, key, unit in (
            ("Visitors", "visitors", ""),
            ("Page views", "pageviews", ""),
            ("Visits", "visits", ""),
            ("Bounce rate", "bounce_rate", "%"),
            ("Visit duration", "visit_duration", "s"),
        )
    ]
    return render(
        request,
        "tracking/report.html",
        {"site": site, "first": first, "last": last, "error": error, "figures": figures, **data},
    )
