"""ALTCHA's pages (altcha.py): the challenge endpoint the widget fetches, and the workspace's
"Forms protection" settings page (switch and difficulty) among the administration pages."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import public_view, workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor

from . import altcha, queries
from .actions import AVAILABLE_KINDS
from .views import _public


@public_view
@require_GET
def challenge(request, ws: str, form_slug: str):
    """GET /f/<ws>/<form>/challenge: a fresh challenge for this form. Readable by the form's
    allowed origins (the embed's widget fetches it from their pages), never cached."""
    form = queries.public_form(ws, form_slug)
    if form is None or form.kind not in AVAILABLE_KINDS:
        return _public(JsonResponse({"code": "not_found", "message": "no such form"}, status=404))
    protection = altcha.protection_for(form.workspace)
    if not protection.required:
        body = {"code": "not_required", "message": "this form asks for no proof of work"}
        response = JsonResponse(body, status=404)
    else:
        response = JsonResponse(altcha.make_challenge(form, maxnumber=protection.maxnumber))
    origin = request.headers.get("Origin")
    if origin and origin in form.allowed_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return _public(response)


class ProtectionForm(forms.Form):
    altcha_required = forms.BooleanField(
        required=False,
        label="Ask for proof of work (ALTCHA) on every form",
        help_text="The visitor's browser does a moment of work before a form can be sent: cheap "
        "for one person, expensive for a script sending thousands. Without JavaScript a form "
        "cannot be sent while this is on.",
    )
    altcha_maxnumber = forms.IntegerField(
        label="Difficulty",
        min_value=altcha.MIN_MAXNUMBER,
        max_value=altcha.MAX_MAXNUMBER,
        help_text="The most numbers a browser may have to try (half of it on average). "
        "100,000 takes a phone about a second.",
    )


def _page(request, form, status=200):
    context = {
        "subnav_current": "forms_protection",
        "form": form,
        "can_manage": request.membership.has(p.SETTINGS_MANAGE),
    }
    return render(request, "signup/protection.html", context, status=status)


@workspace_view(p.SETTINGS_VIEW)
@require_GET
def protection(request):
    current = altcha.protection_for(request.workspace)
    initial = {"altcha_required": current.required, "altcha_maxnumber": current.maxnumber}
    return _page(request, ProtectionForm(initial=initial))


@workspace_view(p.SETTINGS_MANAGE)
@require_http_methods(["POST"])
def protection_save(request):
    form = ProtectionForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        altcha.do_set_form_protection(
            request.workspace,
            required=form.cleaned_data["altcha_required"],
            maxnumber=form.cleaned_data["altcha_maxnumber"],
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        form.add_error("altcha_maxnumber", str(exc))
        return _page(request, form, status=400)
    messages.success(request, "Forms protection saved.")
    return redirect("settings-forms-protection", ws=request.workspace.slug)


@public_view
@require_GET
def bench_constant(request):
    """The limit of benchmarks/signup_bench.py: the same server, the same middleware, a
    constant answer and no database. Routed only with MM_BENCH_CONSTANT_VIEW=true."""
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")
