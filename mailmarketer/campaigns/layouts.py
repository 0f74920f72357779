"""Layouts: the HTML around a campaign's content, with `{{ content }}` where the content goes.

The built-in default layout (templates/campaigns/default_layout.html) is used when a campaign
names no layout and its workspace has no default of its own: table-based, 600 px wide, CSS that
css-inline can inline (media queries for dark mode and small screens stay in a <style>), dark
mode declared (color-scheme) with explicit colours for both schemes, presentation tables marked
as such, a link to the web version at the top and a footer with the postal address,
unsubscribe and manage links.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

CONTENT_SLOT = re.compile(r"\{\{[-+]?\s*content\s*[-+]?\}\}")
DEFAULT_LAYOUT_PATH = Path(__file__).parent / "templates" / "campaigns" / "default_layout.html"


@cache
def default_layout_html() -> str:
    return DEFAULT_LAYOUT_PATH.read_text(encoding="utf-8")


def postal_address(text: str) -> str:
    """A postal address as templates see it: one line per line written, whatever the line
    endings (a form's textarea sends CRLF), each trimmed of the commas people end lines with,
    blank lines dropped. The footers print its lines with line breaks, never joined by commas
    ("GmbH , Kaffeestraße 12 ," once)."""
    lines = (line.strip().rstrip(",;").rstrip() for line in (text or "").splitlines())
    return "\n".join(line for line in lines if line)


def content_slots(html: str) -> int:
    """How many `{{ content }}` slots a layout has (exactly one is right)."""
    return len(CONTENT_SLOT.findall(html))
