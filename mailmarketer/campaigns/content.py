"""Campaign content, done once per campaign: Markdown to HTML, the layout around the body, CSS
inlined, the HTML sanitised, links found, and a plain-text alternative made from the HTML.

The content is a Jinja2 template, and the HTML tools (markdown-it-py, css-inline, nh3) know
nothing of Jinja2. So before they run, every template tag is swapped for a placeholder made of
letters and digits that each tool passes through unchanged, and afterwards swapped back:

- in HTML text, `<!--mmtpl<nonce>x<n>z-->`: a comment, because the HTML parser moves text that
  sits between table rows out of the table (foster parenting) and leaves comments where they are,
  so `{% for %}` between `<tr>`s keeps working;
- inside a tag (an attribute value), in `<style>`/`<title>` and in Markdown text, the bare word
  `mmtpl<nonce>x<n>z`.

Why this order is safe (sanitise the author's static HTML once, never per recipient):
- the static HTML the template can emit is the sanitiser's output: allowed tags and attributes
  only, every stray `<` escaped, and quotes in text escaped too (so no piece of text can close an
  attribute when a macro's output lands inside one);
- `{% %}` tags are refused inside HTML tags, `<style>`, `<title>` and comments: they may only
  skip or repeat whole runs of sanitised markup that begin and end in text, so they cannot splice
  a tag or an attribute together;
- `{{ }}` values are escaped when rendered (autoescape); inside attributes they are escaped even
  when they are markup (a macro's output), and in a URL attribute a value that starts the URL
  cannot bring a scheme other than http, https, mailto or tel (`mm_attr`/`mm_url` in
  rendering.py);
- each placeholder must come back, in order; one the sanitiser removed (it sat in a <script> or
  an on* attribute) is reported with its line, never silently dropped.

Only the document's body goes through the sanitiser (a fragment sanitiser drops <html>, <head>
and <style>): the head is rebuilt by us from the layout's language, title and the CSS that could
not be inlined (media queries such as dark mode), with that CSS cleaned of anything that could
end the <style> element or load code.
"""

from __future__ import annotations

import html as htmllib
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

import css_inline
import nh3
from markdown_it import MarkdownIt


class TemplateProblem(ValueError):
    """A template that cannot be used, with the field and the line to fix."""

    def __init__(self, field: str, line: int | None, message: str):
        self.field = field
        self.line = line
        self.message = message
        where = f"{field}, line {line}" if line else field
        super().__init__(f"{where}: {message}")


# -- finding template tags ---------------------------------------------------------------------

