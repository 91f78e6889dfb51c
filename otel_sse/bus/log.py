"""The event log: assigns ids, encodes each event once, keeps the history.

``EventLog`` is the seam between the hub and where events are stored. Two
implementations:

* :class:`MemoryEventLog`, the embedded default: ``append`` stores the event at
  once and returns it; ids are ``<run>-<seq>``.
* :class:`~otel_sse.bus.redis_log.RedisEventLog` (``bus="redis://..."``), a log
  shared by several gateways: ``append`` hands the event to Redis and returns
  None; the event enters :attr:`history` when the log reads it back from the
  stream, with the stream entry id as its id, and the log tells its
  :class:`LogListener` (the hub) so that the fan-out writes it.

Either way readers are served from ``history``, the local window of encoded
events, with the same cursors and the same coalesced writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from otel_sse.bus.history import History, StoredEvent
from otel_sse.bus.ids import EventId, format_id, new_run_id
from otel_sse.wire.encoder import encode_checked, encode_event


class LogListener(Protocol):
    """What a shared log tells the hub about the events it reads back."""

    def observed(self, event_type: str, data: bytes, source: str, live: bool) -> None:
        """One event read from the shared log, before it enters the history: the
        open-work state sees it (``live`` is False while the tail is loaded at start)."""
        ...

    def touched(self, source: str) -> None:
        """A producer's keepalive read from the shared log (no event)."""
        ...

    def appended(self, types: set[str]) -> None:
        """Events of these types entered the history: write them to subscribers."""
        ...

    def lost(self, requested_id: str | None) -> None:
        """The shared log lost events this replica had not read (it was reset or
        trimmed past this replica while it could not read): tell the subscribers."""
        ...


@dataclass(frozen=True, slots=True)
class Located:
    """Where a subscriber resuming from a ``Last-Event-ID`` starts.

    ``cursor``: the sequence number to resume after (None: the id is unknown, replay
    what the history holds). ``backlog``: encoded events older than the history, to
    send first. ``gap``: events between the id and what follows may be missing.
    """

    cursor: int | None
    backlog: tuple[bytes, ...] = field(default=())
    gap: bool = False


class EventLog(Protocol):
    run_id: str
    history: History
    #: True when events enter the history as they are read back from a shared store
    #: (``append`` returns None), False when ``append`` stores them at once.
    shared: bool
    #: Whether this process publishes the events derived from the open-work state
    #: (``trace:completed``, heartbeats, stale spans): always, on an unshared log;
    #: on a shared one, one replica at a time.
    leader: bool

    def append(self, event_type: str, data: str, retry: int | None = None,
               source: str = "") -> StoredEvent | None:
        """Store one event; ``event_type`` must already be checked (``check_field``).
        ``source`` names the process the telemetry came from (``""``: this one)."""
        ...

    def append_all(self, events: list[tuple[str, str, int | None]]
                   ) -> asyncio.Future[list[str | None]] | None:
        """Store ``(type, data, retry)`` events together; the future gets their ids
        (None: the log cannot take them all now, and took none)."""
        ...

    def touch(self, source: str) -> None:
        """``source`` is alive (a shared log tells the other replicas)."""
        ...

    def resolve(self, event_id: EventId | None) -> int | None:
        """The sequence number to resume after, or None when the id is not from this log."""
        ...

    async def locate(self, event_id: EventId) -> Located:
        """:meth:`resolve` for a shared log, which may have to ask the store."""
        ...

    def id_of(self, seq: int) -> str | None:
        """The id of event ``seq`` (None when it is not known any more)."""
        ...

    def direct_id(self, seq: int, sub: int) -> str:
        """The id of the ``sub``-th direct message sent after event ``seq``."""
        ...

    async def start(self, listener: LogListener) -> None:
        """Connect, load what the store holds, start reading (a shared log)."""
        ...

    async def stop(self, grace: float) -> None:
        """Send what is buffered (within ``grace`` s) and stop."""
        ...

    def status(self) -> str:
        """``ok``, or ``degraded`` while a shared store is unreachable."""
        ...

    def stats(self) -> dict[str, object]:
        """Counters of the log (camelCase), merged into ``get_stats()``."""
        ...


class MemoryEventLog:
    """In-process log, the embedded default. Not thread-safe: the server calls it on its loop."""

    shared = False
    leader = True

    def __init__(self, history_size: int = 10_000, history_bytes: int = 64 * 1024 * 1024,
                 run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.history = History(history_size, history_bytes)

    def append(self, event_type: str, data: str, retry: int | None = None,
               source: str = "") -> StoredEvent:
        seq = self.history.last_seq + 1
        event_id = format_id(self.run_id, seq)
        # The type was checked when it was published and the id is ours: only the
        # data may still need splitting into lines.
        frame = (encode_checked(event_id, event_type, data) if retry is None
                 else encode_event(data, event_type, event_id, retry))
        event = StoredEvent(seq, event_id, event_type, frame)
        self.history.append(event)
        return event

    def append_all(self, events: list[tuple[str, str, int | None]]
                   ) -> asyncio.Future[list[str | None]]:
        future: asyncio.Future[list[str | None]] = asyncio.get_running_loop().create_future()
        future.set_result([self.append(*event).id for event in events])
        return future

    def touch(self, source: str) -> None:
        """The hub keeps sources itself."""

    def resolve(self, event_id: EventId | None) -> int | None:
        if event_id is None or event_id.run != self.run_id or event_id.seq > self.history.last_seq:
            return None
        return event_id.seq

    async def locate(self, event_id: EventId) -> Located:
        return Located(self.resolve(event_id))

    def id_of(self, seq: int) -> str | None:
        return format_id(self.run_id, seq) if seq else None

    def direct_id(self, seq: int, sub: int) -> str:
        return format_id(self.run_id, seq, sub)

    async def start(self, listener: LogListener) -> None:
        """Nothing to connect to."""

    async def stop(self, grace: float) -> None:
        """Nothing buffered."""

    def status(self) -> str:
        return "ok"

    def stats(self) -> dict[str, object]:
        return {"bus": "memory"}
