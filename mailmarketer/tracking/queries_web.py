"""Reads of website tracking: a site by its public key (cached briefly per process, as every
hit asks), a person's tracking consent, and the website reports, which read roll-ups only."""

from __future__ import annotations

import time

from django.db import DatabaseError

from mailmarketer.audience.models import ConsentRecord

from .models_web import Site

SITE_CACHE_SECONDS = 30
_sites: dict[str, tuple[float, Site | None]] = {}


def site_by_key(key: str) -> Site | None:
    """The site whose snippet names `key`; an edit (new origins) is seen within 30 seconds."""
    if not key:
        return None
    cached = _sites.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    try:
        site = Site.objects.filter(key=key).first()
    except DatabaseError:
        if cached is not None:
            return cached[1]  # the database is down: what was known a moment ago will do
        raise
    if len(_sites) > 10000:
        _sites.clear()  # bounded: a stream of made-up keys cannot grow it forever
        _origins.clear()
    _sites[key] = (time.monotonic() + SITE_CACHE_SECONDS, site)
    if site is not None:
        _origins[site.pk] = frozenset(site.origin_list())
    return site


_origins: dict[int, frozenset[str]] = {}


def allowed_origins(site: Site) -> frozenset[str]:
    """The origins the site's snippet may post from, as site_by_key last read them (parsed
    once per read, not once per hit)."""
    origins = _origins.get(site.pk)
    if origins is None:
        origins = _origins[site.pk] = frozenset(site.origin_list())
    return origins


def forget_sites() -> None:
    _sites.clear()
    _origins.clear()


def tracking_consent(workspace_id: int, subscriber_id: int) -> bool:
    """Whether the person's last word on activity tracking is a grant (or its confirmation).
    When the database cannot say, the answer is no: the hit is kept, anonymous."""
    try:
        return _tracking_consent(workspace_id, subscriber_id)
    except DatabaseError:
        return False


def _tracking_consent(workspace_id: int, subscriber_id: int) -> bool:
    last = (
        ConsentRecord.objects.filter(
            workspace_id=workspace_id, subscriber_id=subscriber_id, purpose="tracking"
        )
        .order_by("-at", "-id")
        .values_list("action", flat=True)
        .first()
    )
    return last in (ConsentRecord.Action.GRANT, ConsentRecord.Action.CONFIRM)


def sites_of(workspace) -> list[Site]:
    return list(Site.objects.filter(workspace=workspace))


def get_site(workspace, site_id: int) -> Site | None:
    return Site.objects.filter(workspace=workspace, pk=site_id).first()


# -- the website report: roll-ups only ----------------------------------------------------------

# What each dimension is ranked by: page views for pages and technology, visits for how people
# arrived and left, hits for clicks and events.
RANK_BY = {
    "page": "pageviews",
    "entry": "visits",
    "exit": "visits",
    "outbound": "hits",
    "download": "hits",
    "event": "hits",
    "referrer": "visits",
    "refclass": "visits",
    "utm_source": "visits",
    "utm_medium": "visits",
    "utm_campaign": "visits",
    "browser": "pageviews",
    "os": "pageviews",
    "device": "pageviews",
}
DIMENSION_LABELS = {
    "page": "Top pages",
    "entry": "Entry pages",
    "exit": "Exit pages",
    "outbound": "Outbound links",
    "download": "Downloads",
    "event": "Custom events",
    "referrer": "Referrers",
    "refclass": "Referrer classes",
    "utm_source": "UTM sources",
    "utm_medium": "UTM media",
    "utm_campaign": "UTM campaigns",
    "browser": "Browsers",
    "os": "Operating systems",
    "device": "Devices",
}
METRICS = ("hits", "pageviews", "visitors", "visits", "bounces", "duration")


def _bounds(first, last):
    from datetime import UTC, datetime, time, timedelta

    start = datetime.combine(first, time.min, tzinfo=UTC)
    return start, datetime.combine(last, time.min, tzinfo=UTC) + timedelta(days=1)


def _totals(site, first, last) -> dict:
    from django.db.models import Sum

    from .models_web import WebRollup

    start, end = _bounds(first, last)
    sums = WebRollup.objects.filter(
        site=site, period="day", dimension="total", value="", start__gte=start, start__lt=end
    ).aggregate(**{m: Sum(m) for m in METRICS})
    sums = {m: sums[m] or 0 for m in METRICS}
    visits = sums["visits"]
    sums["bounce_rate"] = round(100 * sums["bounces"] / visits, 1) if visits else None
    sums["visit_duration"] = round(sums["duration"] / visits) if visits else None
    return sums


def site_totals(site, first, last) -> dict:
    """The range's figures and the same-length range before it, with the change in percent."""
    length = last - first
    from datetime import timedelta

    previous = _totals(site, first - length - timedelta(days=1), first - timedelta(days=1))
    current = _totals(site, first, last)
    change = {}
    for key, value in current.items():
        before = previous.get(key)
        change[key] = (
            round(100 * (value - before) / before, 1) if value is not None and before else None
        )
    return {"current": current, "previous": previous, "change": change}


def site_series(site, first, last) -> list[dict]:
    """Per hour for a range of up to two days, per day otherwise."""
    from .models_web import WebRollup

    start, end = _bounds(first, last)
    period = "hour" if (last - first).days < 2 else "day"
    rows = WebRollup.objects.filter(
        site=site, period=period, dimension="total", value="", start__gte=start, start__lt=end
    ).order_by("start")
    return [
        {"start": r.start, "period": period, "visitors": r.visitors, "pageviews": r.pageviews,
         "visits": r.visits}
        for r in rows
    ]  # fmt: skip


def site_top(site, first, last, dimension: str, limit: int = 20) -> list[dict]:
    from django.db.models import Sum

    from .models_web import WebRollup

    if dimension not in RANK_BY:
        raise ValueError(f"unknown dimension {dimension!r}")
    start, end = _bounds(first, last)
    rank = RANK_BY[dimension]
    rows = (
        WebRollup.objects.filter(
            site=site, period="day", dimension=dimension, start__gte=start, start__lt=end
        )
        .values("value")
        .annotate(**{m: Sum(m) for m in METRICS})
        .order_by(f"-{rank}", "value")[:limit]
    )
    found = []
    for row in rows:
        visits = row["visits"]
        row["bounce_rate"] = round(100 * row["bounces"] / visits, 1) if visits else None
        found.append(row)
    return found
