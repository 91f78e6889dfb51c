"""Client test helpers: a raw HTTP/1.1 server that writes exactly the bytes a test gives,
a hypercorn server (HTTP/2, TLS), reconnect settings for fast tests, and waiting for
events or conditions."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from otel_sse.client import SSEClient, SSEEvent
from tests.conftest import free_port

# Reconnect after a fixed 20 ms: no backoff growth, no jitter.
FAST: dict[str, Any] = {
    "reconnect_delay": 0.02,
    "max_reconnect_delay": 0.02,
    "reconnect_jitter": 0.0,
}


async def collect(client: SSEClient, count: int, timeout: float = 10.0) -> list[SSEEvent]:
    """The client's next ``count`` events (iterating it), within ``timeout`` s."""
    events: list[SSEEvent] = []
    async with asyncio.timeout(timeout):
        async for event in client:
            events.append(event)
            if len(events) == count:
                break
    return events


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` every 10 ms until it holds, within ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]


def head(
    status: int = 200,
    content_type: str | None = "text/event-stream",
    extra: Sequence[tuple[str, str]] = (),
    reason: str = "",
) -> bytes:
    """A close-delimited HTTP/1.1 response head."""
    lines = [f"HTTP/1.1 {status} {reason or 'X'}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append("Cache-Control: no-cache")
    lines.append("Connection: close")
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


Handler = Callable[[int, Request, asyncio.StreamWriter], Awaitable[None]]


async def write_pieces(
    writer: asyncio.StreamWriter, pieces: Sequence[bytes], pause: float = 0.002
) -> None:
    """Write each piece separately (a pause in between, so they travel in separate segments)."""
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(pause)


def body_then_close(*bodies: Sequence[bytes], status: int = 200, hold: float = 0.0) -> Handler:
    """Connection n gets head + bodies[n] (pieces written separately) then a close.

    Connections beyond the list get the last body again."""

    async def handler(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        pieces = bodies[min(index, len(bodies) - 1)]
        writer.write(head(status))
        await writer.drain()
        await write_pieces(writer, pieces)
        if hold:
            await asyncio.sleep(hold)

    return handler


@dataclass
class RawServer:
    handler: Handler
    requests: list[Request] = field(default_factory=list)
    connection_times: list[float] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            request = Request(method, target, headers)
            index = len(self.requests)
            self.requests.append(request)
            self.connection_times.append(asyncio.get_running_loop().time())
            await self.handler(index, request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        await self._server.wait_closed()
        self._server = None


# ------------------------------------------------------ HTTP/2 on hypercorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SSEApp:
    """A minimal ASGI SSE endpoint that records each request's HTTP version."""

    def __init__(self) -> None:
        self.versions: list[str] = []
        self.last_ids: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.versions.append(scope["http_version"])
        last = headers.get("last-event-id")
        self.last_ids.append(last)
        start = int(last) + 1 if last else 0
        gzip_it = "gzip" in headers.get("accept-encoding", "") and scope["path"] == "/gzip"
        response_headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
        ]
        if gzip_it:
            response_headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        for i in range(start, start + 3):
            data = f'{{"token": "t{i}", "index": {i}}}'
            body = f"id: {i}\nevent: llm:token\ndata: {data}\n\n".encode()
            if gzip_it:
                body = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await asyncio.sleep(0.005)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextlib.asynccontextmanager
async def hypercorn_server(
    app: SSEApp, tls: dict[str, Path] | None = None, alpn: list[str] | None = None
) -> AsyncIterator[str]:
    port = free_port()
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    config.errorlog = None
    # The client may leave an HTTP/2 connection open: do not wait 3 s for it at shutdown.
    config.graceful_timeout = 0.2
    if tls is not None:
        config.certfile = str(tls["cert"])
        config.keyfile = str(tls["key"])
    if alpn is not None:
        config.alpn_protocols = alpn
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    await writer.wait_closed()
                    break
                await asyncio.sleep(0.02)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        stop.set()
        await task


class Recorder:
    """Every event a client yields, and its lifecycle notifications."""

    def __init__(self, client: SSEClient) -> None:
        self.client = client
        self.events: list[SSEEvent] = []
        self.lifecycle: dict[str, list[SSEEvent]] = {}
        for name in ("connected", "disconnected", "reconnecting", "error"):
            client.on(name, self.lifecycle.setdefault(name, []).append)
        self._task: asyncio.Task[None] | None = None

    def of(self, event_type: str) -> list[SSEEvent]:
        return [e for e in self.events if e.type == event_type]

    async def __aenter__(self) -> Recorder:
        async def consume() -> None:
            async for event in self.client:
                self.events.append(event)

        self._task = asyncio.create_task(consume())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()
        assert self._task is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
