"""The error report: one CSV row per file row that was not imported (or not wholly), with its
line, the reason, and the row's own values, so the person can fix the rows and import again.

Cells starting with =, +, -, @, tab or carriage return get a leading apostrophe, so that a
spreadsheet opening the report shows them as text instead of running them as formulas (CSV
injection: the values came from an uploaded file, the report is opened by staff). UTF-8 with a
byte-order mark, CRLF line ends: what Excel opens correctly.

The report is appended to chunk by chunk; the size after each chunk is recorded in the same
transaction as the chunk's rows, and a resumed job cuts the file back to that size, so the
report always matches what was committed.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from pathlib import Path

from mailmarketer.lib.datafiles import open_private

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _line(row) -> int:
    return row[0]


def neutralise(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class ErrorReport:
    def __init__(self, path: Path, header: list[str], committed_size: int = 0):
        self.path = Path(path)
        exists = self.path.exists()
        # Closed in close(). A new report is made 0600: it holds people's rows.
        self.file = (
            open(self.path, "r+b")  # noqa: SIM115
            if exists
            else open_private(self.path, "w+b")
        )
        self.file.truncate(committed_size if exists else 0)
        self.file.seek(0, io.SEEK_END)
        if self.file.tell() == 0:
            self._append([["line", "reason", *header]], bom=True)
        self.size = self.flush()

    def _append(self, rows, *, bom: bool = False) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerows([neutralise(str(cell)) for cell in row] for row in rows)
        self.file.write((codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode("utf-8"))

    def add(self, rows: list[tuple[int, str, list[str]]]) -> None:
        """(line, reason, the row's cells) tuples, appended in line order."""
        if rows:
            self._append(
                [[line, reason, *cells] for line, reason, cells in sorted(rows, key=_line)]
            )

    def flush(self) -> int:
        """Writes what was added through to the disk; returns the size to record with the
        chunk (committed() once the chunk's transaction has committed)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        return self.file.tell()

    def committed(self, size: int) -> None:
        self.size = size

    def rollback(self) -> None:
        """Drops what was added since the last committed chunk (its transaction failed)."""
        self.file.truncate(self.size)
        self.file.seek(self.size)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> ErrorReport:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def drop_rows_naming(path: Path, address: str) -> int | None:
    """Rewrites the report without the rows in which any cell holds the address (compared
    lower-cased, so "ANN@example.com" in a name column goes too): erasure reaching the file.
    Returns the new size, or None when no row named the person (the file is left as it was).
    Streamed row by row, so a report of a million rows costs no memory; the new file replaces
    the old one whole (rename), created 0600 like every data file. The cells were neutralised
    when first written and are written back as they are."""
    needle = address.lower()
    tmp = path.with_name(f".{path.name}.tmp")
    dropped = False
    with (
        open(path, encoding="utf-8-sig", newline="") as source,
        open_private(tmp) as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as out,
    ):
        writer = csv.writer(out, lineterminator="\r\n")
        for row in csv.reader(source):
            if any(needle in cell.lower() for cell in row):
                dropped = True
            else:
                writer.writerow(row)
        out.flush()
        os.fsync(out.fileno())
        size = raw.tell()
    if not dropped:
        tmp.unlink()
        return None
    os.replace(tmp, path)
    return size


def rows_of(path: Path) -> list[list[str]]:
    """The report read back (tests, and the summary's first rows)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))
