"""SSEClient end to end against a raw socket server that writes exact bytes."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import importlib.util
import itertools
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from otel_sse.client import ConnectionState, SSEClient, SSEEvent, compute_reconnect_delay
from otel_sse.client.backoff import parse_retry_after
from otel_sse.client.client import build_url
from otel_sse.errors import (
    BadContentTypeError,
    BadStatusError,
    ConfigError,
    ReconnectExhaustedError,
)
from tests._client_helpers import (
    FAST,
    RawServer,
    Request,
    body_then_close,
    collect,
    head,
    wait_for,
    write_pieces,
)


def recorder(client: SSEClient, pattern: str) -> list[SSEEvent]:
    seen: list[SSEEvent] = []
    client.on(pattern, seen.append)
    return seen


# Every parsing rule in one stream; expected as (type, raw data, id).
RULES_STREAM = (
    "\ufeff: comment first\r\n"
    "id: 1\r\nevent: task:created\r\ndata: {\"name\":\"é€😀\"}\r\n\r\n"
    "data:no-space\rdata:  two spaces\r\r"
    "id\ndata\n\n"
    "id: 2\nretry: 25\nfoo: ignored\ndata: first\ndata: second\n\n"
    "id: 3\x004\nevent\ndata: nul id ignored\n\n"
    "event: nothing\n\n"
    "id: 5\n\n"
    "retry: 1x\ndata: after id-only block\n\n"
    ": keep-alive\n"
    "event: agent:spawned\ndata: last\n\n"
    "data: unfinished"
).encode()
RULES_EXPECTED = [
    ("task:created", '{"name":"é€😀"}', "1"),
    ("message", "no-space\n two spaces", "1"),
    ("message", "", ""),
    ("message", "first\nsecond", "2"),
    ("message", "nul id ignored", "2"),
    ("message", "after id-only block", "5"),
    ("agent:spawned", "last", "5"),
]


def _cut_inside(stream: bytes, marker: bytes, offset: int) -> list[bytes]:
    at = stream.index(marker) + offset
    return [stream[:at], stream[at:]]


SPLITS: dict[str, list[bytes]] = {
    "whole": [RULES_STREAM],
    "one-byte": [RULES_STREAM[i : i + 1] for i in range(len(RULES_STREAM))],
    "inside-crlf": _cut_inside(RULES_STREAM, b"\r\n\r\n", 1),
    "inside-bom": _cut_inside(RULES_STREAM, b"\xbb", 0),
    "inside-emoji": _cut_inside(RULES_STREAM, "😀".encode(), 2),
    "inside-euro": _cut_inside(RULES_STREAM, "€".encode(), 1),
    "cr-then-lf": _cut_inside(RULES_STREAM, b"\r\nevent", 1),
}


@pytest.mark.parametrize("split", list(SPLITS))
async def test_every_parsing_rule_end_to_end(split: str) -> None:
    pieces = SPLITS[split]
    async with RawServer(body_then_close(pieces, [b"id: 6\ndata: next\n\n"])) as server:
        client = SSEClient(server.url, **FAST)
        async with client:
            events = await collect(client, len(RULES_EXPECTED) + 1, timeout=20)
        assert [(e.type, e.raw, e.id) for e in events[:-1]] == RULES_EXPECTED
        assert events[0].data == {"name": "é€😀"}
        assert events[3].retry == 25
        # The unfinished block was dropped, the committed id (5) resumed.
        assert server.requests[1].headers["last-event-id"] == "5"
        assert (events[-1].raw, events[-1].id) == ("next", "6")


async def test_data_is_json_when_json_else_string() -> None:
    stream = b'data: {"a":[1,2]}\n\ndata: 12\n\ndata: plain text\n\ndata: {broken\n\n'
    async with RawServer(body_then_close([stream])) as server:
        client = SSEClient(server.url, **FAST)
        async with client:
            events = await collect(client, 4)
    assert [e.data for e in events] == [{"a": [1, 2]}, 12, "plain text", "{broken"]
    assert [e.raw for e in events] == ['{"a":[1,2]}', "12", "plain text", "{broken"]
    with pytest.raises(AttributeError):
        events[0].type = "other"  # type: ignore[misc]


async def test_parse_error_event_for_bad_json_and_bad_utf8() -> None:
    stream = b'data: {"ok":1}\n\ndata: {broken\n\ndata: \xff\n\n'
    async with RawServer(body_then_close([stream])) as server:
        client = SSEClient(server.url, **FAST)
        errors = recorder(client, "parse_error")
        async with client:
            await collect(client, 3)
    messages = [e.data["message"] for e in errors]
    assert any("looks like JSON" in m for m in messages)
    assert any("UTF-8" in m for m in messages)
    assert client.get_stats()["parse_errors"] == 2


# ---------------------------------------------------------------- handshake


async def test_server_handshake_goes_to_on_connected_not_to_iteration() -> None:
    hello = (
        b'id: 0\nevent: connected\n'
        b'data: {"clientId":"c-1","serverTime":1,"lastEventId":null}\n\n'
    )
    async with RawServer(
        body_then_close([hello, b"id: 1\ndata: a\n\n"], [hello, b"id: 2\ndata: b\n\n"])
    ) as server:
        client = SSEClient(server.url, **FAST)
        connected = recorder(client, "connected")
        async with client:
            events = await collect(client, 2)
        assert [e.raw for e in events] == ["a", "b"]
        assert [e.data["clientId"] for e in connected] == ["c-1", "c-1"]
        assert [e.data["url"] for e in connected] == [server.url, server.url]


async def test_synthetic_connected_when_server_has_no_handshake() -> None:
    async with RawServer(body_then_close([b"id: 1\ndata: a\n\n"])) as server:
        client = SSEClient(server.url, last_event_id="0", **FAST)
        connected = recorder(client, "connected")
        async with client:
            events = await collect(client, 1)
        assert events[0].raw == "a"
        assert connected[0].data == {
            "clientId": None, "serverTime": None, "lastEventId": "0", "synthetic": True,
            "url": server.url,
        }


# ------------------------------------------------------------ HTTP status


async def test_204_means_stop() -> None:
    async with RawServer(body_then_close([b""], status=204)) as server:
        client = SSEClient(server.url, **FAST)
        with pytest.raises(BadStatusError) as info:
            await client.connect()
        assert info.value.status == 204
        assert client.state is ConnectionState.CLOSED
        await asyncio.sleep(0.1)
        assert len(server.requests) == 1
        # async for ends quietly.
        assert await collect(client, 1) == []
        await client.disconnect()


async def test_404_is_permanent_bad_status() -> None:
    async def not_found(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(404, "text/plain", reason="Not Found") + b"no such stream\n")

    async with RawServer(not_found) as server:
        client = SSEClient(server.url, **FAST)
        errors = recorder(client, "error")
        with pytest.raises(BadStatusError) as info:
            await client.connect()
        assert info.value.status == 404
        assert "no such stream" in str(info.value)
        assert client.state is ConnectionState.FAILED
        await asyncio.sleep(0.1)
        assert len(server.requests) == 1
        assert errors and errors[0].data["fatal"] is True
        with pytest.raises(BadStatusError):
            await collect(client, 1)
        await client.disconnect()


async def test_wrong_content_type_is_permanent() -> None:
    async def html(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, "text/html") + b"<html></html>")

    async with RawServer(html) as server:
        client = SSEClient(server.url, **FAST)
        with pytest.raises(BadContentTypeError) as info:
            await client.connect()
        assert info.value.content_type == "text/html"
        assert client.state is ConnectionState.FAILED
        await asyncio.sleep(0.1)
        assert len(server.requests) == 1
        await client.disconnect()


@pytest.mark.parametrize("status", [500, 502, 408, 429])
async def test_transient_statuses_reconnect(status: int) -> None:
    async def flaky(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        if index == 0:
            writer.write(head(status, "text/plain"))
        else:
            writer.write(head() + b"data: ok\n\n")

    async with RawServer(flaky) as server:
        client = SSEClient(server.url, **FAST)
        async with client:
            events = await collect(client, 1)
    assert events[0].raw == "ok"
    assert client.get_stats()["reconnects"] == 1


@pytest.mark.parametrize("http_date", [False, True])
async def test_503_honours_retry_after(http_date: bool) -> None:
    async def busy(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        if index == 0:
            value = email.utils.formatdate(time.time() + 2, usegmt=True) if http_date else "1"
            writer.write(head(503, "text/plain", [("Retry-After", value)]))
        else:
            writer.write(head() + b"data: ok\n\n")

    async with RawServer(busy) as server:
        client = SSEClient(server.url, **FAST)
        reconnecting = recorder(client, "reconnecting")
        async with client:
            await collect(client, 1)
        gap = server.connection_times[1] - server.connection_times[0]
        assert gap >= 0.9, gap
        assert reconnecting[0].data["delay"] >= 0.9


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("99999999") == 3600.0


# ---------------------------------------------------------------- backoff


def test_backoff_delay_computation() -> None:
    delays = [compute_reconnect_delay(n, 1.0, 2.0, 30.0) for n in range(1, 8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert compute_reconnect_delay(3, 0.5, 1.0, 30.0) == 0.5
    assert compute_reconnect_delay(10_000, 1.0, 2.0, 30.0) == 30.0
    assert compute_reconnect_delay(1, 0.0, 2.0, 30.0) == 0.0
    for n in range(1, 10):
        nominal = min(1.0 * 2.0 ** (n - 1), 30.0)
        for _ in range(50):
            jittered = compute_reconnect_delay(n, 1.0, 2.0, 30.0, jitter=0.2)
            assert nominal * 0.8 <= jittered <= min(nominal * 1.2, 30.0)
    with pytest.raises(ValueError):
        compute_reconnect_delay(0, 1.0, 2.0, 30.0)


async def test_backoff_timing_end_to_end() -> None:
    async def failing(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(500, "text/plain"))

    async with RawServer(failing) as server:
        client = SSEClient(
            server.url, reconnect_delay=0.05, reconnect_backoff=2.0, max_reconnect_delay=0.3,
            reconnect_jitter=0.0,
        )
        reconnecting = recorder(client, "reconnecting")
        client._ensure_started()
        await wait_for(lambda: len(server.requests) >= 6)
        await client.disconnect()
    times = server.connection_times
    gaps = [b - a for a, b in itertools.pairwise(times)][:5]
    expected = [0.05, 0.1, 0.2, 0.3, 0.3]
    for gap, want in zip(gaps, expected, strict=True):
        assert want * 0.9 <= gap <= want + 0.15, (gaps, expected)
    assert [e.data["attempt"] for e in reconnecting[:5]] == [1, 2, 3, 4, 5]
    assert [e.data["delay"] for e in reconnecting[:5]] == expected


async def test_max_reconnect_attempts_then_failed() -> None:
    async def failing(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(500, "text/plain"))

    async with RawServer(failing) as server:
        client = SSEClient(server.url, max_reconnect_attempts=2, **FAST)
        with pytest.raises(ReconnectExhaustedError) as info:
            await client.connect()
        assert isinstance(info.value.last_error, BadStatusError)
        assert client.state is ConnectionState.FAILED
        assert len(server.requests) == 3
        await client.disconnect()


async def test_attempts_reset_after_a_successful_connection() -> None:
    async def alternate(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        if index % 2:
            writer.write(head(500, "text/plain"))
        else:
            writer.write(head() + f"id: {index}\ndata: {index}\n\n".encode())

    async with RawServer(alternate) as server:
        # Each drop costs two attempts (a 500, then success); with two allowed,
        # only the reset after each success keeps this client alive.
        client = SSEClient(server.url, max_reconnect_attempts=2, **FAST)
        async with client:
            events = await collect(client, 3)
        assert [e.raw for e in events] == ["0", "2", "4"]


async def test_retry_field_sets_base_delay() -> None:
    async with RawServer(
        body_then_close([b"retry: 300\ndata: a\n\n"], [b"data: b\n\n"])
    ) as server:
        client = SSEClient(server.url, reconnect_delay=0.01, max_reconnect_delay=5.0,
                           reconnect_jitter=0.0)
        reconnecting = recorder(client, "reconnecting")
        disconnected = recorder(client, "disconnected")
        async with client:
            events = await collect(client, 2)
        assert [e.raw for e in events] == ["a", "b"]
        assert reconnecting[0].data == {"attempt": 1, "delay": 0.3, "url": server.url}
        assert disconnected[0].data["will_reconnect"] is True
        assert disconnected[0].data["reconnect_delay"] == 0.3
        assert server.connection_times[1] - server.connection_times[0] >= 0.29
        assert client.get_stats()["retry_ms"] == 300


async def test_no_auto_reconnect_ends_iteration() -> None:
    async with RawServer(body_then_close([b"data: a\n\n"])) as server:
        client = SSEClient(server.url, auto_reconnect=False)
        disconnected = recorder(client, "disconnected")
        events = await collect(client, 10)
        assert [e.raw for e in events] == ["a"]
        assert client.state is ConnectionState.DISCONNECTED
        assert disconnected[0].data["will_reconnect"] is False
        await client.disconnect()
        assert len(server.requests) == 1


# --------------------------------------------------------------- requests


async def test_request_headers_and_last_event_id() -> None:
    async with RawServer(
        body_then_close([b"id: 7\ndata: a\n\n"], [b"id: 8\ndata: b\n\n"])
    ) as server:
        client = SSEClient(
            server.url,
            headers={"Authorization": "Bearer s3cret", "X-Team": "blue"},
            last_event_id="6",
            **FAST,
        )
        async with client:
            await collect(client, 2)
        first, second = server.requests[0].headers, server.requests[1].headers
        assert first["authorization"] == "Bearer s3cret"
        assert first["x-team"] == "blue"
        assert first["accept"] == "text/event-stream"
        assert first["cache-control"] == "no-store"
        assert first["last-event-id"] == "6"
        assert second["last-event-id"] == "7"
        assert second["authorization"] == "Bearer s3cret"
        encodings = first["accept-encoding"]
        assert ("br" in encodings) == (importlib.util.find_spec("brotli") is not None)
        assert "gzip" in encodings
        assert client.last_event_id == "8"


async def test_filters_query_and_local_filtering() -> None:
    stream = (
        b"event: task:created\ndata: 1\n\n"
        b"event: llm:token\ndata: 2\n\n"
        b"event: stream:gap\ndata: {}\n\n"
        b"event: agent:spawned\ndata: 3\n\n"
        b"event: agent:stopped\ndata: 4\n\n"
    )
    async with RawServer(body_then_close([stream])) as server:
        client = SSEClient(
            server.url + "?token=a%20b&filters=old", filters=["task:*", "agent:spawned"], **FAST
        )
        async with client:
            events = await collect(client, 3)
        target = server.requests[0].target
        assert target == "/events?token=a%20b&filters=task:*,agent:spawned"
        assert [e.type for e in events] == ["task:created", "stream:gap", "agent:spawned"]


def test_build_url_merges_query() -> None:
    assert build_url("http://h/events", ()) == "http://h/events"
    assert build_url("http://h/events", ("task:*",)) == "http://h/events?filters=task:*"
    assert (
        build_url("http://h/e?a=1&b=&filters=x#frag", ("a:*", "b"))
        == "http://h/e?a=1&b=&filters=a:*,b#frag"
    )


# ---------------------------------------------------------------- handlers


async def test_handler_exception_becomes_error_event() -> None:
    stream = b"event: task:a\ndata: 1\n\nevent: task:b\ndata: 2\n\n"
    async with RawServer(body_then_close([stream])) as server:
        client = SSEClient(server.url, **FAST)

        def broken(event: SSEEvent) -> None:
            raise RuntimeError(f"boom on {event.type}")

        got: list[str] = []

        async def fine(event: SSEEvent) -> None:
            await asyncio.sleep(0)
            got.append(event.type)

        client.on("task:*", broken)
        client.on("task:*", fine)
        errors = recorder(client, "error")
        async with client:
            events = await collect(client, 2)
        assert [e.type for e in events] == ["task:a", "task:b"]
        assert got == ["task:a", "task:b"]
        assert [str(e.data["error"]) for e in errors] == ["boom on task:a", "boom on task:b"]
        assert errors[0].data["event"] == events[0]
        assert client.get_stats()["handler_errors"] == 2
        assert client.state is ConnectionState.CLOSED


async def test_handler_errors_logged_when_nobody_listens(caplog: pytest.LogCaptureFixture) -> None:
    async with RawServer(body_then_close([b"data: 1\n\n"])) as server:
        client = SSEClient(server.url, **FAST)
        client.on("message", lambda e: 1 / 0)
        async with client:
            await collect(client, 1)
    assert any("raised" in r.getMessage() for r in caplog.records)


async def test_on_off_once_and_patterns() -> None:
    stream = b"".join(f"event: {t}\ndata: {i}\n\n".encode() for i, t in enumerate(
        ["task:created", "agent:output:stdout", "task:created", "llm:token"]
    ))
    async with RawServer(body_then_close([stream])) as server:
        client = SSEClient(server.url, **FAST)
        every = recorder(client, "*")
        agents = recorder(client, "agent:*")
        first: list[SSEEvent] = []
        client.once("task:*", first.append)
        removed: list[SSEEvent] = []
        client.on("llm:token", removed.append)
        assert client.off("llm:token", removed.append) == 1
        assert client.off("nothing") == 0
        async with client:
            await collect(client, 4)
        assert [e.raw for e in first] == ["0"]
        assert [e.type for e in agents] == ["agent:output:stdout"]
        assert removed == []
        server_events = [e for e in every if e.type not in ("connected",)]
        assert [e.raw for e in server_events] == ["0", "1", "2", "3"]
    with pytest.raises(ConfigError):
        client.on("bad pattern!", print)


async def test_disconnect_from_a_handler() -> None:
    stream = b"data: 1\n\ndata: 2\n\ndata: 3\n\n"
    async with RawServer(body_then_close([stream], hold=5)) as server:
        client = SSEClient(server.url, **FAST)

        async def stop(event: SSEEvent) -> None:
            if event.raw == "2":
                await client.disconnect()

        client.on("message", stop)
        events = await collect(client, 10)
        assert [e.raw for e in events] == ["1", "2"]
        assert client.state is ConnectionState.CLOSED
        await client.disconnect()


# ------------------------------------------------------- streams, timeouts


async def test_read_timeout_detects_dead_peer() -> None:
    async def stall(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head() + f"id: {index}\ndata: {index}\n\n".encode())
        await writer.drain()
        await asyncio.sleep(30)

    async with RawServer(stall) as server:
        client = SSEClient(server.url, read_timeout=0.3, **FAST)
        disconnected = recorder(client, "disconnected")
        async with client:
            events = await collect(client, 2)
        assert [e.raw for e in events] == ["0", "1"]
        assert "timeout" in disconnected[0].data["reason"]


def _gzip() -> Any:
    return zlib.compressobj(6, zlib.DEFLATED, 31)


def _deflate() -> Any:
    return zlib.compressobj(6, zlib.DEFLATED, 15)


class _Brotli:
    def __init__(self) -> None:
        import brotli

        self._c = brotli.Compressor()

    def compress(self, data: bytes) -> bytes:
        return bytes(self._c.process(data))

    def flush(self, mode: int = 0) -> bytes:
        return bytes(self._c.flush())


COMPRESSORS: dict[str, Callable[[], Any]] = {"gzip": _gzip, "deflate": _deflate}
if importlib.util.find_spec("brotli") is not None:
    COMPRESSORS["br"] = _Brotli


@pytest.mark.parametrize("encoding", list(COMPRESSORS))
async def test_compressed_stream_decodes_incrementally(encoding: str) -> None:
    first_seen = asyncio.Event()

    async def compressed(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        assert encoding in request.headers["accept-encoding"]
        compressor = COMPRESSORS[encoding]()
        writer.write(head(extra=[("Content-Encoding", encoding)]))
        for i in range(3):
            data = f"id: {i}\nevent: tick\ndata: {{\"n\": {i}, \"é\": true}}\n\n".encode()
            writer.write(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))
            await writer.drain()
            if i == 0:
                # The second event is only sent once the first was decoded.
                await asyncio.wait_for(first_seen.wait(), 5)
        await asyncio.sleep(5)

    async with RawServer(compressed) as server:
        client = SSEClient(server.url, **FAST)
        client.on("tick", lambda e: first_seen.set())
        async with client:
            events = await collect(client, 3)
    assert [e.data["n"] for e in events] == [0, 1, 2]


async def test_backpressure_and_buffer_limit_without_consumer() -> None:
    stream = b"".join(f"data: {i}\n\n".encode() for i in range(50))
    async with RawServer(body_then_close([stream], hold=5)) as server:
        client = SSEClient(server.url, max_buffered_events=10, **FAST)
        client._consumer_grace = 0.1
        count = recorder(client, "message")
        await client.connect()
        await wait_for(lambda: len(count) == 50)
        # The buffer waits a moment for an ``async for`` to start, then drops the oldest.
        await wait_for(lambda: client.get_stats()["events_dropped"] == 40)
        stats = client.get_stats()
        assert stats["buffered_events"] == 10
        assert stats["events_dropped"] == 40
        # A later ``async for`` gets the newest buffered events.
        events = await collect(client, 10)
        assert [e.raw for e in events] == [str(i) for i in range(40, 50)]
        await client.disconnect()


async def test_slow_consumer_gets_every_event() -> None:
    stream = b"".join(f"data: {i}\n\n".encode() for i in range(200))
    async with RawServer(body_then_close([stream], hold=5)) as server:
        client = SSEClient(server.url, max_buffered_events=8, **FAST)
        async with client:
            seen: list[str] = []
            async with asyncio.timeout(10):
                async for event in client:
                    seen.append(event.raw)
                    if len(seen) % 20 == 0:
                        await asyncio.sleep(0.01)
                    if len(seen) == 200:
                        break
        assert seen == [str(i) for i in range(200)]
        assert client.get_stats()["events_dropped"] == 0


# ------------------------------------------------------ API and lifecycle


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"reconnect_delay": -1}, "reconnect_delay"),
        ({"reconnect_delay": float("nan")}, "reconnect_delay"),
        ({"max_reconnect_delay": 0.5}, "max_reconnect_delay"),
        ({"reconnect_backoff": 0.5}, "reconnect_backoff"),
        ({"max_reconnect_attempts": -1}, "max_reconnect_attempts"),
        ({"max_reconnect_attempts": 1.5}, "max_reconnect_attempts"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"http2": "yes"}, "http2"),
        ({"reconnect_jitter": 1.5}, "reconnect_jitter"),
        ({"headers": {"X": "a\r\nb"}}, "header"),
        ({"filters": ["bad filter"]}, "filter"),
        ({"last_event_id": "a\nb"}, "last_event_id"),
    ],
)
def test_options_validated_at_construction(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        SSEClient("http://127.0.0.1:1/events", **options)


def test_bad_url() -> None:
    with pytest.raises(ConfigError, match="url"):
        SSEClient("ftp://example.com/")
    with pytest.raises(ConfigError, match="url"):
        SSEClient("/relative")


async def test_update_config_and_stats() -> None:
    two_streams = body_then_close([b"id: 1\ndata: a\n\n"], [b"id: 2\ndata: b\n\n"])
    async with RawServer(two_streams) as server:
        client = SSEClient("http://127.0.0.1:1/nowhere", **FAST)
        client.update_config(url=server.url, headers={"Authorization": "Bearer t"},
                             filters="message", last_event_id="0")
        with pytest.raises(ConfigError, match="unknown"):
            client.update_config(colour="blue")
        with pytest.raises(ConfigError, match="reconnect_backoff"):
            client.update_config(reconnect_backoff=0)
        async with client:
            stats = client.get_stats()
            assert stats["state"] == "connected"
            assert stats["connected_since"] is not None
            assert stats["http_version"] == "1.1"
            await collect(client, 2)
            stats = client.get_stats()
        assert server.requests[0].headers["authorization"] == "Bearer t"
        assert server.requests[0].headers["last-event-id"] == "0"
        assert server.requests[0].target == "/events?filters=message"
        assert stats["events_received"] == 2
        assert stats["connections"] == 2
        assert stats["reconnects"] == 1
        assert stats["bytes_received"] > 0
        assert stats["last_event_id"] == "2"
        assert client.get_stats()["state"] == "closed"


async def test_connect_waits_through_transient_failures() -> None:
    async def late(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        if index < 2:
            writer.write(head(503, "text/plain"))
        else:
            writer.write(head() + b"data: finally\n\n")
            await asyncio.sleep(5)

    async with RawServer(late) as server:
        client = SSEClient(server.url, **FAST)
        states: list[ConnectionState] = []
        client.on("reconnecting", lambda e: states.append(client.state))
        await client.connect()
        assert client.state is ConnectionState.CONNECTED
        assert states == [ConnectionState.RECONNECTING] * 2
        await client.disconnect()
        assert state_of(client) is ConnectionState.CLOSED


def state_of(client: SSEClient) -> ConnectionState:
    """The state now (a call, so that the type checker does not keep an earlier narrowing)."""
    return client.state


async def test_connection_refused_retries_then_fails() -> None:
    async with RawServer(body_then_close([b""])) as server:
        url = server.url
    client = SSEClient(url, max_reconnect_attempts=1, **FAST)
    errors = recorder(client, "error")
    with pytest.raises(ReconnectExhaustedError):
        await client.connect()
    assert len(errors) == 3  # two failed attempts, then giving up
    assert client.state is ConnectionState.FAILED
    await client.disconnect()


async def test_disconnect_is_idempotent_and_restartable() -> None:
    two_streams = body_then_close([b"id: 1\ndata: a\n\n"], [b"id: 2\ndata: b\n\n"])
    async with RawServer(two_streams) as server:
        client = SSEClient(server.url, **FAST)
        await client.disconnect()
        assert state_of(client) is ConnectionState.CLOSED
        async with client:
            assert [e.raw for e in await collect(client, 1)] == ["a"]
        await client.disconnect()
        # Iterating again reconnects, resuming after id 1.
        assert [e.raw for e in await collect(client, 1)] == ["b"]
        assert server.requests[-1].headers["last-event-id"] == "1"
        await client.disconnect()


async def test_a_restart_while_disconnect_finishes_is_left_alone() -> None:
    from tests.sse_helpers import running_server

    async with running_server(keep_alive_interval=5.0) as server:
        client = SSEClient(f"{server.url}/events", **FAST)
        await client.connect()
        old = client._task
        assert old is not None
        restarted: list[asyncio.Future[None]] = []
        # connect() again the moment the old connection's task ends, before
        # disconnect() resumes: the new connection must survive it.
        old.add_done_callback(lambda _: restarted.append(asyncio.ensure_future(client.connect())))
        await client.disconnect()
        await asyncio.wait_for(restarted[0], 10)
        assert client.state is ConnectionState.CONNECTED
        server.publish("task:progress", {"i": 1})
        (event,) = await collect(client, 1)
        assert event.data["i"] == 1
        assert client.state is ConnectionState.CONNECTED
        await client.disconnect()
        assert state_of(client) is ConnectionState.CLOSED


def test_event_object() -> None:
    event = SSEEvent("task:created", {"a": 1}, id="4")
    assert (event.type, event.data, event.raw, event.id, event.retry) == (
        "task:created", {"a": 1}, '{"a":1}', "4", None,
    )
    assert event == SSEEvent("task:created", raw='{"a":1}', id="4")
    assert hash(event) == hash(SSEEvent("task:created", raw='{"a":1}', id="4"))
    assert "task:created" in repr(event)
    with pytest.raises(AttributeError):
        event.data = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]
    import pickle

    assert pickle.loads(pickle.dumps(event)) == event


# -------------------------------------------------------------- sync API


async def test_iter_sync_in_a_thread() -> None:
    stream = b"".join(f"id: {i}\ndata: {i}\n\n".encode() for i in range(5))
    async with RawServer(body_then_close([stream], hold=5)) as server:

        def consume() -> list[str]:
            out: list[str] = []
            with contextlib.closing(SSEClient.iter_sync(server.url, **FAST)) as events:
                for event in events:
                    out.append(event.raw)
                    if len(out) == 3:
                        break
            return out

        assert await asyncio.to_thread(consume) == ["0", "1", "2"]


async def test_iter_sync_raises_permanent_errors() -> None:
    async def gone(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(410, "text/plain"))

    async with RawServer(gone) as server:

        def consume() -> None:
            for _ in SSEClient.iter_sync(server.url, **FAST):
                pass

        with pytest.raises(BadStatusError):
            await asyncio.to_thread(consume)


def test_iter_sync_rejects_bad_options_at_once() -> None:
    with pytest.raises(ConfigError):
        next(SSEClient.iter_sync("http://127.0.0.1:1/", reconnect_delay=-1))


async def test_write_pieces_helper_used() -> None:
    # The helper's pause lets a stream arrive in many reads; make sure that
    # path (small reads) is exercised with a 1-byte write.
    async def tiny(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head())
        await write_pieces(writer, [b"d", b"ata", b": ", b"x\r", b"\n", b"\r\n"])
        await asyncio.sleep(5)

    async with RawServer(tiny) as server:
        client = SSEClient(server.url, **FAST)
        async with client:
            assert [e.raw for e in await collect(client, 1)] == ["x"]
