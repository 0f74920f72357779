"""The help pages: docs/*.md rendered for staff at /app/help/<page>/, so the UI links to a page
it serves instead of naming a repository file a marketer cannot open.

The files are read from settings.DOCS_DIR (mailmarketer/web/docs, a link to the repository's
docs/ that the wheel carries as files; MM_DOCS_DIR points elsewhere). A page is a file name
there (`sending` for sending.md) and nothing else: no path is ever built from what the URL says.
Markdown goes through markdown-it-py with raw HTML off, then nh3 with a short list of tags and
attributes, so whatever a docs file holds, the page carries no script, no style and no inline
handler (our Content-Security-Policy would refuse them anyway). Links between the docs
(`forms.md`, `forms.md#proof-of-work`) and mentions in the text (`docs/forms.md`) become links to
the help pages; a link to any other repository file becomes its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import nh3
from django.conf import settings
from django.urls import reverse
from markdown_it import MarkdownIt

PAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# A mention of a docs file in running text, e.g. "(docs/bounces.md)".
MENTION = re.compile(r"\bdocs/([a-z0-9][a-z0-9-]*)\.md\b")
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
TAGS = {
    *HEADINGS,
    "p",
    "a",
    "ul",
    "ol",
    "li",
    "code",
    "pre",
    "em",
    "strong",
    "blockquote",
    "hr",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "del",
}
ATTRIBUTES = {**{h: {"id"} for h in HEADINGS}, "a": {"href", "title"}, "ol": {"start"}}


class HelpMissing(Exception):
    """The docs directory is not there (an install without them)."""


@dataclass(frozen=True)
class Page:
    name: str
    title: str
    html: str


def docs_dir() -> Path:
    return Path(settings.DOCS_DIR)


def page_names() -> list[str]:
    """The pages there are: the names of the docs directory's .md files."""
    folder = docs_dir()
    if not folder.is_dir():
        raise HelpMissing(str(folder))
    return sorted(
        path.stem for path in folder.glob("*.md") if PAGE_NAME.match(path.stem) and path.is_file()
    )


def page_url(name: str, anchor: str = "") -> str:
    url = reverse("help-page", kwargs={"page": name})
    return f"{url}#{anchor}" if anchor else url


def get_page(name: str) -> Page | None:
    """The page called `name` rendered, or None when there is no such page."""
    if not PAGE_NAME.match(name):
        return None
    names = page_names()
    if name not in names:
        return None
    path = docs_dir() / f"{name}.md"
    stat = path.stat()
    return _render(str(path), stat.st_mtime_ns, stat.st_size, tuple(names))


def index() -> list[Page]:
    """Every page's name and title (its first heading), by title; the text is left out."""
    names = tuple(page_names())
    pages = []
    for name in names:
        path = docs_dir() / f"{name}.md"
        stat = path.stat()
        page = _render(str(path), stat.st_mtime_ns, stat.st_size, names)
        pages.append(Page(name=name, title=page.title, html=""))
    return sorted(pages, key=lambda p: p.title.lower())


def _slug(text: str) -> str:
    slug = re.sub(r"[^\w\s-]", "", text.lower()).strip()
    return re.sub(r"[\s_]+", "-", slug) or "section"


def _help_href(href: str, names: tuple[str, ...]) -> str | None:
    """The help page a docs link points to, the link itself when it leaves the docs for the
    web, or None when it names another repository file (shown as text)."""
    parts = urlsplit(href)
    if parts.scheme in ("http", "https", "mailto"):
        return href
    if not parts.scheme and not parts.netloc and not parts.path and parts.fragment:
        return href  # within this page
    if parts.scheme or parts.netloc:
        return None
    target = parts.path.removeprefix("./").removeprefix("docs/")
    if target.endswith(".md") and "/" not in target and target[:-3] in names:
        return page_url(target[:-3], parts.fragment)
    return None


def _markdown(names: tuple[str, ...]) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

    def anchors(state):
        # Headings get ids from their text, so "forms.md#proof-of-work" lands on its section.
        seen: dict[str, int] = {}
        tokens = state.tokens
        for i, token in enumerate(tokens):
            if token.type == "heading_open" and i + 1 < len(tokens):
                slug = _slug(tokens[i + 1].content)
                seen[slug] = seen.get(slug, 0) + 1
                token.attrSet("id", slug if seen[slug] == 1 else f"{slug}-{seen[slug] - 1}")

    def relink(state):
        for block in state.tokens:
            if block.type != "inline" or not block.children:
                continue
            dropped = []
            kept = []
            for child in block.children:
                if child.type == "link_open":
                    href = _help_href(child.attrGet("href") or "", names)
                    dropped.append(href is None)
                    if href is None:
                        continue
                    child.attrSet("href", href)
                elif child.type == "link_close" and dropped and dropped.pop():
                    continue
                kept.append(child)
            block.children = kept

    md.core.ruler.push("help_anchors", anchors)
    md.core.ruler.push("help_links", relink)
    return md


def _link_mentions(html: str, names: tuple[str, ...]) -> str:
    """ "docs/forms.md" in the text (not inside a tag, nor inside a link) becomes a link."""
    out = []
    in_link = 0
    for piece in re.split(r"(<[^>]+>)", html):
        if piece.startswith("<"):
            if piece.startswith("<a "):
                in_link += 1
            elif piece == "</a>":
                in_link = max(0, in_link - 1)
            out.append(piece)
        elif in_link:
            out.append(piece)
        else:

            def link(match):
                name = match.group(1)
                if name not in names:
                    return match.group(0)
                return f'<a href="{page_url(name)}">{match.group(0)}</a>'

            out.append(MENTION.sub(link, piece))
    return "".join(out)


@lru_cache(maxsize=64)
def _render(path: str, mtime_ns: int, size: int, names: tuple[str, ...]) -> Page:
    """A docs file rendered; cached while the file is unchanged (mtime and size)."""
    text = Path(path).read_text(encoding="utf-8")
    title = next(
        (line[2:].strip() for line in text.splitlines() if line.startswith("# ")),
        Path(path).stem,
    )
    raw = _markdown(names).render(text)
    clean = nh3.clean(
        raw,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )
    return Page(name=Path(path).stem, title=title, html=_link_mentions(clean, names))
