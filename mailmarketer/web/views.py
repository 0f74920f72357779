"""Shell pages: home redirect, workspace switcher, dashboard, health."""

from __future__ import annotations

from django.db import connection
from django.db.utils import DatabaseError
from django.http import Http404, JsonResponse
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
def dashboard(request):
    return render(request, "web/dashboard.html", {"cards": queries.dashboard_cards(request)})


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
