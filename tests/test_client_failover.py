"""SSEClient with several URLs: the rotation policy, and failover between real servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from otel_sse.bus.log import MemoryEventLog
from otel_sse.client import ConnectionState, SSEClient, SSEEvent
from otel_sse.client.failover import Rotation
from otel_sse.errors import BadStatusError, ConfigError, ReconnectExhaustedError
from otel_sse.server import SSEServer
from tests._client_helpers import FAST, RawServer, Recorder, Request, head, wait_for
from tests.conftest import free_port

# ------------------------------------------------------------------ policy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def backoff(rounds: int) -> float:
    return 10.0 * rounds


def test_one_url_backs_off_every_attempt() -> None:
    rotation = Rotation(["a"])
    delays = []
    for _ in range(3):
        rotation.failed()
        step = rotation.advance(backoff)
        assert step is not None and step.url == "a" and step.new_round
        delays.append(step.delay)
    assert delays == [10.0, 20.0, 30.0]
    rotation.succeeded()
    rotation.dropped()
    step = rotation.advance(backoff)
    assert step is not None and step.delay == 10.0


def test_next_url_at_once_backoff_after_a_full_round() -> None:
    rotation = Rotation(["a", "b", "c"])
    steps = []
    for _ in range(6):
        rotation.failed()
        step = rotation.advance(backoff)
        assert step is not None
        steps.append((step.url, step.delay))
    assert steps == [("b", 0.0), ("c", 0.0), ("a", 10.0), ("b", 0.0), ("c", 0.0), ("a", 20.0)]


def test_a_drop_moves_on_and_the_round_restarts() -> None:
    rotation = Rotation(["a", "b"])
    rotation.failed()
    rotation.advance(backoff)  # to b
    rotation.succeeded()
    rotation.dropped()  # b's stream ended
    step = rotation.advance(backoff)
    assert step is not None and (step.url, step.delay) == ("a", 0.0)
    rotation.failed()
    step = rotation.advance(backoff)  # a and b both failed since the success
    assert step is not None and (step.url, step.delay, step.new_round) == ("b", 10.0, True)


def test_permanent_failures_leave_the_rotation() -> None:
    rotation = Rotation(["a", "b", "c"])
    rotation.failed(permanent=BadStatusError(404))
    step = rotation.advance(backoff)
    assert step is not None and step.url == "b"
    rotation.failed()
    step = rotation.advance(backoff)
    assert step is not None and step.url == "c"
    rotation.failed()
    step = rotation.advance(backoff)
    # a is out: the next round is b and c only.
    assert step is not None and (step.url, step.delay) == ("b", 10.0)
    rotation.failed(permanent=BadStatusError(401))
    step = rotation.advance(backoff)
    assert step is not None and step.url == "c"
    rotation.failed(permanent=BadStatusError(410))
    assert rotation.advance(backoff) is None
    assert not rotation.usable()
    rotation.restart()
    assert rotation.usable() and rotation.url == "a"


def test_retry_after_holds_back_only_its_url() -> None:
    clock = Clock()
    rotation = Rotation(["a", "b", "c"], clock=clock)
    rotation.failed(retry_after=30.0)
    step = rotation.advance(backoff)
    assert step is not None and (step.url, step.delay) == ("b", 0.0)
    rotation.failed()
    step = rotation.advance(backoff)
    assert step is not None and (step.url, step.delay) == ("c", 0.0)
    rotation.failed()
    clock.now += 5.0
    step = rotation.advance(backoff)
    # A new round starts at a, which asked for 30 s: 25 s are left, more than the backoff.
    assert step is not None and (step.url, step.delay) == ("a", 25.0)


def test_untried_urls_held_back_are_taken_soonest_first() -> None:
    clock = Clock()
    rotation = Rotation(["a", "b", "c"], clock=clock)
    rotation.failed(retry_after=50.0)
    rotation.advance(backoff)  # b
    rotation.failed(retry_after=20.0)
    rotation.advance(backoff)  # c
    rotation.failed(retry_after=40.0)
    rotation.advance(backoff)  # new round: a (50 s)
    rotation.failed(retry_after=50.0)
    step = rotation.advance(backoff)
    assert step is not None and (step.url, step.delay) == ("b", 20.0)


@pytest.mark.parametrize(
    ("url", "named"),
    [([], "at least one"), (["http://a/e", "http://a/e"], "twice"), ([1], "list of str"),
     (["http://a/e", "ftp://b/"], "ftp://b/")],
)
def test_url_lists_are_validated(url: Any, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        SSEClient(url)
    client = SSEClient("http://127.0.0.1:1/events")
    with pytest.raises(ConfigError, match=named):
        client.update_config(url=url)


def test_urls_and_stats_name_the_url_in_use() -> None:
    client = SSEClient(["http://a:1/events", "http://b:2/events"], filters="task:*")
    assert client.urls == ("http://a:1/events", "http://b:2/events")
    assert client.url == "http://a:1/events?filters=task:*"
    stats = client.get_stats()
    assert stats["urls"] == ["http://a:1/events", "http://b:2/events"]
    assert stats["url"] == client.url
    assert stats["failovers"] == 0
    client.update_config(url="http://c:3/events")
    assert list(client.urls) == ["http://c:3/events"]


# ------------------------------------------------------------ real servers


@contextlib.asynccontextmanager
async def server_on(port: int, log: MemoryEventLog | None = None) -> AsyncIterator[SSEServer]:
    server = SSEServer(port=port, host="127.0.0.1", keep_alive_interval=5.0, event_log=log)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_failover_between_replicas_sharing_a_log_loses_and_doubles_nothing() -> None:
    log = MemoryEventLog()
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}/events", f"http://127.0.0.1:{port_b}/events"
    async with server_on(port_b, log) as replica_b:
        replica_a = SSEServer(port=port_a, host="127.0.0.1", keep_alive_interval=5.0,
                              event_log=log)
        await replica_a.start()
        # A long backoff: the move to the other replica must not wait for it.
        client = SSEClient([url_a, url_b], reconnect_delay=30.0, max_reconnect_delay=30.0)
        async with Recorder(client) as seen:
            await wait_for(lambda: len(seen.lifecycle["connected"]) == 1)
            for i in range(5):
                replica_a.publish("task:progress", {"i": i})
            await wait_for(lambda: len(seen.of("task:progress")) == 5)
            last_on_a = seen.of("task:progress")[-1].id

            await replica_a.stop()  # `shutdown`, then the stream ends
            for i in range(5, 8):  # published meanwhile, through the other replica
                replica_b.publish("task:progress", {"i": i})
            await wait_for(lambda: len(seen.lifecycle["connected"]) == 2)
            for i in range(8, 10):
                replica_b.publish("task:progress", {"i": i})
            await wait_for(lambda: len(seen.of("task:progress")) >= 10)
            stats = client.get_stats()

        progress = seen.of("task:progress")
        assert [e.data["i"] for e in progress] == list(range(10))
        assert len({e.id for e in progress}) == 10
        assert not seen.of("stream:gap")
        assert len(seen.of("shutdown")) == 1
        first, second = seen.lifecycle["connected"]
        assert (first.data["url"], second.data["url"]) == (url_a, url_b)
        # B was asked to resume after A's last event, and knew it (same log).
        assert second.data["lastEventId"] == last_on_a
        (reconnecting,) = seen.lifecycle["reconnecting"]
        assert (reconnecting.data["url"], reconnecting.data["delay"]) == (url_b, 0.0)
        assert seen.lifecycle["disconnected"][0].data["url"] == url_a
        assert stats["url"] == url_b and stats["failovers"] == 1 and stats["reconnects"] == 1


async def test_failover_to_a_server_that_shares_nothing_reports_the_gap() -> None:
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}/events", f"http://127.0.0.1:{port_b}/events"
    async with server_on(port_b) as other:
        for i in range(3):
            other.publish("task:progress", {"on": "b", "i": i})
        server_a = SSEServer(port=port_a, host="127.0.0.1", keep_alive_interval=5.0)
        await server_a.start()
        client = SSEClient([url_a, url_b], **FAST)
        async with Recorder(client) as seen:
            await wait_for(lambda: len(seen.lifecycle["connected"]) == 1)
            server_a.publish("task:progress", {"on": "a", "i": 0})
            await wait_for(lambda: len(seen.of("task:progress")) == 1)
            last_on_a = client.last_event_id
            await server_a.stop()
            await wait_for(lambda: len(seen.of("task:progress")) == 4)

        # B cannot know A's id: it says so before replaying what it holds.
        types = [e.type for e in seen.events]
        gap_at = types.index("stream:gap")
        assert types[gap_at + 1:] == ["task:progress"] * 3
        assert seen.events[gap_at].data["requestedId"] == last_on_a
        assert [(e.data["on"], e.data["i"]) for e in seen.of("task:progress")] == [
            ("a", 0), ("b", 0), ("b", 1), ("b", 2)]


async def _status(status: int, index: int, request: Request, writer: asyncio.StreamWriter) -> None:
    body = b"" if status == 204 else b"no stream here\n"
    writer.write(head(status, "text/plain", reason="Nope") + body)


def answering(status: int) -> Any:
    async def handler(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        await _status(status, index, request, writer)

    return handler


async def test_a_404_replica_is_skipped_while_another_works() -> None:
    port = free_port()
    async with RawServer(answering(404)) as broken:
        good = SSEServer(port=port, host="127.0.0.1", keep_alive_interval=5.0)
        await good.start()
        good_url = f"http://127.0.0.1:{port}/events"
        client = SSEClient([broken.url, good_url], **FAST)
        async with Recorder(client) as seen:
            await client.connect()
            assert client.state is ConnectionState.CONNECTED
            assert client.get_stats()["url"] == good_url
            (error,) = seen.lifecycle["error"]
            assert error.data["url"] == broken.url
            assert error.data["fatal"] is False
            assert isinstance(error.data["error"], BadStatusError)

            # The good replica restarts: the client waits for it, never asking
            # the 404 one again.
            await good.stop()
            await wait_for(lambda: len(seen.lifecycle["reconnecting"]) >= 3)
            await good.start()
            await wait_for(lambda: len(seen.lifecycle["connected"]) == 2)
            good.publish("task:progress", {"i": 1})
            await wait_for(lambda: len(seen.of("task:progress")) == 1)
            assert {e.data["url"] for e in seen.lifecycle["reconnecting"]} == {good_url}
        await good.stop()
        assert len(broken.requests) == 1


async def test_every_url_permanent_fails_with_one_request_each() -> None:
    async with RawServer(answering(404)) as missing, RawServer(answering(401)) as locked:
        client = SSEClient([missing.url, locked.url], **FAST)
        errors: list[SSEEvent] = []
        client.on("error", errors.append)
        with pytest.raises(BadStatusError) as info:
            await client.connect()
        assert info.value.status == 401
        assert client.state is ConnectionState.FAILED
        assert [e.data["fatal"] for e in errors] == [False, True]
        assert [e.data["url"] for e in errors] == [missing.url, locked.url]
        await asyncio.sleep(0.1)
        assert (len(missing.requests), len(locked.requests)) == (1, 1)
        await client.disconnect()


async def test_204_everywhere_closes_quietly() -> None:
    async with RawServer(answering(204)) as one, RawServer(answering(204)) as two:
        client = SSEClient([one.url, two.url], **FAST)
        with pytest.raises(BadStatusError) as info:
            await client.connect()
        assert info.value.status == 204
        assert client.state is ConnectionState.CLOSED
        await client.disconnect()


async def test_rounds_alternate_urls_and_back_off_between_rounds() -> None:
    async with RawServer(answering(500)) as one, RawServer(answering(503)) as two:
        url_one, url_two = one.url, two.url
        client = SSEClient([url_one, url_two], reconnect_delay=0.02, reconnect_backoff=2.0,
                           max_reconnect_delay=1.0, reconnect_jitter=0.0)
        reconnecting: list[SSEEvent] = []
        client.on("reconnecting", reconnecting.append)
        client._ensure_started()
        await wait_for(lambda: len(reconnecting) >= 6)
        await client.disconnect()
    steps = [(e.data["url"], e.data["delay"]) for e in reconnecting[:6]]
    assert steps == [(url_two, 0.0), (url_one, 0.02), (url_two, 0.0), (url_one, 0.04),
                     (url_two, 0.0), (url_one, 0.08)]
    assert [e.data["attempt"] for e in reconnecting[:6]] == [1, 2, 3, 4, 5, 6]


async def test_retry_after_on_one_replica_does_not_delay_the_other() -> None:
    async def busy(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(503, "text/plain", [("Retry-After", "3600")]))

    async def fine(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head() + b"id: 1\ndata: here\n\n")
        await asyncio.sleep(5)

    async with RawServer(busy) as one, RawServer(fine) as two:
        client = SSEClient([one.url, two.url], **FAST)
        reconnecting: list[SSEEvent] = []
        client.on("reconnecting", reconnecting.append)
        await client.connect()
        assert client.get_stats()["url"] == two.url
        assert reconnecting[0].data["delay"] == 0.0
        await client.disconnect()


async def test_connection_refused_moves_on_at_once_and_attempts_are_counted() -> None:
    dead = f"http://127.0.0.1:{free_port()}/events"
    async with RawServer(answering(500)) as failing:
        client = SSEClient([dead, failing.url], max_reconnect_attempts=3, **FAST)
        with pytest.raises(ReconnectExhaustedError) as info:
            await client.connect()
        # Every URL tried counts as one attempt: 1 + 3 in all.
        assert len(failing.requests) == 2
        assert isinstance(info.value.last_error, BadStatusError)
        await client.disconnect()


async def test_without_auto_reconnect_one_round_is_tried() -> None:
    dead = f"http://127.0.0.1:{free_port()}/events"
    async with RawServer(answering(500)) as failing:
        client = SSEClient([dead, failing.url], auto_reconnect=False, **FAST)
        with pytest.raises(BadStatusError):
            await client.connect()
        assert client.state is ConnectionState.FAILED
        await asyncio.sleep(0.1)
        assert len(failing.requests) == 1
        await client.disconnect()

        async with server_on(free_port()) as server:
            client = SSEClient([dead, f"{server.url}/events"], auto_reconnect=False)
            await client.connect()
            assert client.get_stats()["url"] == f"{server.url}/events"
            await client.disconnect()


async def test_new_urls_apply_from_the_next_attempt() -> None:
    async with server_on(free_port()) as old, server_on(free_port()) as new:
        old_url, new_url = f"{old.url}/events", f"{new.url}/events"
        client = SSEClient(old_url, **FAST)
        async with Recorder(client) as seen:
            await wait_for(lambda: len(seen.lifecycle["connected"]) == 1)
            client.update_config(url=[new_url])
            await old.stop()
            await wait_for(lambda: len(seen.lifecycle["connected"]) == 2)
            assert client.get_stats()["url"] == new_url
            assert seen.lifecycle["connected"][1].data["url"] == new_url
