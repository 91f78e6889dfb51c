"""The servers under test, each run alone in its own process by ``fanout.py --serve``.

Every server is driven identically through stdin / stdout lines:

* it prints ``ready <port>`` once it listens;
* on ``start`` it publishes ``rate`` events/s for ``duration`` s, then prints
  ``done <published> <first publish ns> <last publish ns>``;
* on ``quit`` (or EOF on stdin) it stops and exits.

Publishing runs on a loop timer in ticks of ``tick`` seconds (5 ms by default):
event ``seq`` is due at ``t0 + seq / rate``, and each tick publishes every event
that is due, so 1,000 events/s are 5 events per tick and 200 events/s one event
every tick. A tick that runs late catches up, so the number of events is always
``rate * duration``. Each event is type ``bench`` with a 200-byte JSON payload
``{"seq": n, "t": <time.time_ns() at publish>, "pad": "xxx..."}``; the payload is
serialised once per event whatever the server (otel-sse does it inside
``broadcast``, the peers with ``json.dumps`` before filling their queues).

The peers use the idiomatic broadcast pattern of their library: one
``asyncio.Queue`` per client, filled by the publisher, drained by the
library's streaming response (``EventSourceResponse`` fed a dict per event for
sse-starlette on uvicorn + httptools, ``EventSourceResponse.send`` for
aiohttp-sse). Every server gets uvloop and a listen backlog of 2,048.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

from _proc import install_uvloop, raise_nofile

KINDS = ("otel-sse", "sse-starlette", "aiohttp-sse")
# Not a contender: bytes written straight to the sockets, to check that the load
# client can measure rates far above what the contenders reach (``--servers raw``).
# ``raw-batched`` writes what accumulated every RAW_FLUSH s, one write per client.
EXTRA_KINDS = ("raw", "raw-batched")
RAW_FLUSH = 0.025
EVENT = "bench"
PAYLOAD_BYTES = 200
BACKLOG = 2048
# len('{"seq":') + len(',"t":') + len(',"pad":"') + len('"}') = 22, t has 19 digits.
_FIXED = 22 + 19

Publish = Callable[[dict[str, Any]], None]


def payload(seq: int, size: int = PAYLOAD_BYTES) -> dict[str, Any]:
    """The event body: serialised compactly it is exactly ``size`` bytes (at least ~50)."""
    return {"seq": seq, "t": time.time_ns(), "pad": "x" * max(0, size - _FIXED - len(str(seq)))}


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


async def publish_loop(publish: Publish, rate: float, duration: float, tick: float,
                       size: int = PAYLOAD_BYTES) -> str:
    """Publish ``rate * duration`` events of ``size`` bytes paced on ``tick``; return the
    ``done`` line."""
    loop = asyncio.get_running_loop()
    total = round(rate * duration)
    sent = 0
    t0 = loop.time()
    first_ns = time.time_ns()
    k = 0
    while sent < total:
        due = min(total, int((loop.time() - t0) * rate) + 1)
        while sent < due:
            publish(payload(sent, size))
            sent += 1
        k += 1
        delay = t0 + k * tick - loop.time()
        await asyncio.sleep(delay if delay > 0 else 0)
    return f"done {sent} {first_ns} {time.time_ns()}"


# --------------------------------------------------------------------------- servers


class Server:
    """What the driver needs from a server under test."""

    async def start(self) -> None:
        raise NotImplementedError

    def publish(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class QueueFanout:
    """The peers' broadcast: one queue per client, every event put in every queue."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str]] = set()

    def publish(self, data: dict[str, Any]) -> None:
        text = dumps(data)
        for q in self.queues:
            q.put_nowait(text)


class OtelServer(Server):
    def __init__(self, port: int, max_clients: int,
                 extra: Mapping[str, Any] | None = None) -> None:
        """``extra``: further :class:`~otel_sse.server.ServerConfig` options (limits)."""
        from otel_sse.server import SSEServer

        options: dict[str, Any] = {
            "port": port,
            "host": "127.0.0.1",
            "compression": False,
            "max_clients": max_clients,
            "backlog": BACKLOG,
            **(extra or {}),
        }
        self.server = SSEServer(**options)
        self.options = options

    async def start(self) -> None:
        await self.server.start()

    def publish(self, data: dict[str, Any]) -> None:
        self.server.broadcast({"event": EVENT, "data": data})

    async def stop(self) -> None:
        await self.server.stop()


