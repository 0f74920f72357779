"""A campaign's message body built once, as constant text with holes, and filled per recipient.

The general path (engine._build) renders each recipient's HTML and text parts, scans them for
tracked links (a regular expression over ~10 KB), adds the open pixel, converts line ends,
chooses the transfer encoding and, when signing, canonicalises the whole body for DKIM: per
message, over text that is the same for everyone but a few values. Here that is done once per
campaign (per worker), on the parts with a marker in place of each value, each tracked URL and
the pixel; per recipient the markers are replaced by this recipient's values (one join in C).

The output is byte for byte what the general path makes from the same inputs (the tests hold
the two together over generated templates and values). That is only so while the values cannot
change what the per-message steps would have done around them, so:
- once per campaign (`plan`), a campaign is left to the general path when its parts are not
  both split (statements that set variables, macros...), when a part is not sent as 7bit (not
  ASCII, or a line over 998 octets), or when the text around a value could join with it into
  something a step looks for: the start of an anchor or of `</body>` just before a value, `href="`
  or part of it just after one, a stored link's URL (or part of it) ending or starting at a value
  in the text part;
- per recipient (`body`), a message goes the general way when one of its own values holds a
  control character (line breaks), `<`, `>` or `"` in the HTML part (escaping never leaves
  them), `=` just before a closing quote, a stored link's URL in the text part, is empty where
  that would join what is around it, starts or ends with a space or holds two (when signing:
  DKIM's relaxed body would change it), or makes an anchor whose URL is a stored link; and when
  the filled body is not 7bit after all (a non-ASCII value, a line grown past 998 octets).
Values the same for every recipient (the postal address, the workspace's name) are part of the
constant text, checked per recipient to be the very values it was built with.

Rendering is unchanged: the values come from the same sandbox, escaping, caps and errors
(CompiledCampaign.render_values); only what is done with them afterwards differs.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from operator import itemgetter

from mailmarketer.audience.links import tracking_tokens
from mailmarketer.campaigns import rendering

from . import mime
from .dkim import relaxed_inner
from .tracked_links import ANCHOR_HREF, TEXT_PUNCTUATION, LinkTracker

# Markers: \x01 <kind> <number> \x02. Kinds: h (an HTML value), t (a text value), c (the tracked
# URL of a stored link), o (the open pixel's URL). No constant text may hold \x01 or \x02.
_MARKER = re.compile("\x01([htco])([0-9]*)\x02")
# What an HTML value of this recipient may not hold (escaping leaves none of <, > and ").
_HTML_UNSAFE = re.compile('[\x00\x02-\x1f\x7f<>"]')
_TEXT_UNSAFE = re.compile("[\x00\x02-\x1f\x7f]")
# The end of the text before an HTML value that the value could complete: an anchor's start, or
# the end of the body the pixel goes before.
_HTML_OPEN_END = re.compile(r"<(?:a|/(?:b(?:o(?:d(?:y\s*)?)?)?)?)?\Z", re.I)
# The start of the text after an HTML value that the value could complete into `href="`.
_HREF_TAILS = ('="', 'f="', 'ef="', 'ref="', 'href="')
_SPACES = " \t\r\n"


def _picker(indices: list[int]):
    """A function returning the items at `indices` as a tuple (itemgetter in C)."""
    if not indices:
        return lambda values: ()
    if len(indices) == 1:
        (only,) = indices
        return lambda values: (values[only],)
    return itemgetter(*indices)


class PrebuiltBody:
    """The body of a campaign's messages (everything after mime.message_headers) as constant
    text and holes; see the module docstring."""

    def __init__(
        self,
        *,
        chunks: list[str],
        slots: list[int],
        link_ids: list[int],
        html_check: dict,
        text_check: dict,
        shared_html: tuple,
        shared_text: tuple,
        dynamic_hrefs: list[tuple[list[str], list[int]]],
        tracker: LinkTracker | None,
        relaxed_chunks: list[str] | None,
        body_start: int,
        dot_free: bool,
        signing: bool,
        plain_url: re.Pattern | None,
        colonless: bool,
        tracker_prefix: str,
        open_prefix: str,
    ):
        self.chunks = chunks
        # The body as a list to fill: the constant text, with a slot for each hole between.
        self.skeleton = [None] * (2 * len(chunks) - 1)
        self.skeleton[0::2] = chunks
        self.pick = _picker(slots) if slots else None
        # The distinct values that fill the holes (a value fills many: the first name 20 times).
        self.pick_used = _picker(sorted(set(slots)))
        self.link_ids = link_ids
        self.pick_own_html = html_check["own"]
        self.pick_own_text = text_check["own"]
        self.pick_empty_html = html_check["empty"]
        self.pick_empty_text = text_check["empty"]
        self.pick_equals = html_check["equals"]
        self.pick_shared_html, self.shared_html_values = shared_html
        self.pick_shared_text, self.shared_text_values = shared_text
        self.dynamic_hrefs = dynamic_hrefs
        self.tracker = tracker
        self.relaxed_chunks = relaxed_chunks
        self.body_start = body_start
        # The message type to make of the header and this body (see mime.DotFreeMessage).
        self.message_type = mime.DotFreeMessage if dot_free else mime.CrlfMessage
        self.signing = signing
        # A stored link's URL anywhere in a text value (only searched for in values holding a
        # colon when every stored URL has one).
        self.plain_url = plain_url
        self.colonless = colonless
        self.tracker_prefix = tracker_prefix
        self.open_prefix = open_prefix
        # The longest line of the constant text alone (the holes empty; no value holds a line
        # break): no line of a filled body is longer than it plus the most holes any one line
        # has times the longest value, so the body is scanned for long lines only when that
        # bound passes 998 (the scan walked ~15 KB: ~2 us a message). The longest value is
        # taken over the few distinct values (pick_used), not the ~100 holes they fill (summing
        # the holes' lengths, the bound before, cost ~3 us and passed 998 for a 5 KB body with
        # a few links).
        self.longest_constant_line = max(map(len, "".join(chunks).split("\r\n")))
        per_line: dict[int, int] = {}
        line = 0
        for chunk in chunks[:-1]:
            line += chunk.count("\r\n")
            per_line[line] = per_line.get(line, 0) + 1  # the hole after this chunk
        self.holes_per_line = max(per_line.values(), default=0)

    @classmethod
    def plan(
        cls,
        compiled: rendering.CompiledCampaign,
        tracker: LinkTracker | None,
        parts: mime.MessageParts,
        sample_context: dict,
    ) -> PrebuiltBody | None:
        """The campaign's body with holes, or None when it must be built the general way."""
        splits = compiled.splits()
        if splits is None:
            return None
        try:
            sample = compiled.render_values(sample_context)
        except rendering.RenderError:
            return None
        if sample is None:
            return None
        html_split, text_split = splits
        html, html_own, shared_html = _marked(html_split, sample.html, "h")
        text, text_own, shared_text = _marked(text_split, sample.text, "t")
        if html is None or text is None:
            return None
        text = compiled.squeezed(text)
        links = tracker.links if tracker is not None else {}

        html_check = _holes(html, "h")
        text_check = _holes(text, "t")
        if html_check is None or text_check is None:
            return None
        if tracker is not None and not _html_holes_safe(html, html_check):
            return None
        if links and not _text_holes_safe(text, list(links)):
            return None
        dynamic_hrefs = []
        if links:
            for match in ANCHOR_HREF.finditer(html):
                if "\x01" in match.group(2):
                    pieces = _MARKER.split(match.group(2))
                    dynamic_hrefs.append((pieces[0::3], [int(n) for n in pieces[2::3]]))

        if tracker is not None:
            html, text = tracker.apply_with(
                html, text, lambda link_id: f"\x01c{link_id}\x02", lambda: "\x01o\x02"
            )
        html_part = mime.text_part_pieces("html", html)
        text_part = mime.text_part_pieces("plain", text)
        if html_part[0] != mime.part_header("html", "7bit") or text_part[0] != mime.part_header(
            "plain", "7bit"
        ):
            return None
        body = b"".join(mime.body_pieces(parts, html_part, text_part)).decode("ascii")
        pieces = _MARKER.split(body)
        chunks = pieces[0::3]
        if any("\x01" in c or "\x02" in c for c in chunks):
            return None  # an attachment or the calendar holds a marker character

        # Where each hole's value comes from, in the flat list made per recipient: the HTML
        # values, then the text values, then the tracked URLs of link_ids, then the pixel.
        link_ids = sorted(
            {int(n) for kind, n in zip(pieces[1::3], pieces[2::3], strict=True) if kind == "c"}
        )
        at_link = {link: i for i, link in enumerate(link_ids)}
        html_count, text_count = len(sample.html), len(sample.text)
        slots = []
        for kind, number in zip(pieces[1::3], pieces[2::3], strict=True):
            if kind == "h":
                slots.append(int(number))
            elif kind == "t":
                slots.append(html_count + int(number))
            elif kind == "c":
                slots.append(html_count + text_count + at_link[int(number)])
            else:
                slots.append(html_count + text_count + len(link_ids))

        # Whether no line of these messages can start with a dot (nothing to dot-stuff): none
        # of the constant text does, no value starts a line, and no header line does (only an
        # extra header's name could).
        dot_free = not any("\n." in c for c in chunks) and not any(
            c.endswith("\n") for c, kind in zip(chunks, pieces[1::3], strict=False) if kind in "ht"
        )
        dot_free = dot_free and "\n." not in parts._extra and not parts._extra.startswith(".")

        relaxed_chunks = None
        body_start = 0
        if parts.dkim is not None:
            # DKIM's relaxed body of the constant text, made once: the values that go between
            # it begin and end with a character that is not a space (checked per recipient),
            # so its runs of spaces and its line ends cannot join with anything. The body
            # DKIM hashes begins after the message's Content-Type (the first empty line).
            body_start = chunks[0].find("\r\n\r\n") + 4
            if body_start < 4:
                return None
            if not chunks[-1].endswith("\r\n") or chunks[-1].endswith("\r\n\r\n"):
                return None
            hashed = [chunks[0][body_start:], *chunks[1:]]
            relaxed = [relaxed_inner(c.encode("ascii")).decode("ascii") for c in hashed]
            relaxed_chunks = None if relaxed == hashed else relaxed

        html_check["own"] = _picker(html_own)
        text_check["own"] = _picker(text_own)
        html_check["empty"] = _picker([i for i in html_own if i in html_check["unsafe"]])
        text_check["empty"] = _picker([i for i in text_own if i in text_check["unsafe"]])
        html_check["equals"] = _picker([i for i in html_own if i in html_check["quoted"]])
        return cls(
            chunks=chunks,
            slots=slots,
            link_ids=link_ids,
            html_check=html_check,
            text_check=text_check,
            shared_html=(_picker(shared_html), tuple(sample.html[i] for i in shared_html)),
            shared_text=(_picker(shared_text), tuple(sample.text[i] for i in shared_text)),
            dynamic_hrefs=dynamic_hrefs,
            tracker=tracker if links else None,
            relaxed_chunks=relaxed_chunks,
            body_start=body_start,
            dot_free=dot_free,
            signing=parts.dkim is not None,
            plain_url=re.compile("|".join(re.escape(u) for u in links)) if links else None,
            colonless=any(":" not in u for u in links),
            tracker_prefix=tracker.prefix if tracker is not None else "",
            open_prefix=tracker.open_prefix if tracker is not None else "",
        )

    def body(
        self, delivery_id: int, values: rendering.SplitValues
    ) -> tuple[bytes, bytes | None] | None:
        """(The body's bytes, the SHA-256 of its DKIM relaxed form when signing), or None when
        this recipient's message must be built the general way."""
        html, text = values.html, values.text
        if self.pick_shared_html(html) != self.shared_html_values:
            return None
        if self.pick_shared_text(text) != self.shared_text_values:
            return None
        # The recipient's own values, each part's joined with \x01 (which none may hold) to
        # look at them all with a few scans in C.
        own_html = "\x01".join(self.pick_own_html(html))
        own_text = "\x01".join(self.pick_own_text(text))
        if _HTML_UNSAFE.search(own_html) or _TEXT_UNSAFE.search(own_text):
            return None
        if "" in self.pick_empty_html(html) or "" in self.pick_empty_text(text):
            return None
        if "=" in "".join(self.pick_equals(html)):
            return None
        if self.signing and (_dkim_unsafe(own_html) or _dkim_unsafe(own_text)):
            return None
        tracker = self.tracker
        if tracker is not None:
            if (self.colonless or ":" in own_text) and self.plain_url.search(own_text):
                return None
            links = tracker.links
            for constants, numbers in self.dynamic_hrefs:
                href = [None] * (2 * len(constants) - 1)
                href[0::2] = constants
                href[1::2] = [html[n] for n in numbers]
                if links.get(html_lib.unescape("".join(href))) is not None:
                    return None

        flat = [*html, *text]
        if self.link_ids or self.open_prefix:
            tokens = tracking_tokens(delivery_id, self.link_ids, bool(self.open_prefix))
            prefix = self.tracker_prefix
            flat.extend([prefix + token for token in tokens[: len(self.link_ids)]])
            if self.open_prefix:
                flat.append(self.open_prefix + tokens[-1])
        filled = self.skeleton.copy()
        holes = self.pick(flat) if self.pick is not None else ()
        filled[1::2] = holes
        body = "".join(filled)
        # No piece holds NUL (the constant text is 7bit, the values were looked at above, the
        # tracked URLs are ASCII): what is left of 7bit is ASCII and the line length.
        if not body.isascii():
            return None
        data = body.encode("ascii")
        widest = self.holes_per_line * max(map(len, self.pick_used(flat)), default=0)
        if self.longest_constant_line + widest > mime.MAX_LINE and mime.has_long_line(data):
            return None
        digest = None
        if self.signing:
            if self.relaxed_chunks is None:
                digest = hashlib.sha256(memoryview(data)[self.body_start :]).digest()
            else:
                filled[0::2] = self.relaxed_chunks
                digest = hashlib.sha256("".join(filled).encode("ascii")).digest()
        return data, digest


