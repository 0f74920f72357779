"""The worker's website duties (registered in apps.py), each `<verb>_one() -> bool`:

- rollup.rollup_one: rebuild one due (site, day) of roll-ups;
- spool.replay_spool_one: replay a spool file of hits the database refused;
- destroy_old_salts_one: delete the visitor-hash salts of past days (after which a stored hash
  can no longer be tied to an address and browser by anyone);
- truncate_ips_one: cut whole IP addresses to /24 and /48 once their site's ip_days are over
  (at once for a site no longer set to keep them);
- delete_old_hits_one: delete raw hits past their site's retention (roll-ups stay); on
  PostgreSQL, a month partition older than every site's retention is dropped whole instead;
- make_partitions_one: on PostgreSQL, make the month partitions ahead (partitions.py).
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta

from django.db import transaction
from django.utils.timezone import now

from . import partitions, web
from .models_web import IpMode, Site, VisitorSalt, WebHit

BATCH = 5000
# The housekeeping duties look for work at most this often per worker process: each look costs
# queries, and nothing they do is urgent to the minute (a day's salt, an IP's last hours).
HOUSEKEEPING_SECONDS = 300
_last: dict[str, float] = {}


def _due(name: str) -> bool:
    moment = time.monotonic()
    if moment - _last.get(name, -HOUSEKEEPING_SECONDS) < HOUSEKEEPING_SECONDS:
        return False
    _last[name] = moment
    return True


def _housekeeping(duty):
    """Runs `duty` when it last found nothing HOUSEKEEPING_SECONDS ago or more; a duty that
    finds work runs again next round, until it is done."""

    @functools.wraps(duty)
    def wrapped() -> bool:
        if not _due(duty.__name__):
            return False
        found = duty()
        if found:
            _last.pop(duty.__name__, None)
        return found

    wrapped.unthrottled = duty
    return wrapped


@_housekeeping
def destroy_old_salts_one() -> bool:
    deleted, _ = VisitorSalt.objects.filter(day__lt=now().date()).delete()
    return bool(deleted)


@_housekeeping
def truncate_ips_one() -> bool:
    moment = now()
    policies = {
        pk: timedelta(days=days) if mode == IpMode.KEEP else timedelta(0)
        for pk, mode, days in Site.objects.values_list("pk", "ip_mode", "ip_days")
    }
    oldest_allowed = moment - min(policies.values(), default=timedelta(0))
    batch = list(
        WebHit.objects.filter(ip_whole=True, at__lt=oldest_allowed)
        .order_by("at")
        .values_list("pk", "site_id", "at", "ip")[:BATCH]
    )
    due = [
        (pk, ip)
        for pk, site_id, at, ip in batch
        if at < moment - policies.get(site_id, timedelta(0))
    ]
    if not due:
        return False
    with transaction.atomic():
        for pk, ip in due:
            WebHit.objects.filter(pk=pk).update(ip=web.truncate_ip(ip), ip_whole=False)
    return True


@_housekeeping
def delete_old_hits_one() -> bool:
    moment = now()
    found = False
    if partitions.enabled():
        longest = max(Site.objects.values_list("retention_days", flat=True), default=None)
        if longest is not None:
            found |= partitions.drop_older_than(moment - timedelta(days=longest))
    for pk, days in Site.objects.values_list("pk", "retention_days"):
        old = list(
            WebHit.objects.filter(site_id=pk, at__lt=moment - timedelta(days=days)).values_list(
                "pk", flat=True
            )[:BATCH]
        )
        if old:
            WebHit.objects.filter(pk__in=old).delete()
            found = True
    return found


@_housekeeping
def make_partitions_one() -> bool:
    return partitions.make_ahead() if partitions.enabled() else False
