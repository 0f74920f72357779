"""Where an import's files live: settings.DATA_DIR/imports/<id>/.

- source: the uploaded file as uploaded (compressed or not), deleted when the import ends
  (finished or cancelled; kept after a failure so that it can be resumed, for
  IMPORT_FILE_RETENTION at most), since it holds the personal data of everyone in it.
- errors.csv: the error report, kept until the import is deleted or for IMPORT_FILE_RETENTION
  after the import ended (jobs.expire_import_files_one), whichever comes first; erasing a
  person cuts their rows out of it at once (jobs.erase_from_reports).
- seen.sqlite3: the job's scratch index of addresses met (seen.py), deleted when the job stops.

The file name people uploaded is only ever shown, never used in a path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings


def import_dir(import_id: int) -> Path:
    return Path(settings.DATA_DIR) / "imports" / str(int(import_id))


def source_path(import_id: int) -> Path:
    return import_dir(import_id) / "source"


def report_path(import_id: int) -> Path:
    return import_dir(import_id) / "errors.csv"


def seen_path(import_id: int) -> Path:
    return import_dir(import_id) / "seen.sqlite3"


def store_upload(import_id: int, uploaded) -> Path:
    """Moves (or copies) the upload into place. `uploaded` is a Django UploadedFile (a large
    one already streamed to a temporary file, which is moved, not copied) or a path."""
    directory = import_dir(import_id)
    directory.mkdir(parents=True, exist_ok=True)
    target = source_path(import_id)
    if isinstance(uploaded, (str, Path)):
        shutil.copyfile(uploaded, target)
    elif hasattr(uploaded, "temporary_file_path"):
        shutil.move(uploaded.temporary_file_path(), target)
    else:
        with open(target, "wb") as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
    target.chmod(0o600)
    return target


def remove_source(import_id: int) -> None:
    source_path(import_id).unlink(missing_ok=True)
    seen_path(import_id).unlink(missing_ok=True)


def remove_all(import_id: int) -> None:
    shutil.rmtree(import_dir(import_id), ignore_errors=True)
