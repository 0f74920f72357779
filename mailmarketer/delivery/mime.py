"""Campaign messages assembled as bytes, from parts prepared once per campaign.

Why not `email.message.EmailMessage`: building and flattening one costs ~770 µs here (DESIGN.md
section 6), half of it the policy machinery; a campaign sends the same structure to everyone, so
MessageParts encodes what is common once (sender, list headers, extra headers, attachments, MIME
boundaries) and build_message() does per recipient only what differs: To, Subject, Date,
Message-ID, List-Unsubscribe and the two bodies.

What comes out (checked by the tests with Python's `email` parser under policy.strict):
- RFC 5322 / MIME: multipart/alternative (text, then HTML) or a single text/plain part, inside
  multipart/mixed when there are attachments; CRLF line endings; no line over 998 octets.
- 7-bit clean, so nothing between us and the inbox rewrites it (which would break DKIM; RFC 6376
  section 5.3 asks signers for this). Each body is sent as is ("7bit") when it is ASCII with
  short lines, as base64 when more than a sixth of its bytes are non-ASCII (CJK, Cyrillic: QP
  would nearly triple it), and as quoted-printable otherwise; all three run at C speed.
- Headers are RFC 2047 encoded words (UTF-8, base64) only when they need to be: non-ASCII
  display names and subjects, or text that would otherwise be misread; ASCII subjects are folded
  at spaces. In subjects, display names and extra header values, ASCII control characters
  count as spaces and each run of whitespace becomes one space.
- Addresses: IDN domains in punycode (IDNA 2008, UTS 46); a non-ASCII local part needs SMTPUTF8,
  which is not implemented: SmtpUtf8Required says so.
- Any CR, LF or NUL in any header value raises HeaderInjection before anything is built; so do
  the campaign's extra headers trying to replace ours.

The VERP return path goes in the SMTP envelope (MAIL FROM), not in the message: the receiving
server writes Return-Path itself (RFC 5321 section 4.4). `return_path` is only for a copy that
has no envelope, such as the local outbox.
"""

from __future__ import annotations

import binascii
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from mailmarketer.delivery.dkim import DkimSigner


class HeaderInjection(ValueError):
    """A header value holds CR, LF or NUL, or an extra header tries to replace one of ours."""


class SmtpUtf8Required(ValueError):
    """An address with a non-ASCII local part: only SMTPUTF8 can carry it, and we do not."""


# RFC 5322 atext: what a dot-atom and an unquoted phrase word may hold.
_ATEXT_CHARS = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~"
# A phrase of atoms and spaces, written as it is (_phrase): one match in C, where a test per
# character in Python cost ~1 us for a 12-character name.
_ATOMS = re.compile(f"[{_ATEXT_CHARS} ]*\\Z")
_DOT_ATOM = re.compile(f"[{_ATEXT_CHARS}]+(?:\\.[{_ATEXT_CHARS}]+)*\\Z")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\Z")
_DOMAIN_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e]+\]\Z")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")
_MESSAGE_ID = re.compile(
    f"<[{_ATEXT_CHARS}]+(?:\\.[{_ATEXT_CHARS}]+)*@[{_ATEXT_CHARS}]+(?:\\.[{_ATEXT_CHARS}]+)*>\\Z"
)
_URL_CHARS = re.compile(r"[\x21-\x7e]+\Z")
_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+\Z")
_VERP_TOKEN = re.compile(r"[A-Za-z0-9._=-]+\Z")
_HIGH_BYTES = bytes(range(128, 256))

# Headers build_message writes itself; an extra header may not replace or repeat them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "sender",
        "return-path",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
        "dkim-signature",
        "received",
    }
)

ENCODED_WORD_BYTES = 45  # 60 base64 characters: "=?utf-8?b?" + 60 + "?=" = 72 <= 75 (RFC 2047)
MAX_LINE = 998


# -- header values ---------------------------------------------------------------------------


