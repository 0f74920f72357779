"""What a message about mail we sent is: read from bytes that anyone may have made.

`classify(raw)` never raises (a message that breaks the parser is `unknown`, with the reason) and
does no I/O. In order:
1. an ARF report (RFC 5965: multipart/report; report-type=feedback-report) is a complaint,
   unless its Feedback-Type is `not-spam`;
2. a DSN (RFC 3464: multipart/report; report-type=delivery-status) is read recipient by
   recipient: the first `failed` one decides, by its status code (`severity`); only `delayed`
   ones make a delay warning; `delivered`/`relayed`/`expanded` ones are not bounces;
3. an auto-reply (RFC 3834 `Auto-Submitted` other than `no`, `X-Autoreply`, `X-Autorespond`,
   `Precedence: auto_reply`), unless it comes from a mailer daemon, is ignored;
4. anything else goes through flufl.bounce (GNU Mailman's detectors for Exim, qmail, Yahoo,
   Exchange and other non-standard formats): permanent failures are classed by the codes and
   words near them, temporary ones are delay warnings;
5. a vacation message by its subject ("Out of office", "Automatic reply", ...), else unknown.

What it also collects, for apply.py to match the message to its ledger row: every string shaped
like our VERP token (bounces+<token>@), and every Message-ID of ours quoted in the message
(<row id>.<campaign uuid hex>@...). None of it is trusted here: apply.py checks the token's HMAC
and the Message-ID against the ledger.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import io
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parseaddr

HARD, SOFT, COMPLAINT, AUTO_REPLY, DELAYED, UNKNOWN = (
    "hard",
    "soft",
    "complaint",
    "auto_reply",
    "delayed",
    "unknown",
)

# Larger messages are classified from their first MAX_PARSE bytes (a DSN's report comes first;
# what follows is the returned original) and flufl.bounce, whose detectors run regular
# expressions over every line, sees only messages under FLUFL_MAX.
MAX_PARSE = 2 * 1024 * 1024
FLUFL_MAX = 512 * 1024
MAX_RECIPIENTS = 50
MAX_TOKENS = 20

_TOKEN = re.compile(rb"bounces\+([A-Za-z0-9._=-]{1,60})@", re.IGNORECASE)
_OUR_MESSAGE_ID = re.compile(rb"<(\d{1,18})\.([0-9a-f]{32})@[A-Za-z0-9.-]{1,253}>", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?:[ -]|$)", re.MULTILINE)

# Words that say the address itself is wrong (gone, unknown, disabled): permanent whatever
# the code's subject says (Outlook.com answers 5.5.0 "mailbox unavailable", Exchange Online
# 5.4.1 "Recipient address rejected", Yahoo 554 "This user doesn't have a ... account").
_HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|account)"
    r"|user not found|recipient not found|recipientnotfound|unknown recipient"
    r"|does not exist|doesn.t exist|mailbox (?:not found|unavailable|does not exist|disabled)"
    r"|invalid (?:recipient|mailbox)|recipient address rejected|address rejected"
    r"|account (?:is )?(?:disabled|inactive|closed|has been disabled)"
    r"|doesn.t have an? [\w.-]{1,60} account|unrouteable address|no mailbox here"
    r"|not a valid mailbox|bad destination mailbox",
    re.IGNORECASE,
)
# Words of a temporary or policy refusal: the address may work another day.
_SOFT_WORDS = re.compile(
    r"quota|mailbox (?:is )?full|insufficient (?:system )?storage|try again later"
    r"|temporar|greylist|rate limit|too many|spam|blocked|policy|reputation|blacklist"
    r"|blocklist|message (?:is )?too (?:big|large)|size limit",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailer)@", re.IGNORECASE)
_VACATION_SUBJECT = re.compile(
    r"^\s*(?:re:\s*)?(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|"
    r"response|antwort)|autoreply|auto:|vacation|on vacation|away from (?:the|my) office"
    r"|abwesenheitsnotiz|r[ée]ponse automatique)",
    re.IGNORECASE,
)


@dataclass
class Recipient:
    address: str
    status: str = ""  # 5.1.1
    diagnostic: str = ""
    action: str = ""


@dataclass
class Classification:
    kind: str
    reason: str
    recipients: list[Recipient] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    message_ids: list[tuple[int, str]] = field(default_factory=list)  # (row id, campaign hex)
    sender: str = ""
    subject: str = ""
    feedback_type: str = ""

    @property
    def address(self) -> str:
        return self.recipients[0].address if self.recipients else ""

    @property
    def status(self) -> str:
        return self.recipients[0].status if self.recipients else ""

    @property
    def diagnostic(self) -> str:
        return self.recipients[0].diagnostic if self.recipients else ""


def severity(status: str, text: str) -> str:
    """HARD or SOFT for one failed recipient, from its status code (RFC 3463) and the words of
    the diagnostic. Only what says the address is wrong is hard: 5.1.x (bad address; not
    5.1.7/5.1.8, which are about our sender), 5.2.1 (mailbox disabled), or the words of
    _HARD_WORDS with a permanent code. A full mailbox (5.2.2), a policy or spam refusal (5.7.x)
    and every 4.x.x are soft: counted, and hard only when they keep coming. 5.4.4 (no route:
    the domain does not exist or has no mail server) is hard."""
    match = _STATUS.search(status or "") or _STATUS.search(text or "")
    if match:
        klass, subject, detail = match.groups()
        if klass == "4":
            return SOFT
        if klass == "5":
            if subject == "1" and detail not in ("7", "8"):
                return HARD
            if subject == "2":
                return HARD if detail == "1" else SOFT
            if subject == "7":
                return SOFT
            if subject == "4" and detail == "4":
                return HARD  # unable to route: the domain has no mail server, or no such domain
            return HARD if _HARD_WORDS.search(text or "") else SOFT
    code = _SMTP_CODE.search(text or "")
    if code and code.group(1).startswith("4"):
        return SOFT
    if _HARD_WORDS.search(text or ""):
        return HARD
    if _SOFT_WORDS.search(text or ""):
        return SOFT
    if code and code.group(1) in ("550", "551", "553"):
        return HARD
    return SOFT


def classify(raw: bytes, *, fast: bool = True) -> Classification:
    """What `raw` is; never raises. `fast=False` skips the fast path for DSNs (_fast_dsn), for
    the tests that hold the two to the same answers."""
    raw = bytes(raw[:MAX_PARSE])
    if fast:
        try:
            found = _fast_dsn(raw)
        except Exception:  # (RecursionError, MemoryError included) the full parser decides
            found = None
        if found is not None:
            found.tokens = _tokens(raw)
            found.message_ids = _message_ids(raw)
            return found
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        found = _classify(message, raw)
    except (RecursionError, MemoryError):
        found = Classification(UNKNOWN, "the message is nested too deeply to read")
    except Exception as exc:
        found = Classification(UNKNOWN, f"the message could not be read ({type(exc).__name__})")
        message = None
    found.tokens = _tokens(raw)
    found.message_ids = _message_ids(raw)
    if message is not None and not found.sender:
        found.sender = _header(message, "From")
        found.subject = _header(message, "Subject")
    return found


def _classify(message: Message, raw: bytes) -> Classification:
    sender, subject = _header(message, "From"), _header(message, "Subject")

    def made(kind, reason, recipients=(), **more):
        return Classification(
            kind, reason, list(recipients)[:MAX_RECIPIENTS], sender=sender, subject=subject, **more
        )

    report_type = (message.get_param("report-type") or "") if message.is_multipart() else ""
    report_type = str(report_type).lower()
    if message.get_content_type() == "multipart/report" and report_type == "feedback-report":
        return _feedback(message, made)
    if message.get_content_type() == "multipart/report" and report_type == "delivery-status":
        found = _dsn(message, made)
        if found is not None:
            return found

    daemon = bool(_DAEMON.match(parseaddr(sender)[1]))
    if not daemon and _auto_reply_headers(message):
        return made(AUTO_REPLY, "an auto-reply (RFC 3834 headers)")

    if len(raw) <= FLUFL_MAX:
        found = _flufl(message, made)
        if found is not None:
            return found
    if _VACATION_SUBJECT.search(subject):
        return made(AUTO_REPLY, "a vacation or out-of-office reply (its subject)")
    return made(UNKNOWN, "neither a delivery report, a complaint nor a known bounce format")


def _header(message: Message, name: str) -> str:
    value = message.get(name, "")
    if not isinstance(value, str):  # an email.header.Header for undecodable bytes
        value = str(value)
    return " ".join(value.split())[:300]


def _auto_reply_headers(message: Message) -> bool:
    auto = _header(message, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    return _header(message, "Precedence").lower() == "auto_reply"


def _fields(part) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part, however
    the parser left them (a list of Messages for a well-formed DSN, a string otherwise)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    if isinstance(payload, bytes):
        payload = payload.decode("latin-1")
    if not isinstance(payload, str):
        return []
    blocks = re.split(r"\r?\n\s*\r?\n", payload.strip())
    parser = email.parser.HeaderParser(policy=email.policy.compat32)
    return [parser.parsestr(block) for block in blocks[: MAX_RECIPIENTS + 1] if block.strip()]


def _address_field(value: str) -> str:
    """`rfc822; ann@example.com` -> ann@example.com (the address type is optional in practice)."""
    value = " ".join(str(value or "").split())
    if ";" in value:
        value = value.split(";", 1)[1]
    address = parseaddr(value.strip())[1] or value.strip().strip("<>")
    return address[:320] if "@" in address else ""


_REPORT_PARTS = ("message/delivery-status", "message/global-delivery-status")


def _dsn(message: Message, made) -> Classification | None:
    for part in message.walk():
        if part.get_content_type() in _REPORT_PARTS:
            return _dsn_of(_fields(part), made)
    return None


def _dsn_of(blocks, made) -> Classification | None:
    """A DSN's outcome from the header blocks of its delivery-status part."""
    recipients = []
    for block in blocks:
        address = _address_field(block.get("Final-Recipient", "")) or _address_field(
            block.get("Original-Recipient", "")
        )
        action = " ".join(str(block.get("Action", "")).split()).lower()[:20]
        if not address or not action:
            continue
        status = " ".join(str(block.get("Status", "")).split())[:12]
        diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
        if diagnostic.lower().startswith("smtp;"):
            diagnostic = diagnostic[5:].strip()
        recipients.append(Recipient(address, status, diagnostic[:500], action))
    if not recipients:
        return None  # a report without recipient fields: let the detectors try
    failed = [r for r in recipients if r.action == "failed"]
    if failed:
        first = failed[0]
        kind = severity(first.status, first.diagnostic)
        others = [r for r in recipients if r.action != "failed"]
        return made(
            kind,
            f"a delivery status notification: failed, {first.status or 'no status'}",
            failed + others,
        )
    if any(r.action == "delayed" for r in recipients):
        return made(
            DELAYED, "a delivery status notification: delayed, still being tried", recipients
        )
    return made(UNKNOWN, f"a delivery status notification: {recipients[0].action}", recipients)


