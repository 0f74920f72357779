"""Staff uploads of access-log files: an action that stores the file and queues the job, and the
job (a django-tasks task, run by the worker) that imports it with the `importlogs` Importer.

- do_create_upload: checks the format (logs.compile_format) and the size, stores the file under
  DATA_DIR/log_uploads/<id>/source (0600; a log holds visitors' addresses), writes the
  "log_upload.created" audit row and queues the job after commit.
- run_upload: claims the upload (queued -> running, a conditional UPDATE: one runner only),
  imports with progress saved every batch (bytes read of the file, lines), then stores the
  totals, writes "log_upload.finished" (or "log_upload.failed") and deletes the file.
  Re-running over the same lines adds nothing (the Importer's keys), so a job that died can
  simply be uploaded again.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils.timezone import now
from django_tasks import task

from mailmarketer.accounts.actions import ActionError, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.lib.datafiles import open_private, private_dir

from .logs import FormatError, Importer, compile_format
from .models_uploads import LogUpload

logger = logging.getLogger("mailmarketer.tracking.uploads")
Status = LogUpload.Status
FORMATS = ("combined", "common", "nginx-json")
PROGRESS_EVERY_S = 1.0


def max_bytes() -> int:
    return settings.TRACKING_LOG_UPLOAD_MAX_BYTES


def upload_dir(upload_id: int) -> Path:
    return Path(settings.DATA_DIR) / "log_uploads" / str(int(upload_id))


def source_path(upload_id: int) -> Path:
    return upload_dir(upload_id) / "source"


def _audit(event: str, upload: LogUpload, actor: Actor, **new) -> None:
    audit(
        event,
        actor=actor,
        workspace=upload.workspace,
        object_type="log_upload",
        object_id=str(upload.pk),
        object_repr=f"log upload {upload.pk} for site {upload.site_id}",
        new=new or None,
    )


@transaction.atomic
def do_create_upload(site, *, file, log_format: str, actor: Actor, enqueue: bool = True):
    """Stores the uploaded file and queues its import. `file` is a Django UploadedFile."""
    log_format = (log_format or "combined").strip()
    try:
        compile_format(log_format)
    except FormatError as exc:
        raise ActionError(f"log format: {exc}", field="log_format") from exc
    if file.size > max_bytes():
        raise ActionError(
            f"the file is larger than the {max_bytes() // 1024**2} MB allowed: compress it "
            "(.gz) or split it",
            field="file",
        )
    if not file.size:
        raise ActionError("the file is empty", field="file")
    upload = LogUpload.objects.create(
        workspace=site.workspace,
        site=site,
        file_name=(file.name or "")[:200],
        log_format=log_format,
        size=file.size,
        created_by=actor.user if getattr(actor, "user", None) else None,
    )
    private_dir(upload_dir(upload.pk))
    target = source_path(upload.pk)
    if hasattr(file, "temporary_file_path"):
        shutil.move(file.temporary_file_path(), target)
        target.chmod(0o600)
    else:
        with open_private(target) as out:
            for chunk in file.chunks():
                out.write(chunk)
    _audit("log_upload.created", upload, actor, file=upload.file_name, size=upload.size)
    if enqueue:
        transaction.on_commit(lambda: log_upload_task.enqueue(upload.pk))
    return upload


@task()
def log_upload_task(upload_id: int) -> None:
    run_upload(upload_id)


def run_upload(upload_id: int) -> LogUpload | None:
    """Imports one queued upload; None when it was not queued (another runner has it)."""
    if not LogUpload.objects.filter(pk=upload_id, status=Status.QUEUED).update(
        status=Status.RUNNING, updated_at=now()
    ):
        return None
    upload = LogUpload.objects.select_related("site", "workspace").get(pk=upload_id)
    actor = Actor.system(f"log upload job {upload.pk}")
    last = [0.0]

    def progress(name, lines, done, size):
        moment = now().timestamp()
        if moment - last[0] < PROGRESS_EVERY_S and done < size:
            return
        last[0] = moment
        LogUpload.objects.filter(pk=upload_id).update(
            bytes_done=done, lines_done=lines, updated_at=now()
        )

    try:
        importer = Importer(upload.site, upload.log_format, progress=progress)
        totals = importer.run([source_path(upload.pk)])
    except Exception as exc:
        logger.exception("log upload %s failed", upload.pk)
        message = (
            str(exc) if isinstance(exc, (OSError, FormatError, EOFError)) else "internal error"
        )
        LogUpload.objects.filter(pk=upload_id).update(
            status=Status.FAILED, error=f"cannot import the file: {message}"[:500], updated_at=now()
        )
        upload.refresh_from_db()
        _audit("log_upload.failed", upload, actor, error=upload.error)
    else:
        summary = totals.summary()
        summary["bad_lines"] = [number for _, number in totals.bad_lines]
        LogUpload.objects.filter(pk=upload_id).update(
            status=Status.FINISHED,
            totals=summary,
            bytes_done=upload.size,
            lines_done=totals.lines,
            updated_at=now(),
        )
        upload.refresh_from_db()
        _audit(
            "log_upload.finished",
            upload,
            actor,
            **{k: v for k, v in summary.items() if k != "bad_lines"},
        )
    shutil.rmtree(upload_dir(upload.pk), ignore_errors=True)
    return upload
