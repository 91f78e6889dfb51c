"""SSEClient against other servers: sse-starlette, aiohttp-sse, hypercorn (HTTP/2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiohttp import web
from aiohttp_sse import sse_response
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from otel_sse.client import ConnectionState, SSEClient, SSEEvent
from otel_sse.errors import CertificateError, ConnectError
from tests._client_helpers import FAST, SSEApp, collect, hypercorn_server
from tests.conftest import free_port

# ------------------------------------------------------------ sse-starlette


@contextlib.asynccontextmanager
async def starlette_server() -> AsyncIterator[tuple[str, list[str | None]]]:
    seen_ids: list[str | None] = []

    async def events(request: Request) -> EventSourceResponse:
        last = request.headers.get("last-event-id")
        seen_ids.append(last)
        start = int(last) + 1 if last else 0

        async def generate() -> AsyncIterator[dict[str, Any]]:
            # Three events per connection, then the stream ends: the client
            # must come back with Last-Event-ID and get the next ones.
            for i in range(start, start + 3):
                yield {"id": str(i), "event": "task:progress",
                       "data": json.dumps({"n": i, "text": "multi\nline" if i == 1 else "é"})}

        return EventSourceResponse(generate(), ping=60)

    app = Starlette(routes=[Route("/events", events)])
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/events", seen_ids
    finally:
        server.should_exit = True
        await task


async def test_sse_starlette_stream_with_reconnect() -> None:
    async with starlette_server() as (url, seen_ids):
        client = SSEClient(url, **FAST)
        async with client:
            events = await collect(client, 7)
        assert [e.data["n"] for e in events] == list(range(7))
        assert [e.id for e in events] == [str(i) for i in range(7)]
        assert all(e.type == "task:progress" for e in events)
        assert seen_ids[:3] == [None, "2", "5"]


# --------------------------------------------------------------- aiohttp-sse


@contextlib.asynccontextmanager
async def aiohttp_sse_server(
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    requests: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        requests.append(dict(request.headers))
        last = request.headers.get("Last-Event-ID")
        start = int(last) + 1 if last else 0
        async with sse_response(request) as response:
            for i in range(start, start + 2):
                await response.send(json.dumps({"n": i}), id=str(i), event="agent:log:info",
                                    retry=50 if i == 0 else None)
        return response

    app = web.Application()
    app.router.add_get("/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
    await site.start()
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}/events", requests
    finally:
        await runner.cleanup()


async def test_aiohttp_sse_stream_with_retry_and_reconnect() -> None:
    async with aiohttp_sse_server() as (url, requests):
        client = SSEClient(url, reconnect_delay=5.0, max_reconnect_delay=5.0,
                           reconnect_jitter=0.0, headers={"Authorization": "Bearer x"})
        reconnecting: list[SSEEvent] = []
        client.on("reconnecting", reconnecting.append)
        async with client:
            events = await collect(client, 5)
        assert [e.data["n"] for e in events] == list(range(5))
        # retry: 50 from the server replaced the 5 s base delay.
        assert reconnecting[0].data["delay"] == 0.05
        assert requests[0]["Authorization"] == "Bearer x"
        assert requests[1]["Last-Event-ID"] == "1"


async def test_tls_verification(tls_files: dict[str, Path]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files["cert"], tls_files["key"])
    async with aiohttp_sse_server(context) as (url, _):
        # Verification is on by default: an unknown CA is a permanent failure.
        untrusted = SSEClient(url, **FAST)
        with pytest.raises(CertificateError):
            await untrusted.connect()
        assert untrusted.state is ConnectionState.FAILED
        await untrusted.disconnect()

        trusted = SSEClient(url, ca_file=str(tls_files["ca"]), **FAST)
        async with trusted:
            events = await collect(trusted, 2)
        assert [e.data["n"] for e in events] == [0, 1]

        insecure = SSEClient(url, verify=False, **FAST)
        async with insecure:
            assert len(await collect(insecure, 1)) == 1


# ------------------------------------------------------ HTTP/2 on hypercorn

async def test_http2_over_tls_alpn(tls_files: dict[str, Path]) -> None:
    app = SSEApp()
    async with hypercorn_server(app, tls_files) as base:
        client = SSEClient(base + "/events", http2=True, ca_file=str(tls_files["ca"]), **FAST)
        async with client:
            events = await collect(client, 5)
            assert client.get_stats()["http_version"] == "2"
        assert [e.data["index"] for e in events] == list(range(5))
        assert app.versions[:2] == ["2", "2"]
        assert app.last_ids[:2] == [None, "2"]


async def test_http2_cleartext_prior_knowledge() -> None:
    app = SSEApp()
    async with hypercorn_server(app) as base:
        client = SSEClient(base + "/events", http2="prior-knowledge",
                           headers={"Authorization": "Bearer h2c"}, **FAST)
        async with client:
            events = await collect(client, 4)
            assert client.get_stats()["http_version"] == "2"
        assert [e.data["token"] for e in events] == ["t0", "t1", "t2", "t3"]
        assert app.versions[0] == "2"


async def test_http2_gzip_stream() -> None:
    app = SSEApp()
    async with hypercorn_server(app) as base:
        client = SSEClient(base + "/gzip", http2="prior-knowledge", **FAST)
        async with client:
            events = await collect(client, 3)
        assert [e.data["index"] for e in events] == [0, 1, 2]


async def test_http2_true_falls_back_to_http1_when_alpn_says_so(tls_files: dict[str, Path]) -> None:
    app = SSEApp()
    async with hypercorn_server(app, tls_files, alpn=["http/1.1"]) as base:
        client = SSEClient(base + "/events", http2=True, ca_file=str(tls_files["ca"]), **FAST)
        async with client:
            events = await collect(client, 4)
            assert client.get_stats()["http_version"] == "1.1"
        assert [e.data["index"] for e in events] == [0, 1, 2, 3]
        assert set(app.versions) == {"1.1"}


async def test_prior_knowledge_refuses_http1_only_tls(tls_files: dict[str, Path]) -> None:
    app = SSEApp()
    async with hypercorn_server(app, tls_files, alpn=["http/1.1"]) as base:
        client = SSEClient(base + "/events", http2="prior-knowledge", auto_reconnect=False,
                           ca_file=str(tls_files["ca"]))
        with pytest.raises(ConnectError, match="HTTP/2"):
            await client.connect()
        await client.disconnect()
