"""Reading import files: formats, encodings, delimiters, line numbers, and the one clear error
for a file that cannot be read at all (importing/reading.py). No database needed."""

from __future__ import annotations

import codecs

import pytest

from mailmarketer.audience.importing.reading import (
    SAMPLE_BYTES,
    RecordReader,
    UnreadableFile,
    check_whole_file,
    inspect_file,
)

from .import_helpers import gzipped, import_data_dir, write, zipped  # noqa: F401


def records(path, encoding="utf-8", delimiter=","):
    with RecordReader(path, encoding, delimiter, check=True) as reader:
        return reader.header, list(reader)


def unreadable(path) -> str:
    with pytest.raises(UnreadableFile) as info:
        inspection = inspect_file(path)
        check_whole_file(path, inspection.encoding, inspection.delimiter)
    return str(info.value)


# -- encodings -------------------------------------------------------------------------------


def test_it_drops_a_utf8_byte_order_mark(tmp_path):
    path = write(tmp_path, "bom.csv", codecs.BOM_UTF8 + "email,name\na@example.com,Zoë\n".encode())

    inspection = inspect_file(path)

    assert inspection.encoding == "utf-8-sig"
    assert inspection.header == ["email", "name"]  # not "\ufeffemail"
    assert inspection.rows == [["a@example.com", "Zoë"]]
    assert records(path, "utf-8-sig")[1] == [(2, ["a@example.com", "Zoë"])]


def test_it_reads_a_latin1_file(tmp_path):
    path = write(tmp_path, "latin1.csv", "email;name\nm@example.com;Müller\n€@x;Zoë\n", "cp1252")

    inspection = inspect_file(path)

    assert (inspection.encoding, inspection.encoding_name) == ("cp1252", "Latin-1 (Windows-1252)")
    assert inspection.rows == [["m@example.com", "Müller"], ["€@x", "Zoë"]]


def test_it_switches_to_latin1_when_a_later_part_is_not_utf8(tmp_path):
    # The first 256 KB are plain ASCII, so the sample reads as UTF-8; line 9002 is Latin-1.
    ascii_rows = "".join(f"user{i}@example.com,Plain Name\n" for i in range(9000))
    text = "email,name\n" + ascii_rows + "late@example.com,Müller\n"
    path = write(tmp_path, "late.csv", text, "cp1252")
    assert path.stat().st_size > SAMPLE_BYTES

    inspection = inspect_file(path)
    encoding, rows = check_whole_file(path, inspection.encoding, inspection.delimiter)

    assert inspection.encoding == "utf-8"
    assert (encoding, rows) == ("cp1252", 9001)
    assert records(path, encoding)[1][-1] == (9002, ["late@example.com", "Müller"])


def test_it_reads_utf16_with_a_byte_order_mark(tmp_path):
    # What Excel saves as "Unicode text": UTF-16 with a BOM, tab-separated.
    path = write(tmp_path, "excel.txt", "email\tname\nz@example.com\tZoë\n".encode("utf-16"))

    inspection = inspect_file(path)

    assert (inspection.encoding, inspection.delimiter) == ("utf-16", "\t")
    assert inspection.rows == [["z@example.com", "Zoë"]]


def test_it_refuses_a_file_with_nul_bytes(tmp_path):
    path = write(tmp_path, "binary.csv", b"email,name\na@example.com,\x00\x01\x02\n")

    assert unreadable(path) == (
        "this is not a CSV text file (it contains NUL bytes, as binary files and spreadsheets "
        "do): save it as CSV (UTF-8) and upload that"
    )


def test_it_refuses_bytes_that_are_neither_utf8_nor_latin1(tmp_path):
    # 0x81 is undefined in Windows-1252 and invalid alone in UTF-8.
    path = write(tmp_path, "weird.csv", b"email,name\na@example.com,ok\nb@example.com,\x81\x8d\n")

    assert unreadable(path) == (
        "this is not a CSV text file (line 3: byte 0x81 is neither UTF-8 nor Latin-1 "
        "(Windows-1252) text): save it as CSV (UTF-8) and upload that"
    )


def test_it_refuses_control_characters_with_their_line(tmp_path):
    path = write(tmp_path, "ctrl.csv", "email,name\na@example.com,ok\nb@example.com,bell\x07\n")

    assert unreadable(path) == (
        "this is not a CSV text file (line 3: it contains the control character 0x07): "
        "save it as CSV (UTF-8) and upload that"
    )


def test_it_finds_control_characters_past_the_sample_before_importing(tmp_path):
    rows = "".join(f"user{i}@example.com,Name\n" for i in range(12000))
    path = write(tmp_path, "late-ctrl.csv", "email,name\n" + rows + "x@example.com,\x02\n")

    inspection = inspect_file(path)  # the sample is clean
    with pytest.raises(UnreadableFile, match=r"line 12002: it contains the control character"):
        check_whole_file(path, inspection.encoding, inspection.delimiter)


