"""Fan-out from the event log to subscribers, each written at the pace its peer reads.

Subscribers do not hold copies of events: each keeps a cursor into the shared
history. Delivery is pushed: a write round (one per publish, or per burst of
publishes) writes to every caught-up subscriber whose filter matches, taking
everything after its cursor in one write, but never more than its sink has
room for. A sink (one HTTP/1.1 response, one HTTP/2 stream) has room while the
bytes it holds unsent stay under the client's buffer cap and, on HTTP/2, while
the peer's flow-control windows are open. A subscriber without room is left
behind, cursor and all, until its sink says it is writable again; what it is
due stays in the shared history, so a stalled client costs no memory beyond
its cap, and the slow-client rule sees it falling behind (in events and in
bytes) and applies the policy.

Only direct messages (``connected``, ``stream:gap``, ``send_to_client``,
keep-alive) sit in a small per-subscriber queue, bounded in bytes, ordered
against the history by the sequence number they follow.

Everything here runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from otel_sse.bus.history import StoredEvent
from otel_sse.bus.log import EventLog
from otel_sse.errors import ConfigError
from otel_sse.wire.encoder import dumps, encode_event, iso_ms_from_epoch, iso_ms_now
from otel_sse.wire.filters import EventFilter

# The most events taken in one read: bounds the work of one write during a replay.
READ_BATCH = 512
# Rounds that write to fewer subscribers than PACED_ROUND, or take less than
# PACE_FROM seconds, are never paced: their writes cost little, and pacing them
# only turned a slow round now and then into a latency tail.
PACED_ROUND = 256
PACE_FROM = 0.003
# However costly a round, the next one starts within this many seconds (latency bound).
MAX_PACE = 0.015
# Runs of frames kept joined for the next subscriber at the same place (see collect).
SHARED_RUNS = 8


class SlowClientPolicy(StrEnum):
    DISCONNECT = "disconnect"
    DROP_OLDEST = "drop-oldest"


class Sink(Protocol):
    """Where one subscriber's bytes go: an HTTP/1.1 response body or an HTTP/2 stream.

    The connection layer implements it and calls :meth:`Fanout.writable` when a
    sink that had no room has some again, and :meth:`Fanout.detach` when it is gone.
    """

    def room(self) -> int:
        """Bytes that may be written now (0 or less: none)."""
        ...

    def buffered(self) -> int:
        """Bytes written but not yet handed to the network."""
        ...

    def write(self, data: bytes | memoryview) -> None: ...

    def end(self) -> None:
        """Finish the response cleanly (everything written so far is sent first)."""
        ...

    def abort(self) -> None:
        """Cut the response now (the client resumes by id)."""
        ...


class Subscriber:
    __slots__ = (
        "bytes_sent",
        "client_id",
        "closing",
        "compress",
        "connected_at",
        "cursor",
        "direct",
        "direct_bytes",
        "direct_seq",
        "events_sent",
        "filter",
        "info",
        "killed",
        "lagging",
        "last_due",
        "last_write",
        "missed",
        "partial",
        "sink",
        "skip",
    )

    def __init__(self, client_id: str, event_filter: EventFilter, cursor: int,
                 info: dict[str, str], sink: Sink | None = None,
                 compress: Callable[[bytes], bytes] | None = None) -> None:
        self.client_id = client_id
        self.filter = event_filter
        self.cursor = cursor
        self.sink = sink
        self.compress = compress
        self.direct: deque[tuple[int, bytes]] = deque()
        self.direct_bytes = 0
        self.direct_seq = 0
        # The unwritten tail of a write larger than the sink's room.
        self.partial: memoryview | None = None
        self.closing = False
        self.killed: str | None = None
        self.missed = 0
        self.lagging = False
        self.last_due = 0
        self.skip = False
        self.events_sent = 0
        self.bytes_sent = 0
        self.connected_at = time.time()
        self.last_write = 0.0
        self.info = info

    def snapshot(self) -> dict[str, object]:
        return {
            "clientId": self.client_id,
            "connectedAt": iso_ms_from_epoch(self.connected_at),
            "filters": list(self.filter.patterns),
            "eventsSent": self.events_sent,
            "bytesSent": self.bytes_sent,
            "missed": self.missed,
            **self.info,
        }


def control_frame(event_type: str, data: dict[str, object]) -> bytes:
    """A server-generated event without an id, so it never moves a client's resume point."""
    return encode_event(dumps(data), event_type)


