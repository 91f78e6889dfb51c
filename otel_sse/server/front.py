"""The HTTP/1.1 front door: event streams served natively, everything else sent to hypercorn.

Hypercorn's per-message path (stream -> protocol -> h11 framing -> a locked
write + drain) costs several times what writing the bytes does, and a fan-out
round makes one ASGI ``send`` per client. So on cleartext listeners a small
``asyncio.Protocol`` answers first:

* a plain HTTP/1.1 ``GET`` for the stream (``/events``, ``/events/``, or ``/``
  with ``Accept: text/event-stream``) is parsed with h11 and handed to the same
  ASGI app, with a ``send`` that frames each body as one chunk in one
  ``transport.write`` and waits only while the transport is paused (bounded
  buffer, no lock, no drain per message);
* anything else -- the HTTP/2 preface (h2c prior knowledge), other paths and
  methods, HTTP/1.0, upgrades, requests with a body, heads h11 rejects, or the
  next request of a keep-alive connection that is not a stream -- turns the
  connection into a byte proxy to hypercorn on an internal loopback listener,
  forwarding what was already read first. One implementation of every other
  answer (healthz, OPTIONS, 404/405, 400 on a malformed request) stays hypercorn's.

Hypercorn sees proxied connections coming from 127.0.0.1; :meth:`FrontDoor.wrap`
puts the real client (and public server) address back into the scope.

TLS listeners (``http2=True`` with a certificate) are not fronted: hypercorn
serves them entirely, as it does with ``fast_http1=False``.

The native ``receive``/``send`` live in :mod:`otel_sse.server.native`, the byte pipe
to hypercorn in :mod:`otel_sse.server.proxy`, shared transport helpers in
:mod:`otel_sse.server.transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import unquote

import h11

from otel_sse.server.http import Receive, Scope, Send, is_stream_request
from otel_sse.server.native import NativeResponse
from otel_sse.server.proxy import Upstream, connect
from otel_sse.server.transport import HIGH_WATER, Address, address, linger_zero, pause, resume

__all__ = ["HIGH_WATER", "FrontDoor", "FrontProtocol"]

logger = logging.getLogger("otel_sse.server")

ASGIApp = Any  # Callable[[Scope, Receive, Send], Awaitable[None]]

# A request head larger than this goes to hypercorn (which answers 431/400).
HEAD_LIMIT = 16 * 1024
# Bytes a client may send while its request is being answered (pipelining).
PENDING_LIMIT = 16 * 1024
# A connection without a complete request head for this long is closed (hypercorn's
# keep_alive_timeout does the same for the connections it serves).
IDLE_TIMEOUT = 5.0

_HEAD_END = re.compile(rb"\n\r?\n")
_GET = b"GET "

# States of a front connection.
_HEAD = 0  # reading a request head
_APP = 1  # the app is answering a request
_PROXY = 2  # a byte pipe to hypercorn
_CLOSED = 3

def _has_token(values: Iterable[bytes], token: bytes) -> bool:
    return any(token in (part.strip().lower() for part in value.split(b",")) for value in values)


class FrontDoor:
    """The listeners, their connections, and the address of hypercorn's internal listener."""

    def __init__(self, app: ASGIApp, upstream: Address, backlog: int) -> None:
        self.app = app
        self.upstream = upstream
        self.backlog = backlog
        self.idle_timeout = IDLE_TIMEOUT  # an attribute so that tests can shorten it
        self.accepting = True
        self.servers: list[asyncio.Server] = []
        self.connections: set[FrontProtocol] = set()
        # The proxy's local address towards hypercorn -> (client, public server) address.
        self.peers: dict[Address, tuple[Address | None, Address | None]] = {}
        self.stats = {"native": 0, "proxied": 0}

    async def listen(self, sockets: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        try:
            for sock in sockets:
                server = await loop.create_server(
                    lambda: FrontProtocol(self), sock=sock, backlog=self.backlog)
                self.servers.append(server)
        except BaseException:
            for server in self.servers:
                server.close()
            for sock in sockets:
                if sock.fileno() != -1:
                    sock.close()
            raise

    def wrap(self) -> ASGIApp:
        """``app`` as hypercorn should call it: proxied requests get their real addresses."""
        app = self.app
        peers = self.peers

        async def front_addresses(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "lifespan":
                client = scope.get("client")
                if client is not None:
                    real = peers.get((client[0], client[1]))
                    if real is not None:
                        scope["client"], scope["server"] = real
            await app(scope, receive, send)

        return front_addresses

    def close_listeners(self) -> None:
        """Stop accepting; connections waiting for a request are closed now."""
        self.accepting = False
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.close_if_idle()

    async def shutdown(self, grace: float) -> None:
        """Give connections ``grace`` seconds to end, then cut what is left."""
        self.close_listeners()
        if self.connections:
            await asyncio.wait([conn.closed for conn in self.connections], timeout=grace)
        for conn in list(self.connections):
            conn.abort()
        tasks = [task for conn in list(self.connections) for task in conn.tasks()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        closing = [conn.closed for conn in self.connections]
        if closing:
            await asyncio.wait(closing, timeout=1.0)
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()


class FrontProtocol(NativeResponse, asyncio.Protocol):
    """One client connection: native stream requests, or a pipe to hypercorn."""

    def __init__(self, door: FrontDoor) -> None:
        self.door = door
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.state = _HEAD
        self.buffer = bytearray()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.client: Address | None = None
        self.server: Address | None = None
        self.paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.idle_timer: asyncio.TimerHandle | None = None
        # The request being answered.
        self.app_task: asyncio.Task[None] | None = None
        self.request_read = False
        self.disconnected: asyncio.Future[None] | None = None
        self.keep_alive = True
        self.started = False
        self.chunked = False
        self.done = False
        # Proxy mode.
        self.upstream: Upstream | None = None
        self.connect_task: asyncio.Task[None] | None = None

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        self.client = address(transport.get_extra_info("peername"))
        self.server = address(transport.get_extra_info("sockname"))
        self.door.connections.add(self)
        if not self.door.accepting:
            transport.close()
        else:
            self._idle()

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == _PROXY:
            upstream = self.upstream
            if upstream is not None and upstream.transport is not None:
                upstream.transport.write(data)
            else:
                self.buffer += data
        elif state == _HEAD:
            self.buffer += data
            self._next_request()
        elif state == _APP:
            if len(self.buffer) + len(data) <= PENDING_LIMIT:
                self.buffer += data
            else:  # more than a client should pipeline: answer this one, then close
                self.keep_alive = False
                self.buffer.clear()

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == _PROXY:
            upstream = self.upstream
            if upstream is not None and upstream.transport is not None:
                if upstream.eof:
                    return False
                if upstream.transport.can_write_eof():
                    upstream.transport.write_eof()
            return True  # half-close: hypercorn may still answer
        if self.state == _APP:
            # The client will not send more; it is gone for the app (as with hypercorn).
            self.keep_alive = False
            self._disconnect()
            return True  # a response being written may still complete
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = _CLOSED
        self._busy()
        self.transport = None
        self.door.connections.discard(self)
        self._disconnect()
        self._wake_writer()
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            pause(upstream.transport)

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writer()
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            resume(upstream.transport)

    # -- shutdown ---------------------------------------------------------------

    def close_if_idle(self) -> None:
        if self.state == _HEAD and self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.abort()

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in (self.app_task, self.connect_task) if t is not None and not t.done()]

    def _idle(self) -> None:
        """Waiting for a request head: not forever."""
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.door.idle_timeout, self._idle_expired)

    def _busy(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _idle_expired(self) -> None:
        self.idle_timer = None
        if self.state == _HEAD and self.transport is not None:
            self.transport.close()

    # -- requests ---------------------------------------------------------------

    def _next_request(self) -> None:
        """Route the request at the start of the buffer, once enough of it is here."""
        buffer = self.buffer
        if not buffer:
            return
        if not buffer.startswith(_GET[: len(buffer)]):
            self._proxy()  # the HTTP/2 preface, another method, or not HTTP at all
            return
        end = _HEAD_END.search(buffer)
        if end is None:
            if len(buffer) > HEAD_LIMIT:
                self._proxy()
            return
        head = bytes(buffer[: end.end()])
        scope = self._stream_scope(head)
        if scope is None:
            self._proxy()
            return
        del buffer[: end.end()]
        self._busy()
        self._serve(scope)

    def _stream_scope(self, head: bytes) -> Scope | None:
        """The ASGI scope when ``head`` is an HTTP/1.1 GET for the stream, else None."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        conn.receive_data(head)
        try:
            event = conn.next_event()
            if not isinstance(event, h11.Request):
                return None
            if not isinstance(conn.next_event(), h11.EndOfMessage):
                return None  # a body follows: hypercorn's job
        except h11.RemoteProtocolError:
            return None  # hypercorn gives the 400
        if event.http_version != b"1.1" or event.method != b"GET":
            return None
        headers = list(event.headers)
        accept = b""
        connection: list[bytes] = []
        for name, value in headers:
            if name == b"upgrade" or name == b"expect":
                return None  # h2c upgrade, websockets, 100-continue: hypercorn's job
            if name == b"accept" and not accept:
                accept = value
            elif name == b"connection":
                connection.append(value)
        raw_path, _, query = event.target.partition(b"?")
        try:
            path = unquote(raw_path.decode("ascii"))
        except UnicodeDecodeError:
            return None
        if not is_stream_request(path, accept.decode("latin-1")):
            return None
        self.keep_alive = not _has_token(connection, b"close")
        return {
            "type": "http",
            "http_version": "1.1",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": self.client,
            "server": self.server,
            "extensions": {},
        }

    def _serve(self, scope: Scope) -> None:
        self.state = _APP
        self.request_read = False
        self.disconnected = None
        self.started = self.chunked = self.done = False
        self.door.stats["native"] += 1
        self.app_task = self.loop.create_task(self._run(scope), name="otel-sse-front-stream")

    async def _run(self, scope: Scope) -> None:
        try:
            await self.door.app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            self.abort()
            raise
        except Exception:
            logger.exception("error in the stream handler")
            if not self.started:
                with contextlib.suppress(Exception):
                    await self._respond_500()
        transport = self.transport
        self.app_task = None
        if transport is None:
            return
        if not self.done:
            # A truncated response: reset, so that the client cannot take it as whole
            # and the kernel drops what a stalled client left unread.
            linger_zero(transport)
            transport.abort()
        elif self.keep_alive and self.door.accepting and not self.eof:
            self.state = _HEAD
            self._idle()
            self._next_request()
        else:
            self.state = _HEAD
            transport.close()

    def _disconnect(self) -> None:
        if self.disconnected is None:
            if self.state != _CLOSED and not self.eof:
                return
            self.disconnected = self.loop.create_future()
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    # -- proxy ------------------------------------------------------------------

    def _proxy(self) -> None:
        """From now on, this connection is a pipe to hypercorn."""
        self.state = _PROXY
        self._busy()
        self.door.stats["proxied"] += 1
        assert self.transport is not None
        pause(self.transport)  # until hypercorn has accepted
        self.connect_task = self.loop.create_task(connect(self), name="otel-sse-front-proxy")
