"""The plain records the conversion reads: no SDK objects, no protobuf.

Spans and log records become these whatever their source: our SDK processors
(:mod:`otel_sse.processors.model`), OTLP protobuf received from another
process (:mod:`otel_sse.convert.otlp`), or a test building one by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A contract event: its type and its payload (ids and timestamp included).
Event = tuple[str, dict[str, Any]]


@dataclass(slots=True)
class SpanRecord:
    """One span, started (``end_time_ns`` None) or ended. Times are Unix
    nanoseconds; ids are ints; attribute values are JSON-able (lists, not tuples)."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    kind: str
    service_name: str
    attributes: dict[str, Any]
    start_time_ns: int
    end_time_ns: int | None = None
    status: str = "unset"
    status_message: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    # Contract fields only the live stream may carry (content kept out of the
    # exported span). They travel on the Python object, typed; no exporter sees them.
    live: Mapping[str, Any] | None = None


@dataclass(slots=True)
class LogRecordData:
    """One log record (an event when ``event_name`` is set)."""

    trace_id: int | None
    span_id: int | None
    parent_span_id: int | None
    service_name: str
    severity_text: str | None
    severity_number: int | None
    event_name: str | None
    body: Any
    attributes: dict[str, Any]
    time_ns: int
    live: Mapping[str, Any] | None = None


@dataclass(slots=True)
class LiveEvent:
    """A contract event that exists only on the live stream (a token not exported
    one by one), as typed values. :func:`otel_sse.convert.live_event_record` gives
    the log record that stands for it when it must leave the process."""

    event_type: str
    data: dict[str, Any]
    trace_id: int
    span_id: int
    parent_span_id: int | None
    time_ns: int
