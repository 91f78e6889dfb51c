"""The event bus: ids, retained history and fan-out to subscribers."""

from otel_sse.bus.fanout import Fanout, SlowClientPolicy, Subscriber
from otel_sse.bus.history import History, StoredEvent
from otel_sse.bus.ids import EventId, InvalidEventId, format_id, parse_id
from otel_sse.bus.log import EventLog, MemoryEventLog

__all__ = [
    "EventId",
    "EventLog",
    "Fanout",
    "History",
    "InvalidEventId",
    "MemoryEventLog",
    "SlowClientPolicy",
    "StoredEvent",
    "Subscriber",
    "format_id",
    "parse_id",
]
