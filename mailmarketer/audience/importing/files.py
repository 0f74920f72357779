"""Where an import's files live: settings.DATA_DIR/imports/<id>/.

- source: the uploaded file as uploaded (compressed or not), deleted when the import ends
  (finished or cancelled; kept after a failure so that it can be resumed, for
  IMPORT_FILE_RETENTION at most), since it holds the personal data of everyone in it.
- errors.csv: the error report, kept until the import is deleted or for IMPORT_FILE_RETENTION
  after the import ended (jobs.expire_import_files_one), whichever comes first; erasing a
  person cuts their rows out of it at once (jobs.erase_from_reports).
- seen.sqlite3: the job's scratch index of addresses met (seen.py), deleted when the job stops.

Every file here holds people's data: created 0600 in 0700 directories (lib/datafiles.py). The
file name people uploaded is only ever shown, never used in a path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

from mailmarketer.lib.datafiles import open_private, private_dir


def import_dir(import_id: int) -> Path:
    return Path(settings.DATA_DIR) / "imports" / str(int(import_id))


def make_import_dir(import_id: int) -> Path:
    """The import's directory, created 0700 (and imports/ too): it will hold people's data."""
    private_dir(import_dir(import_id).parent)
    return private_dir(import_dir(import_id))


def source_path(import_id: int) -> Path:
    return import_dir(import_id) / "source"


def report_path(import_id: int) -> Path:
    return import_dir(import_id) / "errors.csv"


def seen_path(import_id: int) -> Path:
    return import_dir(import_id) / "seen.sqlite3"


def store_upload(import_id: int, uploaded) -> Path:
    """Moves (or copies) the upload into place. `uploaded` is a Django UploadedFile (a large
    one already streamed to a temporary file, which is moved, not copied) or a path."""
    make_import_dir(import_id)
    target = source_path(import_id)
    if isinstance(uploaded, (str, Path)):
        with open(uploaded, "rb") as source, open_private(target) as out:
            shutil.copyfileobj(source, out)
    elif hasattr(uploaded, "temporary_file_path"):
        shutil.move(uploaded.temporary_file_path(), target)
    else:
        with open_private(target) as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
    target.chmod(0o600)  # a moved temporary file keeps the mode it was made with
    return target


def remove_source(import_id: int) -> None:
    source_path(import_id).unlink(missing_ok=True)
    seen_path(import_id).unlink(missing_ok=True)


def remove_all(import_id: int) -> None:
    shutil.rmtree(import_dir(import_id), ignore_errors=True)
