"""SSEApp mounted under real ASGI servers (hypercorn, uvicorn): the same routes and fan-out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import h2.events
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config

from otel_sse.asgi import SSEApp
from otel_sse.hub import EventHub
from otel_sse.server import ServerConfig
from tests.conftest import free_port
from tests.h2_helpers import H2Client
from tests.sse_helpers import stream


@contextlib.asynccontextmanager
async def hypercorn_app(app: SSEApp) -> AsyncIterator[str]:
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.02)
    try:
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_stream_filters_and_routes_under_hypercorn() -> None:
    hub = EventHub()
    app = SSEApp(hub, ServerConfig.build(cors_origins=["https://app.example"]))
    async with hypercorn_app(app) as url, aiohttp.ClientSession() as session:
        async with stream(f"{url}/events?filters=task:*") as (resp, reader):
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            connected = await reader.until("connected")
            assert connected.data["clientId"].startswith("client-")
            hub.publish("agent:spawned", {"agentId": "a"})
            hub.publish("task:created", {"taskId": "t"})
            frame = await reader.next()
            assert frame.event == "task:created" and frame.data["taskId"] == "t"
            assert frame.id is not None and frame.id.startswith(hub.log.run_id)
            assert hub.send_to_client(connected.data["clientId"],
                                      {"event": "task:note", "data": {}})
            assert (await reader.next()).event == "task:note"
        async with session.get(f"{url}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ok"
        async with session.get(f"{url}/nope") as resp:
            assert resp.status == 404
        async with session.options(f"{url}/events",
                                   headers={"Origin": "https://app.example"}) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        async with session.post(f"{url}/events") as resp:
            assert resp.status == 405


async def test_h2c_under_hypercorn() -> None:
    hub = EventHub()
    app = SSEApp(hub)
    async with hypercorn_app(app) as url:
        client = await H2Client.open(int(url.rsplit(":", 1)[1]))
        stream_id = client.get("/events")
        await client.flush()
        await client.until(h2.events.ResponseReceived)
        hub.publish("task:created", {"taskId": "t"})
        events = await client.until(h2.events.DataReceived, count=2)
        body = b"".join(e.data or b"" for e in events if e.stream_id == stream_id)
        assert b"event: connected" in body
        while b"event: task:created" not in body:
            more = await client.read(5)
            assert more, "stream ended"
            body += b"".join(e.data for e in more if isinstance(e, h2.events.DataReceived))
        client.close()


async def test_uvicorn_serves_it_too() -> None:
    uvicorn = pytest.importorskip("uvicorn")
    hub = EventHub()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(SSEApp(hub), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with stream(f"http://127.0.0.1:{port}/events") as (_, reader):
            await reader.until("connected")
            hub.publish("llm:token", {"token": "hi"})
            assert (await reader.next()).data["token"] == "hi"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
