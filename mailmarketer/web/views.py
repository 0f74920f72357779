"""Shell pages: home redirect, workspace switcher, dashboard, health."""

from __future__ import annotations

from django.db import connection
from django.db.utils import DatabaseError
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import account_view, public_view, workspace_view
from mailmarketer.accounts.queries import get_membership, memberships_for_user

from . import queries


@account_view
def app_home(request):
    memberships = memberships_for_user(request.user)
    if not memberships:
        return render(request, "web/no_workspace.html")
    return redirect("app-dashboard", ws=memberships[0].workspace.slug)


@account_view
@require_GET
def app_switch(request):
    slug = request.GET.get("ws", "")
    if get_membership(request.user, slug) is None:
        raise Http404("No such workspace")
    return redirect("app-dashboard", ws=slug)


@workspace_view(p.WORKSPACE_VIEW)
@require_GET
def dashboard(request):
    """The marketer's dashboard (audience, campaigns, imports, the getting-started checklist),
    each part for the roles that may follow it, and the admin cards below."""
    membership = request.membership
    workspace = request.workspace
    raw_days = request.GET.get("days", "30")
    try:
        days = int(raw_days)
    except ValueError:
        days = 0
    if days not in queries.GROWTH_SPANS:
        spans = " or ".join(str(d) for d in queries.GROWTH_SPANS)
        return HttpResponseBadRequest(
            f"days must be {spans}, not {raw_days[:20]!r}", content_type="text/plain"
        )
    context = {"cards": queries.dashboard_cards(request), "days": days}
    steps = queries.getting_started(request)
    if not all(step.done for step in steps):
        context["steps"] = steps
        context["steps_done"] = sum(step.done for step in steps)
    if membership.has(p.AUDIENCE_VIEW):
        context["size"] = queries.audience_size(workspace)
        context["growth"] = queries.audience_growth(workspace, days)
        context["spans"] = queries.GROWTH_SPANS
    if membership.has(p.CAMPAIGNS_VIEW):
        context["campaigns"] = queries.campaign_overview(
            workspace, with_activity=membership.has(p.ANALYTICS_VIEW)
        )
    if membership.has(p.AUDIENCE_MANAGE):
        context["imports"] = queries.imports_in_progress(workspace)
    return render(request, "web/dashboard.html", context)


@public_view
@never_cache
@require_GET
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})


def _url(name, ws):
    return reverse(name, kwargs={"ws": ws})
