"""The staff's form pages under /app/<ws>/forms/: the list, the builder (create, edit), a
form's page (views and submissions per day, embed code, addresses), the preview, deletion,
and the welcome message of a list.

Reading needs forms.view, every change forms.manage (each a POST; the GET of the same URL
shows the page). Forms named in a URL are looked up in request.workspace only, so another
workspace's id is a 404. The preview is the real public page, rendered by the same function.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError, Conflict
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience import queries as audience_queries

from . import actions, queries
from .embed import embed_snippet
from .forms import FormBuilder, WelcomeForm
from .tokens import EMBED_TOKEN_DAYS
from .views_public import page_context


def _form_or_404(request, form_id: int):
    form = queries.get_form(request.workspace, form_id)
    if form is None:
        raise Http404("No such form in this workspace")
    return form


@workspace_view(p.FORMS_VIEW)
@require_GET
def forms_home(request):
    context = {
        "forms": queries.forms_for(request.workspace),
        "can_manage": request.membership.has(p.FORMS_MANAGE),
    }
    return render(request, "signup/forms.html", context)


def _save(request, builder: FormBuilder, form=None):
    """Runs the action; returns the form, or None with the refusal put on the builder."""
    settings_, lists, notice_text = builder.action_arguments()
    event = settings_.pop("event", None)
    actor = Actor.from_request(request)
    try:
        if form is None:
            return actions.do_create_form(
                request.workspace,
                lists=lists,
                notice_text=notice_text,
                actor=actor,
                event=event,
                **settings_,
            )
        return actions.do_update_form(
            form, settings_, lists=lists, notice_text=notice_text, actor=actor, event=event
        )
    except Conflict as exc:
        builder.add_error("slug", str(exc))
    except actions.FormError as exc:
        field = exc.field if exc.field in builder.fields else None
        builder.add_error(field if exc.field != "fields" else "custom_fields", str(exc))
    except ActionError as exc:
        builder.add_error(None, str(exc))
    return None


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def form_create(request):
    status = 200
    if request.method == "POST":
        builder = FormBuilder(request.POST, workspace=request.workspace)
        if builder.is_valid():
            form = _save(request, builder)
            if form is not None:
                messages.success(request, f"The form “{form.name}” was created.")
                return redirect("forms-detail", ws=request.workspace.slug, form_id=form.pk)
        status = 400
    else:
        builder = FormBuilder(workspace=request.workspace)
    return render(
        request, "signup/form_edit.html", {"builder": builder, "form": None}, status=status
    )


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def form_edit(request, form_id: int):
    form = _form_or_404(request, form_id)
    status = 200
    if request.method == "POST":
        builder = FormBuilder(request.POST, workspace=request.workspace)
        if builder.is_valid() and _save(request, builder, form) is not None:
            messages.success(request, f"The form “{builder.cleaned_data['name']}” was saved.")
            return redirect("forms-detail", ws=request.workspace.slug, form_id=form.pk)
        status = 400
    else:
        builder = FormBuilder(initial=FormBuilder.initial_for(form), workspace=request.workspace)
    return render(
        request, "signup/form_edit.html", {"builder": builder, "form": form}, status=status
    )


@workspace_view(p.FORMS_VIEW)
@require_GET
def form_detail(request, form_id: int):
    form = _form_or_404(request, form_id)
    days = queries.daily_counts(form)
    most = max((n for _, _, n in days), default=0)
    views = sum(v for _, v, _ in days)
    submitted = sum(n for _, _, n in days)
    public = reverse("signup-form", args=[request.workspace.slug, form.slug])
    context = {
        "form": form,
        "lists": queries.lists_with_welcome(form),
        "days": [
            {"day": d, "views": v, "count": n, "share": (100 * n // most) if most else 0}
            for d, v, n in days
        ],
        "total_30": submitted,
        "views_30": views,
        # Of the page's own views: embed and JSON submissions have no view we could count.
        "conversion": f"{100 * submitted / views:.1f}%" if views else "",
        "page_url": settings.BASE_URL + public,
        "json_url": settings.BASE_URL + public + ".json",
        "embed": embed_snippet(form, page_context(form)),
        "embed_days": EMBED_TOKEN_DAYS,
        "can_manage": request.membership.has(p.FORMS_MANAGE),
    }
    return render(request, "signup/form_detail.html", context)


@workspace_view(p.FORMS_VIEW)
@require_GET
def form_preview(request, form_id: int):
    """The public page itself: the same template and context a visitor gets."""
    form = _form_or_404(request, form_id)
    return render(request, "signup/form_page.html", page_context(form))


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def form_delete(request, form_id: int):
    form = _form_or_404(request, form_id)
    if request.method == "POST":
        name = form.name
        actions.do_delete_form(form, actor=Actor.from_request(request))
        messages.success(request, f"The form “{name}” was deleted.")
        return redirect("forms-home", ws=request.workspace.slug)
    return render(request, "signup/form_delete.html", {"form": form})


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def welcome_edit(request, list_id: int):
    """A list's welcome message, sent after a confirmed sign-up (actions.do_set_welcome_message)."""
    mailing_list = audience_queries.get_list(request.workspace, list_id)
    if mailing_list is None:
        raise Http404("No such list in this workspace")
    current = queries.welcome_message(mailing_list)
    status = 200
    if request.method == "POST":
        welcome = WelcomeForm(request.POST)
        if welcome.is_valid():
            try:
                actions.do_set_welcome_message(
                    mailing_list, **welcome.cleaned_data, actor=Actor.from_request(request)
                )
            except actions.FormError as exc:
                welcome.add_error(exc.field if exc.field in welcome.fields else None, str(exc))
            else:
                messages.success(
                    request, f"The welcome message of “{mailing_list.name}” was saved."
                )
                return redirect("forms-home", ws=request.workspace.slug)
        status = 400
    else:
        initial = {"subject": current.subject, "body": current.body} if current else {}
        welcome = WelcomeForm(initial=initial)
    context = {"list": mailing_list, "welcome": welcome}
    return render(request, "signup/welcome_edit.html", context, status=status)