# -- the fast path: a DSN read without building its whole MIME tree ------------------------
# Most of what the receiver gets is an MTA's DSN: multipart/report, report-type=delivery-status,
# flat parts. The stdlib parser spends most of its time on such a message compiling a regular
# expression for its (always new) boundary and building every part. _fast_dsn reads the same
# message the way email.feedparser does (the same line splitting, the same delimiter rule, the
# header blocks parsed by the stdlib's own header parser), but only up to the delivery-status
# part; whatever it is not sure of (no delimiter, a nested multipart or message part before the
# report, a report not closed by a delimiter, no recipient block) returns None and the full
# parser decides. The tests hold it to the full parser's answer on the corpus and on fuzzed
# reports.

_HEADERS = email.parser.HeaderParser(policy=email.policy.compat32)
# What may follow "--<boundary>" on a delimiter line (feedparser's rule, boundary aside).
_DELIMITER_TAIL = re.compile(r"(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")


def _delimiter(line: str, separator: str):
    """None, or the match saying whether `line` closes the multipart (group "end")."""
    if not line.startswith(separator):
        return None
    return _DELIMITER_TAIL.match(line, len(separator))


def _fast_dsn(raw: bytes) -> Classification | None:
    top = _HEADERS.parsestr(raw.decode("ascii", "surrogateescape"))
    if top.get_content_type() != "multipart/report":
        return None
    if str(top.get_param("report-type") or "").lower() != "delivery-status":
        return None
    boundary = top.get_boundary()
    body = top.get_payload()
    if boundary is None or not isinstance(body, str):
        return None
    separator = "--" + boundary
    lines = io.StringIO(body, newline="").readlines()
    count, i = len(lines), 0
    while i < count and _delimiter(lines[i], separator) is None:  # the preamble
        i += 1
    while i < count:
        found = _delimiter(lines[i], separator)
        if found is None or found.group("end"):
            return None  # (a closed multipart without a report part: the full parser decides)
        while i < count and _delimiter(lines[i], separator) is not None:
            i += 1  # repeated delimiter lines make no empty part (nor does a closing one here)
        start = i
        while i < count and _delimiter(lines[i], separator) is None:
            i += 1
        if i >= count:
            return None  # the part runs to the end: not closed by a delimiter
        part = _HEADERS.parsestr("".join(lines[start:i]))
        if part.get_content_type() == "message/delivery-status":
            # (not message/global-delivery-status: feedparser reads that as one message)
            made = _maker(_header(top, "From"), _header(top, "Subject"))
            return _dsn_of(_report_blocks(part.get_payload()), made)
        if part.get_content_maintype() in ("multipart", "message"):
            return None  # the full parser walks into it first
    return None


