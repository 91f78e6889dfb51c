"""SSEApp: the same routes, served by any ASGI server (hypercorn, uvicorn, ...).

``SSEServer`` serves a hub with its own connection layer; mounting ``SSEApp``
under another ASGI server serves a hub with that server's. The routes, the
stream handshake and the fan-out are the same objects; what the host server
does with its sockets (its limits, HTTP/2 flow control, idle timeouts) is its
own. The bound on a client's unsent data holds on this side: bytes handed to
``send`` but not yet accepted count against ``client_buffer_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from otel_sse.hub import EventHub
from otel_sse.server.config import ServerConfig
from otel_sse.server.request import Request, Response, text_response
from otel_sse.server.routes import Router
from otel_sse.server.stream import EventStream, StreamRoute
from otel_sse.wire.encoder import encode_comment

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

__all__ = ["SSEApp"]


class _AsgiBody:
    """A stream body handed to the host server's ``send``, bounded in bytes."""

    def __init__(self, send: Send, limit: int) -> None:
        self.send = send
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.queued = 0
        self.ended = False
        self.aborted = False
        self.wake = asyncio.Event()
        self.stream: EventStream | None = None

    def room(self) -> int:
        return self.limit - self.queued

    def buffered(self) -> int:
        return self.queued

    def write(self, data: bytes | memoryview) -> None:
        self.chunks.append(bytes(data))
        self.queued += len(data)
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    def abort(self) -> None:
        self.aborted = True
        self.wake.set()

    async def pump(self) -> bool:
        """Send what is written until the stream ends (True) or is cut (False)."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.aborted:
                return False
            while self.chunks:
                chunk = self.chunks.popleft()
                await self.send({"type": "http.response.body", "body": chunk,
                                 "more_body": True})
                self.queued -= len(chunk)
                if self.stream is not None and not self.chunks:
                    self.stream.writable()
                if self.aborted:
                    return False
            if self.ended:
                return True


class SSEApp:
    """An ASGI application serving ``hub`` (a new one when not given)."""

    def __init__(self, hub: EventHub | None = None, config: ServerConfig | None = None) -> None:
        self.config = config = config or ServerConfig.build()
        self.hub = hub or EventHub(config.hub_limits(), event_log=config.event_log())
        self.stopping = False
        self.stream_route = StreamRoute(self.hub, config, accepting=lambda: not self.stopping)
        self.router = Router(config, self.stream_route, self.health)
        self._maintenance: asyncio.Task[None] | None = None

    def health(self) -> dict[str, object]:
        """What ``GET /healthz`` answers with credentials: ``status`` and the hub's stats."""
        status = "stopping" if self.stopping else self.hub.log.status()
        return {"status": status, **self.hub.stats()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            self._bind()
            await self._http(scope, receive, send)

    def _bind(self) -> None:
        if self.hub.loop is None:
            self.hub.bind(asyncio.get_running_loop())
        if self._maintenance is None:
            self._maintenance = asyncio.get_running_loop().create_task(self._maintain())

    async def _maintain(self) -> None:
        interval = self.config.keep_alive_interval
        next_keep_alive = time.monotonic() + interval
        next_beat = time.monotonic() + self.config.heartbeat_interval
        fanout = self.hub.fanout
        while True:
            await asyncio.sleep(min(0.25, interval))
            fanout.sweep()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.config.heartbeat_interval
                self.hub.tick(self.config.heartbeat_interval, self.config.stale_after)
            if time.monotonic() >= next_keep_alive:
                next_keep_alive = time.monotonic() + interval
                fanout.keep_alive(encode_comment(f"keep-alive {int(time.time() * 1000)}"),
                                  interval * 0.5)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._bind()
                try:
                    # A shared bus (Redis) connects here: served under a host without
                    # lifespan events, the app uses the in-process bus only.
                    await self.hub.open()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stopping = True
                for sub in list(self.hub.fanout.subscribers.values()):
                    self.hub.fanout.close(sub)
                if self._maintenance is not None:
                    self._maintenance.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._maintenance
                    self._maintenance = None
                await self.hub.close(self.config.shutdown_timeout)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        server = scope.get("server")
        request = Request(
            method=scope["method"],
            path=scope.get("path") or unquote_to_bytes(scope.get("raw_path", b"/")).decode(),
            query=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=[(bytes(k).lower(), bytes(v)) for k, v in scope["headers"]],
            http_version=str(scope.get("http_version", "1.1")),
            scheme=str(scope.get("scheme", "http")),
            client=(str(client[0]), int(client[1])) if client else None,
            server=(str(server[0]), int(server[1] or 0)) if server else None)
        admitted = self.router.admit(request)
        if isinstance(admitted, Response):
            await self._respond(send, self.router.finish(request, admitted), request)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > admitted.max_body:
                await self._respond(send, self.router.finish(request, text_response(
                    413, f"request body larger than {admitted.max_body} bytes")), request)
                return
            if not message.get("more_body", False):
                break
        request.body = bytes(body)
        handled = self.router.handle(admitted, request)
        if inspect.isawaitable(handled):
            handled = await handled
        result = self.router.finish(request, handled)
        if isinstance(result, Response):
            await self._respond(send, result, request)
        else:
            await self._stream(result, receive, send)

    @staticmethod
    async def _respond(send: Send, response: Response, request: Request) -> None:
        headers = [h for h in response.headers if h[0] != b"content-length"]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status,
                    "headers": headers})
        body = response.body if request.method != "HEAD" else b""
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _stream(self, stream: EventStream, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": stream.status,
                    "headers": stream.headers})
        body = _AsgiBody(send, self.config.client_buffer_bytes)
        body.stream = stream

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(watch_disconnect())
        pump = asyncio.ensure_future(body.pump())
        stream.open(body)
        try:
            await asyncio.wait({watcher, pump}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stream.gone()
            for task in (watcher, pump):
                task.cancel()
            for task in (watcher, pump):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
        if pump.done() and not pump.cancelled() and pump.exception() is None and pump.result():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
