"""Audience pages: subscriber imports. Upload (file, mode, lists, consent) -> column mapping with
a preview of the first rows -> progress (polled by htmx every second) -> summary and the error
report.

Every page needs audience.manage, except the error report: it holds the skipped rows as they
were in the file (addresses, names, phones), and it leaves the system as a download, so it needs
what an export needs, audience.export and audience.view_personal_data, and each download writes
one "import.report_downloaded" audit row. Support may import but not download it. Imports are
looked up inside request.workspace only, so another workspace's import id is a 404, like an
unknown one.

The upload view reads the request body itself, behind a size limit (forms.SizeLimitHandler),
so it turns off the CSRF middleware's early read of the body and checks the token itself
(csrf_protect on the inner view): Django's documented way to change upload handlers per view.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor

from .importing import files, jobs
from .importing.forms import ERROR_FIELDS, MappingForm, SizeLimitHandler, UploadForm
from .importing.pipeline import REASONS
from .importing.queries import (
    get_import,
    import_progress,
    imports_for,
    mapping_of,
    preview_of,
    report_available,
)
from .importing.reading import UnreadableFile
from .models import Import
from .views_lists import audience_subnav, forbidden

Status = Import.Status


def _import_or_404(request, import_id) -> Import:
    imp = get_import(request.workspace, import_id)
    if imp is None:
        raise Http404("No such import in this workspace")
    return imp


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"about {seconds} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def _can_read_report(request) -> bool:
    return request.membership.has(p.AUDIENCE_EXPORT) and request.membership.has(
        p.VIEW_PERSONAL_DATA
    )


def _progress_context(request, imp: Import) -> dict:
    progress = import_progress(imp)
    progress["report_link"] = progress["has_error_report"] and _can_read_report(request)
    progress["eta_text"] = _duration(progress["eta_seconds"])
    progress["reasons"] = [
        (REASONS.get(code, code), count)
        for code, count in sorted(progress["skipped_reasons"].items(), key=lambda kv: -kv[1])
    ]
    return {"imp": imp, "progress": progress}


@workspace_view(p.AUDIENCE_MANAGE)
@require_GET
def imports(request):
    return render(
        request,
        "audience/imports.html",
        {
            "subnav": audience_subnav(request, "imports"),
            "imports": [(imp, import_progress(imp)) for imp in imports_for(request.workspace)],
            "can_read_report": _can_read_report(request),
        },
    )


def _upload_page(request, form, *, status=200):
    return render(
        request,
        "audience/import_new.html",
        {"subnav": audience_subnav(request, "imports"), "form": form},
        status=status,
    )


@workspace_view(p.AUDIENCE_MANAGE)
@csrf_exempt
def import_new(request):
    if request.method == "POST":
        # Before anything reads the body, so that the limit applies while the file streams in.
        request.upload_handlers.insert(0, SizeLimitHandler(request))
    return _import_new(request)


# The CSRF check first, as the middleware would: any state-changing method without a token is
# refused as such, whatever the method.
@csrf_protect
@require_http_methods(["GET", "POST"])
def _import_new(request):
    workspace = request.workspace
    if request.method != "POST":
        return _upload_page(request, UploadForm(workspace=workspace))
    form = UploadForm(request.POST, request.FILES, workspace=workspace)
    if getattr(request, "upload_too_large", False):
        form.is_valid()
        form.errors.pop("file", None)
        form.add_error(
            "file",
            f"the file is larger than the {jobs.size_text(settings.IMPORT_MAX_BYTES)} allowed:"
            " compress it (.csv.gz or .zip) or split it",
        )
        return _upload_page(request, form, status=413)
    if not form.is_valid():
        return _upload_page(request, form, status=400)
    data = form.cleaned_data
    try:
        imp = jobs.do_create_import(
            workspace,
            file=data["file"],
            original_name=data["file"].name,
            mode=data["mode"],
            lists=list(data["lists"]),
            confirmed=data["confirmed"],
            notice_text=data["notice_text"],
            attribute_mode=data["attribute_mode"],
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        form.add_error(ERROR_FIELDS.get(exc.code), str(exc))
        return _upload_page(request, form, status=413 if exc.code == "too_large" else 400)
    return redirect("audience-import-mapping", ws=workspace.slug, import_id=imp.pk)


@workspace_view(p.AUDIENCE_MANAGE)
@require_http_methods(["GET", "POST"])
def import_mapping(request, import_id: int):
    imp = _import_or_404(request, import_id)
    if imp.status != Status.DRAFT:
        return redirect("audience-import", ws=request.workspace.slug, import_id=imp.pk)
    error = ""
    try:
        preview = preview_of(imp)
    except UnreadableFile as exc:  # read at upload; only a file changed on disk since gets here
        preview, error = None, str(exc)
    if preview is None and not error:
        error = "the uploaded file is no longer there: discard this import and upload it again"
    form = MappingForm(
        request.POST if request.method == "POST" else None,
        header=imp.header,
        mapping=mapping_of(imp, preview),
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                jobs.do_start_import(imp, mapping=form.mapping(), actor=Actor.from_request(request))
            except forms.ValidationError as exc:
                form.add_error(None, exc)
            except ActionError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("audience-import", ws=request.workspace.slug, import_id=imp.pk)
        status = 400
    return render(
        request,
        "audience/import_mapping.html",
        {
            "subnav": audience_subnav(request, "imports"),
            "imp": imp,
            "preview": preview,
            "form": form,
            "error": error,
            "lists": list(imp.lists.all()),
        },
        status=status,
    )


@workspace_view(p.AUDIENCE_MANAGE)
@require_GET
def import_detail(request, import_id: int):
    imp = _import_or_404(request, import_id)
    if imp.status == Status.DRAFT:
        return redirect("audience-import-mapping", ws=request.workspace.slug, import_id=imp.pk)
    stalled = jobs.is_stalled(imp)
    context = {
        "subnav": audience_subnav(request, "imports"),
        "lists": list(imp.lists.all()),
        "can_cancel": imp.status in (Status.QUEUED, Status.RUNNING, Status.FAILED),
        "can_resume": (imp.status == Status.FAILED or stalled)
        and files.source_path(imp.pk).exists(),
        "can_delete": imp.status not in (Status.QUEUED, Status.RUNNING) or stalled,
        "stalled": stalled,
        **_progress_context(request, imp),
    }
    return render(request, "audience/import_detail.html", context)


@workspace_view(p.AUDIENCE_MANAGE)
@require_GET
def import_progress_fragment(request, import_id: int):
    """What the progress page polls: the progress block alone."""
    imp = _import_or_404(request, import_id)
    return render(request, "audience/import_progress.html", _progress_context(request, imp))


@workspace_view(p.AUDIENCE_EXPORT)
@require_GET
def import_errors(request, import_id: int):
    if not request.membership.has(p.VIEW_PERSONAL_DATA):
        return forbidden(request, p.VIEW_PERSONAL_DATA)
    imp = _import_or_404(request, import_id)
    if not report_available(imp):
        raise Http404("This import has no error report")
    jobs.record_import_report_read(imp, actor=Actor.from_request(request))
    return FileResponse(
        open(files.report_path(imp.pk), "rb"),  # FileResponse closes it
        as_attachment=True,
        filename=f"import-{imp.pk}-errors.csv",
        content_type="text/csv; charset=utf-8",
    )


def _act(request, import_id: int, action, done: str):
    """Runs the action; on a refusal, the import's page with the reason (else None)."""
    imp = _import_or_404(request, import_id)
    try:
        action(imp, actor=Actor.from_request(request))
    except ActionError as exc:
        messages.error(request, str(exc))
        return redirect("audience-import", ws=request.workspace.slug, import_id=imp.pk)
    messages.success(request, done)
    return None


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def import_cancel(request, import_id: int):
    refused = _act(request, import_id, jobs.do_cancel_import, "The import is cancelled.")
    return refused or redirect("audience-import", ws=request.workspace.slug, import_id=import_id)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def import_resume(request, import_id: int):
    refused = _act(
        request, import_id, jobs.do_resume_import, "The import goes on where it stopped."
    )
    return refused or redirect("audience-import", ws=request.workspace.slug, import_id=import_id)


@workspace_view(p.AUDIENCE_MANAGE)
@require_POST
def import_delete(request, import_id: int):
    refused = _act(
        request,
        import_id,
        jobs.do_delete_import,
        "The import and its files are deleted; the subscribers it added stay.",
    )
    return refused or redirect("audience-imports", ws=request.workspace.slug)
