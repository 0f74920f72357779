"""Which column of the file holds the email address, which the name (or the first and the last
name), which become attributes (as text or as numbers, or a column of JSON objects as listmonk
exports them), and which are ignored. Columns are numbered from 0 internally (the header may
repeat a name); people see and type them by header name or 1-based number.

Stored on the import as JSON: {"email": 0, "name": 1, "attributes": [[2, "city", "text"]]}, with
"first_name", "last_name" and "attributes_json" (column numbers) where those are mapped.

The headers recognised without asking cover what people name these columns in English and
German, and the exports of Mailchimp ("Email Address", "First Name", "Last Name") and listmonk
(email, name, attributes).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mailmarketer.accounts.actions import ActionError
from mailmarketer.lib.text import one_line_problem

from ..emails import InvalidEmail, normalise_email

ATTRIBUTE_TYPES = {"text": "text", "number": "number"}
MAX_ATTRIBUTE_NAME = 100  # as audience.actions._clean_attributes allows

# Header names taken for the email or the name column without asking (compared lower-cased,
# with spaces, hyphens, underscores and dots removed).
EMAIL_HEADERS = {
    "email",
    "emailaddress",
    "mail",
    "emailadresse",
    "mailadresse",
    "courriel",
    "adressemail",
    "correo",
    "correoelectronico",
}
NAME_HEADERS = {
    "name",
    "fullname",
    "displayname",
    "nom",
    "nombre",
    "nomcomplet",
    "vollername",
    "vollständigername",
}
FIRST_NAME_HEADERS = {
    "firstname",
    "first",
    "fname",
    "givenname",
    "forename",
    "vorname",
    "rufname",
    "prenom",
    "prénom",
}
LAST_NAME_HEADERS = {
    "lastname",
    "last",
    "lname",
    "surname",
    "familyname",
    "nachname",
    "familienname",
    "zuname",
    "nomdefamille",
    "apellido",
    "apellidos",
}
# listmonk's export: a column of JSON objects, each key an attribute.
ATTRIBUTES_JSON_HEADERS = {"attributes", "attribs"}
# The roles one column at most may have, in the order they are guessed and checked.
SINGLE_ROLES = ("email", "name", "first_name", "last_name", "attributes_json")
ROLE_TEXT = {
    "email": "email",
    "name": "name",
    "first_name": "first name",
    "last_name": "last name",
    "attributes_json": "attributes (JSON)",
}

_INTEGER = re.compile(r"[+-]?\d{1,15}")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+[eE][+-]?\d+")


class MappingError(ActionError):
    code = "invalid_mapping"


def parse_number(text: str) -> int | float:
    """A cell of a number column: 42, -7, 3.5, 1e3 (a decimal point, never a comma, since a
    comma may as well separate thousands). Raises ValueError."""
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        number = float(text)
        if math.isfinite(number):  # 1e999 is infinity, which JSON cannot hold
            return number
    raise ValueError(text)


def _squashed(cell: str) -> str:
    return re.sub(r"[\s._-]+", "", cell.lower())


@dataclass(frozen=True)
class Attribute:
    column: int
    name: str
    type: str = "text"


@dataclass(frozen=True)
class Mapping:
    email: int | None
    name: int | None = None
    attributes: tuple[Attribute, ...] = ()
    first_name: int | None = None
    last_name: int | None = None
    attributes_json: int | None = None

    def to_json(self) -> dict:
        # The roles added later (first and last name, JSON attributes) only when mapped.
        return {
            "email": self.email,
            "name": self.name,
            **{
                role: column
                for role in SINGLE_ROLES[2:]
                if (column := getattr(self, role)) is not None
            },
            "attributes": [[a.column, a.name, a.type] for a in self.attributes],
        }

    @classmethod
    def from_json(cls, data: dict) -> Mapping:
        return cls(
            **{role: data.get(role) for role in SINGLE_ROLES},
            attributes=tuple(Attribute(c, n, t) for c, n, t in data.get("attributes", [])),
        )

    def role_of(self, column: int) -> str:
        for role in SINGLE_ROLES:
            if column == getattr(self, role):
                return role
        for attribute in self.attributes:
            if attribute.column == column:
                return f"attribute:{attribute.type}"
        return "ignore"

    def attribute_name(self, column: int) -> str | None:
        for attribute in self.attributes:
            if attribute.column == column:
                return attribute.name
        return None

    def validated(self, header: list[str]) -> Mapping:
        """This mapping, checked against the header; raises MappingError naming the problem."""
        width = len(header)

        def column_name(i: int) -> str:
            return f"column {i + 1} ({header[i]!r})" if header[i] else f"column {i + 1}"

        if self.email is None:
            raise MappingError("choose the column that holds the email addresses")
        used = {}
        for role in SINGLE_ROLES:
            column = getattr(self, role)
            if column is None:
                continue
            if not isinstance(column, int) or not 0 <= column < width:
                raise MappingError(
                    f"the {ROLE_TEXT[role]} column {column!r} is not a column of the file"
                )
            if column in used:
                raise MappingError(
                    f"the {ROLE_TEXT[used[column]]} and the {ROLE_TEXT[role]} must be "
                    "different columns"
                )
            used[column] = role
        names = set()
        for attribute in self.attributes:
            column = attribute.column
            if not isinstance(column, int) or not 0 <= column < width:
                raise MappingError(f"attribute column {column!r} is not a column of the file")
            if column in used:
                raise MappingError(f"{column_name(column)} is mapped twice")
            used[column] = "attribute"
            name = (attribute.name or "").strip()
            if not name:
                raise MappingError(f"give the attribute of {column_name(column)} a name")
            problem = one_line_problem(name)
            if problem:
                raise MappingError(f"the attribute name of {column_name(column)} {problem}")
            if len(name) > MAX_ATTRIBUTE_NAME:
                raise MappingError(
                    f"the attribute name of {column_name(column)} is longer than "
                    f"{MAX_ATTRIBUTE_NAME} characters"
                )
            if name in names:
                raise MappingError(f"two columns are mapped to the attribute {name!r}")
            names.add(name)
            if attribute.type not in ATTRIBUTE_TYPES:
                raise MappingError(f"unknown attribute type {attribute.type!r} (text or number)")
        return Mapping(
            **{role: getattr(self, role) for role in SINGLE_ROLES},
            attributes=tuple(
                Attribute(a.column, a.name.strip(), a.type)
                for a in sorted(self.attributes, key=lambda a: a.column)
            ),
        )


def default_attribute_name(header: list[str], column: int) -> str:
    return header[column].strip()[:MAX_ATTRIBUTE_NAME] or f"column {column + 1}"


def _holds_emails(rows: list[list[str]], column: int) -> bool:
    values = [r[column].strip() for r in rows if column < len(r) and r[column].strip()]
    good = 0
    for value in values:
        try:
            normalise_email(value)
            good += 1
        except InvalidEmail:
            pass
    return bool(values) and good * 2 >= len(values)


def _attributes(header: list[str], *taken: int | None) -> tuple[Attribute, ...]:
    attributes, names = [], set()
    for column in range(len(header)):
        if column in taken:
            continue
        base = default_attribute_name(header, column)
        attribute_name, n = base, 1
        while attribute_name in names:
            n += 1
            attribute_name = f"{base} ({n})"
        names.add(attribute_name)
        attributes.append(Attribute(column, attribute_name, "text"))
    return tuple(attributes)


def guess_mapping(header: list[str], rows: list[list[str]]) -> Mapping:
    """The mapping the page starts from: the email column by its header name (or, failing
    that, the first column whose preview values are mostly addresses), the name, first name,
    last name and a column of JSON attributes likewise by their header names, every other
    column a text attribute named after its header. Email may stay None."""
    squashed = [_squashed(cell) for cell in header]
    email = next((i for i, s in enumerate(squashed) if s in EMAIL_HEADERS), None)
    if email is None:
        email = next((i for i in range(len(header)) if _holds_emails(rows, i)), None)
    taken = [email]

    def by_header(names: set[str]) -> int | None:
        found = next((i for i, s in enumerate(squashed) if s in names and i not in taken), None)
        taken.append(found)
        return found

    name = by_header(NAME_HEADERS)
    first_name = by_header(FIRST_NAME_HEADERS)
    last_name = by_header(LAST_NAME_HEADERS)
    attributes_json = by_header(ATTRIBUTES_JSON_HEADERS)
    return Mapping(
        email=email,
        name=name,
        first_name=first_name,
        last_name=last_name,
        attributes_json=attributes_json,
        attributes=_attributes(header, *taken),
    )


def find_column(header: list[str], wanted: str, *, what: str) -> int:
    """A column named by its header (case-insensitive) or its 1-based number (the CLI)."""
    wanted = wanted.strip()
    for i, cell in enumerate(header):
        if cell == wanted:
            return i
    lowered = [cell.lower() for cell in header]
    if lowered.count(wanted.lower()) == 1:
        return lowered.index(wanted.lower())
    if wanted.isdigit() and 1 <= int(wanted) <= len(header):
        return int(wanted) - 1
    columns = ", ".join(repr(c) for c in header)
    raise MappingError(f"no {what} column {wanted!r}: the file's columns are {columns}")


def mapping_for(
    header: list[str],
    rows: list[list[str]],
    *,
    email: str | None = None,
    name: str | None = None,
) -> Mapping:
    """The guessed mapping with the email and name columns named explicitly where given (by
    header or number); raises MappingError when no email column is named or found."""
    guess = guess_mapping(header, rows)
    email_column = find_column(header, email, what="email") if email else guess.email
    if email_column is None:
        columns = ", ".join(repr(c) for c in header)
        raise MappingError(
            f"no email column: none of the columns ({columns}) is named like one or holds "
            "email addresses; say which it is (--email-column on the command line)"
        )
    name_column = find_column(header, name, what="name") if name else guess.name
    if name_column == email_column:
        name_column = None
    # The guessed first and last name and JSON attributes, unless named as email or name.
    others = {
        role: column
        for role in ("first_name", "last_name", "attributes_json")
        if (column := getattr(guess, role)) not in (None, email_column, name_column)
    }
    return Mapping(
        email_column,
        name_column,
        _attributes(header, email_column, name_column, *others.values()),
        **others,
    ).validated(header)
