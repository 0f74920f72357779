"""SQL the ORM hides: reading one attribute of the JSON `attributes` column as a typed value.

Why by hand: Django's key transforms return the raw JSON value, whose type differs per
database (SQLite's json_extract gives 1 for true, PostgreSQL's ->> gives the text 'true') and
which may be a number in one row and a numeric string (a CSV import) in the next. Comparing
those as they come would compare text with numbers ("10" < "9") or fail a cast on the first
non-number. Each statement below gives the attribute as one SQL type, or NULL when the row has
no value of that type, so comparisons are typed and a bad row simply does not match.

Every statement is parameterised: `{col}` is the column Django compiled, `{key}` the attribute
name (a PostgreSQL text key, or an SQLite JSON path), `{pattern}` a regular expression. No user
input is ever formatted into the SQL text. One test per statement and database
(tests/test_segments_sql.py) holds them to the same results.

What counts as a value of each type (the same on both databases):
- string:  a JSON string.
- number:  a JSON number, or a JSON string holding a plain decimal (42, -3.5, +7) and nothing
           else. Compared as double precision.
- boolean: JSON true/false, or the strings true/false/yes/no in any letter case.
- date:    a JSON string starting with YYYY-MM-DD (a date or an ISO 8601 timestamp); the date
           part is compared as text, which orders ISO dates by time (byte-wise collation on
           PostgreSQL, so locale rules cannot reorder the digits and hyphens).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import NotSupportedError
from django.db.models import BooleanField, CharField, Expression, F, FloatField


@dataclass(frozen=True)
class Statement:
    name: str
    sql: str


# The decimal shape shared by both databases. PostgreSQL's `$` is the end of the string; in
# Python's re (which Django's SQLite REGEXP function uses) `$` also matches before a final
# newline, so SQLite's pattern ends with \Z instead.
NUMBER_PATTERN = {
    "postgresql": r"^[-+]?[0-9]+(\.[0-9]+)?$",
    "sqlite": r"^[-+]?[0-9]+(\.[0-9]+)?\Z",
}
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"

STATEMENTS: dict[str, dict[str, Statement]] = {
    "postgresql": {
        "string": Statement(
            "attribute-as-string",
            "CASE WHEN jsonb_typeof({col} -> {key}) = 'string' THEN {col} ->> {key} END",
        ),
        # CASE evaluates its branches in order, so the cast only ever sees a checked string.
        "number": Statement(
            "attribute-as-number",
            "CASE jsonb_typeof({col} -> {key})"
            " WHEN 'number' THEN ({col} -> {key})::double precision"
            " WHEN 'string' THEN CASE WHEN ({col} ->> {key}) ~ {pattern}"
            " THEN ({col} ->> {key})::double precision END END",
        ),
        "boolean": Statement(
            "attribute-as-boolean",
            "CASE jsonb_typeof({col} -> {key})"
            " WHEN 'boolean' THEN ({col} -> {key})::boolean"
            " WHEN 'string' THEN CASE lower({col} ->> {key})"
            " WHEN 'true' THEN true WHEN 'yes' THEN true"
            " WHEN 'false' THEN false WHEN 'no' THEN false END END",
        ),
        "date": Statement(
            "attribute-as-date",
            "(CASE WHEN jsonb_typeof({col} -> {key}) = 'string' AND ({col} ->> {key}) ~ {pattern}"
            ' THEN substr({col} ->> {key}, 1, 10) END) COLLATE "C"',
        ),
    },
    "sqlite": {
        # json_type() tells JSON types apart: json_extract() alone gives 1 for true.
        "string": Statement(
            "attribute-as-string",
            "CASE WHEN json_type({col}, {key}) = 'text' THEN json_extract({col}, {key}) END",
        ),
        "number": Statement(
            "attribute-as-number",
            "CASE json_type({col}, {key})"
            " WHEN 'integer' THEN CAST(json_extract({col}, {key}) AS REAL)"
            " WHEN 'real' THEN json_extract({col}, {key})"
            " WHEN 'text' THEN CASE WHEN json_extract({col}, {key}) REGEXP {pattern}"
            " THEN CAST(json_extract({col}, {key}) AS REAL) END END",
        ),
        "boolean": Statement(
            "attribute-as-boolean",
            "CASE json_type({col}, {key})"
            " WHEN 'true' THEN 1 WHEN 'false' THEN 0"
            " WHEN 'text' THEN CASE lower(json_extract({col}, {key}))"
            " WHEN 'true' THEN 1 WHEN 'yes' THEN 1 WHEN 'false' THEN 0 WHEN 'no' THEN 0 END END",
        ),
        # GLOB is SQLite's own (no Python callback per row) and case-sensitive, like the
        # PostgreSQL pattern.
        "date": Statement(
            "attribute-as-date",
            "CASE WHEN json_type({col}, {key}) = 'text' AND json_extract({col}, {key})"
            " GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*'"
            " THEN substr(json_extract({col}, {key}), 1, 10) END",
        ),
    },
}

OUTPUT_FIELDS = {
    "string": CharField,
    "number": FloatField,
    "boolean": BooleanField,
    "date": CharField,
}

_TOKEN = re.compile(r"\{(col|key|pattern)\}")


def sqlite_json_path(name: str) -> str:
    # A quoted label, so dots and spaces in a name are part of it. Names with a double quote or
    # a backslash are refused by validation: SQLite's path syntax has no escape for them.
    return f'$."{name}"'


class AttributeValue(Expression):
    """One attribute as a typed SQL value, NULL when the row has none of that type."""

    def __init__(self, name: str, value_type: str, column="attributes"):
        if value_type not in OUTPUT_FIELDS:
            raise ValueError(f"unknown attribute value type {value_type!r}")
        super().__init__(output_field=OUTPUT_FIELDS[value_type]())
        self.name = name
        self.value_type = value_type
        self.column = F(column) if isinstance(column, str) else column

    def get_source_expressions(self):
        return [self.column]

    def set_source_expressions(self, exprs):
        (self.column,) = exprs

    def as_sql(self, compiler, connection):
        statements = STATEMENTS.get(connection.vendor)
        if statements is None:
            raise NotSupportedError(f"segments do not support {connection.vendor} yet")
        statement = statements[self.value_type]
        col_sql, col_params = compiler.compile(self.column)
        key = self.name if connection.vendor == "postgresql" else sqlite_json_path(self.name)
        values = {
            "key": key,
            "pattern": DATE_PATTERN
            if self.value_type == "date"
            else NUMBER_PATTERN[connection.vendor],
        }
        params: list = []

        def fill(match):
            placeholder = match.group(1)
            if placeholder == "col":
                params.extend(col_params)
                return col_sql
            params.append(values[placeholder])
            # An explicit type for the placeholder: `jsonb -> unknown` could otherwise resolve
            # to the integer (array index) operator.
            return "%s::text" if connection.vendor == "postgresql" else "%s"

        sql = _TOKEN.sub(fill, statement.sql)
        return f"({sql})", params
