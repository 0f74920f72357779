"""Helpers of the import tests (test_import_*.py): files written as bytes, and an import run from
upload to end the way the worker runs it (the job called directly, no worker, no waiting)."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from mailmarketer.accounts.actors import Actor
from mailmarketer.audience.importing import files, jobs
from mailmarketer.audience.importing.mapping import mapping_for
from mailmarketer.audience.importing.queries import preview_of
from mailmarketer.audience.importing.report import rows_of

NOTICE = "Yes, send me the Acme newsletter. I can unsubscribe at any time."


@pytest.fixture(autouse=True)
def import_data_dir(settings, tmp_path):
    """Autouse in each import test module that imports it: files go under the test's tmp_path."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def gzipped(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()))
    return path


def zipped(tmp_path: Path, name: str, members: dict[str, str]) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return path


def start(
    workspace,
    path: Path,
    *,
    actor: Actor | None = None,
    lists=("news",),
    mode="subscribe",
    confirmed=True,
    notice_text=NOTICE,
    attribute_mode="merge",
    email=None,
    name=None,
    mapping=None,
):
    """A queued import of `path` (created and started, the job not run)."""
    actor = actor or Actor.system("test")
    imp = jobs.do_create_import(
        workspace,
        file=path,
        original_name=path.name,
        mode=mode,
        lists=list(lists) if mode == "subscribe" else [],
        confirmed=confirmed,
        notice_text=notice_text,
        attribute_mode=attribute_mode,
        actor=actor,
    )
    if mapping is None:
        preview = preview_of(imp)
        mapping = mapping_for(imp.header, preview.rows, email=email, name=name)
    return jobs.do_start_import(imp, mapping=mapping, actor=actor, enqueue=False)


def run(workspace, path: Path, *, chunk_rows: int = jobs.CHUNK_ROWS, on_progress=None, **options):
    """Upload, start and run an import to its end; returns the Import."""
    imp = start(workspace, path, **options)
    return jobs.run_import(imp.pk, chunk_rows=chunk_rows, on_progress=on_progress)


def report(imp) -> list[list[str]]:
    """The error report's rows after its header line."""
    path = files.report_path(imp.pk)
    return rows_of(path)[1:] if path.exists() else []
