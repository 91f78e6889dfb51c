"""SSEClient (and httpx-sse) against the real SSEServer: handshake, restart, gaps, filters."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from otel_sse.client import ConnectionState, SSEClient, SSEEvent
from tests._client_helpers import collect, wait_for
from tests.sse_helpers import running_server

FAST: dict[str, Any] = {
    "reconnect_delay": 0.05,
    "max_reconnect_delay": 0.2,
    "reconnect_jitter": 0.0,
}


async def test_httpx_sse_reads_sse_server() -> None:
    async with (
        running_server(keep_alive_interval=5.0) as server,
        httpx.AsyncClient(timeout=10) as http,
    ):
        async with aconnect_sse(http, "GET", f"{server.url}/events") as source:
            events = source.aiter_sse()
            first = await anext(events)
            assert first.event == "connected"
            assert first.json()["clientId"]
            for i in range(3):
                server.broadcast({"event": "task:progress", "data": {"i": i}})
            got = [await anext(events) for _ in range(3)]
            assert [e.json()["i"] for e in got] == [0, 1, 2]
            assert all(e.event == "task:progress" and e.id for e in got)


async def test_handshake_once_per_connection_and_not_yielded() -> None:
    async with running_server(keep_alive_interval=5.0) as server:
        client = SSEClient(f"{server.url}/events", **FAST)
        connected: list[SSEEvent] = []
        client.on("connected", connected.append)
        async with client:
            await wait_for(lambda: len(connected) == 1)
            server.broadcast({"event": "notification", "data": {"message": "hi"}})
            (event,) = await collect(client, 1)
        assert event.type == "notification"
        assert event.data["message"] == "hi"
        assert len(connected) == 1
        assert connected[0].data["clientId"]
        assert "synthetic" not in connected[0].data


async def test_restart_mid_stream_every_event_once_in_order() -> None:
    async with running_server(keep_alive_interval=5.0) as server:
        client = SSEClient(f"{server.url}/events", **FAST)
        connected: list[SSEEvent] = []
        client.on("connected", connected.append)
        received: list[SSEEvent] = []

        async def consume() -> None:
            async for event in client:
                received.append(event)

        async with client:
            consumer = asyncio.create_task(consume())
            await wait_for(lambda: len(connected) == 1)
            for i in range(5):
                server.broadcast({"event": "task:progress", "data": {"i": i}})
            await wait_for(lambda: len(received) >= 5)

            await server.stop()  # sends `shutdown`, closes the stream
            await wait_for(lambda: client.state is ConnectionState.RECONNECTING)
            for i in range(5, 10):  # published while down: kept in the history
                server.broadcast({"event": "task:progress", "data": {"i": i}})
            await server.start()  # same port, same history
            await wait_for(lambda: len(connected) == 2)
            for i in range(10, 15):
                server.broadcast({"event": "task:progress", "data": {"i": i}})
            await wait_for(lambda: sum(e.type == "task:progress" for e in received) >= 15)
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

        progress = [e for e in received if e.type == "task:progress"]
        assert [e.data["i"] for e in progress] == list(range(15))
        assert len({e.id for e in progress}) == 15
        assert [e.type for e in received].count("shutdown") == 1
        assert not any(e.type == "stream:gap" for e in received)
        assert connected[1].data["lastEventId"] == progress[4].id
        assert client.get_stats()["reconnects"] >= 1


async def test_unknown_last_event_id_gives_stream_gap_then_history() -> None:
    async with running_server(keep_alive_interval=5.0) as server:
        for i in range(3):
            server.broadcast({"event": "task:progress", "data": {"i": i}})
        client = SSEClient(f"{server.url}/events", last_event_id="another-run-42", **FAST)
        async with client:
            events = await collect(client, 4)
        assert events[0].type == "stream:gap"
        assert events[0].data["requestedId"] == "another-run-42"
        assert [e.data["i"] for e in events[1:]] == [0, 1, 2]


async def test_filters_applied_by_the_server() -> None:
    async with running_server(keep_alive_interval=5.0) as server:
        client = SSEClient(f"{server.url}/events", filters=["task:*", "agent:spawned"], **FAST)
        connected: list[SSEEvent] = []
        client.on("connected", connected.append)
        async with client:
            await wait_for(lambda: len(connected) == 1)
            for name in ["task:created", "llm:token", "agent:spawned", "agent:stopped",
                         "task:completed"]:
                server.broadcast({"event": name, "data": {"name": name}})
            events = await collect(client, 3)
            await asyncio.sleep(0.1)
            stats = client.get_stats()
        assert [e.type for e in events] == ["task:created", "agent:spawned", "task:completed"]
        # Only the handshake and the three matching events came over the wire.
        assert stats["events_received"] == 4


@pytest.mark.parametrize("http2", ["prior-knowledge", False])
async def test_protocols_against_sse_server(http2: Any) -> None:
    async with running_server(keep_alive_interval=5.0) as server:
        client = SSEClient(f"{server.url}/events", http2=http2, **FAST)
        connected: list[SSEEvent] = []
        client.on("connected", connected.append)
        async with client:
            await wait_for(lambda: len(connected) == 1)
            server.broadcast({"event": "llm:token", "data": {"token": "hé"}})
            (event,) = await collect(client, 1)
            version = client.get_stats()["http_version"]
        assert event.data["token"] == "hé"
        assert version == ("2" if http2 else "1.1")


async def test_compressed_stream_from_sse_server() -> None:
    async with running_server(keep_alive_interval=5.0, compression=True) as server:
        client = SSEClient(f"{server.url}/events", **FAST)
        connected: list[SSEEvent] = []
        client.on("connected", connected.append)
        async with client:
            await wait_for(lambda: len(connected) == 1)
            for i in range(50):
                data = {"i": i, "pad": "x" * 200}
                server.broadcast({"event": "agent:output:stdout", "data": data})
            events = await collect(client, 50)
        assert [e.data["i"] for e in events] == list(range(50))
