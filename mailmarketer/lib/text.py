"""Control characters in what people type: the one rule for every field, at the edge.

A one-line field (a name, a sender, a subject, a list or attribute name) may end up in a mail
header, where CR or LF starts a new header (`Acme\\r\\nBcc: ...`) and the sending code must then
refuse the message; NUL is refused by PostgreSQL in text and JSON; the other C0 and C1 controls
are invisible and make headers that parsers call defective. So they are refused when stored,
with the field named, rather than discovered when a campaign is sent:

- one line (`validate_one_line`, `one_line_problem`): no C0 or C1 control at all (tab, CR, LF
  and NUL included) and no Unicode line or paragraph separator;
- text (`validate_text`, `text_problem`): tab and line breaks are fine (a postal address, a
  description), NUL and the other controls are not.

`refuse_controls` checks several fields at once and raises Django's ValidationError keyed by
field, which the API answers with a 422 naming each field and forms show beside the field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from django.core.exceptions import ValidationError

_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NAMES = {"\r": "a carriage return (CR)", "\n": "a line break (LF)", "\x00": "a NUL character"}


def _describe(char: str) -> str:
    known = _NAMES.get(char)
    if known:
        return known
    name = unicodedata.name(char, "")
    return f"the control character U+{ord(char):04X}" + (f" ({name.lower()})" if name else "")


def one_line_problem(value) -> str | None:
    """What is wrong with `value` as one line of text, or None."""
    if not isinstance(value, str):
        return None
    found = _ONE_LINE.search(value)
    if found is None:
        return None
    return f"must be one line without control characters; it contains {_describe(found[0])}"


def text_problem(value) -> str | None:
    """What is wrong with `value` as text that may have several lines, or None."""
    if not isinstance(value, str):
        return None
    found = _TEXT.search(value)
    if found is None:
        return None
    return f"must not contain control characters; it contains {_describe(found[0])}"


def validate_one_line(value) -> None:
    """A Django validator (forms and model fields)."""
    problem = one_line_problem(value)
    if problem:
        raise ValidationError(f"This field {problem}.", code="control_character")


def validate_text(value) -> None:
    """A Django validator for multi-line text."""
    problem = text_problem(value)
    if problem:
        raise ValidationError(f"This field {problem}.", code="control_character")


def refuse_controls(one_line: dict, text: dict | None = None) -> None:
    """ValidationError({field: message}) for every field in `one_line` that is not one line
    and every field in `text` holding a control character other than tab and line breaks."""
    errors = {}
    for fields, check in ((one_line, one_line_problem), (text or {}, text_problem)):
        for field, value in fields.items():
            problem = check(value)
            if problem:
                errors[field] = ValidationError(f"{field} {problem}", code="control_character")
    if errors:
        raise ValidationError(errors)


def nul_in(value, path: str) -> str | None:
    """The path of the first text holding NUL inside a JSON-like value (dicts, lists), or None:
    PostgreSQL cannot store NUL in text or jsonb."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Iterable = ()
    if isinstance(value, dict):
        items = ((f"{path}.{k}", v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}.{i}", v) for i, v in enumerate(value))
    for where, item in items:
        found = nul_in(item, where)
        if found:
            return found
    return None