_OPEN = re.compile(r"\{[{%#]")
_RAW_START = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_RAW_END = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def scan_tags(source: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every Jinja2 tag, kind "expr" ({{ }}), "stmt" ({% %}) or "comment"
    ({# #}). Strings and brackets inside a tag are skipped, as Jinja2's lexer does; the text of a
    {% raw %} block is left alone. An unterminated tag ends the scan (Jinja2's parser reports it).
    """
    found: list[tuple[int, int, str]] = []
    pos, n = 0, len(source)
    while True:
        match = _OPEN.search(source, pos)
        if match is None:
            return found
        start = match.start()
        opener = source[start + 1]
        if opener == "#":
            end = source.find("#}", start + 2)
            if end < 0:
                return found
            found.append((start, end + 2, "comment"))
            pos = end + 2
            continue
        closer = "}}" if opener == "{" else "%}"
        i, quote, depth = start + 2, "", []
        while i < n:
            char = source[i]
            if quote:
                if char == "\\":
                    i += 2
                    continue
                if char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif not depth and source.startswith(closer, i):
                break
            elif char in _PAIRS:
                depth.append(_PAIRS[char])
            elif depth and char == depth[-1]:
                depth.pop()
            i += 1
        else:
            return found
        end = i + 2
        found.append((start, end, "expr" if opener == "{" else "stmt"))
        pos = end
        if opener == "%" and _RAW_START.fullmatch(source, start, end):
            raw_end = _RAW_END.search(source, end)
            if raw_end is None:
                return found
            found.append((raw_end.start(), raw_end.end(), "stmt"))
            pos = raw_end.end()


# -- where a tag sits in HTML --------------------------------------------------------------------

_RAWTEXT = frozenset(
    {"style", "script", "title", "textarea", "xmp", "iframe", "noembed", "noscript"}
)
_TAG_NAME = re.compile(r"/?([A-Za-z][A-Za-z0-9-]*)")


def html_states(source: str, positions: list[int]) -> dict[int, str]:
    """Where each of the (sorted) positions falls in HTML: "text", "tag" (inside <...>, attribute
    values included), "style", "raw" (inside <title>, <script> and the like) or "comment". The
    caller blanks
    template tags out of the source first: they are opaque to HTML."""
    lower = source.lower()
    states: dict[int, str] = {}
    state, tag, end_tag, quote = "text", "", False, ""
    i = 0
    for target in positions:
        while i < target:
            if state == "text":
                j = source.find("<", i, target)
                if j < 0:
                    i = target
                    break
                if source.startswith("<!--", j):
                    state, i = "comment", j + 4
                    continue
                name = _TAG_NAME.match(source, j + 1)
                if name:
                    state, quote = "tag", ""
                    tag, end_tag = name.group(1).lower(), source[j + 1] == "/"
                    i = name.end()
                    continue
                i = j + 1
            elif state == "tag":
                char = source[i]
                if quote:
                    if char == quote:
                        quote = ""
                elif char in "'\"":
                    quote = char
                elif char == ">":
                    if end_tag or tag not in _RAWTEXT:
                        state = "text"
                    else:
                        state = "style" if tag == "style" else "raw"
                i += 1
            elif state in ("raw", "style"):
                j = lower.find(f"</{tag}", i)
                if j < 0 or j >= target:
                    i = target
                    break
                state, end_tag, quote, i = "tag", True, "", j + 2 + len(tag)
            else:  # comment
                j = source.find("-->", i)
                if j < 0 or j >= target:
                    i = target
                    break
                state, i = "text", j + 3
        states[target] = state
    return states


# -- placeholders --------------------------------------------------------------------------------


@dataclass
class Tag:
    id: int
    kind: str  # "expr" | "stmt"
    text: str  # the tag as written
    field: str
    line: int
    where: str  # "text" | "tag" | "raw" | "comment" | "markdown"


def _nonce() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))


@dataclass
class Placeholders:
    """The tags taken out of the sources of one campaign, one nonce for all of them."""

    nonce: str = field(default_factory=lambda: _nonce())
    tags: list[Tag] = field(default_factory=list)
    # Ids of the tags in document order when it differs from the order they were taken out
    # (the layout's, with the body's where {{ content }} was).
    order: list[int] | None = None
    slot_at: int | None = None  # how many tags were taken out before {{ content }}

    @property
    def prefix(self) -> str:
        return f"mmtpl{self.nonce}x"

    def word(self, tag_id: int) -> str:
        return f"{self.prefix}{tag_id}z"

    def comment(self, tag_id: int) -> str:
        return f"<!--{self.word(tag_id)}-->"

    @property
    def slot(self) -> str:
        return f"<!--mmslot{self.nonce}-->"

    def add(self, kind: str, text: str, field: str, line: int, where: str) -> Tag:
        tag = Tag(len(self.tags), kind, text, field, line, where)
        self.tags.append(tag)
        return tag

    def pattern(self) -> re.Pattern:
        return re.compile(re.escape(self.prefix) + r"(\d+)z")

    def check_unused(self, *sources: str) -> None:
        if any(self.prefix in s or f"mmslot{self.nonce}" in s for s in sources):
            raise ValueError("placeholder nonce collides with the content")


_SLOT = re.compile(r"\{\{[-+]?\s*content\s*[-+]?\}\}")


def line_at(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def protect(source: str, *, mode: str, field: str, ph: Placeholders, slot: bool = False) -> str:
    """The source with its template tags replaced by placeholders (mode "html" or "markdown").
    Jinja2 comments are dropped. With slot=True the one `{{ content }}` becomes ph.slot."""
    spans = scan_tags(source)
    states: dict[int, str] = {}
    if mode == "html":
        blanked = list(source)
        for start, end, _kind in spans:
            blanked[start:end] = "x" * (end - start)
        states = html_states("".join(blanked), [start for start, _end, _kind in spans])
    out: list[str] = []
    pos = 0
    slots = 0
    for start, end, kind in spans:
        out.append(source[pos:start])
        pos = end
        if kind == "comment":
            continue
        text = source[start:end]
        line = line_at(source, start)
        where = states.get(start, "text")
        if slot and kind == "expr" and _SLOT.fullmatch(text):
            if where != "text":
                raise TemplateProblem(
                    field, line, "{{ content }} must stand between HTML elements, not inside a tag"
                )
            slots += 1
            ph.slot_at = len(ph.tags)
            out.append(ph.slot)
            continue
        if mode == "markdown":
            line_start = source.rfind("\n", 0, start) + 1
            line_end = source.find("\n", end)
            alone = (
                not source[line_start:start].strip()
                and not source[end : len(source) if line_end < 0 else line_end].strip()
            )
            tag = ph.add(kind, text, field, line, "text" if alone else "markdown")
            out.append(ph.comment(tag.id) if alone else ph.word(tag.id))
            continue
        if kind == "stmt" and where != "text":
            places = {
                "tag": "inside an HTML tag",
                "style": "inside <style>",
                "raw": "inside <title>, <script> or <textarea>",
                "comment": "inside an HTML comment",
            }
            raise TemplateProblem(
                field,
                line,
                f"{text} cannot be used {places[where]}: put {{% %}} tags around whole elements "
                "(for a value that depends on a condition, write {{ 'a' if x else 'b' }})",
            )
        tag = ph.add(kind, text, field, line, where)
        out.append(ph.comment(tag.id) if where == "text" else ph.word(tag.id))
    out.append(source[pos:])
    if slot and slots != 1:
        raise TemplateProblem(
            field,
            None,
            "a layout needs exactly one {{ content }}, where the campaign's content goes"
            if slots == 0
            else f"a layout needs exactly one {{{{ content }}}}; this one has {slots}",
        )
    return "".join(out)


# -- Markdown ----------------------------------------------------------------------------------

# CommonMark plus tables and strikethrough; raw HTML passes (the sanitiser deals with it); no
# linkify (a bare word that looks like a domain should not become a tracked link); no typographer
# (it would turn the quotes of a template expression into curly ones).
_markdown = (
    MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
    .enable("table")
    .enable("strikethrough")
)


def markdown_to_html(source: str) -> str:
    return _markdown.render(source)


# -- CSS inlining ------------------------------------------------------------------------------

# Remote stylesheets are never fetched: a <link> in a layout must not make the server request a
# URL of the author's choosing. At-rules (media queries: dark mode, small screens) cannot be
# inlined, so they are kept in a <style> in the head.
_inliner = css_inline.CSSInliner(
    keep_at_rules=True, load_remote_stylesheets=False, keep_link_tags=False
)


def inline_css(document: str) -> str:
    try:
        return _inliner.inline(document)
    except (css_inline.InlineError, ValueError) as exc:
        raise TemplateProblem("layout", None, f"the CSS could not be inlined: {exc}") from None


# -- sanitising ----------------------------------------------------------------------------------

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "address", "b", "bdi", "bdo", "big", "blockquote", "br", "caption",
        "center", "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em",
        "figcaption", "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
        "ins", "kbd", "li",
        "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub",
        "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul",
        "var", "wbr", "section", "article", "header", "footer", "main", "nav", "aside", "hgroup",
    }
)  # fmt: skip
_COMMON_ATTRIBUTES = {
    "style", "class", "id", "dir", "lang", "title", "align", "valign", "width", "height",
    "bgcolor", "role", "aria-label", "aria-hidden", "aria-describedby", "aria-labelledby",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "*": _COMMON_ATTRIBUTES,
    "a": {"href", "name", "target"},
    "img": {"src", "alt", "border", "hspace", "vspace"},
    "table": {"border", "cellpadding", "cellspacing", "summary", "background"},
    "td": {"colspan", "rowspan", "nowrap", "scope", "headers", "background"},
    "th": {"colspan", "rowspan", "nowrap", "scope", "headers", "abbr"},
    "col": {"span"},
    "colgroup": {"span"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value"},
    "time": {"datetime"},
    "q": {"cite"},
    "blockquote": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# Removed with everything inside them (the rest of the disallowed tags lose only the tag).
_CLEAN_CONTENT = {
    "script", "style", "title", "textarea", "noscript", "xmp", "iframe", "noembed", "noframes",
    "template", "object", "embed", "svg", "math", "select", "option", "head",
}  # fmt: skip

_DOC_HEAD = re.compile(r"<head\b[^>]*>(.*?)</head>", re.S | re.I)
_DOC_BODY = re.compile(r"<body\b([^>]*)>(.*)</body>", re.S | re.I)
_DOC_HTML_LANG = re.compile(r"<html\b[^>]*?\blang=\"([^\"]*)\"", re.I)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title>", re.S | re.I)
_STYLE = re.compile(r"<style\b[^>]*>(.*?)</style>", re.S | re.I)
_STYLE_ATTR = re.compile(r"\bstyle=\"([^\"]*)\"", re.I)
_LANG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_BAD_CSS = re.compile(r"@import|expression\s*\(|javascript\s*:|behavior\s*:|-moz-binding", re.I)
# Serialised HTML from html5ever (css-inline, nh3): attribute values always in double quotes.
_SEGMENT = re.compile(r'<!--.*?-->|<[^>"]*(?:"[^"]*"[^>"]*)*>|[^<]+|<', re.S)


def _clean_css(css: str) -> str:
    bad = _BAD_CSS.search(css)
    if bad:
        raise TemplateProblem(
            "layout", None, f"the CSS uses {bad.group(0).strip()!r}, which email HTML may not use"
        )
    return css.replace("<", "")


def _escape_text_quotes(fragment: str) -> str:
    out = []
    for segment in _SEGMENT.findall(fragment):
        if segment.startswith("<") and len(segment) > 1:
            out.append(segment)
        else:
            out.append(segment.replace('"', "&quot;").replace("'", "&#39;"))
    return "".join(out)


def sanitise_fragment(fragment: str, keep_comment: Callable[[str], bool]) -> str:
    """The sanitiser for email HTML: allowed tags and attributes, http/https/mailto/tel URLs,
    comments removed except the placeholders, quotes in text escaped."""
    cleaned = nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=_CLEAN_CONTENT,
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        strip_comments=False,
    )
    cleaned = _COMMENT.sub(lambda m: m.group(0) if keep_comment(m.group(0)) else "", cleaned)
    return _escape_text_quotes(cleaned)


@dataclass
class Document:
    """A sanitised email document, still with placeholders."""

    lang: str
    title: str  # escaped text
    css: str
    body_style: str  # escaped attribute value
    body: str

    def html(self) -> str:
        style = f"<style>{self.css}</style>\n" if self.css.strip() else ""
        body_style = f' style="{self.body_style}"' if self.body_style else ""
        return (
            "<!DOCTYPE html>\n"
            f'<html lang="{self.lang}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="x-apple-disable-message-reformatting">\n'
            '<meta name="color-scheme" content="light dark">\n'
            '<meta name="supported-color-schemes" content="light dark">\n'
            f"<title>{self.title}</title>\n{style}</head>\n"
            f"<body{body_style}>\n{self.body}\n</body>\n</html>\n"
        )


def _into_implied_tbody(html: str, ph: Placeholders) -> str:
    """`<table>{% for %}<tr>...</tr>{% endfor %}</table>`: the parser opens the <tbody> the
    author left out after the comment that holds `{% for %}` and closes it before the one that
    holds `{% endfor %}`, so the loop would repeat the <tbody> tag. Move such placeholders inside
    the implied <tbody> (only called when the author wrote no <tbody> at all)."""
    one = r"<!--" + re.escape(ph.prefix) + r"\d+z-->"
    html = re.sub(rf"((?:{one}\s*)+)(<tbody>)", r"\2\1", html)
    return re.sub(rf"(</tbody>)((?:\s*{one})+)", r"\2\1", html)


def sanitise_document(document: str, ph: Placeholders) -> Document:
    """Inline the CSS, then sanitise: the body through nh3, the head rebuilt."""
    inlined = inline_css(document)
    if not re.search(r"<tbody\b", document, re.I):
        inlined = _into_implied_tbody(inlined, ph)
    is_placeholder = re.compile(r"<!--" + re.escape(ph.prefix) + r"\d+z-->").fullmatch
    head_match = _DOC_HEAD.search(inlined)
    body_match = _DOC_BODY.search(inlined)
    head = head_match.group(1) if head_match else ""
    body_attrs, body = (body_match.group(1), body_match.group(2)) if body_match else ("", "")
    # Placeholders the parser left outside the body (a {% set %} before <!DOCTYPE>, a comment
    # after </html>) keep their order at the start or end of the body.
    before = inlined[: body_match.start()] if body_match else inlined
    after = inlined[body_match.end() :] if body_match else ""
    head_text = _TITLE.sub("", _STYLE.sub("", before))
    before_tags = [c for c in _COMMENT.findall(head_text) if is_placeholder(c)]
    after_tags = [c for c in _COMMENT.findall(after) if is_placeholder(c)]
    lang_match = _DOC_HTML_LANG.search(inlined)
    lang = lang_match.group(1) if lang_match and _LANG.fullmatch(lang_match.group(1)) else "en"
    title_match = _TITLE.search(head)
    title = htmllib.escape(htmllib.unescape(title_match.group(1)).strip()) if title_match else ""
    css = "\n".join(_clean_css(m) for m in _STYLE.findall(head)).strip()
    style_match = _STYLE_ATTR.search(body_attrs)
    body_style = htmllib.escape(htmllib.unescape(style_match.group(1))) if style_match else ""
    clean_body = sanitise_fragment(body, is_placeholder)
    return Document(
        lang=lang,
        title=title,
        css=css,
        body_style=body_style,
        body="".join(before_tags) + clean_body + "".join(after_tags),
    )


# -- putting the tags back ---------------------------------------------------------------------

_ATTRIBUTE = re.compile(r'([^\s"\'<>/=]+)="([^"]*)"')
URL_ATTRIBUTES = frozenset({"href", "src", "background", "cite"})
_EXPR = re.compile(r"\{\{([-+]?)(.*?)([-+]?)\}\}", re.S)


def wrap_expression(text: str, filter_name: str) -> str:
    """`{{ x }}` -> `{{ (x)|filter_name }}`, keeping whitespace control."""
    match = _EXPR.fullmatch(text)
    left, inner, right = match.groups()
    return f"{{{{{left} ({inner.strip()})|{filter_name} {right}}}}}"


class Restorer:
    """Swaps placeholders back for their tags and records the order they were found in."""

    def __init__(self, ph: Placeholders):
        self.ph = ph
        self.word = ph.pattern()
        self.escaped_comment = re.compile(r"&lt;!--" + re.escape(ph.prefix) + r"(\d+)z--&gt;")
        self.seen: list[int] = []

    def _tag(self, match: re.Match) -> Tag:
        tag = self.ph.tags[int(match.group(1))]
        self.seen.append(tag.id)
        return tag

    def _refuse_statement(self, tag: Tag, place: str) -> None:
        if tag.kind == "stmt":
            raise TemplateProblem(
                tag.field,
                tag.line,
                f"{tag.text} ended up {place}: put {{% %}} tags on a line of their own, "
                "around whole paragraphs or elements",
            )

    def plain(self, text: str) -> str:
        text = self.escaped_comment.sub(lambda m: self._tag(m).text, text)
        return self.word.sub(lambda m: self._tag(m).text, text)

    def in_attributes(self, text: str, url_attributes: bool = True) -> str:
        def value(match: re.Match) -> str:
            name, raw = match.group(1).lower(), match.group(2)

            def one(m: re.Match) -> str:
                tag = self._tag(m)
                self._refuse_statement(tag, "inside an HTML attribute")
                at_start = m.start() == 0
                url = url_attributes and name in URL_ATTRIBUTES and at_start
                return wrap_expression(tag.text, "mm_url" if url else "mm_attr")

            return f'{match.group(1)}="{self.word.sub(one, raw)}"'

        return _ATTRIBUTE.sub(value, text)

    def in_raw_text(self, text: str) -> str:
        def one(m: re.Match) -> str:
            tag = self._tag(m)
            self._refuse_statement(tag, "inside <style> or <title>")
            return wrap_expression(tag.text, "mm_attr")

        return self.word.sub(one, text)

    def html_body(self, fragment: str) -> str:
        out = []
        for segment in _SEGMENT.findall(fragment):
            if segment.startswith("<!--"):
                match = re.fullmatch(r"<!--" + re.escape(self.ph.prefix) + r"(\d+)z-->", segment)
                out.append(self._tag(match).text if match else "")
            elif segment.startswith("<") and len(segment) > 1:
                out.append(self.in_attributes(segment))
            else:
                out.append(self.plain(segment))
        return "".join(out)

    def check(self, *, html: bool) -> None:
        """Every statement exactly once and in order; every expression that stood in text or an
        attribute exactly once (those in <style> may be copied by the inliner or dropped with an
        unused rule; those in an HTML comment go with the comment)."""
        counts: dict[int, int] = {}
        for tag_id in self.seen:
            counts[tag_id] = counts.get(tag_id, 0) + 1
        for tag in self.ph.tags:
            got = counts.get(tag.id, 0)
            if tag.kind == "expr" and tag.where in ("style", "comment"):
                continue
            if tag.kind == "expr" and not html and tag.where not in ("text", "markdown"):
                continue
            if got != 1:
                reason = (
                    "the sanitiser removed what it sits in (a <script>, an event handler such as "
                    "onclick, or another tag or attribute email HTML may not use)"
                    if got == 0
                    else "the HTML around it is broken"
                )
                raise TemplateProblem(tag.field, tag.line, f"{tag.text} cannot be used: {reason}")
        statements = [i for i in self.seen if self.ph.tags[i].kind == "stmt"]
        order = self.ph.order if self.ph.order is not None else range(len(self.ph.tags))
        expected = [i for i in order if self.ph.tags[i].kind == "stmt"]
        if statements != expected:
            moved = next(
                self.ph.tags[a] for a, b in zip(statements, expected, strict=False) if a != b
            )
            raise TemplateProblem(
                moved.field,
                moved.line,
                f"{moved.text} was moved by the HTML parser (template tags inside a table must "
                "stand between whole rows or cells, on a line of their own)",
            )


def restore_document(doc: Document, ph: Placeholders) -> str:
    """The HTML template source: the sanitised document with its tags back."""
    restorer = Restorer(ph)
    lang = doc.lang
    title = restorer.in_raw_text(doc.title)
    css = restorer.in_raw_text(doc.css)
    body_style = restorer.in_raw_text(doc.body_style)
    body = restorer.html_body(doc.body)
    restorer.check(html=True)
    return Document(lang, title, css, body_style, body).html()


# -- links -------------------------------------------------------------------------------------

_TEXT_URL = re.compile(r"https?://[^\s<>\"'`]+", re.I)


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


class _LinkFinder(HTMLParser):
    def __init__(self, skip: str):
        super().__init__(convert_charrefs=True)
        self.skip = skip
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("a", "area"):
            for name, value in attrs:
                if name == "href" and value:
                    url = value.strip()
                    if self.skip not in url and _is_web_url(url):
                        self.links.append(url)


def html_links(fragment: str, ph: Placeholders) -> list[str]:
    """Absolute http(s) hrefs of a sanitised fragment; hrefs holding a template expression are
    left out (they differ per recipient and are not known until rendering)."""
    finder = _LinkFinder(ph.prefix)
    finder.feed(fragment)
    finder.close()
    return finder.links


def text_links(text: str) -> list[str]:
    links = []
    for match in _TEXT_URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?)]}'\"")
        if "{" in url or "}" in url:
            continue  # part of a template expression: differs per recipient
        if _is_web_url(url):
            links.append(url)
    return links


def unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- the plain-text alternative ------------------------------------------------------------------

_BLOCK = frozenset(
    {
        "p", "div", "table", "tr", "ul", "ol", "blockquote", "pre", "section", "article",
        "header", "footer", "main", "nav", "aside", "center", "dl", "dt", "dd", "figure",
        "figcaption", "address", "caption", "thead", "tbody", "tfoot", "hgroup",
    }
)  # fmt: skip
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre"}
)
_VOID = frozenset({"br", "img", "hr", "col", "wbr", "area", "meta", "link", "input", "source"})
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.I)


class _TextMaker(HTMLParser):
    """HTML to readable text: paragraphs and headings as blocks, lists with bullets or numbers,
    links as "text (url)", table rows as lines, hidden elements (preheaders) left out."""

    def __init__(self, keep_statements: Callable[[str], str]):
        super().__init__(convert_charrefs=True)
        self.keep_statements = keep_statements
        self.out: list[str] = []
        self.skip: list[str] = []  # tag names of the hidden element we are in
        self.pre = 0
        self.lists: list[list] = []  # ["ul"|"ol", counter]
        self.links: list[tuple[str, int]] = []  # (href, length of out when the link opened)
        self.cell_in_row = 0

    # output helpers
    def _tail(self) -> str:
        return "".join(self.out[-3:])

    def newline(self, count: int = 1) -> None:
        if not self.out:
            return
        tail = self._tail()
        have = len(tail) - len(tail.rstrip("\n"))
        if tail.strip("\n") == "" and len("".join(self.out).strip()) == 0:
            return
        if have < count:
            self.out.append("\n" * (count - have))

    def text(self, data: str) -> None:
        if self.pre:
            self.out.append(data)
            return
        data = re.sub(r"\s+", " ", data)
        tail = self._tail()
        if not tail or tail.endswith(("\n", " ")):
            data = data.lstrip(" ")
        if data:
            self.out.append(data)

    # parser callbacks
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.skip:
            if tag not in _VOID and tag == self.skip[-1]:
                self.skip.append(tag)
            self._keep_from_attributes(attrs)
            return
        if tag in ("head", "style", "title", "script") or _HIDDEN.search(attrs.get("style") or ""):
            if tag not in _VOID:
                self.skip.append(tag)
            self._keep_from_attributes(attrs)
            return
        if tag in _PARAGRAPH:
            self.newline(2)
        elif tag in _BLOCK:
            self.newline(1)
        if tag == "tr":
            self.cell_in_row = 0
        elif tag in ("td", "th"):
            if self.cell_in_row and not self._tail().endswith("\n"):
                while self.out and self.out[-1].endswith(" "):
                    self.out[-1] = self.out[-1].rstrip(" ")
                self.out.append(" | ")
            self.cell_in_row += 1
        elif tag in ("ul", "ol"):
            self.lists.append([tag, 0])
        elif tag == "li":
            self.newline(1)
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0] == "ol":
                self.lists[-1][1] += 1
                self.out.append(f"{indent}{self.lists[-1][1]}. ")
            else:
                self.out.append(f"{indent}- ")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self.newline(2)
            self.out.append("----------")
            self.newline(2)
        elif tag == "pre":
            self.pre += 1
        elif tag == "a":
            self.links.append((attrs.get("href") or "", len(self.out)))
        elif tag == "img":
            alt = (attrs.get("alt") or "").strip()
            if alt:
                self.text(alt)
        self._keep_from_attributes(attrs, but=("href", "alt"))

    def _keep_from_attributes(self, attrs: dict, but: tuple = ()) -> None:
        for name, value in attrs.items():
            if name not in but and value:
                kept = self.keep_statements(value)
                if kept:
                    self.out.append(kept)

    def handle_endtag(self, tag):
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:]).strip()
            href = href.strip()
            shown = href[7:] if href.lower().startswith("mailto:") else href
            if href and not href.startswith("#") and shown != label:
                self.out.append(f" ({shown})" if label else shown)
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        if tag in _PARAGRAPH:
            self.newline(2)
        elif tag in _BLOCK or tag == "li":
            self.newline(1)

    def handle_data(self, data):
        if self.skip:
            kept = self.keep_statements(data)
            if kept:
                self.out.append(kept)
            return
        self.text(data)

    def handle_comment(self, data):
        # Our placeholders are the only comments left after sanitising.
        if self.skip:
            kept = self.keep_statements(data)
            if kept:
                self.out.append(kept)
        else:
            self.out.append(data)

    def result(self) -> str:
        text = "".join(self.out)
        lines = [line.rstrip() for line in text.split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def html_to_text(fragment: str, keep_statements: Callable[[str], str] = lambda s: "") -> str:
    """Readable plain text of an HTML fragment. `keep_statements` returns the parts of hidden
    text (hidden elements, attribute values) that must be kept anyway: the placeholders of
    {% %} tags, so that the text template keeps the HTML template's structure."""
    maker = _TextMaker(keep_statements)
    maker.feed(fragment)
    maker.close()
    return maker.result()
