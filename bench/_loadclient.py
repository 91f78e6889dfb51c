"""Load client for the fan-out benchmark: N raw HTTP/1.1 SSE connections in one process.

Run by ``fanout.py --client``; driven by stdin / stdout lines:

* connects ``n`` clients (at most ``concurrency`` connects in flight, all within
  ``connect_timeout``), then prints ``connected <ok> <failed> <seconds>``;
* on ``expect <P>`` (the number of events the server published) it waits until
  every connected client has ``P`` bench events or ``drain`` seconds have passed,
  then prints ``result <json>``;
* on ``window`` it prints ``window <json>``: the latency samples taken since the
  previous ``window`` (or the connect), as up to ``WINDOW_POINTS`` evenly spaced
  quantiles with their count, and running totals (events received, clients
  closed, sequence errors); those samples are then dropped, so a later
  ``expect`` reports only what came after (``abuse.py`` asks for windows,
  ``fanout.py`` never does);
* on ``quit`` (or EOF) it closes everything and exits.

It has to keep up with 200,000 deliveries/s on a machine whose other core runs the
server, so it never parses JSON per event:

* the body is de-chunked by a small state machine (hypercorn, uvicorn and aiohttp
  all stream with ``Transfer-Encoding: chunked``; a chunk boundary could otherwise
  split a pattern);
* events are counted by counting ``"seq":`` in the de-chunked bytes (each bench
  payload has it exactly once; ``connected``, keep-alive and other events do not),
  carrying the last 5 bytes over so that a pattern split between reads is counted;
* only on *sampled* clients is every event's ``seq`` and ``t`` read with
  ``bytes.find``: the latency sample is ``time.time_ns()`` at the read minus ``t``,
  and ``seq`` must go up by exactly one from event to event. Sampled clients are
  every k-th client, k chosen so that about ``sample_per_s`` events/s are sampled
  (20,000 by default: every event on 20 % of the clients at 100 x 1,000/s, on 10 %
  at 1,000 x 200/s).

Reads are what a client costs (on loopback most of it is the kernel's: one
``recv`` and one epoll wake-up per read), and a server that writes every event
separately causes one read per delivery. So the *non-sampled* clients set
``SO_RCVLOWAT`` (``lowat`` bytes, 4 KiB by default: ~16 events): the kernel wakes
them only once that much is queued, and they read in batches. This changes nothing
the server does or pays for (its sends land in the receive buffer all the same; if
anything it saves the server a few wake-ups it would not pay for with remote
clients either), but it does delay those clients' reads, so latency and the time
of the last delivery come from the sampled clients only, which read every event
as it arrives. On ``expect`` the sampled clients are waited for first, then the
low-water mark is set back to 1 byte (which makes the kernel report the remainder)
and every client is waited for.

Every client records its first and last ``seq`` (parsed once each), its count and
the time of its last bench event, from which the driver gets lost events and
deliveries/s.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol, cast

from _proc import commands, install_uvloop, raise_nofile
from _results import percentile

SEQ = b'"seq":'
T = b',"t":'
_HEADERS, _BODY, _CLOSED = 0, 1, 2
# Latency quantiles per ``window`` answer: enough for a p99 of merged windows.
WINDOW_POINTS = 1000


def _first_seq(buf: bytes) -> int:
    i = buf.find(SEQ)
    j = buf.find(b",", i)
    try:
        return int(buf[i + 6 : j])
    except ValueError:
        return -1


def _last_seq(buf: bytes) -> int:
    i = buf.rfind(SEQ)
    j = buf.find(b",", i)
    try:
        return int(buf[i + 6 : j]) if i >= 0 and j >= 0 else -1
    except ValueError:
        return -1


class Stream(Protocol):
    """What a connection feeds with one stream's body (and tells how it ended)."""

    status: int
    closed: bool
    lost_conn: bool
    sampled: bool
    last_ns: int  # time.time_ns() of its last event

    def body(self, data: bytes) -> None: ...


