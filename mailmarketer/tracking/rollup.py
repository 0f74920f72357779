"""Website roll-ups: one site's hits of one UTC day folded into counts (models_web.WebRollup),
which every website report reads; reports never scan hits.

A day is rebuilt whole (its rows deleted and written again in one transaction), so a rebuild is
idempotent and late hits (a log imported next week, a spool replayed after an outage) simply
mark their day due again (RollupDue). Today is rebuilt at most once a minute
(TRACKING_ROLLUP_DELAY), however many hits arrive.

What is counted:
- "total": hits, page views, visitors (distinct daily hashes), visits, bounces (visits of one
  page view), and the visits' summed duration; per day, and per hour for the charts.
- per value of each dimension, per day: page (page views), entry and exit (visits), outbound,
  download and event (hits), referrer, refclass, utm_source/medium/campaign (visits, by how the
  visit arrived), browser, os and device (page views), each with distinct visitors.
A visit is a visitor's run of hits with no gap over 30 minutes, within the day. Visitors over a
range are the sum of the days' visitors: with a salt that changes daily, no one (us included)
can tell that two days' visitors are the same person, which is the point.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from django.conf import settings
from django.db import transaction
from django.utils.timezone import now

from .models_web import (
    VALUE_MAX,
    HitKind,
    Period,
    RollupDue,
    WebHit,
    WebRollup,
)

VISIT_GAP = timedelta(minutes=30)
DIMENSIONS = (
    "page", "entry", "exit", "outbound", "download", "event", "referrer", "refclass",
    "utm_source", "utm_medium", "utm_campaign", "browser", "os", "device",
)  # fmt: skip
FIELDS = (
    "at", "kind", "path", "referrer_host", "referrer_class", "utm_source", "utm_medium",
    "utm_campaign", "target", "name", "browser", "browser_version", "os", "os_version",
    "device", "visitor", "status",
)  # fmt: skip


class _Count:
    __slots__ = ("bounces", "duration", "hits", "pageviews", "visitors", "visits")

    def __init__(self):
        self.hits = self.pageviews = self.visits = self.bounces = self.duration = 0
        self.visitors: set[str] = set()


class _Visit:
    __slots__ = ("entry", "exit", "first", "last", "pageviews", "source")

    def __init__(self, at, source):
        self.first = self.last = at
        self.pageviews = 0
        self.entry = self.exit = None
        self.source = source  # (referrer host, class, utm source, medium, campaign)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, dtime.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def rebuild_day(site, day: date) -> None:
    """Rebuilds one site's roll-ups of one UTC day from its hits."""
    start, end = day_bounds(day)
    total = _Count()
    hours: dict[datetime, _Count] = defaultdict(_Count)
    dims: dict[str, dict[str, _Count]] = {d: defaultdict(_Count) for d in DIMENSIONS}
    open_visits: dict[str, _Visit] = {}

    def close(visitor: str, visit: _Visit) -> None:
        total.visits += 1
        hours[visit.first.replace(minute=0, second=0, microsecond=0)].visits += 1
        seconds = int((visit.last - visit.first).total_seconds())
        total.duration += seconds
        bounced = visit.pageviews <= 1
        total.bounces += bounced
        host, ref_class, utm_source, utm_medium, utm_campaign = visit.source
        for dim, value in (
            ("entry", visit.entry),
            ("referrer", host if ref_class not in ("direct", "internal") else None),
            ("refclass", ref_class),
            ("utm_source", utm_source),
            ("utm_medium", utm_medium),
            ("utm_campaign", utm_campaign),
        ):
            if value:
                count = dims[dim][value]
                count.visits += 1
                count.bounces += bounced
                count.duration += seconds
                count.visitors.add(visitor)
        if visit.exit:
            dims["exit"][visit.exit].visits += 1
            dims["exit"][visit.exit].visitors.add(visitor)

    hits = (
        WebHit.objects.filter(site_id=site.pk, at__gte=start, at__lt=end)
        .order_by("at", "id")
        .values_list(*FIELDS)
        .iterator(chunk_size=5000)
    )
    for (at, kind, path, ref_host, ref_class, utm_s, utm_m, utm_c, target, name, browser,
         browser_v, os_name, os_v, device, visitor, status) in hits:  # fmt: skip
        hour = hours[at.replace(minute=0, second=0, microsecond=0)]
        total.hits += 1
        hour.hits += 1
        total.visitors.add(visitor)
        hour.visitors.add(visitor)
        visit = open_visits.get(visitor)
        if visit is not None and at - visit.last > VISIT_GAP:
            close(visitor, visit)
            visit = None
        if visit is None:
            visit = open_visits[visitor] = _Visit(at, (ref_host, ref_class, utm_s, utm_m, utm_c))
        visit.last = at
        if kind == HitKind.PAGEVIEW:
            if status is not None and status >= 400:
                continue  # a 404 from a log is a hit, not a page view
            total.pageviews += 1
            hour.pageviews += 1
            visit.pageviews += 1
            visit.entry = visit.entry or path
            visit.exit = path
            for dim, value in (
                ("page", path),
                ("browser", f"{browser} {browser_v}".strip()),
                ("os", f"{os_name} {os_v}".strip()),
                ("device", device),
            ):
                if value:
                    count = dims[dim][value]
                    count.hits += 1
                    count.pageviews += 1
                    count.visitors.add(visitor)
        else:
            dim = {"outbound": "outbound", "download": "download", "event": "event"}[kind]
            value = name if kind == HitKind.EVENT else target
            if value:
                count = dims[dim][value]
                count.hits += 1
                count.visitors.add(visitor)
    for visitor, visit in open_visits.items():
        close(visitor, visit)

    def row(period, at, dimension, value, count: _Count) -> WebRollup:
        return WebRollup(
            workspace_id=site.workspace_id,
            site_id=site.pk,
            period=period,
            start=at,
            dimension=dimension,
            value=value[:VALUE_MAX],
            hits=count.hits,
            pageviews=count.pageviews,
            visitors=len(count.visitors),
            visits=count.visits,
            bounces=count.bounces,
            duration=count.duration,
        )

    rows = []
    if total.hits:
        rows.append(row(Period.DAY, start, "total", "", total))
        rows += [row(Period.HOUR, at, "total", "", c) for at, c in sorted(hours.items())]
        for dimension, values in dims.items():
            rows += [row(Period.DAY, start, dimension, v, c) for v, c in values.items()]
    with transaction.atomic():
        WebRollup.objects.filter(site_id=site.pk, start__gte=start, start__lt=end).delete()
        WebRollup.objects.bulk_create(rows, batch_size=1000)


def rollup_one() -> bool:
    """Rebuilds one due (site, day), the oldest first; True when there was one. A day that
    had hits in the last TRACKING_ROLLUP_DELAY seconds waits, so a busy day is rebuilt once
    a minute rather than after every hit."""
    ready = now() - timedelta(seconds=settings.TRACKING_ROLLUP_DELAY)
    with transaction.atomic():
        due = (
            RollupDue.objects.select_for_update(skip_locked=True)
            .filter(marked_at__lte=ready)
            .select_related("site")
            .order_by("day", "id")
            .first()
        )
        if due is None:
            return False
        RollupDue.objects.filter(pk=due.pk).delete()
        rebuild_day(due.site, due.day)
    return True
