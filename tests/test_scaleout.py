"""Scale-out on the Redis bus, as deployed: a real redis-server, three gateway replicas
as separate processes (``otel-sse serve --bus redis://...``), thirty clients spread
across them (each with the three URLs, starting at a different one), and an
application publishing 500 events/s straight to Redis (plus some events posted
to each replica).

Every client must receive every event exactly once and all in the same order:
with all replicas up, after ``kill -9`` of one (its clients fail over), while
Redis is stopped for five seconds and started again with its data. When Redis
comes back without its data the clients are told (``stream:gap``) and carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_sse.bus.publisher import RedisPublisher
from tests._client_helpers import wait_for
from tests.conftest import free_port
from tests.redis_server import Reader, RedisServer, needs_redis

pytestmark = needs_redis

REPLICAS = 3
CLIENTS = 30
RATE = 500.0
OURS = frozenset({"load:tick", "post:event"})


class Replica:
    """``otel-sse serve --bus`` in a process of its own."""

    def __init__(self, bus: str, logs: Path) -> None:
        self.port = free_port()
        self.log_path = logs / f"replica-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "otel_sse", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--no-grpc", "--bus", bus],
                stdout=subprocess.PIPE, stderr=log, text=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("otel-sse serving"), self.log_path.read_text()

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            answer: dict[str, Any] = (await http.get(f"{self.url}/healthz")).json()
            return answer

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Pacer(threading.Thread):
    """The application: ``total`` events at ``rate``/s from a thread of its own."""

    def __init__(self, publisher: RedisPublisher, total: int, first: int = 0) -> None:
        super().__init__(name="app-publisher", daemon=True)
        self.publisher = publisher
        self.total = total
        self.first = first
        self.done = 0

    def run(self) -> None:
        start = time.monotonic()
        for i in range(self.total):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publisher.publish("load:tick", {"n": self.first + i})
            self.done = i + 1


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def replicas(redis_server: RedisServer, tmp_path: Path) -> Iterator[list[Replica]]:
    started = [Replica(redis_server.url, tmp_path) for _ in range(REPLICAS)]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


@pytest.fixture
def publisher(redis_server: RedisServer) -> Iterator[RedisPublisher]:
    app = RedisPublisher(redis_server.url).start()
    try:
        yield app
    finally:
        app.close(5.0)


@contextlib.asynccontextmanager
async def clients(replicas: list[Replica]) -> AsyncIterator[list[Reader]]:
    """Thirty clients, a third starting at each replica, each able to use all three."""
    urls = [f"{r.url}/events" for r in replicas]
    async with contextlib.AsyncExitStack() as stack:
        readers = [await stack.enter_async_context(
            Reader(urls[i % REPLICAS:] + urls[:i % REPLICAS], read_timeout=10.0))
            for i in range(CLIENTS)]
        yield readers


def ours(reader: Reader) -> list[tuple[str | None, str, int]]:
    return [(e.id, e.type, e.data["n"]) for e in reader.events if e.type in OURS]


def assert_everything_once_in_one_order(readers: list[Reader], expected: int) -> None:
    first = ours(readers[0])
    assert len(first) == expected
    assert len({event_id for event_id, _, _ in first}) == expected
    assert len({(kind, n) for _, kind, n in first}) == expected  # no event twice
    for reader in readers[1:]:
        assert ours(reader) == first


async def all_received(readers: list[Reader], expected: int, timeout: float = 60.0) -> None:
    await wait_for(lambda: all(len(ours(r)) >= expected for r in readers), timeout)


async def test_three_replicas_deliver_every_event_once_in_one_order_through_a_kill_9(
        replicas: list[Replica], publisher: RedisPublisher) -> None:
    async with clients(replicas) as readers:
        app = Pacer(publisher, 1500)
        app.start()
        posted = 0
        async with httpx.AsyncClient() as http:
            for round_ in range(3):  # events posted to every replica, among the app's
                for replica in replicas[1:] if round_ else replicas:
                    answer = await http.post(f"{replica.url}/v1/events", json={
                        "event": "post:event", "data": {"n": posted}})
                    assert answer.status_code == 202 and len(answer.json()["ids"]) == 1
                    posted += 1
                if round_ == 0:
                    await wait_for(lambda: app.done >= 500)
                    replicas[0].kill()  # its ten clients move to the others
        app.join(30)
        await all_received(readers, 1500 + posted)
        assert_everything_once_in_one_order(readers, 1500 + posted)
        for index, reader in enumerate(readers):
            if index % REPLICAS == 0:
                assert len(reader.connects) == 2, "a client of the killed replica moved"
                assert reader.connects[1].data["url"] != reader.connects[0].data["url"]
            assert not reader.of("stream:gap")


async def test_redis_stopped_for_five_seconds_and_restarted_with_its_data_loses_nothing(
        replicas: list[Replica], publisher: RedisPublisher,
        redis_server: RedisServer) -> None:
    async with clients(replicas) as readers:
        app = Pacer(publisher, 4000)  # eight seconds
        app.start()
        await wait_for(lambda: app.done >= 500)
        redis_server.kill()
        at_outage = app.done
        for replica in replicas:
            await wait_for_status(replica, "degraded")
        # The application goes on publishing at its pace (it never waits for Redis):
        # five seconds of it, buffered.
        await wait_for(lambda: app.done >= at_outage + int(5 * RATE), 30)
        assert publisher.stats()["busStatus"] == "degraded"
        assert int(str(publisher.stats()["busBufferedEvents"])) > 0
        redis_server.start()
        app.join(30)
        await all_received(readers, 4000)
        assert_everything_once_in_one_order(readers, 4000)
        assert [n for _, _, n in ours(readers[0])] == list(range(4000))
        for reader in readers:
            assert len(reader.connects) == 1, "the replicas kept their clients"
            assert not reader.of("stream:gap")
        for replica in replicas:
            await wait_for_status(replica, "ok")
            health = await replica.health()
            assert health["busOutages"] == 1 and health["busGaps"] == 0
        assert publisher.stats()["busDropped"] == 0


async def test_redis_restarted_without_its_data_clients_get_a_gap_and_carry_on(
        replicas: list[Replica], publisher: RedisPublisher,
        redis_server: RedisServer) -> None:
    async with clients(replicas) as readers:
        before = Pacer(publisher, 250)
        before.start()
        await asyncio.to_thread(before.join, 30)
        await all_received(readers, 250)
        redis_server.kill()
        redis_server.wipe()
        redis_server.start()
        await wait_for(lambda: all(len(r.of("stream:gap")) == 1 for r in readers), 30)
        after = Pacer(publisher, 250, first=250)
        after.start()
        await asyncio.to_thread(after.join, 30)
        await all_received(readers, 500)
        assert_everything_once_in_one_order(readers, 500)
        for reader in readers:
            types = [e.type for e in reader.events if e.type in OURS | {"stream:gap"}]
            assert types == ["load:tick"] * 250 + ["stream:gap"] + ["load:tick"] * 250
            assert len(reader.connects) == 1
        for replica in replicas:
            assert (await replica.health())["busGaps"] == 1


async def wait_for_status(replica: Replica, status: str, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while (await replica.health())["status"] != status:
            await asyncio.sleep(0.05)
