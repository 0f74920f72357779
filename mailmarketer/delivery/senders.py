"""Senders move finished message bytes: to a workspace's SMTP relays, or to the local outbox
when it has none. Both take a list of `smtp.Outgoing` and answer one `smtp.Result` each, in order.

The SMTP sender keeps its connections open between batches (a TLS handshake per batch would cost
more than the batch) in an event loop of its own, owned by the worker's one thread: the worker
calls `send()` synchronously and the loop runs only inside that call, so the ORM, which must not
run inside an event loop, is never called from one.
"""

from __future__ import annotations

import asyncio
import logging
import random

from mailmarketer.lib import outbox

from .models import SmtpServer
from .smtp import Outgoing, Result, SmtpConfig, SmtpConnection, SmtpError, TransientError

logger = logging.getLogger(__name__)

# Messages a connection takes per pipelined round; replies come back in order.
PIPELINE_CHUNK = 50


class OutboxSender:
    server = None
    server_id = None

    def __init__(self, workspace_id: int):
        self.scope = outbox.workspace_scope(workspace_id)

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
        self.config = config_for(server)
        self.max_connections = max(1, server.max_connections)
        self.loop = loop or asyncio.new_event_loop()
        self.connections: list[SmtpConnection] = []

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
        lanes = min(self.max_connections, max(1, len(messages) // PIPELINE_CHUNK + 1))
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
        server = random.choices(servers, weights=[max(1, s.weight) for s in servers])[0]
        # A changed server (new password, host, limits) gets a fresh sender.
        key = (
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
        if key not in self.senders:
            for old_key in [k for k in self.senders if k[:2] == ("smtp", server.pk)]:
                self.senders.pop(old_key).close()
            self.senders[key] = SmtpSender(server)
        return self.senders[key]

    def close(self) -> None:
        for sender in self.senders.values():
            try:
                sender.close()
            except Exception:  # closing must never stop a shutdown
                logger.exception("closing a sender failed")
        self.senders = {}
