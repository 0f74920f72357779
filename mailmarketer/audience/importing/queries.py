"""Reads about imports, always inside one workspace. import_progress() is the one description of
a job's progress: the UI's progress fragment and the API return it as it is."""

from __future__ import annotations

from django.utils.timezone import now

from ..models import Import
from . import files
from .mapping import Mapping, guess_mapping
from .reading import DELIMITER_NAMES, ENCODING_NAMES, Inspection, inspect_file

ACTIVE = (Import.Status.QUEUED, Import.Status.RUNNING)


def imports_for(workspace, *, limit: int = 100) -> list[Import]:
    return list(
        Import.objects.filter(workspace=workspace)
        .select_related("created_by")
        .order_by("-created_at", "-id")[:limit]
    )


def get_import(workspace, key) -> Import | None:
    if isinstance(key, str) and not key.isdigit():
        return None
    return (
        Import.objects.filter(workspace=workspace, pk=int(key))
        .select_related("workspace", "notice")
        .first()
    )


def preview_of(imp: Import) -> Inspection | None:
    """The start of the uploaded file again, for the mapping page (None once it is gone)."""
    path = files.source_path(imp.pk)
    if not path.exists():
        return None
    return inspect_file(path)


def mapping_of(imp: Import, preview: Inspection | None) -> Mapping:
    if imp.mapping:
        return Mapping.from_json(imp.mapping)
    return guess_mapping(imp.header, preview.rows if preview else [])


def report_available(imp: Import) -> bool:
    return imp.rows_skipped > 0 and files.report_path(imp.pk).exists()


def import_progress(imp: Import) -> dict:
    """Status and counts of an import as plain data (datetimes as datetime objects).

    rows_total is an estimate from the file size until rows_total_exact (the job has read the
    whole file once); percent, rate (rows a second since it started) and eta_seconds follow.
    """
    running = imp.status == Import.Status.RUNNING
    end = imp.finished_at or (now() if running else None)
    elapsed = (end - imp.started_at).total_seconds() if imp.started_at and end else None
    rate = imp.rows_done / elapsed if elapsed and elapsed > 0 and imp.rows_done else None
    total = max(imp.rows_total, imp.rows_done)
    if imp.status == Import.Status.FINISHED:
        percent = 100.0
    else:
        percent = round(100 * imp.rows_done / total, 1) if total else 0.0
    eta = (
        round((total - imp.rows_done) / rate) if running and rate and imp.rows_total_exact else None
    )
    # "checking": the job reads the whole file once before it imports anything.
    phase = "checking" if running and not imp.rows_total_exact else imp.status
    return {
        "id": imp.pk,
        "status": imp.status,
        "status_label": imp.get_status_display(),
        "phase": phase,
        "file_name": imp.original_name,
        "mode": imp.mode,
        "encoding": ENCODING_NAMES.get(imp.encoding, imp.encoding),
        "delimiter": DELIMITER_NAMES.get(imp.delimiter, imp.delimiter),
        "rows_total": total,
        "rows_total_exact": imp.rows_total_exact,
        "rows_done": imp.rows_done,
        "percent": percent,
        "created": imp.rows_created,
        "updated": imp.rows_updated,
        "unchanged": imp.rows_unchanged,
        "skipped": imp.rows_skipped,
        "skipped_reasons": dict(imp.skipped_reasons),
        "rate": round(rate, 1) if rate else None,
        "eta_seconds": eta,
        "created_at": imp.created_at,
        "started_at": imp.started_at,
        "finished_at": imp.finished_at,
        "error": imp.error,
        "has_error_report": report_available(imp),
        "active": imp.status in ACTIVE,
    }
