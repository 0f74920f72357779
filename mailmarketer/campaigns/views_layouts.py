"""Layouts: the HTML around a campaign's content. Listed for campaigns.view; created, changed
and deleted for campaigns.manage through the layout actions, which check that a layout has one
{{ content }} and compiles (an error is shown on the HTML with its line)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor

from . import actions, queries
from .actions import TemplateError
from .forms import LayoutForm
from .layouts import default_layout_html
from .views_campaigns import status_for, subnav


def _layout_or_404(request, layout_id: int):
    layout = queries.get_layout(request.workspace, layout_id)
    if layout is None:
        raise Http404("No such layout in this workspace")
    return layout


def _put_error(form, exc: ActionError) -> str:
    """A template problem or a missing {{ content }} belongs to the HTML; a name to the name."""
    if isinstance(exc, TemplateError) or exc.code in ("content_slot", "required"):
        form.add_error("html", str(exc))
        return ""
    if str(exc).startswith("name "):
        form.add_error("name", str(exc))
        return ""
    return str(exc)


def _layouts_page(request, *, form=None, error="", status=200):
    can_manage = request.membership.has(p.CAMPAIGNS_MANAGE)
    if can_manage and form is None:
        form = LayoutForm(initial={"html": default_layout_html()})
    context = {
        "subnav": subnav(request, "layouts"),
        "layouts": queries.layouts_for(request.workspace),
        "can_manage": can_manage,
        "form": form if can_manage else None,
        "error": error,
    }
    return render(request, "campaigns/layouts.html", context, status=status)


@workspace_view(p.CAMPAIGNS_VIEW)
@require_GET
def layouts(request):
    return _layouts_page(request)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_POST
def layout_create(request):
    form = LayoutForm(request.POST)
    if not form.is_valid():
        return _layouts_page(request, form=form, status=400)
    try:
        layout = actions.do_create_layout(
            request.workspace, actor=Actor.from_request(request), **form.cleaned_data
        )
    except ActionError as exc:
        error = _put_error(form, exc)
        return _layouts_page(request, form=form, error=error, status=status_for(exc))
    messages.success(request, f"The layout “{layout.name}” was saved.")
    return redirect("campaign-layouts", ws=request.workspace.slug)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def layout_edit(request, layout_id: int):
    layout = _layout_or_404(request, layout_id)
    error, status = "", 200
    if request.method == "POST":
        form = LayoutForm(request.POST)
        if form.is_valid():
            try:
                actions.do_update_layout(
                    layout, form.cleaned_data, actor=Actor.from_request(request)
                )
            except ActionError as exc:
                error = _put_error(form, exc)
                status = status_for(exc)
            else:
                messages.success(request, f"The layout “{form.cleaned_data['name']}” was saved.")
                return redirect("campaign-layouts", ws=request.workspace.slug)
        else:
            status = 400
    else:
        form = LayoutForm(
            initial={"name": layout.name, "html": layout.html, "is_default": layout.is_default}
        )
    context = {
        "subnav": subnav(request, "layouts"),
        "layout": layout,
        "form": form,
        "error": error,
    }
    return render(request, "campaigns/layout_edit.html", context, status=status)


@workspace_view(p.CAMPAIGNS_MANAGE)
@require_http_methods(["GET", "POST"])
def layout_delete(request, layout_id: int):
    layout = _layout_or_404(request, layout_id)
    error, status = "", 200
    if request.method == "POST":
        try:
            actions.do_delete_layout(layout, actor=Actor.from_request(request))
        except ActionError as exc:
            error, status = str(exc), status_for(exc)
        else:
            messages.success(request, f"The layout “{layout.name}” was deleted.")
            return redirect("campaign-layouts", ws=request.workspace.slug)
    context = {"subnav": subnav(request, "layouts"), "layout": layout, "error": error}
    return render(request, "campaigns/layout_delete.html", context, status=status)
