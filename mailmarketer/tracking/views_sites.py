"""The website pages under /app/<ws>/analytics/sites/: the list of sites (analytics.view), adding
and changing one (settings.manage), a site's page with its snippet, and its report
(analytics.view, views_report.py). Sites are looked up in request.workspace only."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor

from . import actions_web, queries_web
from .forms_web import SiteForm


def snippet_for(site) -> str:
    return f'<script defer src="{settings.BASE_URL}/t/mm.js" data-site="{site.key}"></script>'


def _save(request, form, site=None):
    if not form.is_valid():
        return None
    try:
        if site is None:
            return actions_web.do_create_site(
                request.workspace, actor=Actor.from_request(request), **form.cleaned_data
            )
        return actions_web.do_update_site(
            site, actor=Actor.from_request(request), **form.cleaned_data
        )
    except ActionError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return None


@workspace_view(p.ANALYTICS_VIEW)
def analytics_home(request):
    """The navigation's Analytics section: the websites, until other reports join them."""
    return redirect("sites", ws=request.workspace.slug)


@workspace_view(p.ANALYTICS_VIEW)
def sites(request):
    return render(
        request,
        "tracking/sites.html",
        {
            "sites": queries_web.sites_of(request.workspace),
            "can_manage": request.membership.has(p.SETTINGS_MANAGE),
        },
    )


@workspace_view(p.SETTINGS_MANAGE)
@require_http_methods(["GET", "POST"])
def site_create(request):
    form = SiteForm(request.POST or None)
    if request.method == "POST":
        site = _save(request, form)
        if site is not None:
            return redirect("site", ws=request.workspace.slug, site_id=site.pk)
    return render(
        request, "tracking/site_form.html", {"form": form}, status=400 if form.errors else 200
    )


@workspace_view(p.ANALYTICS_VIEW)
def site_detail(request, site_id: int):
    site = queries_web.get_site(request.workspace, site_id)
    if site is None:
        raise Http404("No such site")
    return render(
        request,
        "tracking/site.html",
        {
            "site": site,
            "snippet": snippet_for(site),
            "can_manage": request.membership.has(p.SETTINGS_MANAGE),
        },
    )


@workspace_view(p.SETTINGS_MANAGE)
@require_http_methods(["GET", "POST"])
def site_edit(request, site_id: int):
    site = queries_web.get_site(request.workspace, site_id)
    if site is None:
        raise Http404("No such site")
    initial = {f: getattr(site, f) for f in actions_web.FIELDS}
    form = SiteForm(request.POST or None, initial=initial)
    if request.method == "POST" and _save(request, form, site) is not None:
        queries_web.forget_sites()
        return redirect("site", ws=request.workspace.slug, site_id=site.pk)
    return render(
        request,
        "tracking/site_form.html",
        {"form": form, "site": site},
        status=400 if form.errors else 200,
    )
