"""Staff upload of an access-log file on a site's pages (settings.manage: it writes the site's
hits), its progress (polled by htmx every second while queued or running) and its totals.
Sites and uploads are looked up in request.workspace only: another workspace's id is a 404.

The upload view reads the body behind a size limit (the CSV import's SizeLimitHandler, with the
log limit), so like the CSV import it checks the CSRF token itself once the handler is in place.
"""

from __future__ import annotations

from django import forms
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.access import workspace_view
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.importing.forms import SizeLimitHandler

from . import queries_web, uploads
from .models_uploads import LogUpload


class LogUploadForm(forms.Form):
    file = forms.FileField(
        label="Access log",
        help_text="An Apache or nginx access log, plain or gzipped (.gz).",
    )
    log_format = forms.CharField(
        label="Format",
        initial="combined",
        max_length=500,
        help_text="combined, common, nginx-json, or an nginx log_format string.",
    )


class _LogSizeLimit(SizeLimitHandler):
    def __init__(self, request=None):
        super().__init__(request)
        self.limit = uploads.max_bytes()


def _site_or_404(request, site_id):
    site = queries_web.get_site(request.workspace, site_id)
    if site is None:
        raise Http404("No such site")
    return site


def _upload_or_404(request, site, upload_id):
    upload = LogUpload.objects.filter(workspace=request.workspace, site=site, pk=upload_id).first()
    if upload is None:
        raise Http404("No such upload")
    return upload


def _page(request, site, form, status=200):
    recent = LogUpload.objects.filter(workspace=request.workspace, site=site).order_by("-pk")[:20]
    return render(
        request,
        "tracking/log_upload_new.html",
        {"site": site, "form": form, "uploads": recent, "max_mb": uploads.max_bytes() // 1024**2},
        status=status,
    )


@workspace_view(p.SETTINGS_MANAGE)
@csrf_exempt
def log_upload_new(request, site_id: int):
    if request.method == "POST":
        request.upload_handlers.insert(0, _LogSizeLimit(request))
    return _log_upload_new(request, site_id)


@csrf_protect
@require_http_methods(["GET", "POST"])
def _log_upload_new(request, site_id: int):
    site = _site_or_404(request, site_id)
    if request.method != "POST":
        return _page(request, site, LogUploadForm())
    form = LogUploadForm(request.POST, request.FILES)
    if getattr(request, "upload_too_large", False):
        form.is_valid()
        form.errors.pop("file", None)
        form.add_error(
            "file",
            f"the file is larger than the {uploads.max_bytes() // 1024**2} MB allowed: "
            "compress it (.gz) or split it",
        )
        return _page(request, site, form, status=413)
    if not form.is_valid():
        return _page(request, site, form, status=400)
    try:
        upload = uploads.do_create_upload(
            site,
            file=form.cleaned_data["file"],
            log_format=form.cleaned_data["log_format"],
            actor=Actor.from_request(request),
        )
    except ActionError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return _page(request, site, form, status=400)
    return redirect(
        "site-log-upload", ws=request.workspace.slug, site_id=site.pk, upload_id=upload.pk
    )


def _progress(upload: LogUpload) -> dict:
    percent = 100.0 * upload.bytes_done / upload.size if upload.size else 0.0
    return {
        "upload": upload,
        "active": upload.status in (LogUpload.Status.QUEUED, LogUpload.Status.RUNNING),
        "percent": min(percent, 100.0),
    }


@workspace_view(p.SETTINGS_MANAGE)
@require_GET
def log_upload_detail(request, site_id: int, upload_id: int):
    site = _site_or_404(request, site_id)
    upload = _upload_or_404(request, site, upload_id)
    return render(request, "tracking/log_upload.html", {"site": site, **_progress(upload)})


@workspace_view(p.SETTINGS_MANAGE)
@require_GET
def log_upload_progress(request, site_id: int, upload_id: int):
    site = _site_or_404(request, site_id)
    upload = _upload_or_404(request, site, upload_id)
    return render(
        request, "tracking/_log_upload_progress.html", {"site": site, **_progress(upload)}
    )