class Counter:
    """One stream's events: count ``"seq":``, and on sampled streams time every event."""

    def __init__(self, sampled: bool, latencies: list[int]) -> None:
        self.sampled = sampled
        self.latencies = latencies
        self.status = 0
        self.count = 0
        self.tail = b""
        self.first = -1
        self.last_buf = b""
        self.last_ns = 0
        self.carry = b""
        self.prev_seq = -1
        self.seq_errors = 0
        self.lost_conn = False
        self.closed = False

    def body(self, data: bytes) -> None:
        buf = self.tail + data
        c = buf.count(SEQ)
        self.tail = buf[-5:]
        if not c:
            return
        now = time.time_ns()
        self.last_ns = now
        if self.first < 0:
            self.first = _first_seq(buf)
        self.count += c
        self.last_buf = buf
        if self.sampled:
            self.sample(data, now)

    def sample(self, data: bytes, now: int) -> None:
        buf = self.carry + data if self.carry else data
        i = buf.find(SEQ)
        lat = self.latencies
        while i >= 0:
            j = buf.find(T, i)
            k = buf.find(b",", j + 5) if j >= 0 else -1
            if k < 0:  # the event continues in the next read
                self.carry = buf[i:]
                return
            seq = int(buf[i + 6 : j])
            if seq != self.prev_seq + 1 and self.prev_seq >= 0:
                self.seq_errors += 1
            self.prev_seq = seq
            lat.append(now - int(buf[j + 5 : k]))
            i = buf.find(SEQ, k)
        self.carry = buf[-5:]

    def last_seq(self) -> int:
        return _last_seq(self.last_buf) if self.last_buf else -1


class Conn(asyncio.Protocol):
    """One HTTP/1.1 SSE client: de-chunk, and hand the body to its :class:`Stream`."""

    def __init__(self, request: bytes, counter: Stream) -> None:
        self.request = request
        self.counter = counter
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[int] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.state = _HEADERS
        self.hbuf = b""
        self.chunked = False
        # de-chunker: bytes left in the current chunk, CRLF bytes to skip, partial size line
        self.left = 0
        self.skip = 0
        self.sizebuf = b""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state != _CLOSED:
            self.counter.lost_conn = True
        self.state = _CLOSED
        self.counter.closed = True
        if not self.ready.done():
            self.ready.set_result(0)

    def data_received(self, data: bytes) -> None:
        if self.state == _BODY:
            self.counter.body(self.dechunk(data) if self.chunked else data)
            return
        if self.state != _HEADERS:
            return
        self.hbuf += data
        end = self.hbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.hbuf) > 65536:
                self.close()
            return
        head = self.hbuf[:end].decode("latin-1")
        rest = self.hbuf[end + 4 :]
        self.hbuf = b""
        try:
            status = int(head.split(" ", 2)[1])
        except (IndexError, ValueError):
            status = -1
        self.counter.status = status
        self.chunked = "transfer-encoding: chunked" in head.lower()
        if status == 200:
            self.state = _BODY
            self.ready.set_result(200)
            if rest:
                self.data_received(rest)
        else:
            self.ready.set_result(status)
            self.close()

    # -- body

    def dechunk(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos = 0
        n = len(data)
        while pos < n:
            left = self.left
            if left:
                end = pos + left
                if end <= n:
                    out.append(data[pos:end])
                    self.left = 0
                    self.skip = 2
                    pos = end
                else:
                    out.append(data[pos:])
                    self.left = end - n
                    break
            elif self.skip:
                take = min(self.skip, n - pos)
                self.skip -= take
                pos += take
            else:
                if self.sizebuf:
                    data = self.sizebuf + data[pos:]
                    self.sizebuf = b""
                    pos = 0
                    n = len(data)
                idx = data.find(b"\r\n", pos)
                if idx < 0:
                    self.sizebuf = data[pos:]
                    break
                size = int(data[pos:idx].split(b";", 1)[0], 16)
                pos = idx + 2
                if size == 0:  # end of the stream
                    self.close()
                    break
                self.left = size
        if len(out) == 1:
            return out[0]
        return b"".join(out)

    def set_lowat(self, nbytes: int) -> None:
        if self.transport is None or self.state == _CLOSED:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, nbytes))

    def close(self) -> None:
        self.state = _CLOSED
        self.counter.closed = True
        if self.transport is not None:
            self.transport.close()


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_MAX_WINDOW = 2**31 - 1


