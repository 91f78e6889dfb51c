"""Fan-out from the event log to subscribers, each reading at its own pace.

Subscribers do not hold copies of events: each keeps a cursor into the
shared history and, when woken, takes everything after it in one read, so a
client that fell behind gets its backlog in one write and memory does not
grow with the number of slow clients. Only direct messages (``connected``,
``stream:gap``, ``send_to_client``, keep-alive) sit in a small per-client
queue, ordered against the history by the sequence number they follow.

Everything here runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from otel_sse.bus.history import StoredEvent
from otel_sse.bus.ids import format_id
from otel_sse.bus.log import EventLog
from otel_sse.wire.encoder import dumps, encode_event, iso_ms_from_epoch, iso_ms_now
from otel_sse.wire.filters import EventFilter

# The largest backlog taken in one read: bounds one write during a replay.
READ_BATCH = 512
# Rounds that wake fewer readers than PACED_ROUND, or take less than PACE_FROM
# seconds, are never paced: their writes cost little, and pacing them only turned
# a slow round now and then into a latency tail.
PACED_ROUND = 256
PACE_FROM = 0.003
# However costly a round, the next one starts within this many seconds (latency bound).
MAX_PACE = 0.015


class SlowClientPolicy(StrEnum):
    DISCONNECT = "disconnect"
    DROP_OLDEST = "drop-oldest"


class Subscriber:
    __slots__ = (
        "bytes_sent",
        "client_id",
        "closing",
        "connected_at",
        "cursor",
        "direct",
        "direct_seq",
        "due",
        "events_sent",
        "filter",
        "info",
        "kill_hook",
        "killed",
        "lagging",
        "last_write",
        "live",
        "missed",
        "skip",
        "waiter",
    )

    def __init__(self, client_id: str, event_filter: EventFilter, cursor: int,
                 info: dict[str, str]) -> None:
        self.client_id = client_id
        self.filter = event_filter
        self.cursor = cursor
        self.direct: deque[tuple[int, bytes]] = deque()
        self.direct_seq = 0
        self.waiter: asyncio.Future[None] | None = None
        # Set by a write round (or a direct message): the reader may collect once.
        self.due = True
        # A replaying subscriber is catching up on purpose, not falling behind.
        self.live = False
        self.closing = False
        self.killed: str | None = None
        self.kill_hook: Callable[[], None] | None = None
        self.missed = 0
        self.lagging = False
        self.skip = False
        self.events_sent = 0
        self.bytes_sent = 0
        self.connected_at = time.time()
        self.last_write = time.monotonic()
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
    def __init__(self, log: EventLog, max_lag: int, policy: SlowClientPolicy) -> None:
        if max_lag < 1:
            raise ValueError(f"client_queue_size must be >= 1, got {max_lag!r}")
        self.log = log
        self.max_lag = max_lag
        self.policy = policy
        self.subscribers: dict[str, Subscriber] = {}
        self._waiting: set[Subscriber] = set()
        self._dirty_types: set[str] = set()
        self._wake_scheduled = False
        self._next_round = 0.0
        self._round_start = 0.0
        self._filtered: dict[str, Subscriber] = {}
        self._recipients: dict[str, int] = {}
        self._behind: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.slow_disconnects = 0
        self.gaps_sent = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- publishing ---------------------------------------------------------

    def publish(self, event_type: str, data: str, retry: int | None = None) -> StoredEvent:
        event = self.log.append(event_type, data, retry)
        self._dirty_types.add(event_type)
        if self._waiting:
            self._schedule_round()
        return event

    def _schedule_round(self) -> None:
        # Publishes before the round runs share it: a burst leaves in one write
        # per client instead of one per event.
        loop = self._loop
        if self._wake_scheduled or loop is None:
            return
        self._wake_scheduled = True
        if loop.time() >= self._next_round:
            loop.call_soon(self._wake)
        else:
            loop.call_at(self._next_round, self._wake)

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

    def _wake(self) -> None:
        """One write round: every waiting reader with something due collects once."""
        self._wake_scheduled = False
        types = self._dirty_types
        self._dirty_types = set()
        behind = self._behind
        woken = []
        for sub in self._waiting:
            flt = sub.filter
            if flt.matches_all or sub in behind or any(flt(t) for t in types):
                woken.append(sub)
        behind.clear()
        for sub in woken:
            self._release(sub)
        if len(woken) >= PACED_ROUND and self._loop is not None:
            # Queued after every woken reader's step, so it runs once their writes are done.
            self._round_start = self._loop.time()
            self._loop.call_soon(self._round_done)

    def _round_done(self) -> None:
        """Pace write rounds so that writing takes at most half of the loop's time.

        With many clients, a round of writes costs milliseconds; starting the next
        round no sooner than that cost again lets events that arrive meanwhile
        share one write per client, so the cost follows clients x rounds, not
        clients x events, and latency stays about one round instead of growing
        with a backlog. Small rounds are not paced at all.
        """
        assert self._loop is not None
        now = self._loop.time()
        cost = now - self._round_start
        self._next_round = now + min(cost, MAX_PACE) if cost >= PACE_FROM else 0.0

    def _release(self, sub: Subscriber) -> None:
        sub.due = True
        self._waiting.discard(sub)
        waiter = sub.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- subscribers --------------------------------------------------------

    def add(self, sub: Subscriber) -> None:
        self._recipients = {}
        self.subscribers[sub.client_id] = sub
        if not sub.filter.matches_all:
            self._filtered[sub.client_id] = sub

    def remove(self, sub: Subscriber) -> None:
        self._recipients = {}
        self.subscribers.pop(sub.client_id, None)
        self._filtered.pop(sub.client_id, None)
        self._waiting.discard(sub)
        self._behind.discard(sub)

    def send_direct(self, sub: Subscriber, frame: bytes) -> None:
        sub.direct.append((self.log.history.last_seq, frame))
        self._release(sub)

    def next_direct_id(self, sub: Subscriber) -> str:
        """An id for a direct message: after the last published event, before the next."""
        sub.direct_seq += 1
        return format_id(self.log.run_id, self.log.history.last_seq, sub.direct_seq)

    def close(self, sub: Subscriber) -> None:
        """End the stream once what is queued for it has been written."""
        sub.closing = True
        self._release(sub)

    def kill(self, sub: Subscriber, reason: str) -> None:
        """End the stream now, dropping what is queued (the client resumes by id)."""
        if sub.killed is None:
            sub.killed = reason
            self._release(sub)
            if sub.kill_hook is not None:
                sub.kill_hook()

    def sweep(self) -> None:
        """Apply the slow-client policy to readers that stay behind.

        A reader is slow when it is more than ``max_lag`` events behind at two
        sweeps in a row: a burst published in one go puts every reader behind
        for a moment, a slow one stays there (often stuck in a blocked write,
        where it never reaches ``collect``).
        """
        last = self.log.history.last_seq
        for sub in list(self.subscribers.values()):
            behind = sub.live and last - sub.cursor > self.max_lag and sub.killed is None
            if not behind:
                sub.lagging = False
            elif not sub.lagging:
                sub.lagging = True
            elif self.policy is SlowClientPolicy.DISCONNECT:
                self.slow_disconnects += 1
                self.kill(sub, "slow")
            else:
                sub.skip = True
                self._release(sub)

    # -- reading ------------------------------------------------------------

    async def read(self, sub: Subscriber) -> bytes | None:
        """The next bytes for this subscriber; None when its stream should end."""
        loop = self._loop
        assert loop is not None
        while True:
            if sub.killed is not None:
                return None
            # Outside a round a live reader does not collect what was published
            # while it was writing: that waits for the next (paced) round, so one
            # round costs one write per client however long it takes.
            if sub.due or not sub.live:
                sub.due = False
                chunk = self.collect(sub)
                if chunk:
                    return chunk
            elif sub.cursor < self.log.history.last_seq:
                self._behind.add(sub)
                self._schedule_round()
            if sub.closing:
                return None
            waiter = loop.create_future()
            sub.waiter = waiter
            self._waiting.add(sub)
            try:
                await waiter
            finally:
                sub.waiter = None
                self._waiting.discard(sub)

    def collect(self, sub: Subscriber) -> bytes:
        history = self.log.history
        last = history.last_seq
        cursor = sub.cursor
        direct = sub.direct
        if cursor >= last:
            sub.live = True
            if not direct:
                return b""
            frames = [frame for _, frame in direct]
            direct.clear()
            return b"".join(frames)

        frames = []
        if cursor < history.first_seq - 1:
            # History was trimmed past this reader: say so before what remains.
            missed = history.first_seq - 1 - cursor
            frames.append(self._gap_frame(sub, cursor, missed))
            cursor = history.first_seq - 1
        elif sub.skip:
            # drop-oldest: keep the newest max_lag events, say how many were skipped.
            sub.skip = sub.lagging = False
            missed = last - cursor - self.max_lag
            if missed > 0:
                frames.append(self._gap_frame(sub, cursor, missed))
                cursor += missed

        first, stop = history.window(cursor, READ_BATCH)
        chunk = history.frames(first, stop)
        flt = sub.filter
        if not direct and flt.matches_all:
            frames += chunk
            sent = len(chunk)
        else:
            sent = 0
            seq = first
            for event_type, frame in zip(history.types(first, stop), chunk, strict=True):
                while direct and direct[0][0] < seq:
                    frames.append(direct.popleft()[1])
                if flt(event_type):
                    frames.append(frame)
                    sent += 1
                seq += 1
        if chunk:
            cursor = stop
        while direct and direct[0][0] <= cursor:
            frames.append(direct.popleft()[1])
        sub.cursor = cursor
        sub.events_sent += sent
        if cursor >= last:
            sub.live = True
        return b"".join(frames)

    def _gap_frame(self, sub: Subscriber, cursor: int, missed: int | None) -> bytes:
        sub.missed += missed or 0
        return self.gap_frame(format_id(self.log.run_id, cursor) if cursor else None, missed)

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
