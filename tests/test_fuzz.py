"""Bounded property-based fuzzing of the HTTP surface and the wire codec.

HTTP: arbitrary paths, query strings, ``Last-Event-ID`` values and headers go to
a real server over a real socket; every answer is a status line, never a 5xx,
every 4xx carries a one-line reason, and the server keeps answering.
Codec: what the encoder writes, the decoder reads back exactly, however the
bytes are split; arbitrary bytes never crash the decoder.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_sse.server import SSEServer
from otel_sse.wire.decoder import SSEDecoder
from otel_sse.wire.encoder import encode_event

_FUZZ = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


class ThreadServer:
    """An SSEServer running in a thread of its own, for synchronous fuzz tests."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        server = SSEServer(port=0, host="127.0.0.1", request_timeout=2.0, idle_timeout=2.0)
        await server.start()
        self.port = server.port
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        self.ready.set()
        await self.stop.wait()
        await server.stop()

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    with ThreadServer() as running:
        yield running


def exchange(port: int, request: bytes) -> bytes:
    """One request with ``Connection: close``; everything the server answers (the head
    and at most 4 KiB of body: a stream does not end by itself)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 4096:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            if data.startswith(b"HTTP/1.1 200") and b"text/event-stream" in data:
                break
        return data


def check_answer(answer: bytes, head: bool = False) -> None:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(answer[9:12])
    assert status < 500 or status == 503, answer[:300]
    if 400 <= status < 500 and not head:
        body = answer.partition(b"\r\n\r\n")[2]
        assert body.count(b"\n") == 1 and body.endswith(b"\n"), answer[:300]


_url_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                                           exclude_characters="#"), max_size=300)
_header_value = st.binary(max_size=200).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))
_header_name = st.from_regex(rb"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}\Z")


@_FUZZ
@given(path=_url_text, query=_url_text, last_id=_header_value,
       headers=st.lists(st.tuples(_header_name, _header_value), max_size=20),
       method=st.sampled_from([b"GET", b"HEAD", b"POST", b"OPTIONS", b"PUT", b"DELETE"]))
def test_http_surface(server: ThreadServer, path: str, query: str, last_id: bytes,
                      headers: list[tuple[bytes, bytes]], method: bytes) -> None:
    target = ("/" + path.lstrip("/")).encode() + (b"?" + query.encode() if query else b"")
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close", b"Last-Event-ID: " + last_id]
    lines += [name + b": " + value for name, value in headers
              if name.lower() not in (b"content-length", b"transfer-encoding", b"host",
                                      b"connection", b"expect")]
    check_answer(exchange(server.port, b"\r\n".join(lines) + b"\r\n\r\n"), method == b"HEAD")


@_FUZZ
@given(filters=st.lists(_url_text, max_size=80), last_id=_url_text)
def test_stream_query(server: ThreadServer, filters: list[str], last_id: str) -> None:
    query = "filters=" + ",".join(filters) + "&lastEventId=" + last_id
    check_answer(exchange(server.port, f"GET /events?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Connection: close\r\n\r\n".encode()))


@_FUZZ
@given(garbage=st.binary(min_size=1, max_size=2000))
def test_garbage_requests(server: ThreadServer, garbage: bytes) -> None:
    answer = exchange(server.port, garbage + b"\r\n\r\n")
    if answer:  # an h2 preface prefix, say, may get an HTTP/2 answer or none
        assert answer.startswith((b"HTTP/1.1 ", b"\x00")), answer[:100]
        if answer.startswith(b"HTTP/1.1 "):
            check_answer(answer)
    check_answer(exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Connection: close\r\n\r\n"))


_field = st.text(alphabet=st.characters(blacklist_characters="\r\n\0",
                                        blacklist_categories=["Cs"]), min_size=1, max_size=50)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(st.tuples(st.text(alphabet=st.characters(blacklist_characters="\r",
                                                                 blacklist_categories=["Cs"]),
                                         max_size=200),
                                 _field, _field), min_size=1, max_size=20),
       cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30))
def test_codec_round_trip_however_split(events: list[tuple[str, str, str]],
                                        cuts: list[int]) -> None:
    wire = b"".join(encode_event(data, name, event_id) for data, name, event_id in events)
    decoder = SSEDecoder()
    got = []
    start = 0
    for cut in [*sorted(set(c for c in cuts if c < len(wire))), len(wire)]:
        got += decoder.feed(wire[start:cut])
        start = cut
    assert [(e.event, e.data, e.id) for e in got] == [
        (name, data, event_id) for data, name, event_id in events]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=4000), cut=st.integers(min_value=0, max_value=4000))
def test_decoder_never_crashes_and_does_not_depend_on_the_split(data: bytes, cut: int) -> None:
    whole = SSEDecoder().feed(data)
    split = SSEDecoder()
    parts = split.feed(data[:cut]) + split.feed(data[cut:])
    assert parts == whole
