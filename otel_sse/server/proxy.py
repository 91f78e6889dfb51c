"""The front door's byte pipe to hypercorn: connecting upstream, and the upstream side."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from otel_sse.server.transport import HIGH_WATER, Address, address, pause, resume

if TYPE_CHECKING:
    from otel_sse.server.front import FrontProtocol

logger = logging.getLogger("otel_sse.server")


async def connect(front: FrontProtocol) -> None:
    """Open the connection to hypercorn for ``front`` and forward what was already read."""
    try:
        transport, upstream = await front.loop.create_connection(
            lambda: Upstream(front), *front.door.upstream)
    except OSError as exc:
        # Expected while stopping (hypercorn stops accepting first), not otherwise.
        log = logger.warning if front.door.accepting else logger.debug
        log("cannot reach the internal HTTP listener: %r", exc)
        front.abort()
        return
    finally:
        front.connect_task = None
    if front.transport is None:  # the client left meanwhile
        transport.close()
        return
    if front.buffer:
        transport.write(bytes(front.buffer))
        front.buffer.clear()
    if front.eof and transport.can_write_eof():
        transport.write_eof()
    if front.paused:
        pause(transport)
    if not upstream.paused:
        resume(front.transport)


class Upstream(asyncio.Protocol):
    """The proxy's side towards hypercorn."""

    def __init__(self, front: FrontProtocol) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.eof = False
        self.key: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        front = self.front
        front.upstream = self
        self.key = address(transport.get_extra_info("sockname"))
        if self.key is not None:
            front.door.peers[self.key] = (front.client, front.server)

    def data_received(self, data: bytes) -> None:
        client = self.front.transport
        if client is not None:
            client.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        client = self.front.transport
        if client is None or self.front.eof:
            return False
        if client.can_write_eof():
            client.write_eof()
            return True
        client.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.key is not None:
            self.front.door.peers.pop(self.key, None)
        client = self.front.transport
        if client is not None:
            client.close()

    def pause_writing(self) -> None:
        self.paused = True
        if self.front.transport is not None:
            pause(self.front.transport)

    def resume_writing(self) -> None:
        self.paused = False
        if self.front.transport is not None:
            resume(self.front.transport)
