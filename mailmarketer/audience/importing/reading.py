"""Reading an import file: what it is, how it is encoded and delimited, and its records.

Formats are recognised by their first bytes, not their names: gzip (1f 8b), zip ("PK"), or
plain text. A zip must hold exactly one file (macOS's __MACOSX/ folder and dot files aside); a
spreadsheet (xlsx, ods: zips as well) is refused with a hint to save it as CSV.

The encoding rule, which is also what "bad encoding" means here:
1. A byte-order mark decides: UTF-8 (the mark is dropped) or UTF-16 (Excel's "Unicode text").
2. Otherwise UTF-8 when the whole file decodes as UTF-8, else Windows-1252: the superset of
   Latin-1 that Excel and most Windows tools write, so "Latin-1" files are in practice this.
3. The file is refused as not being CSV text when it holds a NUL byte (without a UTF-16 mark),
   when, decoded, it holds a control character other than tab, line feed, vertical tab, form
   feed and carriage return, or when it is not Windows-1252 either (it has one of the bytes
   0x81, 0x8D, 0x8F, 0x90, 0x9D, which Windows-1252 leaves undefined). Latin-1 proper decodes
   every byte, so on its own it cannot tell text from a binary file; this rule can.
Inspection decides on a sample of the start; the job's check reads the whole file before it
imports anything, and switches a file whose start was UTF-8 to Windows-1252 when a later part
is not UTF-8 (so a Latin-1 file with plain ASCII at the top still reads right).

The delimiter is a comma, a semicolon or a tab: whichever splits the sample's first records into
the same number (more than one) of columns most consistently, csv.Sniffer breaking a tie.

Line numbers are physical lines of the file, 1-based, the header being line 1: a record whose
quoted field spans lines is numbered by the line it starts on. Blank lines, and rows whose every
cell is empty (spreadsheets export these at the end), are not records.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from mailmarketer.accounts.actions import ActionError

from ..emails import InvalidEmail, normalise_email

SAMPLE_BYTES = 256 * 1024
PREVIEW_ROWS = 10
# A field longer than this is taken for a quote that was never closed (it swallows the rest).
FIELD_LIMIT = 128 * 1024
DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (with byte-order mark)",
    "utf-16": "UTF-16",
    "cp1252": "Latin-1 (Windows-1252)",
}
SAVE_AS_CSV = "save it as CSV (UTF-8) and upload that"

# C0 controls other than \t \n \v \f \r: text never holds them, binary files always do.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")

csv.field_size_limit(FIELD_LIMIT)


class UnreadableFile(ActionError):
    """The file as a whole cannot be imported; the message says why, for the person who
    uploaded it. Nothing is imported from such a file."""

    code = "unreadable_file"


class _NotUtf8(UnreadableFile):
    """Raised mid-file by the UTF-8 decoder; the whole-file check retries as Windows-1252."""


@dataclass
class Inspection:
    compression: str  # "" | "gzip" | "zip"
    encoding: str  # a Python codec name, a key of ENCODING_NAMES
    delimiter: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)  # the first PREVIEW_ROWS records
    rows_estimate: int = 0

    @property
    def encoding_name(self) -> str:
        return ENCODING_NAMES.get(self.encoding, self.encoding)

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES[self.delimiter]


# -- opening -------------------------------------------------------------------------------------


def _kind(path: Path) -> str:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic[:2] == b"PK" and magic[2:4] in (b"\x03\x04", b"\x05\x06", b"\x07\x08"):
        return "zip"
    return ""


def _zip_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    names = archive.namelist()
    if "[Content_Types].xml" in names or "mimetype" in names:
        raise UnreadableFile(f"this is a spreadsheet (xlsx, ods), not a CSV file: {SAVE_AS_CSV}")
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and not info.filename.startswith("__MACOSX/")
        and not Path(info.filename).name.startswith(".")
    ]
    if not members:
        raise UnreadableFile("the zip file holds no file: put one CSV file in it")
    if len(members) > 1:
        shown = ", ".join(m.filename for m in members[:3]) + (", …" if len(members) > 3 else "")
        raise UnreadableFile(
            f"the zip file holds {len(members)} files ({shown}): put exactly one CSV file in it"
        )
    if members[0].flag_bits & 0x1:
        raise UnreadableFile("the file in the zip is password-protected: zip it without a password")
    return members[0]


def _gzip_size(path: Path) -> int:
    # The gzip trailer holds the uncompressed size modulo 4 GiB: good enough for an estimate.
    # A file shorter than a header and a trailer (18 bytes) has none: seeking 4 bytes back
    # from the end of a 2-byte file raised OSError, a 500.
    if path.stat().st_size < 18:
        raise gzip.BadGzipFile("shorter than any gzip file")
    with open(path, "rb") as f:
        f.seek(-4, io.SEEK_END)
        return int.from_bytes(f.read(4), "little")


@contextmanager
def _damage_reported(compression: str):
    """Errors of a damaged archive, wherever in the file they surface, as one clear message."""
    what = {"gzip": "gzip", "zip": "zip"}.get(compression, "")
    try:
        yield
    except (gzip.BadGzipFile, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise UnreadableFile(
            f"the {what or 'compressed'} file is damaged or cut short ({exc})"
        ) from None
    except NotImplementedError as exc:  # a zip compression method Python does not know
        raise UnreadableFile(
            f"the zip file uses a compression method that is not supported ({exc})"
        ) from None


@contextmanager
def open_bytes(path: Path) -> Iterator[tuple[BinaryIO, str, int]]:
    """The file's decompressed bytes, its compression and its uncompressed size (estimate)."""
    path = Path(path)
    compression = _kind(path)
    with _damage_reported(compression):
        if compression == "gzip":
            size = _gzip_size(path)
            with gzip.open(path, "rb") as stream:
                yield stream, compression, size
        elif compression == "zip":
            try:
                archive = zipfile.ZipFile(path)
            except zipfile.BadZipFile as exc:
                raise UnreadableFile(f"this is not a readable zip file ({exc})") from None
            with archive:
                member = _zip_member(archive)
                with archive.open(member) as stream:
                    yield stream, compression, member.file_size
        else:
            with open(path, "rb") as stream:
                yield stream, compression, path.stat().st_size


