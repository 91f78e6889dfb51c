"""SDK spans and log records -> the plain records of :mod:`otel_sse.convert.model`.

The conversion reads only those records, never SDK objects, so spans decoded
from OTLP protobuf (:mod:`otel_sse.convert.otlp`) go through exactly the same
code as our own.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan

from otel_sse.convert.model import LiveEvent, LogRecordData, SpanRecord
from otel_sse.convert.spans import MARKERS

__all__ = ["LiveEvent", "LogRecordData", "OtelSSELogRecord", "SpanRecord", "StartedSpan",
           "attributes_dict", "log_from_sdk", "span_from_sdk", "span_from_started",
           "started_snapshot", "words_given_later"]

_KINDS = {0: "internal", 1: "server", 2: "client", 3: "producer", 4: "consumer"}
_STATUS_VALUES = {0: "unset", 1: "ok", 2: "error"}  # StatusCode.UNSET / OK / ERROR values


class OtelSSELogRecord(LogRecord):
    """An API log record that also carries what only the live stream may see.

    Exporters encode the standard fields only; ``otel_sse_live`` and
    ``otel_sse_parent`` are read by our log processor in the same process.
    """

    otel_sse_live: Mapping[str, Any] | None = None
    otel_sse_parent: int | None = None


def attributes_dict(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes as JSON-able values (tuples from the SDK become lists)."""
    if not attributes:
        return {}
    # The SDK's BoundedAttributes is a Python-level Mapping (a lock and a method
    # call per key); the plain dict inside it is copied in one C call, which the
    # GIL makes atomic against a thread still setting attributes.
    inner = getattr(attributes, "_dict", None)
    items = dict(inner).items() if type(inner) is dict else attributes.items()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


_last_service: tuple[Any, str] = (None, "")


def _service(resource: Any) -> str:
    global _last_service
    cached = _last_service
    if cached[0] is resource and resource is not None:  # resources are immutable
        return cached[1]
    attrs = getattr(resource, "attributes", None) or {}
    name = str(attrs.get("service.name", "unknown_service"))
    _last_service = (resource, name)
    return name


def span_from_sdk(span: ReadableSpan, ended: bool,
                  live: Mapping[str, Any] | None = None) -> SpanRecord:
    """Snapshot an SDK span (at start or at end) into a :class:`SpanRecord`."""
    try:
        # The SDK's private slots, read directly: the public properties copy the
        # events and wrap the attributes, several times the cost of the conversion.
        ctx, parent, kind = span._context, span._parent, span._kind._value_
        name, start, resource = span._name, span._start_time, span._resource
        raw_attributes, raw_events = span._attributes, span._events
        status = span._status
        code, description = status._status_code._value_, status._description
        end = span._end_time
    except AttributeError:
        ctx, parent, kind = span.get_span_context(), span.parent, span.kind.value
        name, start, resource = span.name, span.start_time, span.resource
        raw_attributes, raw_events = span.attributes, span.events
        code, description = span.status.status_code.value, span.status.description
        end = span.end_time
    record = SpanRecord(
        trace_id=ctx.trace_id if ctx is not None else 0,
        span_id=ctx.span_id if ctx is not None else 0,
        parent_span_id=parent.span_id if parent is not None and parent.is_valid else None,
        name=name,
        kind=_KINDS.get(kind, "internal"),
        service_name=_service(resource),
        attributes=attributes_dict(raw_attributes),
        start_time_ns=start or 0,
        live=live,
    )
    if ended:
        record.end_time_ns = end
        record.status = _STATUS_VALUES.get(code, "unset")
        record.status_message = description
        # A BoundedList iterates in Python under a lock; its deque iterates in C.
        events = getattr(raw_events, "_dq", raw_events)
        record.events = [
            {"name": event.name, "time_ns": event.timestamp,
             "attributes": attributes_dict(event.attributes)}
            for event in events
        ]
    return record


# What ``span:started`` needs from a span, read inside ``on_start`` on the
# application's thread: its context and parent (immutable), name, kind, start
# time, resource and a copy of its attributes as they are at the start. Holding
# the SDK span itself until the loop converts it kept its whole object graph
# alive for the drain interval. A span that starts in no vocabulary may still be
# given its words right after the start (OpenLLMetry sets every attribute after
# ``start_span`` returns): for those the snapshot keeps a weak reference, and the
# loop reads the words the span has by then, if it is still alive, for the
# events its start stands for (``span:started`` keeps the attributes it started with).
StartedSpan = tuple[Any, Any, str, int, int | None, Any, dict[str, Any],
                    "weakref.ref[Any] | None"]


def started_snapshot(span: ReadableSpan) -> StartedSpan:
    """A :data:`StartedSpan` of an SDK span, taken the moment it starts.

    The SDK keeps these fields in private slots behind properties; reading the
    slots costs a fifth as much, and this runs inside the application's call.
    Any other span class goes through the public properties."""
    try:
        raw = span._attributes._dict  # type: ignore[union-attr]
        attributes = dict(raw) if type(raw) is dict else attributes_dict(span._attributes)
        return (span._context, span._parent, span._name, span._kind._value_,
                span._start_time, span._resource, attributes,
                weakref.ref(span) if MARKERS.isdisjoint(attributes) else None)
    except AttributeError:
        attributes = attributes_dict(span.attributes)
        return (span.get_span_context(), span.parent, span.name, span.kind.value,
                span.start_time, span.resource, attributes, None)


def span_from_started(snapshot: StartedSpan, live: Mapping[str, Any] | None = None) -> SpanRecord:
    """The :class:`SpanRecord` of a :data:`StartedSpan`."""
    ctx, parent, name, kind, start, resource, attributes, _ = snapshot
    return SpanRecord(trace_id=ctx.trace_id if ctx is not None else 0,
                      span_id=ctx.span_id if ctx is not None else 0,
                      parent_span_id=parent.span_id if parent is not None and parent.is_valid
                      else None,
                      name=name, kind=_KINDS.get(kind, "internal"),
                      service_name=_service(resource),
                      attributes=attributes_dict(attributes),
                      start_time_ns=start or 0, live=live)


def words_given_later(snapshot: StartedSpan) -> dict[str, Any] | None:
    """The attributes a span that started in no vocabulary has now, when they name
    one (None otherwise, or when the span is gone)."""
    ref = snapshot[7]
    span = ref() if ref is not None else None
    if span is None:
        return None
    attributes = attributes_dict(getattr(span, "_attributes", None) or span.attributes)
    return None if MARKERS.isdisjoint(attributes) else attributes


def log_from_sdk(rw: ReadWriteLogRecord) -> LogRecordData:
    """Snapshot an SDK log record into a :class:`LogRecordData`."""
    record = rw.log_record
    trace_id = record.trace_id or None
    span_id = record.span_id or None
    severity = record.severity_number
    return LogRecordData(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=getattr(record, "otel_sse_parent", None),
        service_name=_service(rw.resource),
        severity_text=record.severity_text,
        severity_number=severity.value if severity is not None else None,
        event_name=record.event_name,
        body=record.body,
        attributes=attributes_dict(record.attributes),
        time_ns=record.timestamp or record.observed_timestamp or 0,
        live=getattr(record, "otel_sse_live", None),
    )