# -- delimiters, quotes and line numbers ------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semicolon"), ("\t", "tab")])
def test_it_detects_the_delimiter(tmp_path, delimiter, name):
    text = delimiter.join(["email", "name", "city"]) + "\n"
    text += delimiter.join(["a@example.com", "Smith, Ann; Jr", "Oslo"]).replace(
        "Smith, Ann; Jr", '"Smith, Ann; Jr"'
    )
    path = write(tmp_path, "d.csv", text + "\n")

    inspection = inspect_file(path)

    assert (inspection.delimiter, inspection.delimiter_name) == (delimiter, name)
    assert inspection.rows == [["a@example.com", "Smith, Ann; Jr", "Oslo"]]


def test_it_numbers_records_by_the_line_they_start_on(tmp_path):
    text = (
        "email,note\n"  # line 1
        'a@example.com,"two\nlines"\n'  # lines 2-3
        "\n"  # line 4: blank, not a record
        'b@example.com,"three\r\nlines\r\nhere"\n'  # lines 5-7
        ",,\n"  # line 8: empty cells only, not a record
        "c@example.com,plain\n"  # line 9
    )
    path = write(tmp_path, "quotes.csv", text)

    header, rows = records(path)

    assert header == ["email", "note"]
    assert rows == [
        (2, ["a@example.com", "two\nlines"]),
        (5, ["b@example.com", "three\r\nlines\r\nhere"]),
        (9, ["c@example.com", "plain"]),
    ]


def test_it_refuses_a_quote_that_is_never_closed(tmp_path):
    text = 'email,note\na@example.com,"runs on\n' + "x" * 200_000 + "\n"
    path = write(tmp_path, "open-quote.csv", text)

    with pytest.raises(UnreadableFile) as info:
        check_whole_file(path, "utf-8", ",")

    assert str(info.value) == (
        "line 2: a quoted field runs on for more than 128 KB (a quote is probably not closed)"
    )


# -- headers ----------------------------------------------------------------------------------


def test_it_refuses_a_file_without_a_header(tmp_path):
    path = write(tmp_path, "noheader.csv", "ann@example.com,Ann\nbob@example.com,Bob\n")

    assert unreadable(path) == (
        "line 1 holds an email address, not column names: add a first line naming the columns "
        "(for example: email,name)"
    )


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_it_refuses_an_empty_file(tmp_path, content):
    assert unreadable(write(tmp_path, "empty.csv", content)) == "the file is empty"


def test_it_refuses_a_header_without_rows(tmp_path):
    path = write(tmp_path, "header-only.csv", "email,name\n")

    assert unreadable(path) == "the file has a line of column names but no rows below it"


# -- compressed files -------------------------------------------------------------------------


def test_it_reads_a_gzipped_csv(tmp_path):
    path = gzipped(tmp_path, "people.csv.gz", "email,name\na@example.com,Ann\n")

    inspection = inspect_file(path)

    assert inspection.compression == "gzip"
    assert inspection.rows == [["a@example.com", "Ann"]]
    assert check_whole_file(path, "utf-8", ",") == ("utf-8", 1)


def test_it_reads_the_one_csv_in_a_zip(tmp_path):
    path = zipped(
        tmp_path,
        "people.zip",
        {"export/people.csv": "email\na@example.com\n", "__MACOSX/._people.csv": "junk"},
    )

    inspection = inspect_file(path)

    assert inspection.compression == "zip"
    assert inspection.rows == [["a@example.com"]]


def test_it_refuses_a_damaged_gzip_file(tmp_path):
    rows = "".join(f"user{i}@example.com,Name {i}\n" for i in range(50000))
    whole = gzipped(tmp_path, "whole.csv.gz", "email,name\n" + rows)
    cut = write(tmp_path, "cut.csv.gz", whole.read_bytes()[: whole.stat().st_size // 2])

    inspection = inspect_file(cut)  # the start is fine
    with pytest.raises(UnreadableFile) as info:
        check_whole_file(cut, inspection.encoding, inspection.delimiter)

    assert str(info.value) == (
        "the gzip file is damaged or cut short (Compressed file ended before the "
        "end-of-stream marker was reached)"
    )


def test_it_refuses_a_zip_with_no_file(tmp_path):
    path = zipped(tmp_path, "empty.zip", {})

    assert unreadable(path) == "the zip file holds no file: put one CSV file in it"


def test_it_refuses_a_zip_with_two_files(tmp_path):
    path = zipped(tmp_path, "two.zip", {"a.csv": "email\na@x.io\n", "b.csv": "email\nb@x.io\n"})

    assert unreadable(path) == (
        "the zip file holds 2 files (a.csv, b.csv): put exactly one CSV file in it"
    )


def test_it_refuses_a_spreadsheet(tmp_path):
    path = zipped(tmp_path, "people.xlsx", {"[Content_Types].xml": "<x/>", "xl/workbook.xml": ""})

    assert unreadable(path) == (
        "this is a spreadsheet (xlsx, ods), not a CSV file: save it as CSV (UTF-8) and upload that"
    )


def test_it_refuses_a_file_that_is_only_the_start_of_a_gzip_header(tmp_path):
    # Found by the schemathesis run (issue 9, F8): a 2-byte upload with the gzip magic was a 500.
    path = tmp_path / "file"
    path.write_bytes(b"\x1f\x8b")

    with pytest.raises(UnreadableFile) as info:
        inspect_file(path)

    assert str(info.value) == ("the gzip file is damaged or cut short (shorter than any gzip file)")