class Fanout:
    """Subscribers of one event log and the write rounds that feed them.

    ``buffer_bytes`` caps what one client may be due and hold unsent; ``max_lag``
    caps how many events it may be behind. A client over either cap at two
    sweeps in a row, and not catching up, is slow: ``policy`` decides.
    """

    def __init__(self, log: EventLog, max_lag: int, policy: SlowClientPolicy,
                 buffer_bytes: int = 1024 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_lag < 1:
            raise ConfigError(f"client_queue_size must be >= 1, got {max_lag!r}")
        if buffer_bytes < 1024:
            raise ConfigError(f"client_buffer_bytes must be >= 1024, got {buffer_bytes!r}")
        self.log = log
        self.max_lag = max_lag
        self.policy = policy
        self.buffer_bytes = buffer_bytes
        self.clock = clock
        self.subscribers: dict[str, Subscriber] = {}
        # Caught up at their last write: the next round writes to them.
        self._idle: set[Subscriber] = set()
        self._dirty_types: set[str] = set()
        self._wake_scheduled = False
        self._next_round = 0.0
        self._after_round: list[Callable[[], None]] = []
        self._filtered: dict[str, Subscriber] = {}
        self._recipients: dict[str, int] = {}
        self._runs: dict[tuple[tuple[str, ...], int, int], tuple[bytes, int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.slow_disconnects = 0
        self.gaps_sent = 0
        self.direct_dropped = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- publishing ---------------------------------------------------------

    def publish(self, event_type: str, data: str, retry: int | None = None,
                source: str = "") -> StoredEvent | None:
        """Append to the log and write the event to subscribers (None: a shared log
        took it, and :meth:`arrived` follows when it is read back)."""
        event = self.log.append(event_type, data, retry, source)
        if event is None:
            return None
        self._dirty_types.add(event_type)
        if self._idle:
            self._schedule_round()
        return event

    def arrived(self, types: set[str]) -> None:
        """Events of ``types`` entered the history from a shared log: write them."""
        self._dirty_types |= types
        if self._idle:
            self._schedule_round()

    def _schedule_round(self) -> None:
        # Publishes before the round runs share it: a burst leaves in one write
        # per client instead of one per event.
        loop = self._loop
        if self._wake_scheduled or loop is None:
            return
        self._wake_scheduled = True
        if loop.time() >= self._next_round:
            loop.call_soon(self._round)
        else:
            loop.call_at(self._next_round, self._round)

    def after_round(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the pending write round is done (now if none is)."""
        if self._wake_scheduled:
            self._after_round.append(callback)
        else:
            callback()

    @property
    def round_pending(self) -> bool:
        return self._wake_scheduled

    def recipients(self, event_type: str) -> int:
        """How many subscribers take this event type (memoised until one joins or leaves:
        it is asked on every publish, and event types are few)."""
        count = self._recipients.get(event_type)
        if count is None:
            filtered = list(self._filtered.values())
            count = (len(self.subscribers) - len(filtered)
                     + sum(1 for sub in filtered if sub.filter(event_type)))
            if len(self._recipients) < 4096:
                self._recipients[event_type] = count
        return count

    def _round(self) -> None:
        """One write round: every caught-up subscriber whose filter matches is written to.

        With many clients a round costs milliseconds; starting the next one no
        sooner than that cost again (at most ``MAX_PACE`` later) lets events that
        arrive meanwhile share one write per client, so the cost follows clients
        x rounds, not clients x events. Small rounds are not paced at all.
        """
        loop = self._loop
        assert loop is not None
        started = loop.time()
        self._wake_scheduled = False
        types = self._dirty_types
        self._dirty_types = set()
        idle = self._idle
        self._idle = set()
        last = self.log.history.last_seq
        deliver = self.deliver
        written = 0
        for sub in idle:
            flt = sub.filter
            if flt.matches_all or any(flt(t) for t in types):
                deliver(sub)
                written += 1
            else:
                # Nothing published since it caught up is for it: it is caught up still.
                if not sub.direct:
                    sub.cursor = last
                self._idle.add(sub)
        if written >= PACED_ROUND:
            now = loop.time()
            cost = now - started
            self._next_round = now + min(cost, MAX_PACE) if cost >= PACE_FROM else 0.0
        callbacks, self._after_round = self._after_round, []
        for callback in callbacks:
            callback()

    # -- subscribers --------------------------------------------------------

    def attach(self, sub: Subscriber) -> None:
        """Start delivering to ``sub`` (its sink set); what is queued for it goes now."""
        self._recipients = {}
        self.subscribers[sub.client_id] = sub
        if not sub.filter.matches_all:
            self._filtered[sub.client_id] = sub
        self.deliver(sub)

    def detach(self, sub: Subscriber) -> None:
        """Forget ``sub`` (its connection or stream is gone); idempotent."""
        if self.subscribers.pop(sub.client_id, None) is None:
            return
        self._recipients = {}
        self._filtered.pop(sub.client_id, None)
        self._idle.discard(sub)
        sub.direct.clear()
        sub.direct_bytes = 0
        sub.partial = None

    def writable(self, sub: Subscriber) -> None:
        """The sink of ``sub`` has room again."""
        if sub.client_id in self.subscribers and sub not in self._idle:
            self.deliver(sub)

    def send_direct(self, sub: Subscriber, frame: bytes) -> bool:
        """Queue ``frame`` for ``sub`` after the events published so far, and write it
        when the sink has room. False when it did not fit the client's buffer cap."""
        if sub.killed is not None or sub.client_id not in self.subscribers:
            return False
        if sub.direct_bytes + len(frame) > self.buffer_bytes and sub.direct:
            # A flood of direct messages to a client that does not read.
            self.direct_dropped += 1
            if self.policy is SlowClientPolicy.DISCONNECT:
                self.slow_disconnects += 1
                self.kill(sub, "slow")
                return False
            _, dropped = sub.direct.popleft()
            sub.direct_bytes -= len(dropped)
            sub.missed += 1
        sub.direct.append((self.log.history.last_seq, frame))
        sub.direct_bytes += len(frame)
        if sub in self._idle:
            self._idle.discard(sub)
            self.deliver(sub)
        return True

    def next_direct_id(self, sub: Subscriber) -> str:
        """An id for a direct message: after the last published event, before the next."""
        sub.direct_seq += 1
        return self.log.direct_id(self.log.history.last_seq, sub.direct_seq)

    def close(self, sub: Subscriber) -> None:
        """End the stream once what is due to it has been written."""
        sub.closing = True
        if sub in self._idle:
            self._idle.discard(sub)
            self.deliver(sub)

    def kill(self, sub: Subscriber, reason: str) -> None:
        """End the stream now, dropping what is due (the client resumes by id)."""
        if sub.killed is not None:
            return
        sub.killed = reason
        sink = sub.sink
        self.detach(sub)
        if sink is not None:
            sink.abort()

    def due_bytes(self, sub: Subscriber) -> int:
        """What the client is due and holds unsent, in bytes: its sink's buffer, the
        rest of a partial write, its direct queue and the history after its cursor
        (all of it: filtered-out events are counted too, an upper bound)."""
        held = sub.sink.buffered() if sub.sink is not None else 0
        partial = len(sub.partial) if sub.partial is not None else 0
        return held + partial + sub.direct_bytes + self.log.history.bytes_after(sub.cursor)

    def sweep(self) -> None:
        """Apply the slow-client policy to subscribers that stay behind.

        A subscriber is slow when, at two sweeps in a row, it is more than
        ``max_lag`` events or ``buffer_bytes`` bytes behind and not catching up
        (what it is due did not shrink): a burst puts every reader behind for a
        moment, a client replaying history catches up, a stalled or too slow one
        stays behind, often with no room to write at all.
        """
        last = self.log.history.last_seq
        for sub in list(self.subscribers.values()):
            if sub.killed is not None:
                continue
            due = self.due_bytes(sub)
            behind = last - sub.cursor > self.max_lag or due > self.buffer_bytes
            if behind and sub.lagging and due >= sub.last_due:
                if self.policy is SlowClientPolicy.DISCONNECT:
                    self.slow_disconnects += 1
                    self.kill(sub, "slow")
                    continue
                sub.skip = True
                self.writable(sub)
                behind = False
            sub.lagging = behind
            sub.last_due = due

    def keep_alive(self, frame: bytes, quiet_for: float) -> None:
        """Send ``frame`` to every subscriber that wrote nothing for ``quiet_for`` seconds
        and has room (a blocked one is not idle: its peer just does not read)."""
        since = self.clock() - quiet_for
        for sub in list(self._idle):
            if sub.last_write <= since:
                self.send_direct(sub, frame)

    # -- writing ------------------------------------------------------------

    def deliver(self, sub: Subscriber) -> None:
        """Write what ``sub`` is due, as far as its sink has room."""
        sink = sub.sink
        if sink is None or sub.killed is not None:
            return
        room = sink.room()
        wrote = False
        partial = sub.partial
        if partial is not None:
            if room <= 0:
                return
            sub.partial = self._write_some(sub, sink, partial, room)
            room -= len(partial)
            wrote = True
            if sub.partial is not None:
                sub.last_write = self.clock()
                return
        while room > 0:
            chunk = self.collect(sub, room)
            if not chunk:
                break
            data = sub.compress(chunk) if sub.compress is not None else chunk
            wrote = True
            if len(data) > room:
                sub.partial = self._write_some(sub, sink, memoryview(data), room)
                break
            sink.write(data)
            sub.bytes_sent += len(data)
            room -= len(data)
        if wrote:
            sub.last_write = self.clock()
        if sub.partial is None and sub.cursor >= self.log.history.last_seq and not sub.direct:
            if sub.closing:
                self.detach(sub)
                sink.end()
            elif sub.client_id in self.subscribers:
                self._idle.add(sub)
        # Otherwise it has no room: its sink calls writable() when it has.

    @staticmethod
    def _write_some(sub: Subscriber, sink: Sink, data: memoryview, room: int) -> memoryview | None:
        """Write at most ``room`` bytes of ``data``; the rest, if any, for later."""
        if len(data) <= room:
            sink.write(data)
            sub.bytes_sent += len(data)
            return None
        sink.write(data[:room])
        sub.bytes_sent += room
        return data[room:]

    def collect(self, sub: Subscriber, limit: int = 1 << 62) -> bytes:
        """What ``sub`` is due, up to ``limit`` bytes (but at least one event or direct
        message when it is due anything); advances its cursor past what it returns."""
        history = self.log.history
        last = history.last_seq
        cursor = sub.cursor
        direct = sub.direct
        if cursor >= last:
            if not direct:
                return b""
            frames: list[bytes] = []
            size = 0
            while direct and (not frames or size + len(direct[0][1]) <= limit):
                frame = direct.popleft()[1]
                frames.append(frame)
                size += len(frame)
            sub.direct_bytes -= size
            return b"".join(frames)

        frames = []
        size = 0
        while direct and direct[0][0] <= cursor:  # queued before any event now due
            queued = direct.popleft()[1]
            sub.direct_bytes -= len(queued)
            frames.append(queued)
            size += len(queued)
        if cursor < history.first_seq - 1:
            # History was trimmed past this reader: say so before what remains.
            missed = history.first_seq - 1 - cursor
            gap = self._gap_frame(sub, cursor, missed)
            frames.append(gap)
            size += len(gap)
            cursor = history.first_seq - 1
        elif sub.skip:
            # drop-oldest: keep what fits the client's caps, say how many were skipped.
            sub.skip = sub.lagging = False
            keep_from = max(last - self.max_lag, history.seq_within(self.buffer_bytes // 2))
            missed = keep_from - cursor
            if missed > 0:
                gap = self._gap_frame(sub, cursor, missed)
                frames.append(gap)
                size += len(gap)
                cursor = keep_from

        first, stop = history.window(cursor, READ_BATCH)
        flt = sub.filter
        if not direct and not frames and stop >= first:
            # The common case: events only. Every subscriber at this place with this
            # filter is due the same bytes; a round writes to many of them at once.
            if flt.matches_all:
                stop = history.last_within(first, stop, limit)
            run, sent = self._shared_run(flt, first, stop)
            if len(run) <= limit:
                sub.cursor = stop
                sub.events_sent += sent
                return run
        sent = 0
        if not direct and flt.matches_all:
            # The common case: a run of frames, cut to the byte limit through the
            # history's offsets, with no per-event work.
            if stop >= first:
                # At least one event: one larger than the limit is written in parts.
                stop = history.last_within(first, stop, limit - size)
                chunk = history.frames(first, stop)
                frames += chunk
                sent = len(chunk)
                if chunk:
                    cursor = stop
        else:
            seq = first
            for event_type, frame in zip(history.types(first, stop), history.frames(first, stop),
                                         strict=True):
                while direct and direct[0][0] < seq:
                    queued = direct.popleft()[1]
                    sub.direct_bytes -= len(queued)
                    frames.append(queued)
                    size += len(queued)
                if flt(event_type):
                    if size + len(frame) > limit and frames:
                        break
                    frames.append(frame)
                    size += len(frame)
                    sent += 1
                cursor = seq
                seq += 1
        while direct and direct[0][0] <= cursor and (size + len(direct[0][1]) <= limit
                                                      or not frames):
            queued = direct.popleft()[1]
            sub.direct_bytes -= len(queued)
            frames.append(queued)
            size += len(queued)
        sub.cursor = cursor
        sub.events_sent += sent
        return b"".join(frames)

    def _shared_run(self, flt: EventFilter, first: int, last: int) -> tuple[bytes, int]:
        """The frames ``first..last`` that ``flt`` takes, joined, and how many they are.

        Kept for the next subscriber with the same patterns: one bytes object per
        round instead of a copy per subscriber (100 subscribers of a busy gateway
        joined and wrote 100 copies). A sequence number always stands for the same
        frame, so a kept run never goes stale; at most ``SHARED_RUNS`` are kept, each
        at most ``buffer_bytes`` long."""
        key = (() if flt.matches_all else flt.patterns, first, last)
        run = self._runs.get(key)
        if run is not None:
            return run
        history = self.log.history
        frames = history.frames(first, last)
        if not flt.matches_all:
            frames = [frame for event_type, frame in zip(history.types(first, last), frames,
                                                          strict=True) if flt(event_type)]
        run = (b"".join(frames), len(frames))
        if len(run[0]) <= self.buffer_bytes:
            if len(self._runs) >= SHARED_RUNS:
                del self._runs[next(iter(self._runs))]
            self._runs[key] = run
        return run

    def _gap_frame(self, sub: Subscriber, cursor: int, missed: int | None) -> bytes:
        sub.missed += missed or 0
        return self.gap_frame(self.log.id_of(cursor), missed)

    def gap_frame(self, requested_id: str | None, missed: int | None) -> bytes:
        """A ``stream:gap`` event: what was asked for, the oldest id still held, how many
        events were missed (None when unknown). Counted in ``gaps_sent``."""
        self.gaps_sent += 1
        history = self.log.history
        oldest = history.get(history.first_seq)
        return control_frame("stream:gap", {
            "requestedId": requested_id,
            "oldestId": oldest.id if oldest is not None else None,
            "missed": missed,
            "timestamp": iso_ms_now(),
        })
