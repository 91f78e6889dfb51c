"""The event log: assigns ids, encodes each event once, keeps the history.

``EventLog`` is the seam for other back ends (a Redis Streams log shared by
several gateways implements the same surface: ``append`` stores and returns
the event, ``history`` is the local window readers are served from).
"""

from __future__ import annotations

from typing import Protocol

from otel_sse.bus.history import History, StoredEvent
from otel_sse.bus.ids import EventId, format_id, new_run_id
from otel_sse.wire.encoder import encode_checked, encode_event


class EventLog(Protocol):
    run_id: str
    history: History

    def append(self, event_type: str, data: str, retry: int | None = None) -> StoredEvent:
        """Store one event; ``event_type`` must already be checked (``check_field``)."""
        ...

    def resolve(self, event_id: EventId | None) -> int | None:
        """The sequence number to resume after, or None when the id is not from this log."""
        ...


class MemoryEventLog:
    """In-process log, the embedded default. Not thread-safe: the server calls it on its loop."""

    def __init__(self, history_size: int = 10_000, history_bytes: int = 64 * 1024 * 1024,
                 run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.history = History(history_size, history_bytes)

    def append(self, event_type: str, data: str, retry: int | None = None) -> StoredEvent:
        seq = self.history.last_seq + 1
        event_id = format_id(self.run_id, seq)
        # The type was checked when it was published and the id is ours: only the
        # data may still need splitting into lines.
        frame = (encode_checked(event_id, event_type, data) if retry is None
                 else encode_event(data, event_type, event_id, retry))
        event = StoredEvent(seq, event_id, event_type, frame)
        self.history.append(event)
        return event

    def resolve(self, event_id: EventId | None) -> int | None:
        if event_id is None or event_id.run != self.run_id or event_id.seq > self.history.last_seq:
            return None
        return event_id.seq
