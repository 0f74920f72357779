"""An asyncio SMTP client that keeps a relay busy: pre-built message bytes, PIPELINING, and
one result per message.

Why our own client: DESIGN.md section 6 measured the ways to send here. smtplib with an
EmailMessage per message does ~670 msg/s and aiosmtplib ~750 msg/s over 8 connections, while a
bare asyncio client pipelining pre-built bytes does ~25-31k msg/s; aiosmtplib sends one command
and waits for its reply, it cannot pipeline transactions.

How a batch travels (RFC 2920). With PIPELINING each write holds the end of the previous message
(its body and the final dot) and the envelope of the next one (MAIL, RCPT, DATA), and then the
replies to all of them are read in order: one round trip per message, however long the batch.
The body itself waits for the 354 reply, as the RFC requires, so a refused recipient never has
its message read as commands. A refused MAIL or RCPT is followed by RSET (pipelined into the next
write). Without PIPELINING every command waits for its reply.

What each outcome means for the caller (the delivery engine):
- `Result.ok`: the relay accepted the message (250 after the final dot): mark the row sent.
- `TransientError`: a 4xx reply, a timeout or a dropped connection: retry later. After a 421 or
  a drop every message of the batch not yet acknowledged is transient (it may or may not have
  arrived: the only duplicates a crash or drop can cause), and the connection is closed.
- `PermanentError`: a 5xx for this message. `hard_bounce` says whether the address itself is bad
  (see PermanentError for the rule).
- `RelayBroken`: the relay refuses us (authentication, TLS, no STARTTLS, EHLO and HELO refused,
  a 5xx to MAIL, which judges our sender, or a 5.1.7/5.1.8 "sender address rejected" at any
  step): every message would get the same answer, so no recipient is at fault; pause the
  campaign; retrying will not help.
- `StaleConnection` (raised by send_batch, a TransientError): the connection failed before any
  reply to the batch (a pooled connection whose relay restarted or timed it out). Nothing of the
  batch can have been accepted (a body goes out only after its 354), so the caller reconnects and
  sends the same batch again without counting an attempt.

Bad input is refused before anything is written: an address with CR, LF, NUL, spaces, angle
brackets or non-ASCII characters (SMTPUTF8 is not implemented), or data with a bare CR or LF
(which is how "SMTP smuggling" hides a second message behind an end-of-data) raise ValueError
naming the message.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Literal

from .mime import CrlfMessage, DotFreeMessage

TlsMode = Literal["none", "starttls", "implicit"]
_TLS_MODES = ("none", "starttls", "implicit")

# A reply line is "ddd" then "-" (more lines follow) or " " (last line) then the text.
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")
# Temporary refusals in a row after which a connection leaves the rest of its batch for later
# (see SmtpConnection._give_up).
GIVE_UP_AFTER = 5
# 5.1.7 and 5.1.8 are about the sender's address, not the recipient's.
_SENDER_SUBJECT_DETAILS = frozenset({7, 8})


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls_mode: TlsMode = "starttls"
    verify_certificate: bool = True
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    local_hostname: str = "localhost"
    ca_file: str | None = None  # extra trust anchor (tests use a self-signed certificate)

    def __post_init__(self):
        if self.tls_mode not in _TLS_MODES:
            raise ValueError(f"tls_mode must be one of {', '.join(_TLS_MODES)}: {self.tls_mode!r}")
        if not self.host:
            raise ValueError("host is empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535: {self.port!r}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive: {self.timeout!r}")
        if not _is_token(self.local_hostname):
            raise ValueError(f"local_hostname is not a hostname: {self.local_hostname!r}")
        if self.password and not self.username:
            raise ValueError("a password was given without a username")
        for name in ("username", "password"):
            if any(c in getattr(self, name) for c in "\r\n\0"):
                raise ValueError(f"{name} contains CR, LF or NUL")


class SmtpError(Exception):
    """An SMTP failure. `code` is the reply code (None when there was no reply: a timeout, a
    drop, a refusal made here); `message` the reply text or what went wrong; `command` the
    step that failed: CONNECT, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, BODY (the reply after the
    final dot) or SIZE (refused here, before sending)."""

    def __init__(self, message: str, code: int | None = None, *, command: str = ""):
        self.code = code
        self.message = message
        self.command = command
        super().__init__(f"{code} {message}" if code is not None else message)

    @property
    def enhanced_status(self) -> tuple[int, int, int] | None:
        """The RFC 3463 enhanced status code at the start of the reply text, if any."""
        match = _ENHANCED.match(self.message)
        if match is None:
            return None
        return int(match[1]), int(match[2]), int(match[3])


class TransientError(SmtpError):
    """4xx replies, timeouts and dropped connections: retry later."""


class PermanentError(SmtpError):
    """A 5xx reply for one message or recipient (or a message too large for the relay)."""

    @property
    def hard_bounce(self) -> bool:
        """True when the recipient's address itself is bad, so it should be suppressed.

        The rule: the reply came to RCPT or to the message (DATA or the final dot; never to MAIL,
        which judges our sender) and either
        - it carries an enhanced status 5.1.x (addressing: 5.1.1 no such mailbox, 5.1.2 no such
          domain, 5.1.3 bad syntax, 5.1.6 moved, 5.1.10 null MX), except 5.1.7 and 5.1.8, which
          are about the sender; or
        - it has no enhanced status, came to RCPT, and is 550, 551 or 553, whose RFC 5321
          meanings are "mailbox unavailable", "user not local" and "mailbox name not allowed".
        A 550 after the message without an enhanced status is usually a content or policy
        refusal ("rejected as spam"), so it is a failure but not a hard bounce; so is 5.7.x
        (policy) and 5.2.x (mailbox full, disabled), which may recover.
        """
        if self.command not in ("RCPT", "DATA", "BODY") or self.code is None:
            return False
        enhanced = self.enhanced_status
        if enhanced is not None:
            klass, subject, detail = enhanced
            return klass == 5 and subject == 1 and detail not in _SENDER_SUBJECT_DETAILS
        return self.command == "RCPT" and self.code in (550, 551, 553)


class RelayBroken(SmtpError):
    """The relay refuses us as a client: authentication refused, TLS failed or unavailable,
    EHLO and HELO refused, the relay wants authentication we did not give, or it refuses our
    envelope sender. The campaign must pause and tell the staff; retrying will not help."""


class StaleConnection(TransientError):
    """The connection failed before any reply to this batch: nothing of it was sent."""


@dataclass(frozen=True)
class Outgoing:
    key: object
    mail_from: str  # the envelope sender (a VERP address); "" for the null sender
    rcpt: str
    data: bytes  # the whole message, CRLF line endings, not dot-stuffed


@dataclass(frozen=True)
class Result:
    key: object
    ok: bool
    code: int  # the reply code; 0 when there was none
    reply: str
    error: SmtpError | None


class _ConnectionLost(Exception):
    """Internal: the connection cannot be used any more (drop, timeout, 421, garbage)."""

    def __init__(self, error: SmtpError):
        super().__init__(str(error))
        self.error = error


def _is_token(value: str) -> bool:
    return bool(value) and value.isascii() and value.isprintable() and " " not in value


def check_address(address: str, *, what: str = "address", allow_empty: bool = False) -> None:
    """Refuse an envelope address that could break the command line it goes into."""
    if not isinstance(address, str):
        raise ValueError(f"{what} must be a str, not {type(address).__name__}")
    if not address:
        if allow_empty:
            return
        raise ValueError(f"{what} is empty")
    if not address.isascii():
        raise ValueError(
            f"{what} {address!r} has non-ASCII characters: that needs SMTPUTF8, which this "
            "client does not implement (IDN domains must be given in punycode)"
        )
    if not address.isprintable() or " " in address or "<" in address or ">" in address:
        raise ValueError(
            f"{what} {address!r} contains a control character (CR, LF, NUL...), a space or "
            "an angle bracket"
        )


def prepare_data(data: bytes) -> bytes:
    """The DATA payload for a message: dot-stuffed, ending with CRLF and the final dot.

    Raises ValueError for a bare CR or LF: the message must use CRLF line endings only (a bare
    LF next to a dot is how SMTP smuggling ends one message early on some relays). A
    mime.CrlfMessage (what build_message returns) has none by construction and is not scanned."""
    return _stuffed(data) + b".\r\n"


def _stuffed(data: bytes) -> bytes:
    """prepare_data without the final dot, which the client writes after it: a
    mime.DotFreeMessage comes back as it is, not copied (the ~15 KB message is copied once, into
    the write that carries it)."""
    if type(data) is DotFreeMessage:
        # CRLF line ends, ending with CRLF, and no line starting with a dot (mime.DotFreeMessage).
        return data
    if type(data) is CrlfMessage:
        # build_message's output: CRLF line endings by construction (mime.CrlfMessage).
        data = bytes(data)
    elif not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"data must be bytes, not {type(data).__name__}")
    else:
        data = bytes(data)
        crlf = data.count(b"\r\n")
        if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
            raise ValueError("data has a bare CR or LF: use CRLF line endings only")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data


def _error_for(code: int, text: str, command: str) -> SmtpError:
    if 400 <= code < 500:
        return TransientError(text, code, command=command)
    if 500 <= code < 600 and command == "MAIL":
        # "501 5.1.7 Bad sender address syntax", "530 5.7.0 Authentication required", "Must
        # issue a STARTTLS command first": MAIL judges our sender and our session, never the
        # recipient, and every message would get the same answer.
        return RelayBroken(text, code, command=command)
    enhanced = _ENHANCED.match(text)
    if 500 <= code < 600 and enhanced and enhanced[2] == "1" and int(enhanced[3]) in (7, 8):
        # Postfix delays a refusal of the sender to RCPT (smtpd_delay_reject): "553 5.1.8
        # <bounces+...>: Sender address rejected: Domain not found" is about us too.
        return RelayBroken(text, code, command=command)
    if 500 <= code < 600:
        return PermanentError(text, code, command=command)
    # Not 4xx/5xx where a refusal was expected (e.g. 354 where 250 belonged): protocol trouble.
    return TransientError(f"unexpected reply: {text}", code, command=command)


def _ssl_context(config: SmtpConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.ca_file)
    if not config.verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# A reply line (or what arrived without a line end) longer than this is not SMTP: RFC 5321 allows
# 512 bytes a reply line; this is asyncio.StreamReader's limit, which the client used to read with.
_MAX_LINE = 65536


# What one read of the socket can take (replies are short; more is read on the next turn).
_READ_SIZE = 16384


class _Replies(asyncio.BufferedProtocol):
    """The client's end of the socket. What arrives is split into reply lines and replies, which
    queue in order; the one waiter (`wait`, or `expect`'s callback for the pipelined rounds) is
    woken once as many replies as it asked for are in, so a pipelined round of four replies costs
    one wake-up, not four reads. A 421 (the server is closing the session), a line that is not an
    SMTP reply, a timeout or the end of the connection is kept as `failure`: it comes after the
    replies queued before it, and nothing follows it.

    It reads into a buffer of its own (a BufferedProtocol): a plain Protocol's transport calls
    recv(256 KiB) for every read, and that allocation, above glibc's mmap threshold and then
    shrunk to a reply's ~100 bytes, cost more CPU than sending the ~15 KB message did (py-spy,
    wire_bench: 30% of the client's busy samples against 24% for the send; the client's system
    CPU fell from ~28 to ~11 us a message without it).

    The timeout of a wait is one timer per connection, not one per wait: a wait notes when it
    began, and the timer, when it fires, either finds the waiter late (config.timeout without
    the replies it wants: the failure) or sets itself again for the current wait's end; with
    nobody waiting it stops until the next wait. The same rule as a timeout per round trip (no
    reply within config.timeout: the connection is lost) without a timer to schedule and cancel
    for every message."""

    def __init__(self, config: SmtpConfig):
        self.replies: deque[tuple[int, str]] = deque()
        self.failure: SmtpError | None = None
        self._host = config.host
        self._where = f"{config.host}:{config.port}"
        self._timeout = config.timeout
        self._loop = asyncio.get_running_loop()
        self.closed = self._loop.create_future()
        self._read_buffer = memoryview(bytearray(_READ_SIZE))
        self._buffer = b""
        self._lines: list[str] = []
        self._waiter: asyncio.Future | None = None
        self._callback = None  # what `expect` calls, instead of waking a waiter
        self._wanted = 0
        self._timed = False
        self._wait_began = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._read_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self.failure is not None:
            return
        if self._buffer:
            data = self._buffer + data
        replies = self.replies
        lines = self._lines
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start : end + 1]
            start = end + 1
            if len(line) < 4 or not line[:3].isdigit() or line[3] not in b" -\r":
                self._fail(TransientError(f"not an SMTP reply: {line[:100]!r}", command="REPLY"))
                return
            lines.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3] != 45:  # not "-": the reply's last line
                code = int(line[:3])
                text = lines[0] if len(lines) == 1 else "\n".join(lines)
                lines.clear()
                if code == 421:
                    # The server is closing the session: whatever follows gets no answer.
                    self._fail(TransientError(text, 421, command=""))
                    return
                replies.append((code, text))
        self._buffer = data[start:]
        if len(self._buffer) > _MAX_LINE:
            self._fail(
                TransientError(f"not an SMTP reply: {self._buffer[:100]!r}...", command="REPLY")
            )
            return
        if len(replies) >= self._wanted:
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            callback = self._callback
            if callback is not None:
                self._callback = None
                callback()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(
            TransientError(f"connection to {self._where} lost: {exc or 'closed by the server'}")
        )
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, error: SmtpError) -> None:
        if self.failure is None:
            self.failure = error
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    async def wait(self, count: int, timed: bool) -> None:
        """Until `count` replies are queued or the connection failed. `timed`: within
        config.timeout (connect and close keep an asyncio.timeout around the whole step)."""
        if len(self.replies) >= count or self.failure is not None:
            return
        waiter = self._waiter = self._loop.create_future()
        self._wanted = count
        self._timed = timed
        if timed:
            self._wait_began = self._loop.time()
            if self._timer is None:
                self._timer = self._loop.call_at(
                    self._wait_began + self._timeout, self._check_timeout
                )
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def expect(self, count: int, callback) -> None:
        """Call `callback` once `count` replies are queued or the connection failed (at once if
        they are already), within config.timeout: a wait without a task to wake."""
        self._wanted = count
        self._timed = True
        self._wait_began = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._wait_began + self._timeout, self._check_timeout)
        if len(self.replies) >= count or self.failure is not None:
            callback()
        else:
            self._callback = callback

    def _check_timeout(self) -> None:
        self._timer = None
        waiting = self._waiter is not None or self._callback is not None
        if not waiting or not self._timed or self.failure is not None:
            return
        due = self._wait_began + self._timeout
        if self._loop.time() >= due:
            self._fail(TransientError(f"no reply from {self._host} within {self._timeout:g} s"))
        else:
            self._timer = self._loop.call_at(due, self._check_timeout)

    def stop(self) -> None:
        self._callback = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class SmtpConnection:
    """One SMTP session with one relay. Not safe for concurrent use: one batch at a time.

        conn = SmtpConnection(config)
        await conn.connect()
        results = await conn.send_batch(messages)
        await conn.close()

    or `async with SmtpConnection(config) as conn:`. After a batch that lost the connection,
    `connected` is False; connect() again to go on.
    """

    def __init__(self, config: SmtpConfig):
        self.config = config
        self.supports_pipelining = False
        self.max_size: int | None = None
        self.extensions: dict[str, str] = {}
        self._transport: asyncio.Transport | None = None
        self._protocol: _Replies | None = None
        self._replies = 0  # replies read since the current batch began

    @property
    def connected(self) -> bool:
        return self._transport is not None

    async def __aenter__(self) -> SmtpConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- session set-up ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session: TCP (+ implicit TLS), greeting, EHLO (HELO when refused),
        STARTTLS and EHLO again, AUTH when a username is set. Raises RelayBroken or
        TransientError; on failure nothing stays open."""
        if self._transport is not None:
            raise RuntimeError("already connected")
        config = self.config
        try:
            async with asyncio.timeout(config.timeout):
                await self._open()
        except SmtpError:
            self._abort()
            raise
        except ssl.SSLCertVerificationError as exc:
            self._abort()
            raise RelayBroken(
                f"TLS certificate of {config.host} not trusted: {exc.verify_message}",
                command="CONNECT",
            ) from None
        except ssl.SSLError as exc:
            self._abort()
            raise RelayBroken(
                f"TLS with {config.host}:{config.port} failed: {exc.reason or exc}",
                command="CONNECT",
            ) from None
        except TimeoutError:
            self._abort()
            raise TransientError(
                f"{config.host}:{config.port} did not answer within {config.timeout:g} s",
                command="CONNECT",
            ) from None
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            self._abort()
            raise TransientError(
                f"cannot talk to {config.host}:{config.port}: {exc}", command="CONNECT"
            ) from None
        except _ConnectionLost as exc:
            self._abort()
            raise exc.error from None

    async def _open(self) -> None:
        config = self.config
        context = _ssl_context(config) if config.tls_mode != "none" else None
        loop = asyncio.get_running_loop()
        protocol = _Replies(config)
        if config.tls_mode == "implicit":
            transport, _ = await loop.create_connection(
                lambda: protocol, config.host, config.port, ssl=context, server_hostname=config.host
            )
        else:
            transport, _ = await loop.create_connection(lambda: protocol, config.host, config.port)
        self._transport, self._protocol = transport, protocol
        code, text = await self._reply()
        if code != 220:
            error = _error_for(code, text, "CONNECT")
            if isinstance(error, PermanentError):  # "554 no SMTP service here" for us
                error = RelayBroken(text, code, command="CONNECT")
            raise error
        await self._hello()
        if config.tls_mode == "starttls":
            if "STARTTLS" not in self.extensions:
                raise RelayBroken(
                    f"{config.host} does not offer STARTTLS, which this server's settings require",
                    command="STARTTLS",
                )
            code, text = await self._command(b"STARTTLS\r\n")
            if code != 220:
                error = _error_for(code, text, "STARTTLS")
                if not isinstance(error, TransientError):
                    error = RelayBroken(text, code, command="STARTTLS")
                raise error
            self._transport = await loop.start_tls(
                self._transport, protocol, context, server_hostname=config.host
            )
            await self._hello()
        if config.username:
            await self._authenticate()

    async def _hello(self) -> None:
        name = self.config.local_hostname.encode("ascii")
        code, text = await self._command(b"EHLO " + name + b"\r\n")
        if code == 250:
            lines = text.split("\n")
            extensions = {}
            for line in lines[1:]:
                keyword, _, params = line.strip().partition(" ")
                extensions[keyword.upper()] = params.strip()
            self.extensions = extensions
        else:
            if 400 <= code < 500:
                raise TransientError(text, code, command="EHLO")
            code, text = await self._command(b"HELO " + name + b"\r\n")
            if code != 250:
                if 400 <= code < 500:
                    raise TransientError(text, code, command="EHLO")
                raise RelayBroken(f"EHLO and HELO refused: {text}", code, command="EHLO")
            self.extensions = {}
        self.supports_pipelining = "PIPELINING" in self.extensions
        size = self.extensions.get("SIZE", "")
        self.max_size = int(size) if size.isdigit() and int(size) > 0 else None

    async def _authenticate(self) -> None:
        config = self.config
        offered = self.extensions.get("AUTH", "").upper().split()
        user = config.username.encode("utf-8")
        password = config.password.encode("utf-8")
        if "PLAIN" in offered:
            token = base64.b64encode(b"\0" + user + b"\0" + password)
            code, text = await self._command(b"AUTH PLAIN " + token + b"\r\n")
        elif "LOGIN" in offered:
            code, text = await self._command(b"AUTH LOGIN\r\n")
            if code == 334:
                code, text = await self._command(base64.b64encode(user) + b"\r\n")
            if code == 334:
                code, text = await self._command(base64.b64encode(password) + b"\r\n")
        else:
            raise RelayBroken(
                f"{config.host} offers no authentication we can use (PLAIN or LOGIN); it "
                f"offers: {' '.join(offered) or 'none'}"
                + (" (authentication may need TLS)" if config.tls_mode == "none" else ""),
                command="AUTH",
            )
        if code == 235:
            return
        if 400 <= code < 500 and code != 432:
            raise TransientError(text, code, command="AUTH")
        raise RelayBroken(f"authentication refused: {text}", code, command="AUTH")

    # -- low level --------------------------------------------------------------------------

    def _pop(self) -> tuple[int, str]:
        """The next queued reply; _ConnectionLost when the connection failed before it."""
        try:
            reply = self._protocol.replies.popleft()
        except IndexError:
            raise _ConnectionLost(self._protocol.failure) from None
        self._replies += 1
        return reply

    async def _reply(self, timed: bool = False) -> tuple[int, str]:
        await self._protocol.wait(1, timed)
        return self._pop()

    async def _command(self, line: bytes, timed: bool = False) -> tuple[int, str]:
        self._transport.write(line)
        return await self._reply(timed)

    def _abort(self) -> None:
        transport, self._transport = self._transport, None
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.stop()
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        """QUIT and close; never raises."""
        transport, protocol = self._transport, self._protocol
        if transport is None:
            return
        try:
            async with asyncio.timeout(min(self.config.timeout, 5.0)):
                await self._command(b"QUIT\r\n")
                transport.close()
                await asyncio.shield(protocol.closed)
        except Exception:  # noqa: S110 - closing a session that is gone is not an error
            pass
        finally:
            self._abort()

    # -- sending ----------------------------------------------------------------------------

    def _check(self, message: Outgoing) -> None:
        try:
            check_address(message.mail_from, what="mail_from", allow_empty=True)
            check_address(message.rcpt, what="rcpt")
        except ValueError as exc:
            raise ValueError(f"message {message.key!r}: {exc}") from None

    def _envelope(self, message: Outgoing, size: int) -> bytes:
        size_param = f" SIZE={size}" if "SIZE" in self.extensions else ""
        return (
            f"MAIL FROM:<{message.mail_from}>{size_param}\r\nRCPT TO:<{message.rcpt}>\r\nDATA\r\n"
        ).encode("ascii")

    async def send_batch(self, messages: list[Outgoing]) -> list[Result]:
        """Send each message over this session; one Result per message, in order.

        Raises ValueError (before sending anything) for bad input, RuntimeError when not
        connected, and StaleConnection when the connection fails before any reply to the batch
        (nothing was sent: connect again and send it again). Otherwise failures are in the
        results: when the connection is lost mid-batch, the messages not yet acknowledged are
        TransientError and the session is closed (`connected` becomes False)."""
        if self._transport is None:
            raise RuntimeError("not connected: call connect() first")
        payloads: list[bytes | None] = []
        results: list[Result | None] = []
        for message in messages:
            self._check(message)
            try:
                payload = _stuffed(message.data)
            except ValueError as exc:
                raise ValueError(f"message {message.key!r}: {exc}") from None
            size = len(message.data)
            if self.max_size is not None and size > self.max_size:
                error = PermanentError(
                    f"message is {size} bytes; {self.config.host} accepts at most "
                    f"{self.max_size} (SIZE)",
                    command="SIZE",
                )
                results.append(Result(message.key, False, 0, error.message, error))
                payloads.append(None)
            else:
                results.append(None)
                payloads.append(payload)
        self._replies = 0
        try:
            if self.supports_pipelining:
                await self._send_pipelined(messages, payloads, results)
            else:
                await self._send_one_by_one(messages, payloads, results)
        except _ConnectionLost as exc:
            self._lost(messages, results, exc.error)
        except OSError as exc:
            where = f"{self.config.host}:{self.config.port}"
            self._lost(messages, results, TransientError(f"connection to {where} lost: {exc}"))
        except asyncio.CancelledError:
            # Cancelled mid-conversation: the session's state is unknown, so it is not reused.
            self._abort()
            raise
        return results  # type: ignore[return-value]

    def _lost(self, messages, results, error: SmtpError) -> None:
        self._abort()
        if self._replies == 0:
            # Not even MAIL was answered, so no body went out: the batch is whole to resend.
            raise StaleConnection(error.message, error.code, command=error.command)
        for i, result in enumerate(results):
            if result is None:
                results[i] = Result(messages[i].key, False, error.code or 0, error.message, error)

    async def _send_pipelined(self, messages, payloads, results) -> None:
        rounds = _Rounds(self, messages, payloads, results)
        rounds.write()
        try:
            await rounds.done
        except _GiveUp as stop:
            await self._give_up(messages, results, stop.error, stop.pending_dot, stop.need_rset)

    async def _give_up(self, messages, results, error, pending_dot, need_rset) -> None:
        """Leave the rest of the batch unsent after the relay refused our sender, or refused
        GIVE_UP_AFTER messages in a row for the time being: what follows would get the same
        answer. Postfix slows down every reply after its 10th error in a session
        (smtpd_soft_error_limit, smtpd_error_sleep_time 1 s) and hangs up after the 20th; going
        on would only feed that tarpit. The session is left clean for the next batch."""
        out = (b".\r\n" if pending_dot else b"") + (b"RSET\r\n" if need_rset else b"")
        if out:
            self._transport.write(out)
            await self._protocol.wait(pending_dot + need_rset, True)
            if pending_dot:
                self._pop()
            if need_rset:
                self._pop()
        if not isinstance(error, RelayBroken):
            error = TransientError(
                f"not tried: {self.config.host}:{self.config.port} refused the {GIVE_UP_AFTER} "
                f"messages before it for now; the last: {error}",
                error.code,
                command="",
            )
        for i, result in enumerate(results):
            if result is None:
                results[i] = Result(messages[i].key, False, error.code or 0, error.message, error)

    async def _send_one_by_one(self, messages, payloads, results) -> None:
        for i, message in enumerate(messages):
            payload = payloads[i]
            if payload is None:
                continue
            size_param = f" SIZE={len(message.data)}" if "SIZE" in self.extensions else ""
            steps = (
                ("MAIL", f"MAIL FROM:<{message.mail_from}>{size_param}\r\n".encode("ascii"), 250),
                ("RCPT", f"RCPT TO:<{message.rcpt}>\r\n".encode("ascii"), 250),
                ("DATA", b"DATA\r\n", 354),
                ("BODY", payload + b".\r\n", 250),
            )
            error = None
            for command, line, expected in steps:
                code, text = await self._command(line, True)
                if code == expected or (command == "RCPT" and code == 251):
                    continue
                error = _error_for(code, text, command)
                break
            if error is None:
                results[i] = Result(message.key, True, code, text, None)
                continue
            results[i] = Result(message.key, False, error.code or 0, error.message, error)
            if error.command != "BODY":
                await self._command(b"RSET\r\n", True)


