"""The Redis Streams bus against a real redis-server: gateways in this process sharing a
stream, resuming anywhere, the open-work state everywhere, an application publishing
straight to Redis, outages, configuration and ``--workers``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from otel_sse.bus.publisher import RedisPublisher
from otel_sse.cli import main
from otel_sse.emitters import TaskStream
from otel_sse.errors import ConfigError, ServerError
from otel_sse.server import ServerConfig, SSEServer
from tests._client_helpers import wait_for
from tests.conftest import free_port
from tests.redis_server import Reader, RedisServer, needs_redis, stream_entries, trim

pytestmark = needs_redis

STREAM_ID = re.compile(r"^[0-9]+-[0-9]+$")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@contextlib.asynccontextmanager
async def gateway(url: str, **options: Any) -> AsyncIterator[SSEServer]:
    server = SSEServer(port=0, host="127.0.0.1", bus=url, keep_alive_interval=5.0, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# ---------------------------------------------------------------- configuration


def test_the_bus_url_is_checked_and_its_password_never_shown() -> None:
    config = ServerConfig.build(bus="redis://app:s3cret-pw@127.0.0.1:6379/2",
                                stream_key="tenant-a:events")
    assert config.shared_bus and "s3cret" not in repr(config)
    assert config.redis_bus().display_url == "redis://app:***@127.0.0.1:6379/2"
    assert not ServerConfig.build(bus="memory").shared_bus
    for bad in ("http://app:s3cret-pw@host", "redis://app:s3cret-pw@host:notaport/0",
                "redis://app:s3cret-pw@host:6379/zero"):
        with pytest.raises(ConfigError) as caught:
            ServerConfig.build(bus=bad)
        assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(ConfigError, match="stream_key"):
        ServerConfig.build(bus="redis://127.0.0.1/0", stream_key="has space")
    assert ServerConfig.build(environ={"OTEL_SSE_BUS": "redis://h:1/0"}).bus == "redis://h:1/0"


def test_import_otel_sse_does_not_import_redis() -> None:
    code = ("import sys, otel_sse, otel_sse.server, otel_sse.bus, otel_sse.bus.publisher; "
            "sys.exit('redis' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_in_process_bus_refuses_several_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2", "--port", "0", "--no-grpc"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--workers 2 needs a shared bus (--bus redis://" in err


async def test_an_unreachable_bus_at_start_is_a_clear_error() -> None:
    url = f"redis://app:s3cret-pw@127.0.0.1:{free_port()}/0"
    server = SSEServer(port=0, host="127.0.0.1", bus=url)
    with pytest.raises(ServerError) as caught:
        await server.start()
    message = str(caught.value)
    assert message.startswith(f"cannot reach the Redis bus at redis://app:***@127.0.0.1:"
                              f"{url.rsplit(':', 1)[1].split('/')[0]}/0: ")
    assert "s3cret" not in message
    assert not server.running


async def test_a_key_that_is_not_a_stream_is_a_clear_error_at_start(
        redis_server: RedisServer) -> None:
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.set("not-a-stream", "x")
    server = SSEServer(port=0, host="127.0.0.1", bus=redis_server.url, stream_key="not-a-stream")
    with pytest.raises(ServerError, match=r"cannot read the stream 'not-a-stream' on the Redis "
                                          r"bus at redis://127\.0\.0\.1:[0-9]+/0: ResponseError"):
        await server.start()


async def test_a_gateway_loads_the_streams_tail_and_goes_on_after_a_restart(
        redis_server: RedisServer) -> None:
    async with gateway(redis_server.url) as first:
        for n in range(3):
            first.publish("job:step", {"n": n})
        await wait_for(lambda: first.get_stats()["busRead"] == 3)
    server = SSEServer(port=0, host="127.0.0.1", bus=redis_server.url)
    await server.start()  # a new gateway: the tail is loaded
    try:
        assert server.get_stats()["busLoaded"] == 3
        await server.stop()
        await server.start()  # the same gateway again: nothing loaded twice
        server.publish("job:step", {"n": 3})
        await wait_for(lambda: server.get_stats()["historyEvents"] == 4)
        async with Reader(f"{server.url}/events",
                          last_event_id=stream_entries(redis_server.url)[0][0]) as seen:
            await wait_for(lambda: len(seen.of("job:step")) == 3)
        assert [e.data["n"] for e in seen.of("job:step")] == [1, 2, 3]
    finally:
        await server.stop()


def test_serve_with_an_unreachable_bus_says_so_in_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["serve", "--bus", url, "--port", "0", "--no-grpc", "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"otel-sse: cannot reach the Redis bus at {url}") and "\n" not in err


# ---------------------------------------------------------------- one stream, many gateways


async def test_gateways_share_one_stream_with_its_ids_and_resume_on_each_other(
        redis_server: RedisServer) -> None:
    async with gateway(redis_server.url) as a, gateway(redis_server.url) as b:
        async with Reader(f"{a.url}/events") as on_a, Reader(f"{b.url}/events") as on_b:
            a.publish("job:step", {"n": 0})
            threading.Thread(target=lambda: b.publish("job:step", {"n": 1})).start()
            await wait_for(lambda: len(on_b.of("job:step")) == 2)
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"{b.url}/v1/events", json=[
                    {"event": "job:step", "data": {"n": 2}},
                    {"event": "job:step", "data": {"n": 3}}])
            assert answer.status_code == 202
            posted = answer.json()["ids"]
            await wait_for(lambda: len(on_a.of("job:step")) == 4
                           and len(on_b.of("job:step")) == 4)
            seen_a = [(e.id, e.data["n"]) for e in on_a.of("job:step")]
            seen_b = [(e.id, e.data["n"]) for e in on_b.of("job:step")]
        # One order, one id per event, whichever gateway published or delivered it.
        assert seen_a == seen_b
        assert sorted(n for _, n in seen_a) == [0, 1, 2, 3]
        assert all(STREAM_ID.match(event_id) for event_id, _ in seen_a)
        assert [event_id for event_id, _ in seen_a[2:]] == posted
        ids = [event_id for event_id, _ in seen_a]
        assert [entry_id for entry_id, _ in stream_entries(redis_server.url)] == ids

        # An id one gateway sent resumes on the other: the rest, no gap, no repeat.
        async with Reader(f"{b.url}/events", last_event_id=ids[1]) as resumed:
            await wait_for(lambda: len(resumed.of("job:step")) == 2)
            a.publish("job:step", {"n": 4})
            await wait_for(lambda: len(resumed.of("job:step")) == 3)
        assert [e.data["n"] for e in resumed.of("job:step")] == [n for _, n in seen_a[2:]] + [4]
        assert not resumed.of("stream:gap")
        stats = b.get_stats()
        assert stats["busStatus"] == "ok" and stats["busRead"] == 5
        assert stats["lastEventId"] == resumed.of("job:step")[-1].id


async def test_an_id_older_than_the_ring_is_read_from_redis_and_a_trimmed_one_is_a_gap(
        redis_server: RedisServer) -> None:
    # A ring of about 1 KiB holds a few events; the stream keeps all 40.
    async with gateway(redis_server.url, history_bytes=1024) as server:
        for n in range(40):
            server.publish("job:step", {"n": n, "pad": "x" * 60})
        await wait_for(lambda: server.get_stats()["busRead"] == 40)
        assert cast(int, server.get_stats()["historyEvents"]) < 20
        ids = [entry_id for entry_id, _ in stream_entries(redis_server.url)]

        async with Reader(f"{server.url}/events", last_event_id=ids[4]) as older:
            await wait_for(lambda: len(older.of("job:step")) == 35)
        assert [e.data["n"] for e in older.of("job:step")] == list(range(5, 40))
        assert not older.of("stream:gap")

        trim(redis_server.url, 30)
        async with Reader(f"{server.url}/events", last_event_id=ids[4]) as trimmed:
            await wait_for(lambda: len(trimmed.of("job:step")) == 30)
        (gap,) = trimmed.of("stream:gap")
        assert gap.data["requestedId"] == ids[4]
        assert trimmed.events.index(gap) < trimmed.events.index(trimmed.of("job:step")[0])
        assert [e.data["n"] for e in trimmed.of("job:step")] == list(range(10, 40))


async def test_the_open_work_is_known_on_every_gateway_and_derived_once(
        redis_server: RedisServer) -> None:
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "parentSpanId": None,
            "name": "plan", "kind": "internal", "serviceName": "svc"}
    async with gateway(redis_server.url) as a, gateway(redis_server.url) as b:
        await wait_for(lambda: a.log.leader or b.log.leader)
        assert not (a.log.leader and b.log.leader)
        async with Reader(f"{a.url}/events") as early:
            a.publish("span:started", span)
            await wait_for(lambda: len(b.hub.spans.spans) == 1)
            # A subscriber arriving at the other gateway is told what is running.
            async with Reader(f"{b.url}/events") as late:
                await wait_for(lambda: bool(late.of("snapshot")))
                (snapshot,) = late.of("snapshot")
                assert snapshot.data["openSpans"] == 1
                assert snapshot.data["events"][0]["data"]["spanId"] == span["spanId"]
                b.publish("span:ended", {**span, "status": "ok", "durationMs": 5})
                await wait_for(lambda: bool(late.of("trace:completed"))
                               and bool(early.of("trace:completed")))
                await asyncio.sleep(0.3)  # a second one, if any, would have come by now
                assert len(late.of("trace:completed")) == len(early.of("trace:completed")) == 1
        assert late.of("trace:completed")[0].id == early.of("trace:completed")[0].id
        assert not a.hub.spans.spans and not b.hub.spans.spans


# ---------------------------------------------------------------- producers


async def test_an_application_publishes_straight_to_redis(redis_server: RedisServer) -> None:
    async with gateway(redis_server.url) as server, Reader(f"{server.url}/events") as seen:
        publisher = RedisPublisher(redis_server.url).start()
        try:
            tasks = TaskStream(publisher)
            tasks.emit_task_created("t-1", name="fetch")
            tasks.emit_task_started("t-1")
            publisher.publish("deploy:done", {"version": "1.2"})
            tasks.emit_task_completed("t-1", result={"ok": True})
            await wait_for(lambda: bool(seen.of("deploy:done"))
                           and bool(seen.of("task:completed")))
            assert publisher.flush(5.0)
            stats = publisher.stats()
        finally:
            assert publisher.close(5.0)
    types = [e.type for e in seen.events]
    for expected in ("task:created", "task:started", "span:started", "task:completed"):
        assert expected in types
    assert all(STREAM_ID.match(e.id) for e in seen.events if e.id and e.type != "connected")
    assert stats["busDropped"] == 0 and stats["busStatus"] == "ok"


async def test_publishing_while_redis_is_away_is_bounded_never_blocks_and_catches_up(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="otel_sse.bus")
    publisher = RedisPublisher(redis_server.url, buffer_bytes=64 * 1024).start()
    try:
        publisher.publish("job:step", {"n": -1})
        assert publisher.flush(5.0)
        redis_server.kill()
        accepted = sum(publisher.publish("job:step", {"n": n, "pad": "x" * 200})
                       for n in range(1000))
        await wait_for(lambda: publisher.stats()["busStatus"] == "degraded")
        stats = publisher.stats()
        assert 0 < accepted < 1000
        assert stats["busDropped"] == 1000 - accepted
        assert cast(int, stats["busBufferedBytes"]) <= 64 * 1024
        outage_lines = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(outage_lines) == 1 and "***" not in outage_lines[0].getMessage()

        redis_server.start()
        assert await asyncio.to_thread(publisher.flush, 15.0)
    finally:
        publisher.close(5.0)
    sent = [json.loads(fields[b"d"])["n"] for _, fields in stream_entries(redis_server.url)]
    # What was accepted went in once, in order, after what was sent before the outage.
    assert sent == [-1, *range(accepted)]
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


# ---------------------------------------------------------------- --workers


def test_serve_workers_share_the_port_and_the_bus(redis_server: RedisServer) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sse", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--no-grpc", "--workers", "2", "--bus", redis_server.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        lines: list[str] = []
        while not any("workers:" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())
        pids: set[int] = set()
        while len(pids) < 2:  # a new connection each time: the kernel picks a worker
            assert time.monotonic() < deadline, "one worker answered every connection"
            pids.add(httpx.get(f"http://127.0.0.1:{port}/healthz").json()["pid"])
        assert proc.pid not in pids
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


async def test_post_events_while_redis_is_away_waits_in_the_bus_buffer_then_gets_503(
        redis_server: RedisServer) -> None:
    async with gateway(redis_server.url, bus_buffer_bytes=4096, request_timeout=0.5) as server, \
            httpx.AsyncClient(base_url=server.url) as client:
        redis_server.kill()
        small = await client.post("/v1/events", json={"event": "job:kept", "data": {"n": 1}})
        assert small.status_code == 202 and small.json() == {"ids": None, "queued": 1}
        # More than the buffer has left: none of them is taken.
        big = [{"event": "job:refused", "data": {"pad": "x" * 1500}} for _ in range(3)]
        refused = await client.post("/v1/events", json=big)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.text.strip() and "\n" not in refused.text.strip()
        redis_server.start()
        await wait_for(lambda: any(fields[b"t"] == b"job:kept" for _, fields
                                   in stream_entries(redis_server.url)), timeout=20)
    types = [fields[b"t"] for _, fields in stream_entries(redis_server.url)]
    assert types.count(b"job:kept") == 1 and b"job:refused" not in types
