"""Resources: the public download link (/f/r/<token>) and the staff's pages under
/app/<ws>/resources/ (upload, list with download counts, edit) and a resource form's choice of
resource (/app/<ws>/forms/<id>/resource/).

Reading the staff pages needs forms.view, changes forms.manage. A download answers with
`Content-Disposition: attachment` (a safe filename), `X-Content-Type-Options: nosniff` and the
type found in the content, so a browser never renders an upload as a page of ours. A link that
is forged, altered or expired gets a clear page (400 or 410), never a 500.
"""

from __future__ import annotations

from django import forms as djforms
from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import public_view, workspace_view
from mailmarketer.accounts.actors import Actor

from . import queries, resources
from . import queries_resources as rq
from .fields import FormError
from .models import Form
from .texts_pages import page_text
from .views import _public


@public_view
@require_GET
def download(request, token: str):
    try:
        grant = resources.grant_for_token(token)
    except resources.LinkProblem as problem:
        expired = problem.reason == "expired"
        language = problem.language
        key = "download_expired" if expired else "download_invalid"
        context = {"message": page_text(language, key), "language": language}
        return _public(
            render(request, "signup/confirm_done.html", context, status=410 if expired else 400)
        )
    resource = grant.resource
    if not resource.is_file:
        resources.do_record_download(grant)
        return _public(HttpResponseRedirect(resource.external_url))
    path = resources.stored_path(resource)
    try:
        handle = path.open("rb")
    except OSError:
        language = resources.language_of_grant(grant)
        context = {"message": page_text(language, "download_gone"), "language": language}
        return _public(render(request, "signup/confirm_done.html", context, status=410))
    resources.do_record_download(grant)
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=resource.filename,
        content_type=resource.content_type,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return _public(response)


# -- staff -----------------------------------------------------------------------------------


class ResourceForm(djforms.Form):
    title = djforms.CharField(max_length=200)
    file = djforms.FileField(required=False, help_text="PDF, ZIP, EPUB, PNG, JPEG or plain text")
    external_url = djforms.CharField(
        max_length=500, required=False, label="Or an external https:// URL"
    )
    link_days = djforms.IntegerField(
        min_value=1,
        max_value=resources.MAX_LINK_DAYS,
        initial=resources.DEFAULT_LINK_DAYS,
        label="Days a download link works",
    )


def _resource_or_404(request, resource_id: int):
    resource = rq.get_resource(request.workspace, resource_id)
    if resource is None:
        raise Http404("No such resource in this workspace")
    return resource


@workspace_view(p.FORMS_VIEW)
@require_GET
def resources_home(request):
    context = {
        "resources": rq.resources_with_counts(request.workspace),
        "can_manage": request.membership.has(p.FORMS_MANAGE),
    }
    return render(request, "signup/resources.html", context)


def _save(request, form: ResourceForm, resource=None):
    data = form.cleaned_data
    kwargs = {
        "title": data["title"],
        "upload": data["file"] or None,
        "external_url": data["external_url"],
        "link_days": data["link_days"],
        "actor": Actor.from_request(request),
    }
    try:
        if resource is None:
            return resources.do_create_resource(request.workspace, **kwargs)
        return resources.do_update_resource(resource, **kwargs)
    except FormError as exc:
        field = exc.field if exc.field in form.fields else None
        form.add_error(field, str(exc))
    return None


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def resource_create(request):
    status = 200
    if request.method == "POST":
        form = ResourceForm(request.POST, request.FILES)
        if form.is_valid() and (resource := _save(request, form)) is not None:
            messages.success(request, f"The resource “{resource.title}” was saved.")
            return redirect("resources-home", ws=request.workspace.slug)
        status = 400
    else:
        form = ResourceForm()
    return render(
        request, "signup/resource_edit.html", {"rform": form, "resource": None}, status=status
    )


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def resource_edit(request, resource_id: int):
    resource = _resource_or_404(request, resource_id)
    status = 200
    if request.method == "POST":
        form = ResourceForm(request.POST, request.FILES)
        if form.is_valid() and _save(request, form, resource) is not None:
            messages.success(request, f"The resource “{resource.title}” was saved.")
            return redirect("resources-home", ws=request.workspace.slug)
        status = 400
    else:
        form = ResourceForm(
            initial={
                "title": resource.title,
                "external_url": resource.external_url,
                "link_days": resource.link_days,
            }
        )
    context = {"rform": form, "resource": resource}
    return render(request, "signup/resource_edit.html", context, status=status)


@workspace_view(p.FORMS_MANAGE)
@require_http_methods(["GET", "POST"])
def form_resource(request, form_id: int):
    """Which resource a resource form gives."""
    form = queries.get_form(request.workspace, form_id)
    if form is None or form.kind != Form.Kind.RESOURCE:
        raise Http404("No such resource form in this workspace")
    choices = list(rq.resources_for(request.workspace))
    current = resources.resource_of(form)
    problem, status = "", 200
    if request.method == "POST":
        chosen = next((r for r in choices if str(r.pk) == request.POST.get("resource")), None)
        if chosen is None:
            problem, status = "Choose one of the workspace's resources.", 400
        else:
            resources.do_bind_resource(form, chosen, actor=Actor.from_request(request))
            messages.success(request, f"The form gives “{chosen.title}”.")
            return redirect("forms-detail", ws=request.workspace.slug, form_id=form.pk)
    context = {"form": form, "choices": choices, "current": current, "problem": problem}
    return render(request, "signup/form_resource.html", context, status=status)