def check_header_value(name: str, value: str) -> None:
    """Raise HeaderInjection when a header value could start a new header or end the block."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected text, got {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise HeaderInjection(f"{name}: CR, LF and NUL are not allowed in a header value")


# ASCII control characters read as spaces: Python's parser (and others) call them defects.
_CONTROLS_AS_SPACE = {c: " " for c in [*range(32), 127]}


def _collapse(value: str) -> str:
    if not value.isprintable():
        value = value.translate(_CONTROLS_AS_SPACE)
    return " ".join(value.split())


def _encoded_words(value: str) -> list[str]:
    """RFC 2047 B-encoded words of at most 45 UTF-8 bytes each, never splitting a character."""
    data = value.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + ENCODED_WORD_BYTES, len(data))
        while end < len(data) and 0x80 <= data[end] < 0xC0:
            end -= 1  # do not cut a multi-byte character
        chunk = binascii.b2a_base64(data[start:end], newline=False).decode("ascii")
        words.append(f"=?utf-8?b?{chunk}?=")
        start = end
    return words


def _needs_encoding(value: str) -> bool:
    # Non-ASCII, control characters, or text a decoder would take for an encoded word.
    return not value.isascii() or not value.isprintable() or "=?" in value


def _unstructured(name: str, value: str) -> str:
    """A whole `Name: value\\r\\n` unstructured header (Subject, extra headers), folded."""
    check_header_value(name, value)
    value = _collapse(value)
    prefix = f"{name}: "
    if not _needs_encoding(value):
        if len(prefix) + len(value) <= 78:
            return f"{prefix}{value}\r\n"
        lines = []
        line = prefix.rstrip()
        for word in value.split(" "):
            if len(line) + 1 + len(word) > 78 and line != prefix.rstrip():
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        if max(map(len, lines)) <= MAX_LINE:
            return "\r\n".join(lines) + "\r\n"
    if not value:
        return f"{prefix}\r\n"
    return prefix + "\r\n ".join(_encoded_words(value)) + "\r\n"


def _phrase(name: str, display: str) -> str:
    """A display name as an RFC 5322 phrase: atoms, a quoted string or encoded words."""
    check_header_value(name, display)
    display = _collapse(display)
    if not display:
        return ""
    if not _needs_encoding(display) and len(display) <= 60:
        if _ATOMS.match(display):
            return display
        escaped = display.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return "\r\n ".join(_encoded_words(display))


@lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """The domain in ASCII (punycode for IDN); ValueError when it is not a domain."""
    if domain.isascii():
        if _HOSTNAME.match(domain) or _DOMAIN_LITERAL.match(domain):
            return domain
        raise ValueError(f"not a valid domain: {domain!r}")
    import idna  # email-validator's dependency: IDNA 2008 with UTS 46 mapping

    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"not a valid international domain: {domain!r} ({exc})") from None


def ascii_address(address: str, *, what: str = "address") -> str:
    """The address with its domain in punycode; a quoted local part when it is not a dot-atom.

    Raises SmtpUtf8Required for a non-ASCII local part, ValueError for anything that is not
    one address, HeaderInjection for CR, LF or NUL."""
    check_header_value(what, address)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{what}: not an email address: {address!r}")
    if not local.isascii():
        raise SmtpUtf8Required(
            f"{what}: {address!r} has a non-ASCII local part, which needs SMTPUTF8 (not supported)"
        )
    try:
        domain = ascii_domain(domain)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if not _DOT_ATOM.match(local):
        if local.startswith('"') and local.endswith('"') and len(local) > 1:
            local = local[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if not local.isprintable():
            raise ValueError(f"{what}: control characters in {address!r}")
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if len(local) > 64:
        raise ValueError(f"{what}: the local part of {address!r} is longer than 64 characters")
    return f"{local}@{domain}"


def _mailbox(name: str, display: str, address: str) -> str:
    phrase = _phrase(name, display)
    addr = ascii_address(address, what=name)
    return f"{phrase} <{addr}>" if phrase else addr


# -- bodies ----------------------------------------------------------------------------------


def _crlf(text: str) -> bytes:
    # Encoded first: bytes.replace is about three times as fast as str.replace here (4.4 ->
    # 1.9 us for a 10 KB HTML part, with the encoding).
    data = text.encode("utf-8")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    data = data.replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _b64_lines(data: bytes) -> bytes:
    encoded = binascii.b2a_base64(data, newline=False)
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


def has_long_line(data: bytes, limit: int = MAX_LINE) -> bool:
    """Whether a line of data (lines end at CRLF) is longer than `limit` octets.

    The same answer as max(map(len, data.split(b"\r\n"))) > limit without a bytes object per
    line: from each line start it looks for the last CRLF within `limit` octets (rfind in C), so
    it moves about `limit` octets a step; a body of 7 KB takes a handful of steps."""
    start = 0
    size = len(data)
    while size - start > limit:
        end = data.rfind(b"\r\n", start, start + limit + 2)
        if end < 0:
            return True
        start = end + 2
    return False


def encode_body(data: bytes) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, encoded body) for CRLF-terminated data; see the module
    docstring for the rule."""
    if data.isascii() and b"\0" not in data and not has_long_line(data):
        return "7bit", data
    high = len(data) - len(data.translate(None, _HIGH_BYTES))
    if high * 6 > len(data):
        return "base64", _b64_lines(data)
    # The data ends with CRLF, so b2a_qp writes CRLF line ends (it copies the first one).
    return "quoted-printable", binascii.b2a_qp(data, istext=True)