def _dkim_unsafe(joined: str) -> bool:
    """Whether values joined with \x01 hold what DKIM's relaxed body would change or join with
    the text around them: two spaces, or a space at a value's start or end."""
    return (
        "  " in joined
        or " \x01" in joined
        or "\x01 " in joined
        or joined[:1] == " "
        or joined[-1:] == " "
    )


def _marked(split, sample: list[str], kind: str) -> tuple[str | None, list[int], list[int]]:
    """The part's text with a marker for each value a recipient has of their own and the shared
    values in place; the indices of the own and of the shared values."""
    own = [i for i, shared in enumerate(split.shared_values) if not shared]
    shared = [i for i, is_shared in enumerate(split.shared_values) if is_shared]
    pieces = []
    for item in split.items:
        if isinstance(item, str):
            constant = item
        elif split.shared_values[item]:
            constant = sample[item]
        else:
            pieces.append(f"\x01{kind}{item}\x02")
            continue
        if "\x01" in constant or "\x02" in constant:
            return None, own, shared
        pieces.append(constant)
    return "".join(pieces), own, shared


def _holes(text: str, kind: str) -> dict | None:
    """The text around each value: (before, after) by value index, and the values that may not
    be empty (an empty one would join the spaces or line ends around it)."""
    pieces = _MARKER.split(text)
    chunks = pieces[0::3]
    around = []
    unsafe = set()
    for i, number in enumerate(pieces[2::3]):
        before, after = chunks[i], chunks[i + 1]
        around.append((before, after))
        if not before or not after or before[-1] in _SPACES or after[0] in _SPACES:
            unsafe.add(int(number))
    return {"around": around, "unsafe": unsafe, "quoted": set()}