class _Rounds:
    """A pipelined batch, round by round (see the module docstring), driven by the replies: each
    round is written from the callback that read the previous round's replies, so a round costs
    no task wake-up (a future awaited through the event loop costs ~4 us of CPU here); `done`
    resolves once, when the batch is over, with _ConnectionLost when the connection failed."""

    def __init__(self, connection: SmtpConnection, messages, payloads, results):
        self.connection = connection
        self.transport = connection._transport
        self.protocol = connection._protocol
        self.messages = messages
        self.payloads = payloads
        self.results = results
        self.done = self.protocol._loop.create_future()
        self.pending = -1  # the message whose DATA got 354 and whose body goes out next
        self.pending_dot = False  # a 354 came after a refused RCPT: send only the final dot
        self.need_rset = False
        self.refused_in_a_row = 0
        self.index = 0
        self.current = -1

    def _finish(self, error: BaseException | None = None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)

    def write(self) -> None:
        """Write the next round (the last body and its final dot, RSET, the next envelope: one
        write, one copy of the body) and expect its replies; the batch is over with nothing left."""
        try:
            payloads, messages = self.payloads, self.messages
            index, count = self.index, len(messages)
            while index < count and payloads[index] is None:
                index += 1
            current = self.current = index if index < count else -1
            self.index = index + 1
            out = []
            expected = 0
            if self.pending >= 0:
                out.append(payloads[self.pending])
                out.append(b".\r\n")
                expected = 1
            elif self.pending_dot:
                out.append(b".\r\n")
                expected = 1
            if self.need_rset:
                out.append(b"RSET\r\n")
                expected += 1
            if current >= 0:
                message = messages[current]
                out.append(self.connection._envelope(message, len(message.data)))
                expected += 3
            if not out:
                self._finish()
                return
            self.transport.write(b"".join(out))
            self.protocol.expect(expected, self._read)
        except Exception as exc:  # handed to the awaiting send_batch
            self._finish(exc)

    def _read(self) -> None:
        try:
            if self._read_round():
                self.write()
        except Exception as exc:  # handed to the awaiting send_batch
            self._finish(exc)

    def _read_round(self) -> bool:
        """Read the round's replies; True when the next round is to be written."""
        pop = self.connection._pop
        results, messages = self.results, self.messages
        if self.pending >= 0:
            code, text = pop()
            key = messages[self.pending].key
            if code == 250:
                results[self.pending] = Result(key, True, code, text, None)
                self.refused_in_a_row = 0
            else:
                error = _error_for(code, text, "BODY")
                results[self.pending] = Result(key, False, code, text, error)
            self.pending = -1
        elif self.pending_dot:
            pop()  # the answer to an empty message nobody asked for
            self.pending_dot = False
        if self.need_rset:
            pop()
            self.need_rset = False
        current = self.current
        if current < 0:
            self._finish()
            return False
        mail_code, mail_text = pop()
        rcpt_code, rcpt_text = pop()
        data_code, data_text = pop()
        if mail_code != 250:
            error = _error_for(mail_code, mail_text, "MAIL")
        elif rcpt_code not in (250, 251):
            error = _error_for(rcpt_code, rcpt_text, "RCPT")
            self.need_rset = True
        elif data_code != 354:
            error = _error_for(data_code, data_text, "DATA")
            self.need_rset = True
        else:
            self.pending = current
            return True
        if data_code == 354:
            # RFC 2920: a server may say 354 although every RCPT failed; the client then
            # sends just the final dot, and the transaction fails.
            self.pending_dot = True
            self.need_rset = True
        code = error.code or 0
        results[current] = Result(messages[current].key, False, code, error.message, error)
        if isinstance(error, TransientError):
            self.refused_in_a_row += 1
        if isinstance(error, RelayBroken) or self.refused_in_a_row >= GIVE_UP_AFTER:
            # The rest is left (SmtpConnection._give_up), after this round's dot and RSET.
            self._finish(_GiveUp(error, self.pending_dot, self.need_rset))
            return False
        return True


class _GiveUp(Exception):
    """Internal: the rounds stopped for SmtpConnection._give_up (its dot and RSET still due)."""

    def __init__(self, error: SmtpError, pending_dot: bool, need_rset: bool):
        super().__init__(str(error))
        self.error = error
        self.pending_dot = pending_dot
        self.need_rset = need_rset