_PART_HEADERS = {
    (subtype, encoding): (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii")
    for subtype in ("plain", "html")
    for encoding in ("7bit", "quoted-printable", "base64")
}


def _text_part_pieces(subtype: str, content: str) -> tuple[bytes, bytes]:
    """(the part's header block, its encoded body): joined by the caller with the rest of the
    message, so that a 10 KB body is copied once, not once per level of nesting."""
    encoding, body = encode_body(_crlf(content))
    return _PART_HEADERS[subtype, encoding], body


text_part_pieces = _text_part_pieces


def part_header(subtype: str, encoding: str) -> bytes:
    """The header block of a text part (text/plain or text/html) sent with this encoding."""
    return _PART_HEADERS[subtype, encoding]


def _text_part(subtype: str, content: str) -> bytes:
    return b"".join(_text_part_pieces(subtype, content))


def _param(name: str, value: str) -> str:
    """A MIME parameter: quoted when ASCII, RFC 2231 (utf-8'') otherwise."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'{name}="{value}"'
    return f"{name}*=utf-8''{quote(value, safe='')}"


def _attachment_part(filename: str, content_type: str, data: bytes) -> bytes:
    check_header_value("attachment filename", filename)
    check_header_value("attachment content type", content_type)
    main, slash, sub = content_type.lower().partition("/")
    if not slash or not _TOKEN.match(main) or not _TOKEN.match(sub):
        raise ValueError(f"attachment {filename!r}: not a content type: {content_type!r}")
    if not filename.strip():
        raise ValueError("attachment filename is empty")
    if not isinstance(data, bytes):
        raise ValueError(f"attachment {filename!r}: data must be bytes")
    return (
        f"Content-Type: {main}/{sub};\r\n {_param('name', filename)}\r\n"
        f"Content-Disposition: attachment;\r\n {_param('filename', filename)}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii") + _b64_lines(data)


def _calendar_part(method: str, data: bytes) -> bytes:
    """An iCalendar invitation as the last alternative of the body (`text/calendar;
    method=...`), which is what Gmail and Outlook read to offer "add to calendar" (RFC 6047
    section 2.4); the same bytes usually go as an .ics attachment too."""
    check_header_value("calendar method", method)
    if not _TOKEN.match(method):
        raise ValueError(f"calendar method: not a method name: {method!r}")
    if not isinstance(data, bytes):
        raise ValueError("calendar: data must be bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("calendar: the invitation is not UTF-8") from None
    encoding, body = encode_body(_crlf(text))
    return (
        f'Content-Type: text/calendar; method={method.upper()}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii") + body


# -- what build_message returns ----------------------------------------------------------------


class CrlfMessage(bytes):
    """Message bytes made by build_message: every line ends in CRLF, by construction (header
    values with CR, LF or NUL are refused; bodies go through _crlf, then 7bit, quoted-printable or
    base64 with CRLF line ends; attachments are base64 lines joined by CRLF; a DKIM header is
    written with CRLF). The SMTP client then skips its bare-CR/LF scan of the whole message
    (smtp.prepare_data: three passes over ~15 KB, ~20 us a message); the tests hold every
    message built here to that scan."""

    __slots__ = ()


class DotFreeMessage(CrlfMessage):
    """A CrlfMessage in which no line starts with a dot (delivery/prebuilt.py knows this of the
    messages it builds): the SMTP client then has nothing to dot-stuff and skips that pass over
    the whole message (smtp.prepare_data); the tests hold every one to the general stuffing."""

    __slots__ = ()


# -- the campaign's constant parts -----------------------------------------------------------


@dataclass(frozen=True)
class MessageParts:
    """What every message of a campaign shares, validated and encoded once.

    list_id is the list's identifier, a dot-atom such as "42.lists.acme.example" (written as
    `List-Id: Name <42.lists.acme.example>`, with list_name when given); feedback_id the
    Feedback-ID value ("campaign:workspace:kind:sender", printable ASCII); attachments are
    (filename, content type, bytes); calendar, when given, is (method, .ics bytes), sent as an
    inline `text/calendar; method=...` alternative after the text and HTML bodies (webinar
    invitations). Raises ValueError (HeaderInjection for CR/LF/NUL) naming the field at fault.
    """

    from_email: str
    from_name: str = ""
    reply_to: str = ""
    list_id: str = ""
    list_name: str = ""
    feedback_id: str = ""
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    dkim: DkimSigner | None = None
    message_id_domain: str = "localhost"
    calendar: tuple[str, bytes] | None = None

    def __post_init__(self):
        head = [f"From: {_mailbox('From', self.from_name, self.from_email)}\r\n"]
        tail = []
        if self.reply_to:
            tail.append(f"Reply-To: {ascii_address(self.reply_to, what='Reply-To')}\r\n")
        if self.list_id:
            check_header_value("List-Id", self.list_id)
            if not _DOT_ATOM.match(self.list_id) or "." not in self.list_id:
                raise ValueError(
                    f"List-Id: the list id must look like a domain name: {self.list_id!r}"
                )
            phrase = _phrase("List-Id", self.list_name)
            tail.append(
                f"List-Id: {phrase} <{self.list_id}>\r\n"
                if phrase
                else f"List-Id: <{self.list_id}>\r\n"
            )
        if self.feedback_id:
            check_header_value("Feedback-ID", self.feedback_id)
            if not _URL_CHARS.match(self.feedback_id) or len(self.feedback_id) > 200:
                raise ValueError(
                    f"Feedback-ID: printable ASCII without spaces, at most 200 characters: "
                    f"{self.feedback_id!r}"
                )
        seen = set()
        extra = []
        for item in self.extra_headers:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise ValueError(f"extra header: expected (name, value), got {item!r}")
            name, value = item
            check_header_value("extra header name", name)
            if not _FIELD_NAME.match(name) or len(name) > 76:
                raise ValueError(f"extra header: not a header name: {name!r}")
            if name.lower() in RESERVED_HEADERS:
                raise HeaderInjection(
                    f"extra header {name!r} would replace a header the message sets itself"
                )
            if name.lower() in seen:
                raise ValueError(f"extra header {name!r} is given twice")
            seen.add(name.lower())
            extra.append(_unstructured(name, value))
        if self.feedback_id:
            extra.insert(0, f"Feedback-ID: {self.feedback_id}\r\n")
        extra.append("MIME-Version: 1.0\r\n")
        attachments = [_attachment_part(*item) for item in self.attachments]
        ascii_domain(self.message_id_domain)

        token = secrets.token_hex(12)
        set_ = object.__setattr__
        set_(self, "_head", "".join(head))
        set_(self, "_tail", "".join(tail))
        set_(self, "_extra", "".join(extra))
        set_(self, "_alt_boundary", f"=_alt_{token}")
        set_(self, "_mixed_boundary", f"=_mix_{token}")
        set_(self, "_attachments", attachments)
        set_(self, "_calendar", _calendar_part(*self.calendar) if self.calendar else None)

    def make_message_id(self, delivery_id: int, campaign_uuid: uuid.UUID | str) -> str:
        return make_message_id(delivery_id, campaign_uuid, self.message_id_domain)


# -- per recipient ---------------------------------------------------------------------------


def _list_unsubscribe(url: str, mailto: str | None) -> str:
    check_header_value("List-Unsubscribe", url)
    scheme = url.partition("://")[0].lower()
    if scheme not in ("https", "http") or not _URL_CHARS.match(url) or "<" in url or ">" in url:
        raise ValueError(
            f"List-Unsubscribe: an http(s) URL without spaces or angle brackets is needed "
            f"(RFC 8058 one-click wants https): {url!r}"
        )
    value = f"List-Unsubscribe: <{url}>"
    if mailto:
        check_header_value("List-Unsubscribe mailto", mailto)
        if (
            not mailto.lower().startswith("mailto:")
            or not _URL_CHARS.match(mailto)
            or "<" in mailto
            or ">" in mailto
        ):
            raise ValueError(f"List-Unsubscribe: not a mailto: URL: {mailto!r}")
        value += f",\r\n <{mailto}>" if len(value) + len(mailto) > 74 else f", <{mailto}>"
    if len(value) > MAX_LINE:
        raise ValueError("List-Unsubscribe: the URL is longer than a header line may be")
    return value + "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"


@lru_cache(maxsize=64)
def _multipart_head(kind: str, boundary: str) -> tuple[bytes, bytes]:
    # A multipart's Content-Type and its first boundary line (the same for a whole campaign).
    return (
        f'Content-Type: multipart/{kind}; boundary="{boundary}"\r\n\r\n'.encode("ascii"),
        f"--{boundary}\r\n".encode("ascii"),
    )


@lru_cache(maxsize=64)
def _separator(boundary: str) -> bytes:
    return f"\r\n--{boundary}\r\n".encode("ascii")


@lru_cache(maxsize=64)
def _closing(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("ascii")


_last_date: list = [None, ""]


def _date_header(date: datetime) -> str:
    # A batch is built within a second or two: format each second once (5 us a message). The
    # key is the fields the header shows, the zone and fold deciding the offset (0.8 us as
    # (replace(microsecond=0), utcoffset()), 0.15 us so).
    key = (
        date.second,
        date.minute,
        date.hour,
        date.day,
        date.month,
        date.year,
        date.tzinfo,
        date.fold,
    )
    if _last_date[0] != key:
        _last_date[:] = [key, f"Date: {format_datetime(date)}\r\n"]
    return _last_date[1]


def build_message(
    parts: MessageParts,
    *,
    to_email: str,
    to_name: str,
    subject: str,
    html: str | None,
    text: str,
    message_id: str,
    date: datetime,
    list_unsubscribe_url: str | None,
    list_unsubscribe_mailto: str | None = None,
    return_path: str | None = None,
) -> CrlfMessage:
    """One recipient's message, as the bytes to hand to SmtpConnection (signed when parts has a
    DKIM signer). `list_unsubscribe_url` None or "" leaves List-Unsubscribe out (transactional
    mail only). Raises HeaderInjection or ValueError naming the field at fault."""
    head = message_headers(
        parts,
        to_email=to_email,
        to_name=to_name,
        subject=subject,
        message_id=message_id,
        date=date,
        list_unsubscribe_url=list_unsubscribe_url,
        list_unsubscribe_mailto=list_unsubscribe_mailto,
        return_path=return_path,
    )
    if html is not None and not isinstance(html, str):
        raise ValueError(f"html must be text or None, not {type(html).__name__}")
    if not isinstance(text, str):
        raise ValueError(f"text must be text, not {type(text).__name__}")
    # The message as a list of pieces joined once at the end (the bodies are most of its
    # bytes; each intermediate join or concatenation would copy them again).
    pieces = body_pieces(
        parts,
        None if html is None else _text_part_pieces("html", html),
        _text_part_pieces("plain", text),
    )
    pieces.insert(0, head)
    message = b"".join(pieces)
    if parts.dkim is not None:
        message = parts.dkim.sign(message)
    return CrlfMessage(message)


def message_headers(
    parts: MessageParts,
    *,
    to_email: str,
    to_name: str,
    subject: str,
    message_id: str,
    date: datetime,
    list_unsubscribe_url: str | None,
    list_unsubscribe_mailto: str | None = None,
    return_path: str | None = None,
) -> bytes:
    """The header block of build_message's message up to the body's own Content-Type (which
    body_pieces() begins with); validated the same way."""
    check_header_value("Message-ID", message_id)
    if not _MESSAGE_ID.match(message_id):
        raise ValueError(f"Message-ID: expected <local@domain>: {message_id!r}")
    if not isinstance(date, datetime) or date.tzinfo is None or date.utcoffset() is None:
        raise ValueError(f"Date: a timezone-aware datetime is needed, got {date!r}")
    headers = []
    if return_path:
        headers.append(f"Return-Path: <{ascii_address(return_path, what='Return-Path')}>\r\n")
    headers.append(parts._head)
    headers.append(f"To: {_mailbox('To', to_name, to_email)}\r\n")
    headers.append(_unstructured("Subject", subject))
    headers.append(_date_header(date))
    headers.append(f"Message-ID: {message_id}\r\n")
    headers.append(parts._tail)
    if list_unsubscribe_url:
        headers.append(_list_unsubscribe(list_unsubscribe_url, list_unsubscribe_mailto))
    elif list_unsubscribe_mailto:
        raise ValueError("List-Unsubscribe: a mailto: without the https URL is not enough")
    headers.append(parts._extra)
    return "".join(headers).encode("ascii")


def body_pieces(
    parts: MessageParts,
    html: tuple[bytes, bytes] | None,
    text: tuple[bytes, bytes],
) -> list[bytes]:
    """The message after message_headers(), as pieces to join: `html` and `text` are each
    part's (header block, encoded body) as _text_part_pieces makes them."""
    pieces: list[bytes] = []
    add = pieces.extend
    if parts._attachments:
        mixed = parts._mixed_boundary
        add(_multipart_head("mixed", mixed))
    if parts._calendar is not None or html is not None:
        alt = parts._alt_boundary
        separator = _separator(alt)
        add(_multipart_head("alternative", alt))
        add(text)
        if html is not None:
            pieces.append(separator)
            add(html)
        if parts._calendar is not None:
            pieces.append(separator)
            pieces.append(parts._calendar)
        pieces.append(_closing(alt))
    else:
        add(text)
    if parts._attachments:
        separator = _separator(mixed)
        for attachment in parts._attachments:
            pieces.append(separator)
            pieces.append(attachment)
        pieces.append(_closing(mixed))
    return pieces


