"""The connection layer: one protocol object per accepted connection.

A :class:`Connection` is the asyncio protocol of one socket. It picks the HTTP
version (ALPN on TLS; on cleartext, the HTTP/2 preface or anything else for
HTTP/1.1) and hands the bytes to one handler, :class:`~otel_sse.server.h1.H1Handler`
(h11) or :class:`~otel_sse.server.h2.H2Handler` (h2). There is no other path
into the server: every route of every protocol goes through the same
:class:`~otel_sse.server.routes.Router`, and the limits of this module apply to
every connection:

* a cap on connections (:attr:`ServerConfig.max_connections`): past it a new
  connection gets a 503 and is closed;
* deadlines: a connection with nothing in progress closes after ``idle_timeout``,
  a request head or body that does not arrive within ``request_timeout`` ends
  the connection (408 on HTTP/1.1);
* output bounded: the socket's write buffer is capped at ``client_buffer_bytes``
  and a connection whose peer does not read stops being read from, so it cannot
  make the server queue answers (pings, errors) without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import Iterable
from typing import cast

from otel_sse.server.h1 import H1Handler
from otel_sse.server.h2 import H2Handler
from otel_sse.server.layer import ConnectionLayer, Handler

logger = logging.getLogger("otel_sse.server")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"retry-after: 5\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%b")


class Connection(asyncio.Protocol):
    """One accepted socket: its transport, deadline and protocol handler."""

    def __init__(self, layer: ConnectionLayer) -> None:
        self.layer = layer
        self.transport: asyncio.Transport | None = None
        self.handler: Handler | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.tls = False
        self.deadline: float | None = None
        self.write_paused = False
        self.read_paused = False
        self._sniffed = b""

    # -- asyncio callbacks --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        layer = self.layer
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        if not layer.accepting or layer.full:
            layer.stats.refused_connections += 1
            reason = (f"too many connections (max_connections={layer.config.max_connections})\n"
                      if layer.accepting else "server is shutting down\n").encode()
            transport.write(_REFUSAL % (len(reason), reason))
            transport.close()
            return
        layer.live.add(self)
        layer.stats.connections_opened += 1
        transport.set_write_buffer_limits(high=layer.high_water)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls = True
            alpn = cast(ssl.SSLObject, ssl_object).selected_alpn_protocol()
            self._start_handler(http2=alpn == "h2")
        else:
            self.deadline = layer.clock() + layer.config.request_timeout

    def data_received(self, data: bytes) -> None:
        handler = self.handler
        if handler is not None:
            handler.data_received(data)
            return
        # Cleartext: the HTTP/2 preface means prior-knowledge h2c; anything else is HTTP/1.1.
        sniffed = self._sniffed + data
        if H2_PREFACE.startswith(sniffed[: len(H2_PREFACE)]) and len(sniffed) < len(H2_PREFACE):
            self._sniffed = sniffed
            return
        self._sniffed = b""
        self._start_handler(http2=sniffed.startswith(H2_PREFACE))
        assert self.handler is not None
        self.handler.data_received(sniffed)

    def eof_received(self) -> bool:
        if self.handler is not None:
            self.handler.eof_received()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.layer.live.discard(self)
        self.deadline = None
        if self.handler is not None:
            self.handler.connection_lost()
        self.transport = None

    def pause_writing(self) -> None:
        self.write_paused = True
        # A peer that does not read its answers does not get more of them.
        self.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.resume_reading()
        if self.handler is not None:
            self.handler.writable()

    # -- what handlers use ----------------------------------------------------------

    def _start_handler(self, http2: bool) -> None:
        if http2:
            self.layer.stats.http2_connections += 1
            self.handler = H2Handler(self)
        else:
            self.layer.stats.http1_connections += 1
            self.handler = H1Handler(self)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def write(self, data: bytes | bytearray | memoryview) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def writelines(self, parts: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write ``parts`` one after the other (one system call where the loop can)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.writelines(parts)

    def buffered(self) -> int:
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def room(self) -> int:
        """Bytes that may be written before the write buffer reaches its cap."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return 0
        return self.layer.high_water + 1 - transport.get_write_buffer_size()

    def pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not self.read_paused and not transport.is_closing():
            self.read_paused = True
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and self.read_paused and not transport.is_closing():
            self.read_paused = False
            transport.resume_reading()

    def close(self) -> None:
        """Close after what is written (a clean end)."""
        self.deadline = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Reset now: the peer cannot mistake a cut response for a whole one, and the
        kernel drops what a stalled peer left unread."""
        self.deadline = None
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError, TypeError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def set_deadline(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else self.layer.clock() + seconds

    def expired(self, now: float) -> None:
        if self.handler is None:  # the first bytes never came
            self.layer.stats.timed_out += 1
            self.close()
        else:
            self.handler.expired(now)

    def shutdown(self) -> None:
        if self.handler is None:
            self.close()
        else:
            self.handler.shutdown()


def _address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
