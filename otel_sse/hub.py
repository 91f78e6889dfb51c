"""The publishing hub: what emitters, processors, ingest and applications publish to.

``publish``, ``broadcast`` and ``send_to_client`` may be called from any thread
and never block. On the hub's loop they go straight to the fan-out; from other
threads they are validated and encoded to text on the caller's thread, then
queued for the loop in a hand-off bounded in events and in bytes (a full
hand-off drops the newest and counts it: the caller never waits). The loop
publishes the hand-off in slices and lets the fan-out write each slice before
taking the next, so a burst from many threads reaches connected clients as it
does from the loop, instead of all at once and past their slow-client limits.

The hub knows nothing of sockets: :class:`~otel_sse.server.SSEServer` serves a
hub over HTTP, :class:`~otel_sse.asgi.SSEApp` serves one under any ASGI server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from otel_sse.bus.fanout import Fanout, SlowClientPolicy, Subscriber
from otel_sse.bus.log import EventLog, MemoryEventLog
from otel_sse.bus.open_spans import LOCAL, TRACKED, OpenSpans
from otel_sse.errors import EventFormatError, ServerError
from otel_sse.wire.encoder import check_field, data_text, encode_event, iso_ms_from_epoch

try:  # parses the tracked events a shared log reads back
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads  # type: ignore[assignment]

# A producer's keepalive goes to a shared log at most this often (seconds).
TOUCH_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class HubLimits:
    """The hub's bounds; :class:`~otel_sse.server.ServerConfig` carries them for the server."""

    history_size: int = 10_000
    history_bytes: int = 64 * 1024 * 1024
    client_queue_size: int = 2_000
    client_buffer_bytes: int = 1024 * 1024
    slow_client_policy: SlowClientPolicy = SlowClientPolicy.DISCONNECT
    pending_events: int = 65_536
    pending_bytes: int = 64 * 1024 * 1024
    max_event_bytes: int = 4 * 1024 * 1024
    open_spans: int = 10_000


class _Direct(NamedTuple):
    client_id: str
    event_type: str
    data: str
    retry: int | None


class _Broadcast(NamedTuple):
    event_type: str
    data: str
    retry: int | None


_Pending = _Broadcast | _Direct