# -- identifiers -----------------------------------------------------------------------------


def make_message_id(delivery_id: int, campaign_uuid: uuid.UUID | str, domain: str) -> str:
    """`<delivery id>.<campaign uuid hex>@domain`: the same for every attempt at one ledger row
    (so a retried message is recognisably the same), different for every row."""
    if isinstance(delivery_id, bool) or not isinstance(delivery_id, int) or delivery_id < 0:
        raise ValueError(f"delivery_id must be a non-negative integer: {delivery_id!r}")
    return f"<{delivery_id}.{_message_id_tail(campaign_uuid, domain)}"


@lru_cache(maxsize=256)
def _message_id_tail(campaign_uuid: uuid.UUID | str, domain: str) -> str:
    # The same for every message of a campaign: parsed and checked once, not per message (a
    # UUID is its own key: str() of it per message was ~0.7 us).
    try:
        campaign = uuid.UUID(str(campaign_uuid)).hex
    except ValueError:
        raise ValueError(f"campaign_uuid is not a UUID: {campaign_uuid!r}") from None
    return f"{campaign}@{ascii_domain(domain)}>"


def verp_address(bounce_local: str, bounce_domain: str, token: str) -> str:
    """The envelope sender that brings a bounce back to its ledger row: bounces+<token>@domain.
    The token must be URL-safe (letters, digits, . _ = -); the local part stays <= 64."""
    prefix, domain = _verp_parts(bounce_local, bounce_domain)
    if not _VERP_TOKEN.match(token):
        raise ValueError(f"VERP token may hold only letters, digits, '.', '_', '=', '-': {token!r}")
    local = prefix + token
    if len(local) > 64:
        raise ValueError(
            f"VERP local part {local!r} is {len(local)} characters; RFC 5321 allows 64"
        )
    return f"{local}@{domain}"


@lru_cache(maxsize=64)
def _verp_parts(bounce_local: str, bounce_domain: str) -> tuple[str, str]:
    # What every VERP address of a campaign shares, checked once.
    if not _DOT_ATOM.match(bounce_local) or "+" in bounce_local:
        raise ValueError(f"bounce local part must be a plain dot-atom: {bounce_local!r}")
    return f"{bounce_local}+", ascii_domain(bounce_domain)


def verp_token(address: str, bounce_local: str, bounce_domain: str) -> str | None:
    """The token of a VERP address made by verp_address, or None when it is not one of ours."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    prefix = f"{bounce_local}+".lower()
    if domain.lower() != ascii_domain(bounce_domain).lower() or not local.lower().startswith(
        prefix
    ):
        return None
    token = local[len(prefix) :]
    return token if token and _VERP_TOKEN.match(token) else None
