"""Imports as actions and as a job.

Actions (one transaction each; audit rows name the import by id, never a person):
- do_create_import: stores the upload and inspects it (a draft: nothing is imported yet, and a
  file that cannot be read is refused here with one error and nothing kept).
- do_start_import: fixes the column mapping, queues the job, and writes the "import.created"
  audit row (a draft is only an uploaded file; the import exists once it is started).
- do_cancel_import, do_resume_import, do_delete_import.

The job, run_import(), is what the django-tasks task `import_task` runs in a worker and what the
`mailmarketer import` command runs in the foreground:
1. claims the import (queued -> running, a conditional UPDATE: one runner only);
2. reads the whole file once (reading.check_whole_file): a file that cannot be read fails the
   import before anything is written, and the row count becomes exact;
3. streams the rows in chunks of CHUNK_ROWS, one transaction each, recording the rows done and
   the error report's size with them; between chunks it looks whether it was cancelled;
4. finishes: status, the "import.finished" audit row with counts, the source file deleted.
A crash leaves whole chunks; resuming skips the rows done (re-reading them only to rebuild the
index of addresses met) and goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, reset_queries, transaction
from django.utils.timezone import now
from django_tasks import task

from mailmarketer.accounts.actions import ActionError, Conflict, audit
from mailmarketer.accounts.actors import Actor
from mailmarketer.lib.ahead import ahead

from ..actions import notice_for_text
from ..models import Import, MailingList
from . import files
from .mapping import Mapping
from .pipeline import ChunkResult, Pipeline
from .reading import RecordReader, UnreadableFile, check_whole_file, inspect_file
from .report import ErrorReport, drop_rows_naming
from .seen import SeenAddresses
from .store import bulk_session, chunk_transaction_settings

logger = logging.getLogger("mailmarketer.import")

# Rows per chunk and transaction. Larger chunks mean fewer round trips and commits (measured:
# 20% faster at 20,000 than at 5,000 on PostgreSQL), but on SQLite a chunk holds the write lock
# while it runs, and other writers (a form sign-up) wait that long: 10,000 is about half a second.
CHUNK_ROWS = 10_000
# A running import whose heartbeat (updated_at, set by every chunk) is older than this has
# lost its worker, and may be resumed.
STALLED_AFTER = timedelta(minutes=5)
# An upload never started (a draft) is deleted after this: it holds personal data nobody is
# going to import.
DRAFT_MAX_AGE = timedelta(days=1)
Status = Import.Status


class _Cancelled(Exception):
    pass


def _audit(event: str, imp: Import, actor: Actor, **new) -> None:
    audit(
        event,
        actor=actor,
        workspace=imp.workspace,
        object_type="import",
        object_id=str(imp.pk),
        object_repr=f"import {imp.pk}",
        new=new or None,
    )


def counts_of(imp: Import) -> dict:
    """What audit rows and summaries say about an import: numbers only."""
    return {
        "rows": imp.rows_done,
        "created": imp.rows_created,
        "updated": imp.rows_updated,
        "unchanged": imp.rows_unchanged,
        "skipped": imp.rows_skipped,
        "skipped_reasons": dict(imp.skipped_reasons),
    }


def size_text(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{max(1, round(size / 1024))} KB"


def _lists_in(workspace, lists) -> list[MailingList]:
    found = []
    for item in lists:
        if isinstance(item, MailingList):
            mailing_list = item if item.workspace_id == workspace.pk else None
        else:
            qs = MailingList.objects.filter(workspace=workspace)
            key = str(item)
            mailing_list = (
                qs.filter(pk=int(key)) if key.isdigit() else qs.filter(slug=key)
            ).first()
        if mailing_list is None:
            raise ActionError(f"there is no list {str(item)!r} in this workspace", code="not_found")
        if mailing_list not in found:
            found.append(mailing_list)
    return found


def display_name(name: str) -> str:
    # Only ever shown: a browser may send a path, and control characters have no place in it.
    name = Path(str(name).replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or "upload.csv"


def do_create_import(
    workspace,
    *,
    file,
    original_name: str,
    mode: str = Import.Mode.SUBSCRIBE,
    lists=(),
    confirmed: bool = False,
    notice_text: str = "",
    attribute_mode: str = Import.AttributeMode.MERGE,
    actor: Actor,
) -> Import:
    """A draft import of `file` (an UploadedFile or a path). Raises ActionError (bad options)
    or UnreadableFile (the file), in which case nothing is kept."""
    if mode not in Import.Mode.values:
        raise ActionError(f"unknown mode {mode!r}; choose one of {', '.join(Import.Mode.values)}")
    if attribute_mode not in Import.AttributeMode.values:
        raise ActionError(f"unknown attribute handling {attribute_mode!r} (merge or overwrite)")
    size = Path(file).stat().st_size if isinstance(file, (str, Path)) else file.size
    if size > settings.IMPORT_MAX_BYTES:
        raise ActionError(
            f"the file is {size_text(size)}, more than the {size_text(settings.IMPORT_MAX_BYTES)}"
            " allowed: compress it (.csv.gz or .zip) or split it",
            code="too_large",
        )
    subscribing = mode == Import.Mode.SUBSCRIBE
    chosen = _lists_in(workspace, lists) if subscribing else []
    if subscribing and not chosen:
        raise ActionError("choose at least one list to subscribe people to", code="lists_required")
    notice_text = (notice_text or "").strip() if subscribing else ""
    if subscribing and confirmed and not notice_text:
        raise ActionError(
            "importing people as confirmed needs the text of the consent notice they agreed "
            "to, which is kept with each of their consent records",
            code="notice_required",
        )
    name = display_name(original_name)
    with transaction.atomic():
        imp = Import.objects.create(
            workspace=workspace,
            original_name=name,
            file_size=size,
            mode=mode,
            attribute_mode=attribute_mode,
            confirmed=bool(confirmed) and subscribing,
            encoding="",
            delimiter=",",
            created_by=actor.user,
            created_by_label=actor.label[:200],
        )
        try:
            inspection = inspect_file(files.store_upload(imp.pk, file))
            if notice_text:
                imp.notice = notice_for_text(workspace, f"Import: {name}", notice_text)
            imp.compression = inspection.compression
            imp.encoding = inspection.encoding
            imp.delimiter = inspection.delimiter
            imp.header = inspection.header
            imp.rows_total = inspection.rows_estimate
            imp.save()
            imp.lists.set(chosen)
        except BaseException:
            files.remove_all(imp.pk)
            raise
    return imp


def _enqueue(import_id: int) -> None:
    result = import_task.enqueue(import_id)
    Import.objects.filter(pk=import_id).update(task_id=str(result.id)[:64])


@transaction.atomic
def do_start_import(imp: Import, *, mapping: Mapping, actor: Actor, enqueue: bool = True) -> Import:
    """Fixes the mapping and queues the job (after commit). With enqueue=False the caller runs
    run_import() itself (the command line)."""
    imp = Import.objects.select_for_update().select_related("workspace").get(pk=imp.pk)
    if imp.status != Status.DRAFT:
        raise Conflict("this import has already been started")
    mapping = mapping.validated(imp.header)
    imp.mapping = mapping.to_json()
    imp.status = Status.QUEUED
    imp.updated_at = now()
    imp.save(update_fields=["mapping", "status", "updated_at"])
    _audit(
        "import.created",
        imp,
        actor,
        mode=imp.mode,
        lists=[ml.slug for ml in imp.lists.all()],
        confirmed=imp.confirmed,
        attribute_mode=imp.attribute_mode if imp.mode == Import.Mode.UPDATE else None,
        file_size=imp.file_size,
        rows_estimate=imp.rows_total,
    )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(imp.pk))
    return imp


@transaction.atomic
def do_cancel_import(imp: Import, *, actor: Actor) -> Import:
    """Stops a queued or running import after its current chunk; what was committed stays."""
    imp = Import.objects.select_for_update().select_related("workspace").get(pk=imp.pk)
    if imp.status not in (Status.QUEUED, Status.RUNNING, Status.FAILED):
        raise Conflict(f"this import is {imp.get_status_display().lower()}: nothing to cancel")
    imp.status = Status.CANCELLED
    imp.finished_at = imp.updated_at = now()
    imp.save(update_fields=["status", "finished_at", "updated_at"])
    _audit("import.cancelled", imp, actor, **counts_of(imp))
    transaction.on_commit(lambda: files.remove_source(imp.pk))
    return imp


def is_stalled(imp: Import) -> bool:
    return imp.status == Status.RUNNING and imp.updated_at < now() - STALLED_AFTER


@transaction.atomic
def do_resume_import(imp: Import, *, actor: Actor, enqueue: bool = True) -> Import:
    """Queues a failed (or stalled) import again; it goes on after the last committed chunk."""
    imp = Import.objects.select_for_update().select_related("workspace").get(pk=imp.pk)
    if not (imp.status == Status.FAILED or is_stalled(imp)):
        raise Conflict(
            f"this import is {imp.get_status_display().lower()}: only a failed or stalled "
            "import can be resumed"
        )
    if not files.source_path(imp.pk).exists():
        raise Conflict("the uploaded file is no longer there: upload it again")
    imp.status = Status.QUEUED
    imp.error = ""
    imp.finished_at = None
    imp.updated_at = now()
    imp.save(update_fields=["status", "error", "finished_at", "updated_at"])
    _audit("import.resumed", imp, actor, rows_done=imp.rows_done)
    if enqueue:
        transaction.on_commit(lambda: _enqueue(imp.pk))
    return imp


@transaction.atomic
def do_delete_import(imp: Import, *, actor: Actor) -> None:
    """Removes the import's record and files (the error report too). What it imported stays."""
    imp = Import.objects.select_for_update().select_related("workspace").get(pk=imp.pk)
    if imp.status in (Status.QUEUED, Status.RUNNING) and not is_stalled(imp):
        raise Conflict("this import is still going: cancel it first")
    _audit("import.deleted", imp, actor)
    pk = imp.pk
    imp.delete()
    transaction.on_commit(lambda: files.remove_all(pk))


