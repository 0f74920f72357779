"""Audience pages: the suppression list. It holds hashes, never addresses: the page shows the
start of each hash, the reason, the note and the date; staff add an address by hand (only its
hash is stored), check whether an address is suppressed, and remove an entry after confirming.

Checking an address tells something about a person, so it needs audience.view_personal_data
itself. For the same reason roles without it see neither the start of each hash (anyone can hash
an address they know and compare) nor the notes (written by staff, they may name someone).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor

from . import actions, queries
from .forms import SuppressionAddForm, SuppressionCheckForm
from .models import Suppression
from .views_lists import audience_subnav, sees_personal_data, status_for

PAGE_SIZE = 50
HASH_SHOWN = 12  # characters of the hash: enough to tell entries apart


def _suppression_page(
    request, *, add_form=None, check_form=None, check_result=None, error="", status=200
):
    membership = request.membership
    can_manage = membership.has(p.AUDIENCE_MANAGE)
    can_check = membership.has(p.VIEW_PERSONAL_DATA)
    raw = request.GET.get("before", "")
    before = None
    if raw != "":
        if raw.isdigit() and int(raw) > 0:
            before = int(raw)
        else:
            error = "The page link is broken: “before” must be a whole number."
            status = 400
    page, cursor = queries.suppressions_page(request.workspace, before_id=before, limit=PAGE_SIZE)
    context = {
        "subnav": audience_subnav(request, "suppression"),
        "rows": [
            {
                "s": s,
                "hash": s.email_hash[:HASH_SHOWN] if can_check else "",
                "note": s.note if can_check else "",
            }
            for s in page
        ],
        "notes_hidden": not can_check,
        "can_manage": can_manage,
        "can_check": can_check,
        "add_form": (add_form or SuppressionAddForm()) if can_manage else None,
        "check_form": (check_form or SuppressionCheckForm()) if can_check else None,
        "check_result": check_result,
        "paged": before is not None,
        "next_url": "?" + urlencode({"before": cursor}) if cursor else "",
        "error": error,
    }
    return render(request, "audience/suppression.html", context, status=status)


@workspace_view(p.AUDIENCE_VIEW)
@require_GET
def suppression(request):
    return _suppression_page(request)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def suppression_add(request):
    form = SuppressionAddForm(request.POST)
    if not form.is_valid():
        return _suppression_page(request, add_form=form, status=400)
    try:
        actions.do_add_suppression(
            request.workspace,
            email=form.cleaned_data["email"],
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
            actor=Actor.from_request(request),
        )
    except ActionError as exc:  # invalid or already suppressed: both about the address
        form.add_error("email", str(exc))
        return _suppression_page(request, add_form=form, status=status_for(exc))
    messages.success(request, "The address was added to the suppression list (as a hash).")
    return redirect("audience-suppression", ws=request.workspace.slug)


@workspace_view(p.VIEW_PERSONAL_DATA)
@require_POST
def suppression_check(request):
    """A POST, not a GET, so the address never appears in a URL, a log or the history."""
    form = SuppressionCheckForm(request.POST)
    if not form.is_valid():
        return _suppression_page(request, check_form=form, status=400)
    try:
        email = actions.valid_email(form.cleaned_data["email"])
    except ActionError as exc:
        form.add_error("email", str(exc))
        return _suppression_page(request, check_form=form, status=400)
    found = actions.suppression_for(request.workspace, email)
    result = {"suppressed": found is not None, "entry": found, "email": email}
    return _suppression_page(request, check_form=form, check_result=result)


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def suppression_remove(request, suppression_id: int):
    entry = queries.get_suppression(request.workspace, suppression_id)
    if entry is None:
        raise Http404("No such suppression entry in this workspace")
    if request.method == "POST":
        actions.do_remove_suppression(entry, actor=Actor.from_request(request))
        messages.success(
            request, "The entry was removed: that address may be added and mailed again."
        )
        return redirect("audience-suppression", ws=request.workspace.slug)
    context = {
        "subnav": audience_subnav(request, "suppression"),
        "entry": entry,
        "hash": entry.email_hash[:HASH_SHOWN] if sees_personal_data(request) else "",
        "erased": entry.reason == Suppression.Reason.ERASED,
        "note": entry.note if sees_personal_data(request) else "",
    }
    return render(request, "audience/suppression_remove.html", context)
