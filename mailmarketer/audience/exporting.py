"""Writing audience exports (CSV and JSON), streamed: each function yields text one row at a
time, so a million-member list is written with the memory of one row.

CSV columns: uuid, email, name, status, created_at, then one column per attribute name found
among the exported people, then (for a list) the subscription's status and reason.

Why a column per attribute rather than one `attributes` column holding JSON: exports are opened
in spreadsheets, where a column per attribute can be sorted and filtered, and the file can be
imported again with each column mapped to its attribute. The names are found by the database
in one DISTINCT statement over the members (queries.attribute_keys_among), so only the
names come back, never the rows. Should a list have more than MAX_ATTRIBUTE_COLUMNS different
names (an import that gave every row its own keys), one `attributes` column of JSON takes their
place, so the file stays something a spreadsheet can open.

CSV injection: a spreadsheet runs a cell starting with =, +, -, @, tab or carriage return as a
formula, so such text cells get a leading single quote (neutralise). Numbers are written as
they are: -5 is a number to a spreadsheet, not a formula. JSON exports are data for programs
and are written unchanged.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.utils.timezone import now

# queries.SUBSCRIBER_EXPORT_FIELDS, in order.
FIXED_COLUMNS = ("uuid", "email", "name", "status", "created_at")
LIST_COLUMNS = ("subscription_status", "subscription_reason")
MAX_ATTRIBUTE_COLUMNS = 200
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a CSV as UTF-8 only when it starts with a byte-order mark; without one, every
# accented name is garbled. The import reads files with or without it.
BOM = "\ufeff"


def neutralise(text: str) -> str:
    """`=HYPERLINK(...)` -> `'=HYPERLINK(...)`: shown as text by a spreadsheet, never run."""
    if text and text[0] in FORMULA_TRIGGERS:
        return "'" + text
    return text


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)  # a number cannot carry a formula
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return neutralise(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return neutralise(str(value))


def attribute_header(key: str) -> str:
    """An attribute named like a fixed column ("email") gets a prefix, so no two columns share
    a name."""
    if key in FIXED_COLUMNS or key in LIST_COLUMNS or key == "attributes":
        return f"attribute:{key}"
    return key


class _Line:
    """csv.writer's file: hands each line back to the caller instead of keeping it."""

    def write(self, text: str) -> str:
        return text


def csv_rows(
    rows: Iterable[tuple], attribute_keys: list[str] | None, *, list_columns: bool = True
) -> Iterator[str]:
    """Rows as queries.list_members_for_export (list_columns) or queries.subscribers_for_export
    give them. `attribute_keys` None: one `attributes` column of JSON instead of one each."""
    writer = csv.writer(_Line())
    attribute_columns = (
        ["attributes"] if attribute_keys is None else [attribute_header(k) for k in attribute_keys]
    )
    extra = LIST_COLUMNS if list_columns else ()
    header = [*FIXED_COLUMNS, *attribute_columns, *extra]
    yield BOM + writer.writerow([csv_cell(h) for h in header])
    for uuid, email, name, status, created_at, attributes, *rest in rows:
        attributes = attributes if isinstance(attributes, dict) else {}
        if attribute_keys is None:
            attribute_cells = [csv_cell(attributes) if attributes else ""]
        else:
            attribute_cells = [csv_cell(attributes.get(k)) for k in attribute_keys]
        yield writer.writerow(
            [
                csv_cell(str(uuid)),
                csv_cell(email),
                csv_cell(name),
                csv_cell(status),
                csv_cell(created_at),
                *attribute_cells,
                *(csv_cell(value) for value in rest[: len(extra)]),
            ]
        )


def json_rows(
    rows: Iterable[tuple], *, source: dict, members: str, list_columns: bool = True
) -> Iterator[str]:
    """One JSON document, written as it goes: a head, the subscribers one per line, a tail."""
    head = {
        "format": "mailmarketer.audience-export.v1",
        "generated_at": now().isoformat(),
        "source": source,
        "members": members,
    }
    # The head without its closing brace, then the "subscribers" array is streamed into it.
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "subscribers": [\n'
    first = True
    for uuid, email, name, status, created_at, attributes, *rest in rows:
        item = {
            "uuid": str(uuid),
            "email": email,
            "name": name,
            "status": status,
            "created_at": created_at.isoformat() if created_at else None,
            "attributes": attributes if isinstance(attributes, dict) else {},
        }
        if list_columns:
            item["subscription"] = {"status": rest[0], "reason": rest[1]}
        yield ("" if first else ",\n") + json.dumps(item, ensure_ascii=False)
        first = False
    yield "\n]}\n"