def _html_holes_safe(html: str, check: dict) -> bool:
    pieces = _MARKER.split(html)
    for (before, after), number in zip(check["around"], pieces[2::3], strict=True):
        if _HTML_OPEN_END.search(before) or after.lower().startswith(_HREF_TAILS):
            return False
        if after.startswith('"'):
            if before.endswith("="):
                return False
            check["quoted"].add(int(number))
    return True


def _text_holes_safe(text: str, urls: list[str]) -> bool:
    """No stored URL may run into a value of the text part, run from one value over the text
    between two into the next, or end (with punctuation after it) just before a value: whether
    the link finder matches it would depend on the values. (A stored URL inside one value is
    looked for per recipient.)"""
    ending = re.compile("(?:" + "|".join(re.escape(u) for u in urls) + f"){TEXT_PUNCTUATION}*\\Z")
    pieces = _MARKER.split(text)
    chunks = pieces[0::3]
    for i in range(len(chunks) - 1):
        before, after = chunks[i], chunks[i + 1]
        if ending.search(before):
            return False
        if i > 0 and any(before in url for url in urls):
            return False  # between two values ("" too): a URL could span both
        for url in urls:
            for k in range(1, len(url)):
                if before.endswith(url[:k]) or after.startswith(url[k:]):
                    return False
    return True