# -- encoding ------------------------------------------------------------------------------------


def _not_text(detail: str) -> UnreadableFile:
    return UnreadableFile(f"this is not a CSV text file ({detail}): {SAVE_AS_CSV}")


def encoding_of(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample:
        raise _not_text("it contains NUL bytes, as binary files and spreadsheets do")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError as exc:
        bad = sample[exc.start]
        line = sample.count(b"\n", 0, exc.start) + 1
        raise _not_text(
            f"line {line}: byte 0x{bad:02X} is neither UTF-8 nor Latin-1 (Windows-1252) text"
        ) from None


def _check_controls(text: str, first_line: int = 1) -> None:
    match = _CONTROL.search(text)
    if match:
        line = first_line + text.count("\n", 0, match.start())
        code = ord(match.group())
        raise _not_text(f"line {line}: it contains the control character 0x{code:02X}")


# -- delimiter -----------------------------------------------------------------------------------


def detect_delimiter(text: str) -> str:
    scores = {}
    for delimiter in DELIMITERS:
        rows = [r for r in islice(csv.reader(io.StringIO(text), delimiter=delimiter), 50) if r]
        width = len(rows[0]) if rows else 0
        if width < 2:
            scores[delimiter] = (0.0, 0)
            continue
        scores[delimiter] = (sum(len(r) == width for r in rows) / len(rows), width)
    best = max(scores.values())
    if best[1] == 0:
        return ","  # one column: no delimiter in sight
    tied = [d for d in DELIMITERS if scores[d] == best]
    if len(tied) > 1:
        try:
            sniffed = csv.Sniffer().sniff(text[:65536], delimiters="".join(DELIMITERS)).delimiter
        except csv.Error:
            sniffed = None
        if sniffed in tied:
            return sniffed
    return tied[0]


# -- records -------------------------------------------------------------------------------------


def _looks_like_email(cell: str) -> bool:
    if "@" not in cell:
        return False
    try:
        normalise_email(cell)
    except InvalidEmail:
        return False
    return True


def check_header(header: list[str], line: int = 1) -> list[str]:
    header = [cell.strip() for cell in header]
    if not any(header):
        raise UnreadableFile(f"line {line} is empty: the first line must name the columns")
    if any(_looks_like_email(cell) for cell in header):
        raise UnreadableFile(
            f"line {line} holds an email address, not column names: add a first line naming "
            "the columns (for example: email,name)"
        )
    return header


class RecordReader:
    """Streams (line, fields) for each record after the header.

    `check` also refuses control characters line by line (the job's whole-file check sets it;
    the import pass, reading a file already checked, need not). Use as a context manager.
    """

    def __init__(self, path: Path, encoding: str, delimiter: str, *, check: bool = False):
        self.path = Path(path)
        self.encoding = encoding
        self.delimiter = delimiter
        self.check = check
        self.header: list[str] = []
        self.header_line = 1

    def __enter__(self) -> RecordReader:
        self._stack = ExitStack()
        try:
            raw, self.compression, _ = self._stack.enter_context(open_bytes(self.path))
            text = io.TextIOWrapper(raw, encoding=self.encoding, errors="strict", newline="")
            self._stack.callback(text.detach)  # the archive closes the raw stream itself
            source = self._checked(text) if self.check else text
            self._reader = csv.reader(source, delimiter=self.delimiter, strict=False)
            try:
                with _damage_reported(self.compression):
                    header = next(self._reader, None)
                    while header is not None and not any(header):
                        header = next(self._reader, None)
            except (UnicodeDecodeError, csv.Error) as exc:
                raise self._translate(exc, self._reader.line_num + 1) from None
            if header is None:
                raise UnreadableFile("the file is empty")
            self.header_line = self._reader.line_num
            self.header = check_header(header, self.header_line)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info):
        return self._stack.__exit__(*exc_info)

    @staticmethod
    def _checked(lines):
        for number, line in enumerate(lines, start=1):
            if _CONTROL.search(line):
                _check_controls(line, number)
            yield line

    def _translate(self, exc: Exception, line: int) -> UnreadableFile:
        """A decoding or CSV error met while reading the record starting on `line`."""
        if isinstance(exc, UnicodeDecodeError):
            if self.encoding == "utf-8":
                return _NotUtf8(f"line {line} is not UTF-8")
            return UnreadableFile(
                f"line {line}: byte 0x{exc.object[exc.start]:02X} cannot be read as "
                f"{ENCODING_NAMES.get(self.encoding, self.encoding)}"
            )
        if "field larger than field limit" in str(exc):
            return UnreadableFile(
                f"line {line}: a quoted field runs on for more than {FIELD_LIMIT // 1024} KB"
                " (a quote is probably not closed)"
            )
        return UnreadableFile(f"line {line}: {exc}")

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = self._reader
        last = reader.line_num
        try:
            with _damage_reported(self.compression):
                for fields in reader:
                    start = last + 1
                    last = reader.line_num
                    if fields and (fields[0] or any(fields)):  # not a blank line
                        yield start, fields
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self._translate(exc, last + 1) from None


