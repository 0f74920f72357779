"""The navigation: each section names the URL it opens and the permission it needs. A section
whose pages do not exist yet has no URL name and is not shown."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from mailmarketer.accounts import permissions as p


@dataclass(frozen=True)
class Section:
    label: str
    url_name: str
    permission: str


SECTIONS = [
    Section("Dashboard", "app-dashboard", p.WORKSPACE_VIEW),
    Section("Audience", "audience-home", p.AUDIENCE_VIEW),
    Section("Forms", "forms-home", p.FORMS_VIEW),
    Section("Leads", "leads-home", p.LEADS_VIEW),
    Section("Campaigns", "campaigns-home", p.CAMPAIGNS_VIEW),
    Section("Deliverability", "deliverability", p.CAMPAIGNS_VIEW),
    Section("Analytics", "analytics-home", p.ANALYTICS_VIEW),
    Section("Outbox", "outbox", p.OUTBOX_VIEW),
    Section("Settings", "settings-workspace", p.SETTINGS_VIEW),
]


def sections_for(membership, path: str = "") -> list[dict]:
    """The sections a member may open; the one holding `path` is marked current (the dashboard
    only on its own page, since every other page's URL starts with it)."""
    items = []
    for section in SECTIONS:
        if not membership.has(section.permission):
            continue
        try:
            url = reverse(section.url_name, kwargs={"ws": membership.workspace.slug})
        except NoReverseMatch:
            continue  # that part of the product has not been built yet
        current = path == url if section.url_name == "app-dashboard" else path.startswith(url)
        items.append(
            {"label": section.label, "url": url, "name": section.url_name, "current": current}
        )
    return items
