"""The website report (placeholder until the roll-up reader lands)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view

from . import queries_web


@workspace_view(p.ANALYTICS_VIEW)
def site_report(request, site_id: int):
    site = queries_web.get_site(request.workspace, site_id)
    if site is None:
        raise Http404("No such site")
    return render(request, "tracking/site.html", {"site": site})
