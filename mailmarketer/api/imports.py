"""/imports: upload a CSV (plain, .gz or a .zip holding one) to import in the background, and
follow its progress.

Thin over audience.importing: the upload becomes a draft import (checked as a file), its columns
are mapped (the email and name columns found by their header or named by the caller, every
other column a text attribute named after its header), and the job is queued for the worker.
"""

from __future__ import annotations

from django.http import Http404
from ninja import File, Form, Router, Status
from ninja.files import UploadedFile

from mailmarketer.accounts import permissions as p
from mailmarketer.accounts.actions import ActionError
from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.importing.forms import ERROR_FIELDS
from mailmarketer.audience.importing.jobs import (
    do_create_import,
    do_delete_import,
    do_start_import,
)
from mailmarketer.audience.importing.mapping import MappingError, mapping_for
from mailmarketer.audience.importing.queries import get_import, import_progress, preview_of
from mailmarketer.audience.importing.reading import UnreadableFile

from .access import require
from .audience_schemas import ImportForm, ImportOut
from .errors import READ_ERRORS, WRITE_ERRORS, ApiError, FieldErrors
from .schemas import Error

router = Router(tags=["imports"])


@router.post(
    "/imports",
    response={202: ImportOut, **WRITE_ERRORS, 413: Error},
    summary="Import subscribers from a CSV file",
)
@require(p.AUDIENCE_MANAGE)
def create_import(request, file: File[UploadedFile], form: Form[ImportForm]):
    """Answers 202 with the queued import; follow it with `GET /imports/{id}`. A file that
    cannot be read as a whole (encoding, damaged archive, no header, no email column) is
    refused with 422 and nothing is imported. Rows that cannot be imported (invalid address,
    duplicate in the file, suppressed, blocklisted) are skipped and counted, never failing the
    others."""
    actor = Actor.from_request(request)
    lists = [key.strip() for key in form.lists.split(",") if key.strip()]
    try:
        imp = do_create_import(
            request.workspace,
            file=file,
            original_name=file.name or "upload.csv",
            mode=form.mode,
            lists=lists,
            confirmed=form.status == "confirmed",
            notice_text=form.notice_text,
            attribute_mode=form.attribute_mode,
            actor=actor,
        )
    except (UnreadableFile, ActionError) as exc:
        if exc.code == "too_large":
            raise ApiError(413, str(exc), code="too_large") from exc
        field = ERROR_FIELDS.get(exc.code)  # the upload form's fields, which are ours too
        if field is None:
            raise
        raise FieldErrors([{"field": field, "message": str(exc)}]) from exc
    preview = preview_of(imp)
    try:
        mapping = mapping_for(
            imp.header,
            preview.rows if preview else [],
            email=form.email_column or None,
            name=form.name_column or None,
        )
        imp = do_start_import(imp, mapping=mapping, actor=actor)
    except MappingError as exc:
        # The draft is of no use to an API caller, who cannot map it on a page: remove it.
        do_delete_import(imp, actor=actor)
        field = "name_column" if str(exc).startswith("no name column") else "email_column"
        raise FieldErrors([{"field": field, "message": str(exc)}]) from exc
    return Status(202, import_progress(imp))


@router.get(
    "/imports/{import_id}",
    response={200: ImportOut, **READ_ERRORS},
    summary="An import's progress",
)
@require(p.AUDIENCE_VIEW)
def get_import_progress(request, import_id: str):
    """Rows done of the total, the rate, the counts (created, updated, unchanged, skipped by
    reason) and, once it ends, its status; no personal data."""
    imp = get_import(request.workspace, import_id)
    if imp is None:
        raise Http404("no such import in this workspace")
    return import_progress(imp)