class H2Conn(asyncio.Protocol):
    """One HTTP/2 cleartext connection carrying many SSE streams (prior knowledge).

    Frames are parsed here, not with ``h2``: a protocol library's per-frame work
    would make this process, not the server, the bottleneck. Windows are opened
    to the maximum once (SETTINGS and one WINDOW_UPDATE), so no flow-control
    traffic is needed for the ~2 GiB a run sends per connection at most.
    """

    def __init__(self, host: str, port: int, path: str, counters: Sequence[Stream]) -> None:
        import hpack

        self.counters = {1 + 2 * i: c for i, c in enumerate(counters)}
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[int] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        encoder = hpack.Encoder()
        settings = (struct.pack(">HI", 0x4, _MAX_WINDOW) + struct.pack(">HI", 0x2, 0))
        out = [H2_PREFACE, h2_frame(0x4, 0, 0, settings),
               h2_frame(0x8, 0, 0, struct.pack(">I", _MAX_WINDOW - 65535))]
        for stream_id in self.counters:
            block = encoder.encode([(":method", "GET"), (":scheme", "http"),
                                    (":authority", f"{host}:{port}"), (":path", path),
                                    ("accept", "text/event-stream"),
                                    ("accept-encoding", "identity")])
            out.append(h2_frame(0x1, 0x5, stream_id, block))  # END_STREAM | END_HEADERS
        self.opening = b"".join(out)
        self.pending = len(self.counters)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.opening)

    def connection_lost(self, exc: Exception | None) -> None:
        for counter in self.counters.values():
            if not counter.closed:
                counter.lost_conn = True
                counter.closed = True
        if not self.ready.done():
            self.ready.set_result(0)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, size = 0, len(buf)
        counters = self.counters
        while size - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            end = pos + 9 + length
            if end > size:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if kind == 0x0:  # DATA
                counter = counters.get(stream_id)
                if counter is not None:
                    counter.body(buf[pos + 9 : end])
                    if flags & 0x1:
                        counter.closed = True
            elif kind == 0x1:  # HEADERS (no padding or priority from our server)
                headers = dict(self.decoder.decode(buf[pos + 9 : end], raw=True))
                counter = counters.get(stream_id)
                if counter is not None and counter.status == 0:
                    counter.status = int(headers.get(b":status", b"0"))
                    self.pending -= 1
                    if self.pending == 0 and not self.ready.done():
                        self.ready.set_result(200)
            elif kind == 0x4 and not flags & 0x1:  # SETTINGS: acknowledge
                self.write(h2_frame(0x4, 0x1, 0, b""))
            elif kind == 0x6 and not flags & 0x1:  # PING
                self.write(h2_frame(0x6, 0x1, 0, buf[pos + 9 : end]))
            elif kind == 0x3:  # RST_STREAM
                counter = counters.get(stream_id)
                if counter is not None:
                    counter.closed = counter.lost_conn = True
            elif kind == 0x7:  # GOAWAY
                self.close()
            pos = end
        self.buf = buf[pos:]

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        for counter in self.counters.values():
            counter.closed = True
        if self.transport is not None:
            self.transport.close()


