"""Last-Event-ID replay, gaps, slow readers, compression, stop with stuck clients."""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from typing import cast

import aiohttp
import brotli
import pytest

from otel_sse.bus.ids import parse_id
from tests.sse_helpers import FrameReader, parse_block, running_server, stream


async def test_resume_by_header_replays_contiguously_without_doubles() -> None:
    async with running_server() as server:
        seen: list[int] = []
        last_id = None
        async with stream(f"{server.url}/events") as (_, reader):
            await reader.until("connected")
            for i in range(10):
                server.publish("task:progress", {"i": i})
            for frame in await reader.take(10):
                seen.append(frame.data["i"])
                last_id = frame.id
        # Published while the client is away.
        for i in range(10, 25):
            server.publish("task:progress", {"i": i})
        assert last_id is not None
        async with stream(f"{server.url}/events", {"Last-Event-ID": last_id}) as (_, reader):
            connected = await reader.until("connected")
            assert connected.data["lastEventId"] == last_id
            for i in range(25, 30):
                server.publish("task:progress", {"i": i})
            frames = await reader.take(20)
        seen += [f.data["i"] for f in frames]
        assert seen == list(range(30))
        ids = [parse_id(f.id) for f in frames if f.id]
        assert [i.seq for i in ids if i] == sorted({i.seq for i in ids if i})


async def test_resume_by_query_and_header_wins() -> None:
    async with running_server() as server:
        for i in range(5):
            server.publish("x", {"i": i})
        first = f"{server.log.run_id}-1"
        third = f"{server.log.run_id}-3"
        async with stream(f"{server.url}/events?lastEventId={first}") as (_, reader):
            await reader.until("connected")
            assert [f.data["i"] for f in await reader.take(4)] == [1, 2, 3, 4]
        async with stream(f"{server.url}/events?lastEventId={first}",
                          {"Last-Event-ID": third}) as (_, reader):
            await reader.until("connected")
            assert [f.data["i"] for f in await reader.take(2)] == [3, 4]


async def test_trimmed_history_says_gap_then_replays_what_it_has() -> None:
    async with running_server(history_size=5) as server:
        for i in range(12):
            server.publish("x", {"i": i})
        requested = f"{server.log.run_id}-2"
        async with stream(f"{server.url}/events", {"Last-Event-ID": requested}) as (_, reader):
            await reader.until("connected")
            gap = await reader.next()
            assert gap.event == "stream:gap"
            assert gap.data["requestedId"] == requested
            assert gap.data["oldestId"] == f"{server.log.run_id}-8"
            assert gap.data["missed"] == 5
            assert [f.data["i"] for f in await reader.take(5)] == [7, 8, 9, 10, 11]


@pytest.mark.parametrize("requested", ["0badc0de-42", "from-another-server", "42"])
async def test_unknown_id_says_gap_then_history_then_live(requested: str) -> None:
    async with running_server() as server:
        for i in range(3):
            server.publish("x", {"i": i})
        async with stream(f"{server.url}/events", {"Last-Event-ID": requested}) as (resp, reader):
            assert resp.status == 200
            await reader.until("connected")
            gap = await reader.next()
            assert gap.event == "stream:gap"
            assert gap.data == {"requestedId": requested, "oldestId": f"{server.log.run_id}-1",
                                "missed": None, "timestamp": gap.data["timestamp"]}
            server.publish("x", {"i": 3})
            assert [f.data["i"] for f in await reader.take(4)] == [0, 1, 2, 3]


async def test_byte_cap_bounds_history() -> None:
    async with running_server(history_bytes=64 * 1024) as server:
        for i in range(2000):
            server.publish("x", {"i": i, "pad": "p" * 200})
        stats = server.get_stats()
        assert stats["historyBytes"] <= 64 * 1024  # type: ignore[operator]
        assert 0 < stats["historyEvents"] < 2000  # type: ignore[operator]