def _read_sample(stream: BinaryIO) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while size < SAMPLE_BYTES:
        chunk = stream.read(SAMPLE_BYTES - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), not stream.read(1)


def inspect_file(path: Path) -> Inspection:
    """What the mapping page shows: encoding, delimiter, header and the first rows, from a
    sample of the start of the file. Raises UnreadableFile."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnreadableFile("the file is empty")
    with open_bytes(path) as (stream, compression, size), _damage_reported(compression):
        sample, whole = _read_sample(stream)
    if not sample.strip():
        raise UnreadableFile("the file is empty")
    encoding = encoding_of(sample)
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(sample, final=whole)
    except UnicodeDecodeError:
        raise _not_text(f"it cannot be read as {ENCODING_NAMES[encoding]}") from None
    if not whole:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            raise _not_text(f"the first {SAMPLE_BYTES // 1024} KB hold no line break")
        text = text[: cut + 1]
    _check_controls(text)
    delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    try:
        records = [r for r in reader if any(r)]
    except csv.Error as exc:
        raise UnreadableFile(f"line {reader.line_num}: {exc}") from None
    if not records:
        raise UnreadableFile("the file is empty")
    header = check_header(records[0])
    rows = records[1:]
    if not rows:
        raise UnreadableFile("the file has a line of column names but no rows below it")
    # From the sample's bytes per row: replaced by the exact count once the job has read it all.
    estimate = len(rows) if whole else max(len(rows), round(size * len(rows) / len(sample)))
    return Inspection(
        compression=compression,
        encoding=encoding,
        delimiter=delimiter,
        header=header,
        rows=rows[:PREVIEW_ROWS],
        rows_estimate=estimate,
    )


def check_whole_file(path: Path, encoding: str, delimiter: str) -> tuple[str, int]:
    """Reads every record once, before anything is imported. Returns the encoding (which may
    switch from UTF-8 to Windows-1252, see above) and the number of data rows. Raises
    UnreadableFile for anything that would stop the import half-way."""
    try:
        return encoding, _count(path, encoding, delimiter)
    except _NotUtf8:
        return "cp1252", _count(path, "cp1252", delimiter)


def _count(path: Path, encoding: str, delimiter: str) -> int:
    with RecordReader(path, encoding, delimiter, check=True) as reader:
        return sum(1 for _ in reader)
