"""Senders move finished message bytes: to a workspace's SMTP relays, or to the local outbox
when it has none. Both take a list of `smtp.Outgoing` and answer one `smtp.Result` each, in order.

The SMTP sender keeps its connections open between batches (a TLS handshake per batch would cost
more than the batch) in an event loop of its own, owned by the worker's one thread: the worker
calls `send()` synchronously and the loop runs only inside that call, so the ORM, which must not
run inside an event loop, is never called from one. A kept connection that turns out dead before
answering anything (the relay restarted, or closed it as idle) is reopened and the same messages
sent on the new one: nothing of them can have been accepted, so this costs no attempt.

Each sender has a circuit breaker (`Breaker`): the engine trips it when the relay is in temporary
trouble (connections refused or lost, 4xx to everything), and the worker then leaves the relay
alone until a probe of one message is due, doubling the wait after each failed probe up to
DELIVERY_PROBE_MAX_S. A probe that gets through closes the breaker and sending goes on, with
nobody having to resume anything.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils.timezone import now

from mailmarketer.lib import outbox

from .models import SmtpServer
from .smtp import (
    Outgoing,
    Result,
    SmtpConfig,
    SmtpConnection,
    SmtpError,
    StaleConnection,
    TransientError,
)

logger = logging.getLogger(__name__)

# Messages a connection takes per pipelined round; replies come back in order.
PIPELINE_CHUNK = 50
# A connection carries one message per round trip (the body waits for its 354), so a part of 50
# on two connections waited for 25 round trips in a row: the engine's part spreads over up to
# max_connections connections, each with at least this many messages.
LANE_MIN = 8


class BreakerState(enum.Enum):
    CLOSED = "closed"  # send as usual
    OPEN = "open"  # leave the relay alone until the probe is due
    HALF_OPEN = "half-open"  # send one message: the probe


class Breaker:
    """A relay's circuit breaker, in this worker's memory (each worker probes for itself)."""

    FIRST_WAIT_S = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.failures = 0  # temporary failures in a row, counted by message
        self.open_until: float | None = None
        self.wait = self.FIRST_WAIT_S
        self.last_reply = ""

    @property
    def state(self) -> BreakerState:
        if self.open_until is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if self.clock() < self.open_until else BreakerState.HALF_OPEN

    def trip(self, reply: str) -> datetime:
        """Open (again) after trouble; returns when the probe is due."""
        self.last_reply = reply
        self.failures = 0
        self.open_until = self.clock() + self.wait
        due = now() + timedelta(seconds=self.wait)
        self.wait = min(float(settings.DELIVERY_PROBE_MAX_S), self.wait * 2)
        return due

    def succeed(self) -> None:
        self.failures = 0
        self.open_until = None
        self.wait = self.FIRST_WAIT_S


class OutboxSender:
    server = None
    server_id = None
    label = "the outbox"

    def __init__(self, workspace_id: int):
        self.scope = outbox.workspace_scope(workspace_id)
        self.breaker = Breaker()

    def send(self, messages: list[Outgoing]) -> list[Result]:
        results = []
        for message in messages:
            outbox.write_message(message.data, self.scope)
            results.append(Result(message.key, True, 250, "written to the outbox", None))
        return results

    def close(self) -> None:
        return None


def config_for(server: SmtpServer) -> SmtpConfig:
    return SmtpConfig(
        host=server.host,
        port=server.port,
        tls_mode=server.tls_mode,
        verify_certificate=server.verify_certificate,
        username=server.username,
        password=server.password or "",
    )


class SmtpSender:
    """Up to `max_connections` pipelined connections to one relay, reused across batches."""

    def __init__(self, server: SmtpServer, loop: asyncio.AbstractEventLoop | None = None):
        self.server = server
        self.server_id = server.pk
        self.label = f"the relay {server.name} ({server.host}:{server.port})"
        self.config = config_for(server)
        self.max_connections = max(1, server.max_connections)
        self.loop = loop or asyncio.new_event_loop()
        self.connections: list[SmtpConnection] = []
        self.breaker = Breaker()

    async def _connection(self, index: int) -> SmtpConnection:
        while len(self.connections) <= index:
            self.connections.append(SmtpConnection(self.config))
        connection = self.connections[index]
        if not connection.connected:
            await connection.connect()
        return connection

    async def _drain(self, index: int, messages: list[Outgoing]) -> list[Result]:
        results: list[Result] = []
        for start in range(0, len(messages), PIPELINE_CHUNK):
            chunk = messages[start : start + PIPELINE_CHUNK]
            try:
                connection = await self._connection(index)
                try:
                    results.extend(await connection.send_batch(chunk))
                except StaleConnection:
                    # Dead before it answered anything: once more on a new connection.
                    connection = await self._connection(index)
                    results.extend(await connection.send_batch(chunk))
            except SmtpError as exc:
                # Nothing of this chunk was confirmed: each gets the connection's error; later
                # chunks of this connection are not tried (the relay is unwell or unreachable).
                await self._drop(index)
                rest = messages[start:]
                results.extend(Result(m.key, False, exc.code or 0, str(exc), exc) for m in rest)
                break
        return results

    async def _drop(self, index: int) -> None:
        if index < len(self.connections):
            await self.connections[index].close()
            self.connections[index] = SmtpConnection(self.config)

    async def _send(self, messages: list[Outgoing]) -> list[Result]:
        lanes = min(self.max_connections, max(1, -(-len(messages) // LANE_MIN)))
        slices = [messages[i::lanes] for i in range(lanes)]
        per_lane = await asyncio.gather(*(self._drain(i, part) for i, part in enumerate(slices)))
        by_key = {result.key: result for lane in per_lane for result in lane}
        return [
            by_key.get(m.key)
            or Result(m.key, False, 0, "no reply", TransientError("no reply from the relay"))
            for m in messages
        ]

    def send(self, messages: list[Outgoing]) -> list[Result]:
        if not messages:
            return []
        return self.loop.run_until_complete(self._send(messages))

    def close(self) -> None:
        async def close_all():
            for connection in self.connections:
                await connection.close()

        try:
            self.loop.run_until_complete(close_all())
        finally:
            self.connections = []


class SenderPool:
    """One sender per relay, kept for the worker's lifetime, chosen by weight per batch."""

    def __init__(self):
        self.senders: dict[tuple, object] = {}

    def for_workspace(self, workspace_id: int):
        servers = list(
            SmtpServer.objects.filter(workspace_id=workspace_id, enabled=True).order_by("pk")
        )
        if not servers:
            key = ("outbox", workspace_id)
            if key not in self.senders:
                self.senders[key] = OutboxSender(workspace_id)
            return self.senders[key]
        # A relay whose breaker is open is left alone while another one can take the batch.
        ready = [s for s in servers if self._state(s) is not BreakerState.OPEN] or servers
        server = random.choices(ready, weights=[max(1, s.weight) for s in ready])[0]
        key = self._key(server)
        if key not in self.senders:
            # A changed server (new password, host, limits) gets a fresh sender.
            for old_key in [k for k in self.senders if k[:2] == ("smtp", server.pk)]:
                self.senders.pop(old_key).close()
            self.senders[key] = SmtpSender(server)
        return self.senders[key]

    def _state(self, server: SmtpServer) -> BreakerState:
        sender = self.senders.get(self._key(server))
        return sender.breaker.state if sender is not None else BreakerState.CLOSED

    @staticmethod
    def _key(server: SmtpServer) -> tuple:
        return (
            "smtp",
            server.pk,
            server.host,
            server.port,
            server.tls_mode,
            server.username,
            server.password,
            server.max_connections,
            server.verify_certificate,
            server.messages_per_second,
            server.hourly_cap,
            server.daily_cap,
        )

    def close(self) -> None:
        for sender in self.senders.values():
            try:
                sender.close()
            except Exception:  # closing must never stop a shutdown
                logger.exception("closing a sender failed")
        self.senders = {}
