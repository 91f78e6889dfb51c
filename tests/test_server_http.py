"""Every row of the contract's HTTP surface, over real sockets with aiohttp."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import pytest

from otel_sse.errors import ConfigError, EventFormatError
from otel_sse.server import SSEServer
from tests.sse_helpers import running_server, stream


async def test_stream_headers_and_connected_first() -> None:
    async with running_server() as server, stream(f"{server.url}/events") as (resp, reader):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["Cache-Control"] == "no-cache, no-transform"
        assert resp.headers["X-Accel-Buffering"] == "no"
        first = await reader.next()
        assert first.event == "connected"
        assert set(first.data) == {"clientId", "serverTime", "lastEventId", "timestamp"}
        assert first.data["lastEventId"] is None
        assert server.get_client(first.data["clientId"]) is not None
        server.publish("task:created", {"taskId": "t1"})
        frame = await reader.next()
        assert frame.event == "task:created"
        assert frame.data["taskId"] == "t1"
        assert frame.data["timestamp"].endswith("Z")
        assert frame.id is not None and frame.id.startswith(server.log.run_id)


async def test_root_with_accept_is_the_stream_and_without_is_not() -> None:
    async with running_server() as server:
        async with stream(f"{server.url}/") as (resp, reader):
            assert resp.status == 200
            assert (await reader.next()).event == "connected"
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}/") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")


async def test_wildcard_filters_apply_on_the_server() -> None:
    async with running_server() as server, stream(
        f"{server.url}/events?filters=task:*,agent:spawned"
    ) as (_, reader):
        await reader.until("connected")
        for name in ("agent:output:stdout", "task:created", "llm:token", "agent:spawned",
                     "task:progress", "agent:started"):
            server.publish(name, {"n": name})
        server.publish("end:marker", {})
        got = [f.event for f in await reader.take(3)]
        assert got == ["task:created", "agent:spawned", "task:progress"]


async def test_star_matches_colons_inside_filter() -> None:
    async with running_server() as server, stream(
        f"{server.url}/events?filters=agent:*:stdout"
    ) as (_, reader):
        await reader.until("connected")
        server.publish("agent:output:stderr", {})
        server.publish("agent:output:stdout", {})
        assert (await reader.next()).event == "agent:output:stdout"


async def test_options_preflight_and_cors_origins() -> None:
    async with running_server(cors_origins=["https://app.example"]) as server:
        async with aiohttp.ClientSession() as session:
            async with session.options(f"{server.url}/events",
                                       headers={"Origin": "https://app.example"}) as resp:
                assert resp.status == 204
                assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
                assert "GET" in resp.headers["Access-Control-Allow-Methods"]
                assert "Last-Event-ID" in resp.headers["Access-Control-Allow-Headers"]
            async with session.options(f"{server.url}/anything",
                                       headers={"Origin": "https://evil.example"}) as resp:
                assert resp.status == 204
                assert "Access-Control-Allow-Origin" not in resp.headers
    # Closed by default: no origin is granted unless listed, "*" only when asked for.
    async with running_server() as server, aiohttp.ClientSession() as session:
        async with session.options(f"{server.url}/events",
                                   headers={"Origin": "https://app.example"}) as resp:
            assert resp.status == 204
            assert "Access-Control-Allow-Origin" not in resp.headers
        async with session.get(f"{server.url}/healthz",
                               headers={"Origin": "https://app.example"}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
    async with running_server(cors_origins=["*"]) as server, aiohttp.ClientSession() as session:
        async with session.options(f"{server.url}/events") as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_the_stream_are_405(method: str) -> None:
    async with running_server() as server, aiohttp.ClientSession() as session:
        async with session.request(method, f"{server.url}/events") as resp:
            assert resp.status == 405
            assert "GET" in resp.headers["Allow"]
            assert (await resp.text()).count("\n") == 1


async def test_max_clients_gives_503_with_retry_after() -> None:
    async with running_server(max_clients=2) as server, aiohttp.ClientSession() as session:
        async with stream(f"{server.url}/events", session=session) as (_, r1), \
                stream(f"{server.url}/events", session=session) as (_, r2):
            await r1.until("connected")
            await r2.until("connected")
            async with session.get(f"{server.url}/events") as resp:
                assert resp.status == 503
                assert int(resp.headers["Retry-After"]) > 0
                assert "max_clients" in await resp.text()
        assert server.get_stats()["rejectedFull"] == 1


@pytest.mark.parametrize("query,header", [
    ("filters=task:created%0Aevent:x", None),
    ("filters=" + "a" * 500, None),
    ("filters=task:<script>", None),
    ("lastEventId=abc%00def", None),
    ("lastEventId=" + "1" * 300, None),
    ("", "bad id with spaces"),
])
async def test_malformed_input_is_400_with_one_line(query: str, header: str | None) -> None:
    async with running_server() as server, aiohttp.ClientSession() as session:
        headers = {"Last-Event-ID": header} if header else {}
        async with session.get(f"{server.url}/events?{query}", headers=headers) as resp:
            assert resp.status == 400
            body = await resp.text()
            assert body.endswith("\n") and body.count("\n") == 1 and len(body) < 300
        assert server.get_stats()["rejectedBadRequest"] == 1


async def test_healthz_and_404() -> None:
    async with running_server() as server, aiohttp.ClientSession() as session:
        async with stream(f"{server.url}/events", session=session) as (_, reader):
            await reader.until("connected")
            async with session.get(f"{server.url}/healthz") as resp:
                assert resp.status == 200
                body = await resp.json()
                assert body["status"] == "ok" and body["clients"] == 1
        async with session.get(f"{server.url}/nope") as resp:
            assert resp.status == 404
        async with session.post(f"{server.url}/healthz") as resp:
            assert resp.status == 405


async def test_custom_headers_on_every_response() -> None:
    async with running_server(headers={"X-Team": "observability"}) as server:
        async with stream(f"{server.url}/events") as (resp, _):
            assert resp.headers["X-Team"] == "observability"
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}/healthz") as r:
            assert r.headers["X-Team"] == "observability"


async def test_keep_alive_comments() -> None:
    async with running_server(keep_alive_interval=0.2) as server, \
            stream(f"{server.url}/events") as (_, reader):
        await reader.until("connected")
        frame = await reader.next(timeout=3, include_comments=True)
        assert frame.comments and frame.comments[0].startswith("keep-alive ")
        stamp = int(frame.comments[0].split()[1])
        assert abs(stamp / 1000 - time.time()) < 5


async def test_shutdown_event_then_end_of_stream() -> None:
    server = SSEServer(port=0, host="127.0.0.1")
    await server.start()
    async with stream(f"{server.url}/events") as (_, reader):
        await reader.until("connected")
        server.publish("task:created", {"taskId": "last"})
        stopping = asyncio.create_task(server.stop())
        assert (await reader.next()).event == "task:created"
        assert (await reader.next()).event == "shutdown"
        with pytest.raises(EOFError):
            await reader.next(timeout=3)
        await stopping
    assert not server.running


async def test_injection_attempts_are_rejected_or_harmless() -> None:
    async with running_server() as server, stream(f"{server.url}/events") as (_, reader):
        await reader.until("connected")
        for bad in ("x\nevent: evil", "x\r", "x\0y"):
            with pytest.raises(ValueError):
                server.broadcast({"event": bad, "data": {}})
            with pytest.raises(EventFormatError):
                server.broadcast({"event": "ok", "id": bad, "data": {}})
            with pytest.raises(ValueError, match="contains CR, LF or NUL"):
                server.publish(bad, {})  # a type seen before is not re-checked; this one is new
        server.publish("ok", {})
        with pytest.raises(ValueError, match=r"event name must be a string, got \['ok'\]"):
            server.publish(["ok"], {})  # type: ignore[arg-type]
        assert (await reader.next()).event == "ok"
        # Data can hold anything: JSON escapes line breaks, so it stays one data line.
        server.publish("note", {"text": "line1\n\nevent: evil\ndata: x"})
        frame = await reader.next()
        assert frame.event == "note"
        assert frame.data["text"] == "line1\n\nevent: evil\ndata: x"
        # A raw multi-line string becomes several data lines, never a second event.
        server.broadcast({"event": "raw", "data": "a\n\nevent: evil\ndata: b"})
        frame = await reader.next()
        assert frame.event == "raw"
        assert frame.raw == "a\n\nevent: evil\ndata: b"


async def test_broadcast_from_a_thread_while_the_loop_is_busy() -> None:
    async with running_server() as server, stream(f"{server.url}/events") as (_, reader):
        await reader.until("connected")
        done = threading.Event()
        durations: list[float] = []

        def publisher() -> None:
            for i in range(100):
                start = time.perf_counter()
                server.publish("thread:event", {"i": i})
                durations.append(time.perf_counter() - start)
            done.set()

        thread = threading.Thread(target=publisher)
        thread.start()
        time.sleep(0.3)  # block the loop on purpose: publishing must not wait for it
        assert done.is_set()
        thread.join()
        frames = await reader.take(100)
        assert [f.data["i"] for f in frames] == list(range(100))
        assert max(durations) < 0.25


async def test_send_to_client_reaches_only_that_client() -> None:
    async with running_server() as server, aiohttp.ClientSession() as session:
        async with stream(f"{server.url}/events", session=session) as (_, r1), \
                stream(f"{server.url}/events", session=session) as (_, r2):
            c1 = (await r1.until("connected")).data["clientId"]
            await r2.until("connected")
            server.publish("shared", {"n": 1})
            assert server.send_to_client(c1, {"event": "message", "data": {"to": "one"}})
            assert not server.send_to_client("client-nope", {"event": "message", "data": {}})
            server.publish("shared", {"n": 2})
            got1 = await r1.take(3)
            got2 = await r2.take(2)
            assert [f.event for f in got1] == ["shared", "message", "shared"]
            assert [f.event for f in got2] == ["shared", "shared"]
            ids = [f.id for f in got1]
            assert len(set(ids)) == 3


async def test_send_to_client_from_a_thread() -> None:
    async with running_server() as server, stream(f"{server.url}/events") as (_, reader):
        client_id = (await reader.until("connected")).data["clientId"]
        result: list[bool] = []
        thread = threading.Thread(target=lambda: result.append(
            server.send_to_client(client_id, {"event": "private", "data": {"x": 1}})))
        thread.start()
        thread.join()
        assert result == [True]
        assert (await reader.next()).event == "private"


def test_bad_configuration_names_the_value() -> None:
    with pytest.raises(ConfigError, match="compression_level"):
        SSEServer(compression_level=12)
    with pytest.raises(ConfigError, match="slow_client_policy"):
        SSEServer(slow_client_policy="sometimes")
    with pytest.raises(ConfigError, match="cert_path"):
        SSEServer(http2=True)
    with pytest.raises(ConfigError, match="bogus"):
        SSEServer(bogus=1)


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SSE_PORT", "4555")
    monkeypatch.setenv("OTEL_SSE_MAX_CLIENTS", "7")
    server = SSEServer()
    assert server.config.port == 4555 and server.config.max_clients == 7
    assert SSEServer(port=1234).config.port == 1234
    monkeypatch.setenv("OTEL_SSE_MAX_CLIENTS", "many")
    with pytest.raises(ConfigError, match="OTEL_SSE_MAX_CLIENTS"):
        SSEServer()