def _maker(sender: str, subject: str):
    def made(kind, reason, recipients=(), **more):
        return Classification(
            kind, reason, list(recipients)[:MAX_RECIPIENTS], sender=sender, subject=subject, **more
        )

    return made


def _report_blocks(text: str) -> list[Message]:
    """The header blocks of a delivery-status body, split where feedparser splits them (each
    empty line ends one)."""
    blocks, current = [], []
    for line in io.StringIO(text, newline="").readlines():
        if line in ("\n", "\r", "\r\n"):
            blocks.append(current)
            current = []
        else:
            current.append(line)
    if current:
        blocks.append(current)
    return [_HEADERS.parsestr("".join(block)) for block in blocks if block]


def _feedback(message: Message, made) -> Classification:
    report, original = None, None
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report" and report is None:
            blocks = _fields(part)
            report = blocks[0] if blocks else None
        elif kind in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = part
    feedback_type = " ".join(str(report.get("Feedback-Type", "") if report else "").split())
    feedback_type = feedback_type.lower()[:30]
    address = _address_field(report.get("Original-Rcpt-To", "")) if report else ""
    if not address and original is not None:
        address = _original_to(original)
    recipients = (
        [Recipient(address, "", f"feedback-type: {feedback_type or 'missing'}")] if address else []
    )
    if feedback_type == "not-spam":
        return made(
            UNKNOWN,
            "a feedback report saying the message is not spam",
            recipients,
            feedback_type=feedback_type,
        )
    return made(
        COMPLAINT,
        f"a complaint (ARF, feedback type {feedback_type or 'missing'})",
        recipients,
        feedback_type=feedback_type,
    )