def h2_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One HTTP/2 frame: 9-byte header, then ``payload``."""
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + \
        stream_id.to_bytes(4, "big") + payload


def window(latencies: list[int], connected: list[Counter]) -> dict[str, Any]:
    """The ``window`` answer; empties ``latencies``."""
    values = sorted(latencies)
    latencies.clear()
    n = len(values)
    k = min(n, WINDOW_POINTS)
    points = [round(values[round(i * (n - 1) / max(1, k - 1))] / 1e6, 3) for i in range(k)]
    return {
        "samples": n,
        "points": points,
        "received": sum(c.count for c in connected),
        "closed": sum(c.closed for c in connected),
        "seq_errors": sum(c.seq_errors for c in connected),
    }


def timing(latencies: list[int], timed: Sequence[Stream], connected: Sequence[Stream]
           ) -> dict[str, Any]:
    """The latency percentiles of sorted ``latencies`` (ns, given in ms) and when the
    last event arrived, on the ``timed`` streams (they read every event at once) and
    on any stream."""
    return {
        "samples": len(latencies),
        "p50_ms": percentile(latencies, 0.50) / 1e6,
        "p99_ms": percentile(latencies, 0.99) / 1e6,
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "last_receive_ns": max((c.last_ns for c in timed), default=0),
        "last_receive_any_ns": max((c.last_ns for c in connected), default=0),
    }


async def _connect(
    host: str, port: int, conn: Conn | H2Conn, sem: asyncio.Semaphore, deadline: float
) -> bool:
    loop = asyncio.get_running_loop()
    async with sem:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            async with asyncio.timeout(remaining):
                await loop.create_connection(lambda: conn, host, port)
                return await conn.ready == 200
        except (OSError, TimeoutError):
            conn.close()
            return False


async def run(
    host: str,
    port: int,
    path: str,
    n: int,
    concurrency: int,
    connect_timeout: float,
    drain: float,
    sample_per_s: float,
    rate: float,
    lowat: int,
    h2_streams: int = 0,
    ports: list[int] | None = None,
) -> None:
    """``n`` streams: HTTP/1.1 connections, or (``h2_streams`` > 0) HTTP/2 connections
    of ``h2_streams`` streams each. With ``ports`` (HTTP/1.1), stream i goes to
    ``ports[i % len(ports)]`` (replicas of one stream)."""
    ports = ports or [port]
    loop = asyncio.get_running_loop()
    every = max(1, round(n * rate / sample_per_s)) if sample_per_s > 0 else 0
    latencies: list[int] = []
    counters = [Counter(every > 0 and i % every == 0, latencies) for i in range(n)]
    conns: list[Conn | H2Conn]
    if h2_streams > 0:
        conns = [H2Conn(host, port, path, counters[i : i + h2_streams])
                 for i in range(0, n, h2_streams)]
        lowat = 1  # each connection carries sampled streams
    else:
        requests = [(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{p}\r\nAccept: text/event-stream\r\n"
            "Accept-Encoding: identity\r\nCache-Control: no-cache\r\n\r\n"
        ).encode() for p in ports]
        conns = [Conn(requests[i % len(ports)], c) for i, c in enumerate(counters)]
    sem = asyncio.Semaphore(concurrency)
    t0 = loop.time()
    deadline = t0 + connect_timeout
    await asyncio.gather(*(_connect(host, port if h2_streams > 0 else ports[i % len(ports)],
                                    c, sem, deadline) for i, c in enumerate(conns)))
    connected = [c for c in counters if c.status == 200]
    sampled = [c for c in connected if c.sampled]
    timed = sampled or connected  # the streams whose reads are not delayed
    if lowat > 1 and sampled:
        for conn in conns:
            if isinstance(conn, Conn) and not conn.counter.sampled:
                conn.set_lowat(lowat)
    statuses: dict[str, int] = {}
    for c in counters:
        statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
    print(f"[client] connect statuses: {statuses}", file=sys.stderr)
    print(f"connected {len(connected)} {n - len(connected)} {loop.time() - t0:.3f}", flush=True)

    async for line in commands():
        if line[0] == "window":
            print("window " + json.dumps(window(latencies, connected)), flush=True)
            continue
        if line[0] != "expect":
            continue
        published = int(line[1])
        end = loop.time() + drain
        for group in (timed, connected):
            if group is connected and lowat > 1:
                for conn in conns:
                    if isinstance(conn, Conn):
                        conn.set_lowat(1)
            while loop.time() < end:
                if all(c.count >= published or c.closed for c in group):
                    break
                await asyncio.sleep(0.01)
        latencies.sort()
        result: dict[str, Any] = {
            "clients": n,
            "connected": len(connected),
            "dropped": sum(c.lost_conn for c in connected),
            "published": published,
            "received": sum(c.count for c in connected),
            "expected": published * len(connected),
            "lost": sum(max(0, published - c.count) for c in connected),
            "extra": sum(max(0, c.count - published) for c in connected),
            "first_seq_not_0": sum(c.first != 0 for c in connected),
            "last_seq_not_final": sum(c.last_seq() != published - 1 for c in connected),
            "sampled_clients": len(sampled),
            "seq_errors": sum(c.seq_errors for c in sampled),
            **timing(latencies, timed, connected),
            "lowat": lowat if sampled else 1,
            "h2_streams": h2_streams,
        }
        print("result " + json.dumps(result), flush=True)
    for conn in conns:
        conn.close()


def main(host: str, port: int, path: str, n: int, concurrency: int, connect_timeout: float,
         drain: float, sample_per_s: float, rate: float, lowat: int, h2_streams: int = 0,
         ports: list[int] | None = None) -> None:
    raise_nofile()
    install_uvloop()
    asyncio.run(run(host, port, path, n, concurrency, connect_timeout, drain, sample_per_s, rate,
                    lowat, h2_streams, ports))
