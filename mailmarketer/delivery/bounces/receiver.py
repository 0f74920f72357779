"""The bounce receiver: an SMTP server (aiosmtpd) that a real MTA hands the bounce domain's mail to.

What holds:
- it accepts only `bounces@` and `bounces+<anything>@` recipients of the configured bounce
  domains (MM_BOUNCER_DOMAINS); anything else is refused at RCPT (550 5.7.1), so it can never
  relay: it sends nothing, to anyone;
- a message is stored as received (apply.store_received: one INSERT into the queue, several
  sessions' messages grouped into one transaction) before the 250, and applied right after,
  in batches (apply.apply_pending_one, by the bouncer's child process applier.py, and as a
  worker duty): so the SMTP session costs one write, and whatever was answered 250 is applied
  even if the bouncer is killed before applying it (the queue row waits for the next
  applier); if it is killed before the commit, the MTA got no 250 and retries, and a message
  that comes again is recognised by its digest (applied once);
- a database error answers 451 (the MTA retries later), never 5xx (the MTA would bounce the
  bounce back to its sender, an empty return path, and drop it);
- limits: messages over MM_BOUNCER_MAX_BYTES are refused (SIZE and 552), and a client past
  MM_BOUNCER_RATE_PER_MINUTE messages in a minute gets 450 4.7.1 at RCPT until the minute
  turns (a flood from one host cannot fill the database faster than that).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, close_old_connections, connection

from .apply import store_received

logger = logging.getLogger(__name__)

LOCAL_PART = "bounces"
GROUP_MAX = 500  # messages per group commit at most (one transaction)


def _in_thread(work):
    """Run `work` with this thread's database connection, dropping it after a database error
    (the next call reconnects)."""
    close_old_connections()
    try:
        return work()
    except DatabaseError:
        connection.close()
        raise


class BounceHandler:
    """aiosmtpd handler: the RCPT and DATA hooks."""

    def __init__(self, domains, *, max_bytes: int, rate_per_minute: int):
        self.domains = {d.strip().lower().rstrip(".") for d in domains if d.strip()}
        self.max_bytes = max_bytes
        self.rate_per_minute = rate_per_minute
        self._counts: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        # One thread writes the queue, with its own connection (the event loop never waits on
        # the database); the applying is a child process (applier.py).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="bouncer-store")
        self._queue: asyncio.Queue | None = None

    async def store(self, content: bytes, recipients: list[str]) -> None:
        """Kept durably once this returns (group commit: the messages of every session waiting
        at the time share one transaction)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._group_commits())
        done = asyncio.get_running_loop().create_future()
        await self._queue.put((content, recipients, done))
        await done

    async def _group_commits(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            while len(group) < GROUP_MAX and not self._queue.empty():
                group.append(self._queue.get_nowait())
            messages = [(content, rcpts) for content, rcpts, _ in group]
            try:
                await loop.run_in_executor(
                    self._writer, _in_thread, lambda m=messages: store_received(m)
                )
            except Exception as exc:
                for *_, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for *_, done in group:
                if not done.done():
                    done.set_result(None)

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
            await self.store(content, list(envelope.rcpt_tos))
        except DatabaseError:
            logger.exception("bounce not stored: database error")
            return "451 4.3.0 Temporary failure; try again later"
        except Exception:
            logger.exception("bounce not stored: unexpected error")
            return "451 4.3.0 Temporary failure; try again later"
        return "250 2.0.0 Accepted: queued for processing"


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


def start_applier() -> subprocess.Popen:
    """The applier child (applier.py), with this process's environment and settings."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailmarketer.delivery.bounces.applier",
            "--parent",
            str(os.getpid()),
        ]
    )


def stop_applier(child: subprocess.Popen, timeout: float = 60) -> None:
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(10)


async def serve(
    host: str, port: int, handler: BounceHandler, *, ready=None, apply: bool = True
) -> None:
    """Listen until SIGTERM or SIGINT, applying what it accepts; a message being stored
    finishes first (a batch being applied commits or rolls back whole)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(make_server_factory(handler), host=host, port=port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    applier = start_applier() if apply else None
    if ready is not None:
        ready(server.sockets[0].getsockname())
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        # The batch in hand finishes; what is still queued waits for the next applier.
        if applier is not None:
            stop_applier(applier)