def _original_to(part) -> str:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        headers = payload[0]
    elif isinstance(payload, str):
        headers = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(payload)
    else:
        return ""
    to = getaddresses([str(v) for v in headers.get_all("To", [])])
    address = to[0][1] if to else ""
    return address[:320] if "@" in address and "redacted" not in address.lower() else ""


def _flufl(message: Message, made) -> Classification | None:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception:
        return None
    text = _plain_text(message)
    permanent_addresses = sorted(_text_addresses(permanent))
    if permanent_addresses:
        recipients = [_near(address, text) for address in permanent_addresses]
        first = recipients[0]
        kind = severity(first.status, first.diagnostic) if first.diagnostic else HARD
        return made(kind, "a non-standard bounce (flufl.bounce: permanent failure)", recipients)
    temporary_addresses = sorted(_text_addresses(temporary))
    if temporary_addresses:
        return made(
            DELAYED,
            "a non-standard delay warning (flufl.bounce: temporary failure)",
            [_near(address, text) for address in temporary_addresses],
        )
    return None


def _text_addresses(found) -> set[str]:
    addresses = set()
    for value in found:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        value = str(value).strip().strip("<>")
        if "@" in value and len(value) <= 320 and not value.lower().startswith("bounces+"):
            addresses.add(value)
    return addresses


def _plain_text(message: Message, limit: int = 256 * 1024) -> str:
    chunks, size = [], 0
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
        chunks.append(text[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return "\n".join(chunks)


def _near(address: str, text: str) -> Recipient:
    """The status and reply that follow the address in a plain-text bounce (the next ~6 lines
    after its first mention), which is where Exim, Yahoo and qmail put them."""
    index = text.lower().find(address.lower())
    if index < 0:
        return Recipient(address, "", "", "failed")
    window = text[index : index + 600]
    lines = [line.strip() for line in window.splitlines()[:6] if line.strip()]
    diagnostic = " ".join(" ".join(lines).split())[:500]
    status = _STATUS.search(diagnostic)
    return Recipient(address, ".".join(status.groups()) if status else "", diagnostic, "failed")


def _tokens(raw: bytes) -> list[str]:
    found: list[str] = []
    for match in _TOKEN.finditer(raw):
        token = match.group(1).decode("ascii")
        if token not in found:
            found.append(token)
        if len(found) >= MAX_TOKENS:
            break
    return found


def _message_ids(raw: bytes) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for match in _OUR_MESSAGE_ID.finditer(raw):
        key = (int(match.group(1)), match.group(2).decode("ascii").lower())
        if key not in found:
            found.append(key)
        if len(found) >= MAX_TOKENS:
            break
    return found