def record_import_report_read(imp: Import, *, actor: Actor) -> None:
    """Someone downloaded the error report: the skipped rows of the file as they were, personal
    data leaving the system like an export, so each download is on record."""
    _audit("import.report_downloaded", imp, actor)


# -- the job -----------------------------------------------------------------------------------


@task()
def import_task(import_id: int) -> None:
    run_import(import_id)


def _job_actor(imp: Import) -> Actor:
    return Actor.system(f"import job ({imp.created_by_label or 'system'})")


def run_import(
    import_id: int,
    *,
    on_progress: Callable[[Import], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Import:
    """Runs a queued import to its end (finished, failed or cancelled); returns it."""
    started = now()
    if not Import.objects.filter(pk=import_id, status=Status.QUEUED).update(
        status=Status.RUNNING, updated_at=started
    ):
        return Import.objects.filter(pk=import_id).first()  # cancelled, or another runner's
    Import.objects.filter(pk=import_id, started_at=None).update(started_at=started)
    imp = Import.objects.select_related("workspace").get(pk=import_id)
    progress = on_progress or (lambda _imp: None)
    try:
        _run(imp, progress, chunk_rows)
    except _Cancelled:
        files.remove_source(import_id)  # cancel's own removal may have come while we read it
    except UnreadableFile as exc:
        _fail(imp, str(exc))
    except Exception as exc:
        logger.exception("import %s stopped", import_id)
        _fail(
            imp,
            f"the import stopped on an unexpected error ({type(exc).__name__}) after "
            f"{imp.rows_done} rows; those are imported, and resuming goes on from there",
        )
    finally:
        files.seen_path(import_id).unlink(missing_ok=True)
    imp.refresh_from_db()
    progress(imp)
    return imp


def record_interruption(import_id: int) -> Import:
    """The foreground job was stopped (Ctrl-C): a failed import that can be resumed."""
    imp = Import.objects.select_related("workspace").get(pk=import_id)
    _fail(
        imp,
        f"interrupted after {imp.rows_done} rows; those are imported, and resuming goes on "
        "from there",
    )
    imp.refresh_from_db()
    return imp


def _mine(imp: Import):
    """The import, if this runner still holds it. Every write of the job goes through this:
    a resume (of an import that only seemed stalled) or a cancel moves updated_at or the
    status, after which the old runner's writes match nothing and it stops."""
    return Import.objects.filter(pk=imp.pk, status=Status.RUNNING, updated_at=imp.updated_at)


def _fail(imp: Import, message: str) -> None:
    stamp = now()
    if _mine(imp).update(status=Status.FAILED, error=message, finished_at=stamp, updated_at=stamp):
        imp.refresh_from_db()
        _audit("import.finished", imp, _job_actor(imp), status=Status.FAILED, **counts_of(imp))


def _run(imp: Import, progress, chunk_rows: int) -> None:
    path = files.source_path(imp.pk)
    if not path.exists():
        raise UnreadableFile("the uploaded file is no longer there: upload it again")
    if not imp.rows_total_exact:
        imp.encoding, imp.rows_total = check_whole_file(path, imp.encoding, imp.delimiter)
        imp.rows_total_exact = True
        stamp = now()
        if not _mine(imp).update(
            encoding=imp.encoding,
            rows_total=imp.rows_total,
            rows_total_exact=True,
            updated_at=stamp,
        ):
            raise _Cancelled
        imp.updated_at = stamp
        progress(imp)
    lists = list(imp.lists.all())
    if imp.mode == Import.Mode.SUBSCRIBE and not lists:
        raise UnreadableFile("the lists this import was to subscribe people to have been deleted")
    with (
        bulk_session(),
        RecordReader(path, imp.encoding, imp.delimiter) as reader,
        SeenAddresses(files.seen_path(imp.pk)) as seen,
        ErrorReport(files.report_path(imp.pk), reader.header, imp.report_size) as report,
    ):
        if reader.header != imp.header:
            raise UnreadableFile("the file is not the one that was uploaded (its header differs)")
        mapping = Mapping.from_json(imp.mapping).validated(reader.header)
        pipeline = Pipeline(imp, header=reader.header, mapping=mapping, lists=lists, seen=seen)
        chunks = _parsed_chunks(pipeline, iter(reader), imp.rows_done, chunk_rows)
        with _overlapped(chunks) as chunks:
            for parsed, rows in chunks:
                if not _mine(imp).exists():
                    raise _Cancelled
                _chunk(imp, pipeline, parsed, rows, report)
                # With DEBUG on (a developer's `make run`), Django keeps every query's SQL, here
                # with 10,000 addresses in each lookup: up to 9,000 would be gigabytes.
                reset_queries()
                progress(imp)
    stamp = now()
    if _mine(imp).update(status=Status.FINISHED, finished_at=stamp, updated_at=stamp):
        imp.refresh_from_db()
        _audit("import.finished", imp, _job_actor(imp), status=Status.FINISHED, **counts_of(imp))
        files.remove_source(imp.pk)


def _parsed_chunks(pipeline: Pipeline, records, skip: int, chunk_rows: int):
    """(result so far, valid rows) of each chunk of records after the first `skip`. No database
    here: this runs in the reading thread."""
    # Resuming: the rows already done are read again only to refill the index of addresses
    # met, so that a duplicate of a row before the crash is still found.
    while skip > 0:
        batch = list(islice(records, min(chunk_rows, skip)))
        if not batch:
            break
        pipeline.parse(batch, ChunkResult())
        skip -= len(batch)
    while batch := list(islice(records, chunk_rows)):
        parsed = ChunkResult(rows=len(batch))
        yield parsed, pipeline.parse(batch, parsed)


def _overlapped(chunks):
    """On PostgreSQL the next chunk is read and parsed in a thread while this one is written:
    the first is Python's work, the second mostly the server's, in another process (measured at
    100,000 rows: about a tenth off the job). Not on SQLite, whose writing is in this process
    and takes the interpreter lock back after each row it stages: with a thread parsing beside
    it, each row waits for the lock (measured: never faster, up to a quarter slower)."""
    if connection.vendor == "postgresql":
        return ahead(chunks, name="import-reader")
    return nullcontext(chunks)


def _chunk(imp: Import, pipeline: Pipeline, parsed: ChunkResult, rows, report: ErrorReport) -> None:
    for attempt in range(3):
        result = ChunkResult(rows=parsed.rows, reported=list(parsed.reported))
        try:
            with transaction.atomic():
                chunk_transaction_settings()
                pipeline.write(rows, result, now())
                report.add([(line, text, cells) for line, _, text, cells in result.reported])
                reasons = Counter(imp.skipped_reasons) + result.reasons
                values = {
                    "rows_done": imp.rows_done + result.rows,
                    "rows_created": imp.rows_created + result.created,
                    "rows_updated": imp.rows_updated + result.updated,
                    "rows_unchanged": imp.rows_unchanged + result.unchanged,
                    "rows_skipped": imp.rows_skipped + len(result.reported),
                    "skipped_reasons": dict(reasons),
                    "report_size": report.flush(),
                    "updated_at": now(),
                }
                if not _mine(imp).update(**values):
                    raise _Cancelled
        except IntegrityError:
            # Someone added one of these addresses between our look and our write (a form, the
            # API): do the chunk again, which now finds them.
            report.rollback()
            if attempt == 2:
                raise
            continue
        except BaseException:
            report.rollback()
            raise
        report.committed(values["report_size"])
        for key, value in values.items():
            setattr(imp, key, value)
        return


# -- personal data in the import's files: erasure and retention -------------------------------

GOING = (Status.QUEUED, Status.RUNNING)


def erase_from_reports(workspace, address: str) -> None:
    """Erasure reaching the error reports: the rows naming the address are cut out of the
    report of every import of the workspace that is not going (personal_data registers this;
    it runs once the erasure has committed). A going import's report is being appended to by
    its job, so it is left alone: the person is suppressed by then, and the report expires
    with the retention below. The size recorded for a resume is updated with the file, under
    the import's row lock, so a resume never cuts the rewritten report at the old size."""
    candidates = (
        Import.objects.filter(workspace=workspace, rows_skipped__gt=0)
        .exclude(status__in=GOING)
        .values_list("pk", flat=True)
    )
    for pk in candidates:
        path = files.report_path(pk)
        if not path.exists():
            continue
        with transaction.atomic():
            locked = Import.objects.select_for_update().filter(pk=pk).exclude(status__in=GOING)
            if not locked.exists():
                continue
            size = drop_rows_naming(path, address)
            if size is not None:
                locked.update(report_size=size)


def expire_import_files(cutoff) -> int:
    """Removes the error report and any upload left (a failed import's, kept for resuming) of
    every import that ended before `cutoff`; returns how many imports had files removed."""
    ended = (
        Import.objects.filter(finished_at__lt=cutoff)
        .exclude(status__in=GOING)
        .values_list("pk", flat=True)
    )
    removed = 0
    for pk in ended.iterator(chunk_size=1000):
        paths = [files.report_path(pk), files.source_path(pk)]
        if any(path.exists() for path in paths):
            for path in paths:
                path.unlink(missing_ok=True)
            removed += 1
    return removed


# One look an hour per worker is enough for a retention counted in days, and keeps the duty
# from querying on every round of an idle worker.
SWEEP_INTERVAL = 3600.0
_next_sweep = 0.0


def expire_import_files_one(clock: Callable[[], float] = time.monotonic) -> bool:
    """Worker duty: the import files that hold people's data (the error report with the rows
    as they were, a failed import's upload) go IMPORT_FILE_RETENTION after the import ended."""
    global _next_sweep
    if clock() < _next_sweep:
        return False
    _next_sweep = clock() + SWEEP_INTERVAL
    return expire_import_files(now() - settings.IMPORT_FILE_RETENTION) > 0


def purge_abandoned_one() -> bool:
    """Worker duty: deletes one draft older than DRAFT_MAX_AGE, its upload with it."""
    draft = (
        Import.objects.filter(status=Status.DRAFT, created_at__lt=now() - DRAFT_MAX_AGE)
        .select_related("workspace")
        .order_by("pk")
        .first()
    )
    if draft is None:
        return False
    do_delete_import(draft, actor=Actor.system("import clean-up"))
    return True
