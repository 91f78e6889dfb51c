"""Subscribers for the ingest benchmark: N raw HTTP/1.1 SSE streams of the gateway's events.

Run by ``ingest.py --subscribe``; driven by stdin / stdout lines:

* connects ``n`` streams to ``/events`` (the connections of ``_loadclient.py``: raw
  asyncio protocols on uvloop, de-chunked by hand), then prints
  ``connected <ok> <failed> <seconds>``;
* on ``start`` it notes where every stream is (after its greeting), so that only
  what the senders cause is counted;
* on ``expect <S> <Q>`` (the spans the gateway accepted, the sequence number of the
  last event it published) it waits until every stream has all it is due or
  ``drain`` seconds have passed, then prints ``result <json>``;
* on ``quit`` (or EOF) it exits.

It must not take the CPU the gateway needs, so no stream parses JSON, and most
do one ``rfind`` per read:

* every stream follows the ``id:`` lines it receives (``<run>-<seq>``, consecutive
  for a stream that takes every event): events received = the last sequence
  number - the one at ``start``, and a stream has everything once it reaches
  ``Q``;
* the *sampled* streams (``sampled`` of them, spread over the ``n``, always taking
  every event) also count events (``\nevent: ``) and ``span:ended`` events with
  ``bytes.count``, patterns split between reads included, and read every
  ``span:ended`` event's ``"bench.t":`` attribute, the sender's wall time (see
  ``_otlpsender.py``): a latency sample is ``time.time_ns()`` at the read minus it;
* with ``filters`` the other streams ask for ``?filters=`` and count their events
  the same way (ids are not consecutive then); they are due as many as the one
  that has most.

As in ``_loadclient.py`` the streams that only follow ids set ``SO_RCVLOWAT``
(``lowat`` bytes) so that the kernel wakes them for batches of events, set back to
1 byte at ``expect``; their reads are late by design, so the time of the last
delivery comes from the sampled streams, which read every event as it arrives.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import time
from typing import Any

from _loadclient import Conn, _connect, timing
from _proc import commands, install_uvloop, raise_nofile

EVENT = b"\nevent: "
ENDED = b"event: span:ended\n"
STAMP = b'"bench.t":'
ID = b"\nid: "
TAIL = 48  # longer than any pattern or id line: what a read keeps of the one before


def _count(tail: bytes, data: bytes, pattern: bytes) -> int:
    """Matches of ``pattern`` in ``data``, and those that begin in ``tail`` (the end of
    what came before) and finish in ``data``."""
    edge = len(pattern) - 1
    return data.count(pattern) + (tail[-edge:] + data[:edge]).count(pattern)


def last_seq(buf: bytes) -> int:
    """The sequence number of the last complete ``id:`` line in ``buf`` (-1: none).
    Published events have ``<run>-<seq>``, direct messages ``<run>-<seq>.<n>``."""
    i = buf.rfind(ID)
    while i >= 0:
        end = buf.find(b"\n", i + len(ID))
        if end >= 0:
            text = buf[i + len(ID):end]
            return int(text[text.rfind(b"-") + 1:].partition(b".")[0])
        i = buf.rfind(ID, 0, i)
    return -1


class SpanStream:
    """One stream. Every stream follows the ids it receives (one ``rfind`` per read):
    on an unfiltered stream, events received = the last id's sequence number - the one
    at ``start``. *Exact* streams (the sampled ones, which take every event, and the
    filtered ones) also count events and ``span:ended`` events; sampled ones read
    every latency."""

    def __init__(self, sampled: bool, filtered: bool, latencies: list[int]) -> None:
        self.sampled = sampled
        self.filtered = filtered
        self.exact = sampled or filtered
        self.latencies = latencies
        self.status = 0
        self.closed = False
        self.lost_conn = False
        self.reads = 0
        self.seq = 0  # published events are numbered from 1
        self.events = 0
        self.spans = 0
        self.base_seq = -1
        self.base_events = 0
        self.base_spans = 0
        self.last_ns = 0
        self.tail = b""
        self.carry = b""

    def body(self, data: bytes) -> None:
        self.reads += 1
        tail = self.tail
        buf = tail + data
        seq = last_seq(buf)
        self.tail = buf[-TAIL:]
        if seq > self.seq:
            self.seq = seq
            self.last_ns = time.time_ns()
        if not self.exact:
            return
        self.events += _count(tail, data, EVENT)
        spans = _count(tail, data, ENDED)
        if spans:
            self.spans += spans
            if self.sampled:
                self.sample(data, time.time_ns())

    def sample(self, data: bytes, now: int) -> None:
        buf = self.carry + data if self.carry else data
        latencies = self.latencies
        i = buf.find(ENDED)
        while i >= 0:
            j = buf.find(STAMP, i)
            k = buf.find(b"}", j) if j >= 0 else -1
            if k < 0:  # the event goes on in the next read
                self.carry = buf[i:]
                return
            comma = buf.find(b",", j, k)
            latencies.append(now - int(buf[j + len(STAMP):comma if comma >= 0 else k]))
            i = buf.find(ENDED, k)
        self.carry = buf[-len(ENDED):]

    def mark(self) -> None:
        self.base_seq, self.base_events, self.base_spans = self.seq, self.events, self.spans

    def received(self) -> int:
        """Events since ``start``."""
        return self.events - self.base_events if self.exact else self.seq - self.base_seq

    def done(self, spans: int, seq: int, filtered_events: int) -> bool:
        """Whether it has all it is due: every span and every event up to ``seq``
        (unfiltered), or as many events as the filtered stream that has most."""
        if self.closed:
            return True
        if self.filtered:
            return self.received() >= filtered_events
        if self.sampled and self.spans - self.base_spans < spans:
            return False
        return self.seq >= seq


async def run(host: str, port: int, n: int, sampled: int, concurrency: int,
              connect_timeout: float, drain: float, lowat: int, filters: str) -> None:
    loop = asyncio.get_running_loop()
    every = max(1, n // max(1, sampled))
    latencies: list[int] = []
    streams = []
    for i in range(n):
        sampling = sampled > 0 and i % every == 0 and i // every < sampled
        streams.append(SpanStream(sampling, bool(filters) and not sampling, latencies))

    def request(filtered: bool) -> bytes:
        query = f"?filters={filters}" if filtered else ""
        return (f"GET /events{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: text/event-stream\r\nAccept-Encoding: identity\r\n"
                "Cache-Control: no-cache\r\n\r\n").encode()

    conns = [Conn(request(stream.filtered), stream) for stream in streams]
    sem = asyncio.Semaphore(concurrency)
    t0 = loop.time()
    deadline = t0 + connect_timeout
    await asyncio.gather(*(_connect(host, port, c, sem, deadline) for c in conns))
    connected = [s for s in streams if s.status == 200]
    timed = [s for s in connected if s.sampled] or connected
    filtered = [s for s in connected if s.filtered]
    # Batched reads for the streams that only follow ids (their reads are late).
    batched = [conn for conn, stream in zip(conns, streams, strict=True)
               if not stream.exact] if lowat > 1 else []
    for conn in batched:
        conn.set_lowat(lowat)
    print(f"connected {len(connected)} {n - len(connected)} {loop.time() - t0:.3f}", flush=True)

    async for line in commands():
        if line[0] == "start":
            latencies.clear()
            for stream in streams:
                stream.mark()
            continue
        if line[0] != "expect":
            continue
        # The spans accepted, and the sequence number of the last event published
        # (an unfiltered stream has every event up to it).
        spans, seq = int(line[1]), int(line[2])
        end = loop.time() + drain
        for group in (timed, connected):
            if group is connected:
                for conn in batched:
                    conn.set_lowat(1)
            while loop.time() < end:
                most = max((s.received() for s in filtered), default=0)
                if all(s.done(spans, seq, most) for s in group):
                    break
                await asyncio.sleep(0.01)
        if filtered:
            await asyncio.sleep(0.1)  # their counts are all they have to go by
        latencies.sort()
        exact = [s for s in connected if s.exact]
        most = max((s.received() for s in filtered), default=0)
        result: dict[str, Any] = {
            "clients": n,
            "connected": len(connected),
            "filtered": len(filtered),
            "dropped": sum(s.lost_conn for s in connected),
            "expected_spans": spans,
            "last_seq": seq,
            "events": sum(s.received() for s in connected),
            "filtered_events": sum(s.received() for s in filtered),
            "lost": sum(most - s.received() if s.filtered else max(0, seq - s.seq)
                        for s in connected),
            "sampled_spans": [s.spans - s.base_spans for s in connected if s.sampled],
            # events counted - events by id on the sampled streams (0 expected)
            "count_vs_ids": [s.events - s.base_events - (s.seq - s.base_seq)
                             for s in connected if s.sampled],
            "reads": sum(s.reads for s in connected),
            "exact_reads": sum(s.reads for s in exact),
            "sampled_clients": len(timed) if timed is not connected else 0,
            **timing(latencies, timed, connected),
        }
        print("result " + json.dumps(result), flush=True)
    for conn in conns:
        conn.close()


def keep_heap() -> None:
    """Keep freed memory in glibc's heap instead of returning it to the kernel.

    Every read is a new bytes object of up to 256 KiB; by default glibc serves and
    frees such blocks with mmap / munmap (or trims the heap after them), so each
    read page-faults its buffer in afresh: that kernel time was most of this
    process's CPU and took it from the gateway. Not glibc: nothing to do."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 16 << 20)
    mallopt(m_trim_threshold, 256 << 20)
    mallopt(m_top_pad, 64 << 20)


def main(host: str, port: int, n: int, sampled: int, concurrency: int, connect_timeout: float,
         drain: float, lowat: int, filters: str) -> None:
    raise_nofile()
    keep_heap()
    install_uvloop()
    asyncio.run(run(host, port, n, sampled, concurrency, connect_timeout, drain, lowat,
                    filters))