class EventHub:
    """An event log, its subscribers and the thread-safe ways to publish to them."""

    def __init__(self, limits: HubLimits | None = None, *,
                 event_log: EventLog | None = None) -> None:
        self.limits = limits = limits or HubLimits()
        self.log: EventLog = event_log or MemoryEventLog(limits.history_size,
                                                         limits.history_bytes)
        self.fanout = Fanout(self.log, limits.client_queue_size, limits.slow_client_policy,
                             limits.client_buffer_bytes)
        # The work open now (snapshots for new subscribers, trace:completed, heartbeats).
        self.spans = OpenSpans(limits.open_spans)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: deque[_Pending] = deque()
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()
        self._drain_scheduled = False
        # Told when the hub binds to a loop: telemetry queued while none ran is due.
        # Weak, so that a bridge dropped by a later configure() is not kept alive.
        self._on_bind: list[weakref.WeakMethod[Callable[[], None]]] = []
        # Events published per loop callback when draining the hand-off: a slice
        # stays well under the slow-client limit so that a connected reader can
        # take it before the next one comes.
        self._slice = max(8, min(256, limits.client_queue_size // 4))
        self.published = 0
        self.direct = 0
        self.dropped = 0
        self.started_at: float | None = None
        # A shared log (Redis): events reach the history, and the open-work state,
        # when the log reads them back; the state is fed there on every replica.
        self._shared = self.log.shared
        self._touched: dict[str, float] = {}

    # -- the loop ------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the hub publishes on (None until bound); telemetry hands work to it."""
        return self._loop

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Publish on ``loop`` from now on; what other threads queued meanwhile is due."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self.fanout.bind(loop)
        if self.started_at is None:
            self.started_at = time.time()
        self.drain_pending()
        alive = []
        for ref in self._on_bind:
            callback = ref()
            if callback is not None:
                alive.append(ref)
                callback()
        self._on_bind = alive

    def on_bind(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (a bound method, held weakly) on the loop each time the hub
        binds to one. It must not raise."""
        self._on_bind.append(weakref.WeakMethod(callback))

    def unbind(self) -> None:
        """Stop publishing on the loop (the server stopped): other threads' events wait,
        bounded, for the next :meth:`bind`."""
        self.drain_pending(everything=True)
        self._loop = None
        self._loop_thread = None

    def on_loop(self) -> bool:
        """Whether the caller runs on the hub's loop (then publishing is immediate)."""
        return self._loop is not None and threading.get_ident() == self._loop_thread

    # -- publishing ------------------------------------------------------------

    def broadcast(self, message: Mapping[str, Any]) -> int:
        """Publish ``{"event": type, "data": {...}}`` to every matching client.

        Returns how many connected clients take its type (0 when the hand-off
        from another thread was full and the event was dropped). Raises
        :class:`~otel_sse.errors.EventFormatError` when the message is not a
        mapping, the event name holds CR, LF or NUL, or the data cannot be encoded.
        """
        event_type, data, retry = self._prepare(message)
        return self._submit(_Broadcast(event_type, data, retry))

    def publish(self, event_type: str, data: Mapping[str, Any] | Any) -> int:
        """Same as ``broadcast({"event": event_type, "data": data})``."""
        if type(event_type) is str and event_type in TRACKED and type(data) is dict \
                and self.on_loop():
            return self.publish_from(LOCAL, event_type, data)
        if type(event_type) is str and event_type:
            check_field("event name", event_type)
            return self._submit(_Broadcast(event_type, data_text(data,
                                                                 self.limits.max_event_bytes),
                                           None))
        return self.broadcast({"event": event_type, "data": data})

    def publish_from(self, source: str, event_type: str, data: dict[str, Any]) -> int:
        """``publish`` on the loop, for telemetry from ``source`` (a process sending
        through the gateway; ``""``: this one): the open-work state sees it first, and
        what it causes (``trace:completed``) follows it."""
        check_field("event name", event_type)
        if self._shared:
            self.fanout.publish(event_type, data_text(data, self.limits.max_event_bytes),
                                None, source)
            self.published += 1
            return self.fanout.recipients(event_type)
        self.spans.touch(source)
        follow = self.spans.observe(event_type, data, source) if event_type in TRACKED else ()
        self.fanout.publish(event_type, data_text(data, self.limits.max_event_bytes))
        self.published += 1
        for follow_type, follow_data in follow:
            self.fanout.publish(follow_type, data_text(follow_data, self.limits.max_event_bytes))
            self.published += 1
        return self.fanout.recipients(event_type)

    def touch(self, source: str) -> None:
        """``source`` (a process sending through the gateway) sent something: its open
        spans are not stale. On a shared log every replica is told (at most once a
        second per source)."""
        self.spans.touch(source)
        if self._shared and source:
            now = time.monotonic()
            if now - self._touched.get(source, -TOUCH_INTERVAL) >= TOUCH_INTERVAL:
                if len(self._touched) >= 4096:
                    self._touched.clear()
                self._touched[source] = now
                self.log.touch(source)

    def tick(self, heartbeat_after: float, stale_after: float) -> None:
        """Periodic state events (on the loop): ``span:heartbeat`` for spans open longer
        than ``heartbeat_after`` s, ``span:stale`` for those of sources silent for
        ``stale_after`` s. On a shared log every replica forgets stale spans, and the
        leader alone publishes."""
        leader = self.log.leader
        for event_type, data in self.spans.stale(stale_after):
            if leader:
                self.publish_from(LOCAL, event_type, data)
        beat = self.spans.heartbeat(heartbeat_after)
        if beat is not None and leader:
            self.publish_from(LOCAL, *beat)

    # -- what a shared log reads back (LogListener) --------------------------------------

    def observed(self, event_type: str, data: bytes, source: str, live: bool) -> None:
        """The open-work state sees each event in the stream's order, on every replica;
        what it causes (``trace:completed``) is published by the leader alone."""
        if source:
            self.spans.touch(source)
        if event_type not in TRACKED:
            return
        try:
            parsed = _loads(data)
        except ValueError:
            return
        if type(parsed) is not dict:
            return
        follow = self.spans.observe(event_type, parsed, source)
        if follow and live and self.log.leader:
            for follow_type, follow_data in follow:
                self.fanout.publish(follow_type,
                                    data_text(follow_data, self.limits.max_event_bytes))
                self.published += 1

    def touched(self, source: str) -> None:
        """A producer's keepalive read from a shared log: its spans are not stale."""
        self.spans.touch(source)

    def appended(self, types: set[str]) -> None:
        """Events a shared log read back entered the history: the fan-out writes them."""
        self.fanout.arrived(types)

    def lost(self, requested_id: str | None) -> None:
        """Tell every subscriber that events may be missing here (``stream:gap``)."""
        fanout = self.fanout
        for sub in list(fanout.subscribers.values()):
            fanout.send_direct(sub, fanout.gap_frame(requested_id, None))

    # -- lifecycle of the log ----------------------------------------------------------

    async def open(self) -> None:
        """Start the log (a shared one connects and loads what it holds; a
        :class:`~otel_sse.errors.ServerError` names it when it cannot)."""
        await self.log.start(self)

    async def close(self, grace: float) -> None:
        """Stop the log, sending what it buffered within ``grace`` s."""
        await self.log.stop(grace)

    def send_to_client(self, client_id: str, message: Mapping[str, Any]) -> bool:
        """Send one event to one client, if its filters take the event's type.

        False when no such client is connected, its filters exclude the type, or
        the hand-off from another thread was full.
        """
        event_type, data, retry = self._prepare(message)
        sub = self.fanout.subscribers.get(client_id)
        if sub is None or not sub.filter(event_type):
            return False
        item = _Direct(client_id, event_type, data, retry)
        if self.on_loop():
            return self._direct_now(item)
        return self._enqueue(item)

    def publish_batch(self, messages: Sequence[Any]
                      ) -> list[str] | Awaitable[list[str | None]]:
        """Validate every message, then publish them all, in order (on the hub's loop).

        All or none: a bad message raises :class:`~otel_sse.errors.EventFormatError`
        naming its index, and nothing is published. Returns the ids given; on a
        shared log, an awaitable of them (each known once the store appended it,
        None for one it could not learn), or a :class:`~otel_sse.errors.ServerError`
        when its buffer cannot take them.
        """
        if not self.on_loop():
            raise ServerError("publish_batch runs on the hub's loop (it returns the ids given)")
        prepared = []
        for index, message in enumerate(messages):
            try:
                prepared.append(self._prepare(message))
            except EventFormatError as exc:
                raise EventFormatError(f"event {index}: {exc}") from None
        if self._shared:
            appended = self.log.append_all(prepared)
            if appended is None:
                raise ServerError("the bus is unavailable and its buffer is full")
            self.published += len(prepared)
            return appended
        ids = []
        for event_type, data, retry in prepared:
            event = self.fanout.publish(event_type, data, retry)
            assert event is not None
            ids.append(event.id)
            self.published += 1
        return ids

    def _prepare(self, message: Mapping[str, Any]) -> tuple[str, str, int | None]:
        if not isinstance(message, Mapping):
            raise EventFormatError(
                f"an event is a mapping like {{'event': 'type', 'data': {{...}}}}, "
                f"got {type(message).__name__} {message!r:.60}")
        event_type = message.get("event") or message.get("type") or "message"
        if not isinstance(event_type, str):
            raise EventFormatError(f"event name must be a string, got {event_type!r:.60}")
        check_field("event name", event_type)
        if message.get("id") is not None:
            # Ids are the server's (they drive resume); a given one is only checked.
            check_field("id", str(message["id"]))
        retry = message.get("retry")
        if retry is not None and (type(retry) is not int or retry < 0):
            raise EventFormatError(
                f"retry must be a non-negative int of milliseconds, got {retry!r:.60}")
        return event_type, data_text(message.get("data", {}), self.limits.max_event_bytes), retry

    def _submit(self, item: _Broadcast) -> int:
        if self.on_loop():
            self.fanout.publish(*item)
            self.published += 1
        elif not self._enqueue(item):
            return 0
        return self.fanout.recipients(item.event_type)

    def _enqueue(self, item: _Pending) -> bool:
        size = len(item.data) + len(item.event_type)
        with self._pending_lock:
            if (len(self._pending) >= self.limits.pending_events
                    or self._pending_bytes + size > self.limits.pending_bytes):
                self.dropped += 1
                return False
            self._pending.append(item)
            self._pending_bytes += size
            if self._drain_scheduled or self._loop is None:
                return True
            self._drain_scheduled = True
            loop = self._loop
        try:
            loop.call_soon_threadsafe(self.drain_pending)
        except RuntimeError:  # the loop is closed; the events wait for a restart
            with self._pending_lock:
                self._drain_scheduled = False
        return True

    def drain_pending(self, everything: bool = False) -> None:
        """Publish what other threads queued: one slice, then the next once the
        fan-out has written it (``everything``: all of it now)."""
        with self._pending_lock:
            count = len(self._pending) if everything else min(self._slice, len(self._pending))
            items = [self._pending.popleft() for _ in range(count)]
            self._pending_bytes -= sum(len(i.data) + len(i.event_type) for i in items)
            more = bool(self._pending)
            self._drain_scheduled = more and self._loop is not None
        for item in items:
            if isinstance(item, _Direct):
                self._direct_now(item)
            else:
                self.fanout.publish(*item)
                self.published += 1
        if more and self._loop is not None:
            self.fanout.after_round(self._drain_later)

    def _drain_later(self) -> None:
        if self._loop is not None:
            self._loop.call_soon(self.drain_pending)

    def _direct_now(self, item: _Direct) -> bool:
        sub: Subscriber | None = self.fanout.subscribers.get(item.client_id)
        if sub is None:
            return False
        frame = encode_event(item.data, item.event_type, self.fanout.next_direct_id(sub),
                             item.retry)
        if not self.fanout.send_direct(sub, frame):
            return False
        self.direct += 1
        return True

    # -- introspection -----------------------------------------------------------

    def get_clients(self) -> list[dict[str, object]]:
        """Every connected subscriber (see :meth:`SSEServer.get_clients`)."""
        return [sub.snapshot() for sub in list(self.fanout.subscribers.values())]

    def get_client(self, client_id: str) -> dict[str, object] | None:
        """One subscriber (None when not connected)."""
        sub = self.fanout.subscribers.get(client_id)
        return sub.snapshot() if sub is not None else None

    def stats(self) -> dict[str, object]:
        """Counters of the hub (camelCase, as ``get_stats`` shows them)."""
        history = self.log.history
        last = history.get(history.last_seq)
        fanout = self.fanout
        return {
            "clients": len(fanout.subscribers),
            "eventsPublished": self.published,
            "directMessages": self.direct,
            "pendingEvents": len(self._pending),
            "pendingBytes": self._pending_bytes,
            "droppedPending": self.dropped,
            "directDropped": fanout.direct_dropped,
            "slowDisconnects": fanout.slow_disconnects,
            "gapsSent": fanout.gaps_sent,
            "historyEvents": len(history),
            "historyBytes": history.nbytes,
            "lastEventId": last.id if last is not None else None,
            "runId": self.log.run_id,
            "uptime": (time.time() - self.started_at) if self.started_at else 0.0,
            "startedAt": iso_ms_from_epoch(self.started_at) if self.started_at else None,
            **self.log.stats(),
        }