class StarletteServer(Server):
    def __init__(self, port: int) -> None:
        import uvicorn
        from sse_starlette.sse import EventSourceResponse
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.routing import Route

        self.fanout = QueueFanout()
        queues = self.fanout.queues

        async def events(request: Request) -> EventSourceResponse:
            q: asyncio.Queue[str] = asyncio.Queue()
            queues.add(q)

            async def stream() -> AsyncIterator[dict[str, str]]:
                try:
                    while True:
                        yield {"event": EVENT, "data": await q.get()}
                finally:
                    queues.discard(q)

            return EventSourceResponse(stream())

        app = Starlette(routes=[Route("/events", events)])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="none",  # uvloop is already the policy
            http="httptools",
            lifespan="off",
            log_level="warning",
            access_log=False,
            backlog=BACKLOG,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)

    def publish(self, data: dict[str, Any]) -> None:
        self.fanout.publish(data)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)


class AiohttpServer(Server):
    def __init__(self, port: int) -> None:
        from aiohttp import web
        from aiohttp_sse import sse_response

        self.port = port
        self.fanout = QueueFanout()
        queues = self.fanout.queues

        async def events(request: web.Request) -> web.StreamResponse:
            q: asyncio.Queue[str] = asyncio.Queue()
            queues.add(q)
            try:
                async with sse_response(request) as resp:
                    while True:
                        await resp.send(await q.get(), event=EVENT)
            finally:
                queues.discard(q)
            return resp

        app = web.Application()
        app.router.add_get("/events", events)
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )

    async def start(self) -> None:
        from aiohttp import web

        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=BACKLOG)
        await site.start()

    def publish(self, data: dict[str, Any]) -> None:
        self.fanout.publish(data)

    async def stop(self) -> None:
        await self.runner.cleanup()


class RawServer(Server):
    """HTTP/1.1 chunked SSE written directly to asyncio transports: the harness's ceiling."""

    HEAD = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )

    def __init__(self, port: int, flush: float = 0.0) -> None:
        self.port = port
        self.flush = flush
        self.pending: list[bytes] = []
        self.flusher: asyncio.TimerHandle | None = None
        self.transports: set[asyncio.Transport] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        transports = self.transports
        head = self.HEAD

        class Proto(asyncio.Protocol):
            transport: asyncio.Transport | None = None

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.Transport, transport)

            def data_received(self, data: bytes) -> None:
                if self.transport is not None and b"\r\n\r\n" in data:
                    self.transport.write(head)
                    transports.add(self.transport)

            def connection_lost(self, exc: Exception | None) -> None:
                transports.discard(cast(asyncio.Transport, self.transport))

        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(Proto, "127.0.0.1", self.port, backlog=BACKLOG)

    def publish(self, data: dict[str, Any]) -> None:
        body = f"event: {EVENT}\ndata: {dumps(data)}\n\n".encode()
        if not self.flush:
            chunk = b"%x\r\n%b\r\n" % (len(body), body)
            for t in self.transports:
                t.write(chunk)
            return
        self.pending.append(body)
        if self.flusher is None:
            self.flusher = asyncio.get_running_loop().call_later(self.flush, self._flush)

    def _flush(self) -> None:
        self.flusher = None
        body = b"".join(self.pending)
        self.pending.clear()
        chunk = b"%x\r\n%b\r\n" % (len(body), body)
        for t in self.transports:
            t.write(chunk)

    async def stop(self) -> None:
        for t in list(self.transports):
            t.close()
        if self.server is not None:
            self.server.close()


def make_server(kind: str, port: int, max_clients: int) -> Server:
    if kind == "otel-sse":
        return OtelServer(port, max_clients)
    if kind == "sse-starlette":
        return StarletteServer(port)
    if kind == "aiohttp-sse":
        return AiohttpServer(port)
    if kind == "raw":
        return RawServer(port)
    if kind == "raw-batched":
        return RawServer(port, RAW_FLUSH)
    raise ValueError(f"unknown server kind {kind!r}; expected one of {', '.join(KINDS)}")


# --------------------------------------------------------------------------- driver


async def stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _report_done(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        say(task.result())


async def serve(
    kind: str, port: int, rate: float, duration: float, tick: float, max_clients: int
) -> None:
    server = make_server(kind, port, max_clients)
    await server.start()
    if isinstance(server, OtelServer):
        print(f"[serve] otel-sse options: {server.options}", file=sys.stderr)
    reader = await stdin_lines()
    say(f"ready {port}")
    publisher: asyncio.Task[str] | None = None
    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "start" and publisher is None:
                publisher = asyncio.create_task(publish_loop(server.publish, rate, duration, tick))
                publisher.add_done_callback(_report_done)
            elif line in ("quit", ""):
                break
    finally:
        if publisher is not None:
            publisher.cancel()
        try:
            await asyncio.wait_for(server.stop(), 5)
        except Exception as exc:  # the process is about to exit anyway
            print(f"[serve] {kind} stop: {exc!r}", file=sys.stderr)


def main(kind: str, port: int, rate: float, duration: float, tick: float, max_clients: int) -> None:
    raise_nofile()
    if not install_uvloop():
        print("[serve] uvloop is not installed; using asyncio's loop", file=sys.stderr)
    asyncio.run(serve(kind, port, rate, duration, tick, max_clients))