async def _stalled_client(port: int, tiny_buffer: bool = True,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connects, sends the request, then stops reading.

    A tiny receive buffer makes it stall sooner but also makes TCP crawl if it
    reads again, so a client that resumes keeps the default buffer.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if tiny_buffer:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    cast(asyncio.Transport, writer.transport).pause_reading()
    writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    await writer.drain()
    return reader, writer


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def test_stalled_reader_is_disconnected_others_keep_up_memory_bounded() -> None:
    async with running_server(client_queue_size=200, history_bytes=4 * 1024 * 1024) as server:
        _, stalled = await _stalled_client(server.port)
        async with stream(f"{server.url}/events") as (_, reader):
            await reader.until("connected")
            while len(server.get_clients()) < 2:
                await asyncio.sleep(0.01)
            rss_before = _rss_bytes()
            pad = "x" * 2000
            received = 0
            for batch in range(40):
                for i in range(100):
                    server.publish("bulk", {"i": batch * 100 + i, "pad": pad})
                frames = await reader.take(100, timeout=10)
                assert [f.data["i"] for f in frames] == list(range(batch * 100, batch * 100 + 100))
                received += len(frames)
            # 8 MB went out to the good client; the stalled one was cut, not buffered.
            assert received == 4000
            deadline = time.monotonic() + 5
            while server.get_stats()["slowDisconnects"] == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert server.get_stats()["slowDisconnects"] == 1
            assert len(server.get_clients()) == 1
            assert _rss_bytes() - rss_before < 40 * 1024 * 1024
        stalled.close()


async def test_drop_oldest_keeps_the_slow_reader_and_tells_it_what_it_missed() -> None:
    async with running_server(client_queue_size=50, slow_client_policy="drop-oldest",
                              keep_alive_interval=0.05) as server:
        reader_stream, writer = await _stalled_client(server.port, tiny_buffer=False)
        try:
            while not server.get_clients():
                await asyncio.sleep(0.01)
            # 30 MB: more than the socket buffers between us and the stalled reader.
            for i in range(3000):
                server.publish("bulk", {"i": i, "pad": "y" * 10_000})
            # Still behind after two policy sweeps (every 50 ms here): slow, not a burst.
            await asyncio.sleep(0.4)
            cast(asyncio.Transport, writer.transport).resume_reading()
            raw = bytearray()
            while b'"i":2999' not in raw[-20_000:]:
                chunk = await asyncio.wait_for(reader_stream.read(1 << 20), 10)
                assert chunk
                raw += chunk
            text = raw.decode("utf-8", "replace")
        finally:
            writer.close()
        blocks = text.split("\n\n")
        gaps = [parse_block(b[b.index("event: stream:gap"):]) for b in blocks
                if "event: stream:gap" in b]
        assert gaps and all(g.data["missed"] > 0 for g in gaps)
        received = text.count("event: bulk")
        assert received < 3000
        assert received + sum(g.data["missed"] for g in gaps) >= 3000
        assert server.get_stats()["slowDisconnects"] == 0


async def test_stop_finishes_within_two_seconds_with_stuck_clients() -> None:
    async with running_server() as server:
        stuck = [await _stalled_client(server.port) for _ in range(5)]
        while len(server.get_clients()) < 5:
            await asyncio.sleep(0.01)
        for i in range(2000):
            server.publish("bulk", {"i": i, "pad": "z" * 1000})
        await asyncio.sleep(0.1)
        start = time.monotonic()
        await server.stop()
        assert time.monotonic() - start < 2.0
        assert not server.running
        for _, writer in stuck:
            writer.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compressed_event_arrives_before_the_next_is_published(encoding: str) -> None:
    async with running_server(compression=True) as server, aiohttp.ClientSession(
        auto_decompress=False
    ) as session, session.get(f"{server.url}/events",
                           headers={"Accept-Encoding": encoding}) as resp:
        assert resp.headers["Content-Encoding"] == encoding
        if encoding == "gzip":
            decoder = zlib.decompressobj(31)  # wbits=31: the gzip container
            decode = decoder.decompress
        elif encoding == "deflate":
            decoder = zlib.decompressobj(15)
            decode = decoder.decompress
        else:
            br = brotli.Decompressor()
            decode = br.process
        text = ""

        async def read_until(marker: str) -> None:
            nonlocal text
            while marker not in text:
                raw = await asyncio.wait_for(resp.content.readany(), 5)
                assert raw, "stream ended"
                text += decode(raw).decode()

        await read_until("event: connected")
        server.publish("first", {"n": 1})
        # Nothing else is published until "first" has been decoded on this side.
        await read_until("event: first")
        server.publish("second", {"n": 2})
        await read_until("event: second")


async def test_no_compression_when_disabled_or_not_asked() -> None:
    async with running_server(compression=False) as server:
        async with stream(f"{server.url}/events", {"Accept-Encoding": "gzip"}) as (resp, reader):
            assert "Content-Encoding" not in resp.headers
            await reader.until("connected")
    async with running_server() as server, stream(f"{server.url}/events") as (resp, _):
        assert "Content-Encoding" not in resp.headers


async def test_reader_survives_many_clients_with_one_write_per_wakeup() -> None:
    async with running_server() as server, aiohttp.ClientSession() as session:
        readers: list[FrameReader] = []
        responses = []
        for _ in range(20):
            resp = await session.get(f"{server.url}/events",
                                     headers={"Accept-Encoding": "identity"})
            responses.append(resp)
            readers.append(FrameReader(resp))
        for reader in readers:
            await reader.until("connected")
        for i in range(500):
            server.publish("burst", {"i": i})
        for reader in readers:
            frames = await reader.take(500)
            assert [f.data["i"] for f in frames] == list(range(500))
        for resp in responses:
            resp.close()


async def test_restart_keeps_port_and_history_so_resume_loses_nothing() -> None:
    async with running_server() as server:
        port = server.port
        for i in range(3):
            server.publish("x", {"i": i})
        async with stream(f"{server.url}/events") as (_, reader):
            await reader.until("connected")
            server.publish("x", {"i": 3})
            last = (await reader.next()).id
            await server.stop()
            assert (await reader.until("shutdown")).event == "shutdown"
        for i in range(4, 7):
            server.publish("x", {"i": i})  # published while stopped: kept for the restart
        await server.start()
        assert server.port == port
        server.publish("x", {"i": 7})
        assert last is not None
        async with stream(f"{server.url}/events", {"Last-Event-ID": last}) as (_, reader):
            await reader.until("connected")
            assert [f.data["i"] for f in await reader.take(4)] == [4, 5, 6, 7]
