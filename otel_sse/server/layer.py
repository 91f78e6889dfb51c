"""What the connections of one server share: limits, the router, counters, deadlines.

:class:`ConnectionLayer` holds the live connections and applies their
deadlines; :class:`Conn` is what a protocol handler may do with its connection
(write, pause reading, set a deadline, close), so HTTP/1.1 and HTTP/2 handlers
see one small surface and never the socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from otel_sse.counters import Counters
from otel_sse.server.config import ServerConfig
from otel_sse.server.h2gate import server_budget
from otel_sse.server.routes import Router

Clock = Callable[[], float]


class Handler(Protocol):
    """One protocol's side of a connection (HTTP/1.1 or HTTP/2)."""

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> None: ...

    def connection_lost(self) -> None: ...

    def writable(self) -> None:
        """The socket's write buffer drained below its low mark."""
        ...

    def expired(self, now: float) -> None:
        """A deadline of this connection passed."""
        ...

    def shutdown(self) -> None:
        """The server stops: finish what is in progress, take nothing new."""
        ...

    @property
    def idle(self) -> bool:
        """Nothing in progress: the connection may be closed at once on shutdown."""
        ...


@dataclass(slots=True)
class LayerStats(Counters):
    """Counters of the connection layer (``get_stats`` shows them in camelCase)."""

    connections_opened: int = 0
    http1_connections: int = 0
    http2_connections: int = 0
    refused_connections: int = 0
    timed_out: int = 0
    heads_too_large: int = 0
    bad_requests: int = 0
    bodies_too_large: int = 0
    flood_closed: int = 0
    refused_streams: int = 0


class ConnectionLayer:
    """The live connections of one server and what they share."""

    def __init__(self, config: ServerConfig, router: Router,
                 clock: Clock = time.monotonic) -> None:
        self.config = config
        self.router = router
        self.clock = clock
        self.live: set[Endpoint] = set()
        self.accepting = True
        self.stats = LayerStats()
        # The socket write buffer above which writers wait (and a peer's input waits).
        self.high_water = max(16 * 1024, config.client_buffer_bytes - 1)
        # HTTP/2 control frames, all connections together (see h2gate).
        self.control_budget = server_budget(config.h2_control_frame_rate, clock())

    @property
    def full(self) -> bool:
        return len(self.live) >= self.config.max_connections

    def sweep(self) -> None:
        """Apply deadlines (called a few times a second)."""
        now = self.clock()
        for conn in list(self.live):
            deadline = conn.deadline
            if deadline is not None and now >= deadline:
                conn.deadline = None
                conn.expired(now)

    def stop_accepting(self) -> None:
        """No new requests; connections with nothing in progress close now."""
        self.accepting = False
        for conn in list(self.live):
            conn.shutdown()

    def abort_all(self) -> None:
        for conn in list(self.live):
            conn.abort()


class Conn(Protocol):
    """A connection as its protocol handler sees it."""

    layer: ConnectionLayer
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    write_paused: bool

    @property
    def scheme(self) -> str: ...

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def writelines(self, parts: Iterable[bytes | bytearray | memoryview]) -> None: ...

    def buffered(self) -> int: ...

    def room(self) -> int: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def set_deadline(self, seconds: float | None) -> None: ...


class Endpoint(Protocol):
    """A connection as the layer sees it."""

    deadline: float | None

    def expired(self, now: float) -> None: ...

    def shutdown(self) -> None: ...

    def abort(self) -> None: ...
