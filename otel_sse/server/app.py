"""The ASGI application: routing, the stream handshake, and the per-client writer."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from otel_sse.bus.fanout import Subscriber, control_frame
from otel_sse.bus.ids import InvalidEventId, parse_id
from otel_sse.server.compression import make_compressor, negotiate
from otel_sse.server.http import (
    STREAM_HEADERS,
    Cors,
    Headers,
    Receive,
    Scope,
    Send,
    header,
    is_stream_request,
    respond_json,
    respond_text,
)
from otel_sse.wire.encoder import encode_retry, iso_ms_now
from otel_sse.wire.filters import EventFilter, FilterError, parse_filters

if TYPE_CHECKING:
    from otel_sse.server.server import SSEServer

RETRY_AFTER_SECONDS = 5


class SSEApp:
    """One instance per server; hypercorn calls it once per request."""

    def __init__(self, server: SSEServer) -> None:
        self.server = server
        config = server.config
        self.cors = Cors(config.cors_origins)
        self.extra_headers: Headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in config.headers
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _headers(self, scope: Scope) -> Headers:
        return [*self.cors.headers(scope), *self.extra_headers]

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path = scope["path"]
        if method == "OPTIONS":
            await send({"type": "http.response.start", "status": 204,
                        "headers": [*self.cors.preflight(scope), *self.extra_headers]})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                await self._not_allowed(scope, send, b"GET, HEAD, OPTIONS")
                return
            await respond_json(send, 200, self.server.health(), self._headers(scope))
            return
        accept = header(scope, b"accept") or ""
        if is_stream_request(path, accept):
            if method != "GET":
                await self._not_allowed(scope, send, b"GET, OPTIONS")
                return
            await self._stream(scope, receive, send)
            return
        if path == "/" and method in ("GET", "HEAD"):
            await respond_text(send, 200, "otel-sse: the event stream is at GET /events "
                               "(Accept: text/event-stream); health at GET /healthz",
                               self._headers(scope))
            return
        await respond_text(send, 404, f"no such path {path!r}; the stream is at /events",
                           self._headers(scope))

    async def _not_allowed(self, scope: Scope, send: Send, allow: bytes) -> None:
        await respond_text(send, 405, f"method {scope['method']} not allowed here",
                           [(b"allow", allow), *self._headers(scope)])

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = self.server
        fanout = server.fanout
        query = parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"),
                          keep_blank_values=True)
        try:
            patterns: list[str] = []
            requested: str | None = None
            for key, value in query:
                if key == "filters" or key == "filter":
                    patterns.extend(parse_filters(value))
                elif key == "lastEventId":
                    requested = value
            requested = header(scope, b"last-event-id") or requested
            event_filter = EventFilter(parse_filters(patterns))
            resume = parse_id(requested) if requested else None
        except (FilterError, InvalidEventId) as exc:
            server.stats["rejected_bad_request"] += 1
            await respond_text(send, 400, str(exc), self._headers(scope))
            return
        if server.stopping:
            await respond_text(send, 503, "server is shutting down",
                               [(b"retry-after", b"1"), *self._headers(scope)])
            return
        if len(fanout.subscribers) >= server.config.max_clients:
            server.stats["rejected_full"] += 1
            await respond_text(
                send, 503, f"too many clients (max_clients={server.config.max_clients})",
                [(b"retry-after", str(RETRY_AFTER_SECONDS).encode()), *self._headers(scope)])
            return

        compressor = None
        headers = [*STREAM_HEADERS, *self._headers(scope)]
        if server.config.compression:
            encoding = negotiate(header(scope, b"accept-encoding") or "")
            if encoding is not None:
                compressor = make_compressor(encoding, server.config.compression_level)
                headers += [(b"content-encoding", encoding.encode()),
                            (b"vary", b"Accept-Encoding")]

        history = fanout.log.history
        resume_seq = fanout.log.resolve(resume) if requested else history.last_seq
        client = scope.get("client") or ("?", 0)
        sub = Subscriber(
            client_id=f"client-{secrets.token_hex(6)}",
            event_filter=event_filter,
            cursor=history.last_seq if resume_seq is None else resume_seq,
            info={"remote": f"{client[0]}:{client[1]}",
                  "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                  "userAgent": header(scope, b"user-agent") or ""},
        )
        greeting = b""
        if server.config.retry is not None:
            greeting += encode_retry(server.config.retry)
        greeting += control_frame("connected", {
            "clientId": sub.client_id,
            "serverTime": iso_ms_now(),
            "lastEventId": requested,
            "timestamp": iso_ms_now(),
        })
        if requested and resume_seq is None:
            # Another run's id, or one past what this log holds: say so, then replay it all.
            greeting += fanout.gap_frame(requested, None)
            sub.cursor = history.first_seq - 1
        fanout.add(sub)
        server.stats["connections"] += 1
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await self._pump(sub, greeting, compressor, receive, send)
        finally:
            fanout.remove(sub)

    async def _pump(self, sub: Subscriber, greeting: bytes,
                    compressor: object | None, receive: Receive, send: Send) -> None:
        """Write everything the subscriber is due, one send per wake-up."""
        fanout = self.server.fanout

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            fanout.kill(sub, "client")

        async def write_loop() -> bool:
            compress = getattr(compressor, "compress", None)
            chunk: bytes | None = greeting
            while chunk is not None:
                body = compress(chunk) if compress is not None else chunk
                await send({"type": "http.response.body", "body": body, "more_body": True})
                sub.bytes_sent += len(body)
                sub.last_write = time.monotonic()
                chunk = await fanout.read(sub)
            return sub.killed is None

        watcher = asyncio.create_task(watch_disconnect())
        writer = asyncio.create_task(write_loop())

        def kill_writer() -> None:
            writer.cancel()

        sub.kill_hook = kill_writer
        ended_cleanly = False
        try:
            ended_cleanly = await writer
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except OSError:
            pass
        finally:
            sub.kill_hook = None
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if ended_cleanly:
            tail = getattr(compressor, "finish", lambda: b"")()
            await send({"type": "http.response.body", "body": tail, "more_body": False})
