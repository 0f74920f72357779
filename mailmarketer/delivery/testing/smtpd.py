"""A real SMTP server for tests and benchmarks (aiosmtpd on 127.0.0.1), told what to answer.

In a test:

    with ScriptedSmtpServer() as server:             # a free port, in a thread
        server.script({"ann@example.com": "550 5.1.1 no such user"})
        server.script({"bob@example.com": ["451 4.3.0 later"]})  # once, then accepted
        server.drop_after(3)                          # cut the connection at the 4th message
        ... send to 127.0.0.1:server.port ...
        server.wait_for(10)                           # messages accepted, bounded in time
        server.messages                               # [(mail_from, rcpt_tos, data bytes)]

From another process (the crash tests kill workers, not this):

    python -m mailmarketer.delivery.testing.smtpd --port 0 --log received.tsv [--count-only]
        [--script rules.json] [--tls starttls|implicit] [--auth user:password] [--save DIR]

prints "ready <port>" on one line once it listens, then serves until SIGTERM or SIGINT, until its
parent process is gone, or until --max-seconds (default 3600) pass, and exits 0. With --log
every accepted recipient is appended as one line "rcpt<TAB>message-id<LF>" (one write(2) to a
file opened O_APPEND, done before the 250 reply is sent: a message acknowledged is always
logged, so "received at least once" can be checked after any kill).

Scripts answer per stage ("ehlo", "helo", "mail", "rcpt", "data": the reply after the final
dot); a rule is a callable(arg) -> reply or None (None accepts), or a mapping from an address
(case-insensitive), "@domain" or "*" to a reply, or to a list of replies used one per attempt
and then accepted. Special replies: any "421 ..." is sent and the connection closed; "drop"
closes the connection without a reply. A --script file is JSON: {"rcpt": {...}, "mail": {...},
"data": {...}, "ehlo": {...}, "helo": {...}, "drop_after": n}.

aiosmtpd does not advertise PIPELINING (it processes pipelined commands correctly, reading
them in order); this server adds it to its EHLO reply unless pipelining=False.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import re
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

STAGES = ("ehlo", "helo", "mail", "rcpt", "data")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:\s*(<[^>\s]*>)")

Rule = Callable[[str], "str | None"] | Mapping[str, "str | list[str]"]


class Received(NamedTuple):
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 (EC P-256, valid for a day) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = Path(directory) / "cert.pem"
    key_path = Path(directory) / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Protocol(SMTP):
    """aiosmtpd's session, counting the chunks it reads (to see what arrived pipelined) and
    registering itself so that stop() can close it."""

    def __init__(self, owner: ScriptedSmtpServer, **kwargs):
        super().__init__(owner._handler, **kwargs)
        self.owner = owner
        self.chunks = 0
        self.connection_no = 0

    def connection_made(self, transport):
        if self.transport is None:  # not the STARTTLS re-entry
            self.connection_no = self.owner._connection_opened(self)
        super().connection_made(transport)

    def connection_lost(self, error):
        self.owner._live.discard(self)
        super().connection_lost(error)

    def data_received(self, data):
        self.chunks += 1
        super().data_received(data)

    async def smtp_DATA(self, arg: str) -> None:
        if not self.owner.data_without_recipients or self.envelope.rcpt_tos:
            await super().smtp_DATA(arg)
            return
        # RFC 2920 section 3.1 lets a server say 354 when every RCPT failed; the client must
        # then send the final dot alone, and the transaction fails.
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        while await self._reader.readuntil(b"\r\n") != b".\r\n":
            pass
        self.owner._trace(self, "EMPTY-DATA")
        await self.push("554 5.5.1 Error: no valid recipients")


class _Handler:
    def __init__(self, owner: ScriptedSmtpServer):
        self.owner = owner

    async def _answer(self, server: _Protocol, stage: str, arg: str):
        self.owner._trace(server, stage.upper())
        reply = self.owner._reply_for(stage, arg)
        if reply is None:
            return MISSING
        if reply == "drop":
            await self._hang_up(server, abort=True)
        if reply.startswith("421"):
            await server.push(reply)
            await self._hang_up(server, abort=False)
        return reply

    async def _hang_up(self, server: _Protocol, *, abort: bool):
        if server.transport is not None:
            if abort:
                server.transport.abort()
            else:
                server.transport.close()
        # connection_lost() cancels this session's task; the sleep only bounds the wait.
        await asyncio.sleep(10)
        raise ConnectionAbortedError("scripted hang-up")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        answer = await self._answer(server, "ehlo", hostname)
        if answer is not MISSING:
            return [answer]
        session.host_name = hostname  # aiosmtpd leaves this to a 5-argument EHLO hook
        if self.owner.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        return await self._answer(server, "helo", hostname)

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.owner.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        return await self._answer(server, "mail", address)

    async def handle_RCPT(self, server, session, envelope, address, options):
        return await self._answer(server, "rcpt", address)

    async def handle_RSET(self, server, session, envelope):
        self.owner._trace(server, "RSET")
        return MISSING

    async def handle_DATA(self, server, session, envelope):
        owner = self.owner
        if owner._should_drop():
            owner._trace(server, "DROP")
            await self._hang_up(server, abort=True)
        answer = await self._answer(server, "data", envelope.rcpt_tos[0])
        if answer is not MISSING:
            return answer
        owner._accept(envelope)
        return "250 2.0.0 OK queued"


class ScriptedSmtpServer:
    """An SMTP server on 127.0.0.1 in a thread of its own; a context manager.

    - port=0 picks a free port (read `.port` after start).
    - count_only=True keeps no messages, only `.count` (for benchmarks).
    - auth=(user, password): AUTH with these credentials, required before MAIL; offering the
      auth_mechanisms (PLAIN and LOGIN by default).
    - tls="starttls" or "implicit": a self-signed certificate, whose path is `.cert_path` (give
      it to the client as ca_file).
    - log_path: append "rcpt<TAB>message-id" per accepted recipient (see the module docstring).
    - data_without_recipients=True answers DATA with 354 even when every RCPT was refused (as
      RFC 2920 allows some servers to), then 554 after the client's lone final dot.
    - save_dir: write each accepted message to save_dir/<n>.eml (n from 1), before replying.
    - trace=True records `.transcript`: (connection, chunk, command) for EHLO, MAIL, RCPT, RSET
      and DATA (the end of a message), where chunk counts the reads of that connection: two
      commands with the same chunk number arrived in one piece, i.e. pipelined.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        count_only: bool = False,
        pipelining: bool = True,
        auth: tuple[str, str] | None = None,
        auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
        tls: str = "none",
        size_limit: int | None = 33554432,
        data_without_recipients: bool = False,
        log_path: str | os.PathLike | None = None,
        save_dir: str | os.PathLike | None = None,
        trace: bool = False,
    ):
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError(f"tls must be none, starttls or implicit: {tls!r}")
        self.host = host
        self.port = port
        self.count_only = count_only
        self.pipelining = pipelining
        self.auth = auth
        self.auth_mechanisms = tuple(m.upper() for m in auth_mechanisms)
        self.tls = tls
        self.size_limit = size_limit
        self.data_without_recipients = data_without_recipients
        self.log_path = log_path
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.trace = trace
        self.messages: list[Received] = []
        self.transcript: list[tuple[int, int, str]] = []
        self.count = 0
        self.connections = 0
        self.cert_path: Path | None = None
        self._rules: dict[str, Rule] = {}
        self._drop_after: int | None = None
        self._lock = threading.Lock()
        self._accepted = threading.Condition(self._lock)
        self._handler = _Handler(self)
        self._live: set[_Protocol] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._log_fd: int | None = None

    # -- scripting (from the test's thread) ---------------------------------------------------

    def script(self, rule: Rule | None, *, stage: str = "rcpt") -> None:
        """Answer `stage` by `rule` from now on (None removes the rule)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}: {stage!r}")
        if rule is not None and not callable(rule) and not isinstance(rule, Mapping):
            raise ValueError("a rule is a callable or a mapping of address to reply")
        with self._lock:
            if rule is None:
                self._rules.pop(stage, None)
            elif isinstance(rule, Mapping):
                # Copy lists, so that consuming them does not change the caller's data.
                self._rules[stage] = {
                    key.lower(): list(value) if isinstance(value, list | tuple) else value
                    for key, value in rule.items()
                }
            else:
                self._rules[stage] = rule

    def drop_after(self, n: int | None) -> None:
        """Accept n more messages, then cut the connection at the end of the next one (without
        a reply, and without keeping it). Once; None disarms."""
        if n is not None and n < 0:
            raise ValueError(f"n must be 0 or more: {n!r}")
        with self._lock:
            self._drop_after = n

    def hang_up_all(self) -> None:
        """Close every open connection now, without a word, as a relay that restarts does."""

        def hang_up():
            for protocol in list(self._live):
                if protocol.transport is not None:
                    protocol.transport.abort()

        done = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (hang_up(), done.set()))
        done.wait(10)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` messages were accepted in all (True), or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._accepted:
            while self.count < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._accepted.wait(remaining)
            return True

    @property
    def recipients(self) -> list[str]:
        """Every accepted recipient, in order of arrival."""
        with self._lock:
            return [rcpt for message in self.messages for rcpt in message.rcpt_tos]

    # -- called from the server's thread -------------------------------------------------------

    def _reply_for(self, stage: str, arg: str) -> str | None:
        with self._lock:
            rule = self._rules.get(stage)
            if rule is None:
                return None
            if isinstance(rule, dict):
                lowered = arg.lower()
                for key in (lowered, "@" + lowered.rpartition("@")[2], "*"):
                    value = rule.get(key)
                    if isinstance(value, list) and value:
                        return value.pop(0)
                    if isinstance(value, str):
                        return value
                return None
        # A callable runs outside the lock: it may call back into this object.
        return rule(arg)

    def _should_drop(self) -> bool:
        with self._lock:
            if self._drop_after is None:
                return False
            if self._drop_after == 0:
                self._drop_after = None
                return True
            return False

    def _accept(self, envelope) -> None:
        data = envelope.original_content
        if self._log_fd is not None:
            end = data.find(b"\r\n\r\n")
            match = _MESSAGE_ID.search(data, 0, len(data) if end < 0 else end)
            message_id = match[1].decode("ascii", "replace") if match else "-"
            lines = "".join(f"{rcpt}\t{message_id}\n" for rcpt in envelope.rcpt_tos)
            os.write(self._log_fd, lines.encode("utf-8", "replace"))
        if self.save_dir is not None:
            with self._lock:
                number = self.count + 1
            tmp = self.save_dir / f".{number}.tmp"
            tmp.write_bytes(data)
            tmp.rename(self.save_dir / f"{number}.eml")
        with self._accepted:
            if not self.count_only:
                self.messages.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(data))
                )
            self.count += 1
            if self._drop_after is not None:
                self._drop_after -= 1
            self._accepted.notify_all()

    def _trace(self, protocol: _Protocol, command: str) -> None:
        if self.trace:
            with self._lock:
                self.transcript.append((protocol.connection_no, protocol.chunks, command))

    def _connection_opened(self, protocol: _Protocol) -> int:
        self._live.add(protocol)
        with self._lock:
            self.connections += 1
            return self.connections

    # -- life cycle ----------------------------------------------------------------------------

    def _factory(self, tls_context: ssl.SSLContext | None):
        kwargs: dict[str, Any] = {
            "hostname": "mm-test-smtpd",  # not socket.getfqdn(): no DNS lookup per session
            "data_size_limit": self.size_limit or None,
            "timeout": 60,
            "loop": self._loop,
        }
        if self.tls == "starttls":
            kwargs["tls_context"] = tls_context
        if self.auth is not None:
            user, password = (part.encode("utf-8") for part in self.auth)

            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = (
                    isinstance(auth_data, LoginPassword)
                    and auth_data.login == user
                    and auth_data.password == password
                )
                return AuthResult(success=ok, handled=False)

            kwargs.update(
                auth_exclude_mechanism=[
                    m for m in ("PLAIN", "LOGIN") if m not in self.auth_mechanisms
                ],
                authenticator=authenticator,
                # Required by handle_MAIL (aiosmtpd's auth_required warns whenever AUTH is
                # also allowed without STARTTLS, as it must be here for implicit TLS).
                auth_require_tls=self.tls == "starttls",
            )
        return lambda: _Protocol(self, **kwargs)

    def start(self) -> ScriptedSmtpServer:
        if self._thread is not None:
            raise RuntimeError("already started")
        tls_context = None
        if self.tls != "none":
            self._tmp = tempfile.TemporaryDirectory(prefix="mm-smtpd-")
            self.cert_path, key_path = make_self_signed_cert(Path(self._tmp.name))
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(self.cert_path, key_path)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path is not None:
            self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run():
            loop = self._loop
            asyncio.set_event_loop(loop)
            try:
                server = loop.run_until_complete(
                    loop.create_server(
                        self._factory(tls_context),
                        self.host,
                        self.port,
                        ssl=tls_context if self.tls == "implicit" else None,
                    )
                )
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                for protocol in list(self._live):
                    if protocol.transport is not None:
                        protocol.transport.abort()
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=run, name="scripted-smtpd", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the test SMTP server did not start within 10 s")
        if failure:
            self._thread = None
            self._close_files()
            raise RuntimeError(f"the test SMTP server could not listen: {failure[0]}")
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        thread.join(10)
        self._close_files()
        if thread.is_alive():
            raise RuntimeError("the test SMTP server did not stop within 10 s")

    def _close_files(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ScriptedSmtpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def load_script(server: ScriptedSmtpServer, path: str | os.PathLike) -> None:
    """Apply a JSON script file (see the module docstring)."""
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"script {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"script {path}: expected a JSON object")
    for key, value in spec.items():
        if key == "drop_after":
            if not isinstance(value, int):
                raise ValueError(f"script {path}: drop_after must be an integer")
            server.drop_after(value)
        elif key in STAGES:
            if not isinstance(value, dict) or not all(
                isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
                for v in value.values()
            ):
                raise ValueError(
                    f"script {path}: {key} must map addresses to a reply or a list of replies"
                )
            server.script(value, stage=key)
        else:
            raise ValueError(
                f"script {path}: unknown key {key!r} (expected drop_after or one of "
                f"{', '.join(STAGES)})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mailmarketer.delivery.testing.smtpd",
        description="A scriptable SMTP server on loopback for tests and benchmarks.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--count-only",
        action="store_true",
        help="keep nothing but the count (the default; refuses --save)",
    )
    parser.add_argument("--save", help="write each accepted message to SAVE/<n>.eml")
    parser.add_argument("--script", help="JSON file of scripted replies")
    parser.add_argument("--log", help="append 'rcpt<TAB>message-id' per accepted recipient")
    parser.add_argument("--tls", choices=("none", "starttls", "implicit"), default="none")
    parser.add_argument("--auth", help="user:password required before MAIL")
    parser.add_argument("--no-pipelining", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    if args.count_only and args.save:
        parser.error("--count-only and --save exclude each other")
    auth = None
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not sep or not user:
            parser.error("--auth must be user:password")
        auth = (user, password)
    server = ScriptedSmtpServer(
        port=args.port,
        count_only=True,  # a long-running process keeps no messages in memory
        save_dir=args.save,
        pipelining=not args.no_pipelining,
        auth=auth,
        tls=args.tls,
        log_path=args.log,
    )
    if args.script:
        try:
            load_script(server, args.script)
        except ValueError as exc:
            parser.error(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    parent = os.getppid()
    server.start()
    print(f"ready {server.port}", flush=True)
    if server.cert_path is not None:
        print(f"cert {server.cert_path}", flush=True)
    deadline = time.monotonic() + args.max_seconds
    try:
        # Bounded: a parent that died without stopping us (kill -9 of a test run) ends us too.
        while not stop.wait(0.2):
            if os.getppid() != parent or time.monotonic() > deadline:
                break
    finally:
        server.stop()
    print(f"stopped after {server.count} messages", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
