"""The bounce receiver: an SMTP server (aiosmtpd) that a real MTA hands the bounce domain's mail to.

What holds:
- it accepts only `bounces@` and `bounces+<anything>@` recipients of the configured bounce
  domains (MM_BOUNCER_DOMAINS); anything else is refused at RCPT (550 5.7.1), so it can never
  relay: it sends nothing, to anyone;
- a message is classified and applied (apply.do_process_bounce, one transaction) inside the
  DATA handler, before the 250: whatever it accepted is applied; if it is killed before the
  commit, the MTA got no 250 and retries, and a message applied but whose 250 was lost is
  recognised by its digest when it comes again (applied once);
- a database error answers 451 (the MTA retries later), never 5xx (the MTA would bounce the
  bounce back to its sender, an empty return path, and drop it);
- limits: messages over MM_BOUNCER_MAX_BYTES are refused (SIZE and 552), and a client past
  MM_BOUNCER_RATE_PER_MINUTE messages in a minute gets 450 4.7.1 at RCPT until the minute
  turns (a flood from one host cannot fill the database faster than that).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import defaultdict

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections

from .apply import do_process_bounce
from .models import Bounce

logger = logging.getLogger(__name__)

LOCAL_PART = "bounces"


def _apply(content: bytes, recipients: list[str]) -> Bounce:
    close_old_connections()
    try:
        return do_process_bounce(
            content, channel=Bounce.Channel.SMTP, envelope_recipients=recipients
        )
    finally:
        close_old_connections()


class BounceHandler:
    """aiosmtpd handler: the RCPT and DATA hooks."""

    def __init__(self, domains, *, max_bytes: int, rate_per_minute: int):
        self.domains = {d.strip().lower().rstrip(".") for d in domains if d.strip()}
        self.max_bytes = max_bytes
        self.rate_per_minute = rate_per_minute
        self._counts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        self.apply = sync_to_async(_apply, thread_sensitive=True)

    def accepts(self, address: str) -> bool:
        local, _, domain = address.strip("<>").rpartition("@")
        local = local.lower()
        return domain.lower().rstrip(".") in self.domains and (
            local == LOCAL_PART or local.startswith(LOCAL_PART + "+")
        )

    def _over_rate(self, peer) -> bool:
        host = peer[0] if isinstance(peer, tuple) and peer else str(peer)
        window = self._counts[host]
        minute = time.monotonic() // 60
        if window[0] != minute:
            window[0], window[1] = minute, 0
        window[1] += 1
        if len(self._counts) > 10000:  # forget idle clients rather than grow without bound
            self._counts = defaultdict(lambda: [0.0, 0], {host: window})
        return window[1] > self.rate_per_minute

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(address) > 320 or not self.accepts(address):
            return "550 5.7.1 Relaying denied: not a bounce address of this server"
        if not envelope.rcpt_tos and self._over_rate(session.peer):
            return "450 4.7.1 Too many messages from your host; try again in a minute"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        if len(content) > self.max_bytes:
            return "552 5.3.4 Message too big"
        try:
            bounce = await self.apply(content, list(envelope.rcpt_tos))
        except DatabaseError:
            logger.exception("bounce not applied: database error")
            return "451 4.3.0 Temporary failure; try again later"
        except Exception:
            logger.exception("bounce not applied: unexpected error")
            return "451 4.3.0 Temporary failure; try again later"
        return f"250 2.0.0 Applied: bounce {bounce.pk} ({bounce.kind}, {bounce.outcome})"


def make_server_factory(handler: BounceHandler, hostname: str = "bouncer"):
    from aiosmtpd.smtp import SMTP

    def factory():
        return SMTP(
            handler,
            data_size_limit=handler.max_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Mail Marketer bouncer",
            timeout=60,
        )

    return factory


async def serve(host: str, port: int, handler: BounceHandler, *, ready=None) -> None:
    """Listen until SIGTERM or SIGINT; a message being applied finishes first."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(make_server_factory(handler), host=host, port=port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready is not None:
        ready(server.sockets[0].getsockname())
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
