"""The HTTP/1.1 front door: streams served natively, everything else proxied to hypercorn."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import pytest

from otel_sse.server import SSEServer
from otel_sse.server.front import HIGH_WATER
from tests.sse_helpers import running_server, stream
from tests.test_server_protocols import H2Client


def front_server(**options: Any) -> AbstractAsyncContextManager[SSEServer]:
    """A running server with the front door on, whatever OTEL_SSE_FAST_HTTP1 says."""
    return running_server(fast_http1=True, **options)


STREAM_REQUEST = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


def _front_stats(server: SSEServer) -> dict[str, int]:
    front = server._front
    assert front is not None, "the front door is not in use"
    return front.stats


async def _read_until(reader: asyncio.StreamReader, marker: bytes, timeout: float = 5) -> bytes:
    data = b""
    while marker not in data:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        assert chunk, f"connection closed before {marker!r}: {data!r}"
        data += chunk
    return data


async def _read_to_eof(reader: asyncio.StreamReader, timeout: float = 5) -> bytes:
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), timeout):
        data += chunk
    return data


def _responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split content-length framed responses, as a pipelining client reads them."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:length]))
        data = rest[length:]
    return out


async def test_stream_is_served_natively_with_chunked_frames() -> None:
    async with front_server() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(STREAM_REQUEST)
            data = await _read_until(reader, b"event: connected")
            head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
            assert head.startswith("http/1.1 200 ok")
            assert "server: otel-sse" in head
            assert "transfer-encoding: chunked" in head
            assert "content-type: text/event-stream" in head
            assert _front_stats(server) == {"native": 1, "proxied": 0}
            (client,) = server.get_clients()
            local = writer.get_extra_info("sockname")
            assert client["remote"] == f"{local[0]}:{local[1]}"
            assert client["protocol"] == "HTTP/1.1"
            server.publish("task:created", {"taskId": "t1"})
            # One chunk per write: "<hex size>\r\n<frames>\r\n".
            chunk = re.compile(rb"(?:^|\r\n)([0-9a-f]+)\r\n(id: [^\r]*?\n\n)\r\n")
            data = b""
            while (match := chunk.search(data)) is None:
                data += await _read_until(reader, b"\r\n")
            assert int(match[1], 16) == len(match[2])
            assert b'"taskId":"t1"' in match[2]
        finally:
            writer.close()
            await writer.wait_closed()


async def test_healthz_and_other_answers_are_hypercorns() -> None:
    async with front_server() as server, aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/healthz") as resp:
            assert resp.status == 200
            assert resp.headers["Server"] == "hypercorn-h11"
        async with session.get(f"{server.url}/nope") as resp:
            assert resp.status == 404
        async with session.post(f"{server.url}/events") as resp:
            assert resp.status == 405
        async with session.options(f"{server.url}/events") as resp:
            assert resp.status == 204
        stats = _front_stats(server)
        assert stats["native"] == 0 and stats["proxied"] >= 1


async def test_h2c_prior_knowledge_is_proxied_with_the_real_client_address() -> None:
    async with front_server() as server:
        client = await H2Client.connect(server.port)
        try:
            streams = [client.open(f"/events?n={i}") for i in range(3)]
            await client.pump_until(lambda: all("event: connected" in client.bodies[s]
                                                for s in streams))
            assert all(client.headers[s]["server"] == "hypercorn-h2" for s in streams)
            server.publish("task:progress", {"i": 1})
            await client.pump_until(lambda: all("task:progress" in client.bodies[s]
                                                for s in streams))
            local = client.writer.get_extra_info("sockname")
            clients = server.get_clients()
            assert len(clients) == 3
            assert all(c["protocol"] == "HTTP/2" for c in clients)
            assert all(c["remote"] == f"{local[0]}:{local[1]}" for c in clients)
            assert _front_stats(server) == {"native": 0, "proxied": 1}
        finally:
            await client.close()
        deadline = time.monotonic() + 5
        while server.get_clients() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert server.get_clients() == []


@pytest.mark.parametrize("request_bytes", [
    b"BLAH\r\n\r\n",
    b"GET /events HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n",
    b"GET /events HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n",  # no Host
    b"GET /ev ents HTTP/1.1\r\nHost: x\r\n\r\n",
])
async def test_garbage_gets_400_and_close(request_bytes: bytes) -> None:
    async with front_server() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(request_bytes)
            data = await _read_to_eof(reader)
        finally:
            writer.close()
            await writer.wait_closed()
        assert data.startswith(b"HTTP/1.1 400"), data
        assert server.get_clients() == []


async def test_pipelined_requests_are_answered_in_order_then_garbage_closes() -> None:
    async with front_server() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /events?filters=task:%3Cx%3E HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"NONSENSE\r\n\r\n")
            data = await _read_to_eof(reader)
        finally:
            writer.close()
            await writer.wait_closed()
        answers = _responses(data)
        assert [status for status, _, _ in answers] == [400, 200, 400]
        assert answers[0][1]["server"] == "otel-sse"  # the stream path's own 400
        assert answers[0][2].endswith(b"\n") and answers[0][2].count(b"\n") == 1
        assert answers[1][1]["server"] == "hypercorn-h11"
        assert b'"status":"ok"' in answers[1][2]
        assert server.get_stats()["rejectedBadRequest"] == 1


async def test_503_when_full_keeps_the_connection_for_the_next_request() -> None:
    async with front_server(max_clients=1) as server, \
            stream(f"{server.url}/events") as (_, first):
        await first.until("connected")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            for _ in range(2):
                writer.write(STREAM_REQUEST)
                data = await _read_until(reader, b"max_clients")
                assert data.startswith(b"HTTP/1.1 503")
                assert b"retry-after: " in data.lower()
            writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await _read_to_eof(reader)
            assert data.startswith(b"HTTP/1.1 503")
            assert b"connection: close" in data.lower()
        finally:
            writer.close()
            await writer.wait_closed()
        assert _front_stats(server)["native"] == 4
        assert server.get_stats()["rejectedFull"] == 3


async def test_a_stalled_reader_does_not_grow_the_write_buffer() -> None:
    async with front_server(client_queue_size=100_000) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1024)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        writer.write(STREAM_REQUEST)
        try:
            while not server.get_clients():
                await asyncio.sleep(0.01)
            front = server._front
            assert front is not None
            (conn,) = front.connections
            assert conn.transport is not None
            frame_bytes = 2300
            largest = 0
            for batch in range(40):  # ~9 MB: well past the kernel's socket buffers
                for i in range(100):
                    server.publish("bulk", {"i": batch * 100 + i, "pad": "x" * 2000})
                await asyncio.sleep(0.01)
                largest = max(largest, conn.transport.get_write_buffer_size())
            assert conn.paused
            # At most one write (one read batch of the bus) past the high-water mark.
            assert largest < HIGH_WATER + 512 * frame_bytes
            (client,) = server.get_clients()
            assert int(client["eventsSent"]) < 4000  # type: ignore[call-overload]
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_client_disconnect_frees_the_subscriber(how: str) -> None:
    async with front_server() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(STREAM_REQUEST)
        await _read_until(reader, b"event: connected")
        assert len(server.get_clients()) == 1
        if how == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        writer.close()
        await writer.wait_closed()
        deadline = time.monotonic() + 3
        while server.get_clients() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert server.get_clients() == []
        front = server._front
        assert front is not None
        while front.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not front.connections


async def test_stop_ends_native_streams_with_the_shutdown_event() -> None:
    server = SSEServer(port=0, host="127.0.0.1", fast_http1=True)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(STREAM_REQUEST)
        await _read_until(reader, b"event: connected")
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 2
        data = await _read_to_eof(reader)
        assert b"event: shutdown" in data
        assert data.endswith(b"0\r\n\r\n")  # the last chunk: a complete response
    finally:
        writer.close()
        await writer.wait_closed()


async def test_option_off_keeps_hypercorn_on_the_public_socket() -> None:
    async with running_server(fast_http1=False) as server:
        assert server._front is None
        async with stream(f"{server.url}/events") as (resp, reader):
            assert resp.headers["Server"] == "hypercorn-h11"
            await reader.until("connected")


async def test_tls_is_never_fronted(tls_files: dict[str, object]) -> None:
    async with front_server(http2=True, cert_path=str(tls_files["cert"]),
                              key_path=str(tls_files["key"])) as server:
        assert server._front is None


async def test_a_connection_without_a_request_is_closed_when_idle() -> None:
    async with front_server() as server:
        front = server._front
        assert front is not None
        front.idle_timeout = 0.2
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /events HTTP/1.1\r\nHost:")  # and then nothing
            assert await _read_to_eof(reader, timeout=3) == b""
        finally:
            writer.close()
            await writer.wait_closed()
