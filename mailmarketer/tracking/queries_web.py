"""Reads of website tracking: a site by its public key (cached briefly per process, as every
hit asks), a person's tracking consent, and the website reports, which read roll-ups only."""

from __future__ import annotations

import time

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
    site = Site.objects.filter(key=key).first()
    if len(_sites) > 10000:
        _sites.clear()  # bounded: a stream of made-up keys cannot grow it forever
    _sites[key] = (time.monotonic() + SITE_CACHE_SECONDS, site)
    return site


def forget_sites() -> None:
    _sites.clear()


def tracking_consent(workspace_id: int, subscriber_id: int) -> bool:
    """Whether the person's last word on activity tracking is a grant (or its confirmation)."""
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
