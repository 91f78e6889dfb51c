"""Plain records -> contract events (CONTRACT.md sections 4 and 5).

Pure functions: no SDK objects, no I/O. In-process they run on the server
loop, off the thread that made the telemetry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import otel_sse.convert.names as n
from otel_sse.convert.model import Event, LiveEvent, LogRecordData, SpanRecord
from otel_sse.convert.records import record_payload
from otel_sse.convert.spans import MARKERS, Seed, classify, ended_seeds, started_seeds
from otel_sse.convert.values import hex_span, hex_trace
from otel_sse.wire.encoder import iso_ms_ns, iso_us

_SEVERITY_NAMES = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"),
                   (1, "TRACE"))
Ids = tuple[str | None, str | None, str | None]


def _finish(payload: dict[str, Any], live: Mapping[str, Any] | None, time_ns: int,
            ids: Ids) -> dict[str, Any]:
    """Add the live-only fields, the event's time (unless the payload has its own) and ids."""
    if live:
        payload.update(live)
    if "timestamp" not in payload:
        payload["timestamp"] = iso_ms_ns(time_ns)
    payload["traceId"], payload["spanId"], payload["parentSpanId"] = ids
    return payload


def _seeds(span: SpanRecord, seeds: list[Seed], time_ns: int, ids: Ids,
           generic: Event) -> list[Event]:
    out: list[Event] = [(event_type, _finish(payload, span.live, time_ns, ids))
                        for event_type, payload in seeds]
    out.append(generic)
    return out


def _ids(span: SpanRecord) -> Ids:
    return hex_trace(span.trace_id), hex_span(span.span_id), hex_span(span.parent_span_id)


def span_started_events(span: SpanRecord, *, words: dict[str, Any] | None = None
                        ) -> list[Event]:
    """``task:created`` / ``agent:started`` / ``llm:request:started`` ... and ``span:started``.

    ``words``: the attributes the span was given right after it started, when its
    start named no vocabulary (what its start stands for is read from them;
    ``span:started`` shows the attributes it started with)."""
    return _started(span, _ids(span), iso_us(span.start_time_ns), words)


def _started(span: SpanRecord, ids: Ids, start_us: str | None,
             words: dict[str, Any] | None = None) -> list[Event]:
    start = span.start_time_ns
    attributes = span.attributes
    generic: Event = ("span:started", {
        "traceId": ids[0], "spanId": ids[1], "parentSpanId": ids[2], "name": span.name,
        "kind": span.kind, "serviceName": span.service_name, "attributes": attributes,
        "startTime": start_us, "timestamp": iso_ms_ns(start),
    })
    if words is not None:
        named = replace(span, attributes=words)
        return _seeds(named, started_seeds(named, classify(words)), start, ids, generic)
    # Most spans name no operation: one C-level pass over their keys tells.
    if MARKERS.isdisjoint(attributes):
        return [generic]
    return _seeds(span, started_seeds(span, classify(attributes)), start, ids, generic)


def span_ended_events(span: SpanRecord, *, late_start: bool = False) -> list[Event]:
    """``task:completed`` / ``llm:request:error`` ... and ``span:ended``.

    ``late_start``: the span's start stood for no event (it was given its
    vocabulary's attributes only after it started), so the events its start
    stands for come first, rebuilt from the attributes it ended with and dated
    at its start."""
    return _ended(span, _ids(span), iso_us(span.start_time_ns), late_start)


def _ended(span: SpanRecord, ids: Ids, start_us: str | None, late_start: bool = False
           ) -> list[Event]:
    start = span.start_time_ns
    end = span.end_time_ns or start
    attributes = span.attributes
    data: dict[str, Any] = {
        "traceId": ids[0], "spanId": ids[1], "parentSpanId": ids[2], "name": span.name,
        "kind": span.kind, "serviceName": span.service_name, "attributes": attributes,
        "startTime": start_us, "timestamp": iso_ms_ns(end), "endTime": iso_us(end),
        "durationMs": round((end - start) / 1e6, 3), "status": span.status,
    }
    if span.status_message:
        data["statusMessage"] = span.status_message
    data["events"] = [
        {"name": e["name"], "timestamp": iso_us(e["time_ns"]), "attributes": e["attributes"]}
        for e in span.events
    ]
    if MARKERS.isdisjoint(attributes):
        return [("span:ended", data)]
    kind = classify(attributes)
    events = _seeds(span, ended_seeds(span, kind), end, ids, ("span:ended", data))
    if late_start:
        return [(event_type, _finish(payload, span.live, start, ids))
                for event_type, payload in started_seeds(span, kind)] + events
    return events


def span_events(span: SpanRecord, *, with_start: bool = False) -> list[Event]:
    """The events of a span received from elsewhere: a start (``end_time_ns`` None,
    see the package docstring) gives its start events; an ended span its end
    events, preceded by its start events when ``with_start`` (the receiver never
    saw it start)."""
    if span.end_time_ns is None:
        return span_started_events(span)
    if with_start:  # both halves from one set of ids and start time
        ids, start_us = _ids(span), iso_us(span.start_time_ns)
        return _started(span, ids, start_us) + _ended(span, ids, start_us)
    return span_ended_events(span)


def severity_name(number: int | None, text: str | None) -> str:
    """A log record's severity text, else the name its number falls under."""
    if text:
        return text
    if number:
        for floor, name in _SEVERITY_NAMES:
            if number >= floor:
                return name
    return "UNSPECIFIED"


def log_events(record: LogRecordData) -> list[Event]:
    """A contract event for one of our record events (by its event name), else ``log``."""
    event_type = n.EVENT_TYPES.get(record.event_name) if record.event_name else None
    if event_type is not None:
        payload = record_payload(event_type, record.attributes, record.body,
                                 hex_span(record.span_id) or "")
        ids = hex_trace(record.trace_id), hex_span(record.span_id), hex_span(
            record.parent_span_id)
        return [(event_type, _finish(payload, record.live, record.time_ns, ids))]
    data: dict[str, Any] = {}
    if record.trace_id:
        data["traceId"] = hex_trace(record.trace_id)
    if record.span_id:
        data["spanId"] = hex_span(record.span_id)
    data["serviceName"] = record.service_name
    data["severity"] = severity_name(record.severity_number, record.severity_text)
    if record.event_name:
        data["eventName"] = record.event_name
    data["body"] = record.body
    data["attributes"] = record.attributes
    data["timestamp"] = iso_ms_ns(record.time_ns)
    return [("log", data)]


def live_events(item: LiveEvent) -> list[Event]:
    """The one event a :class:`LiveEvent` is."""
    ids = hex_trace(item.trace_id), hex_span(item.span_id), hex_span(item.parent_span_id)
    return [(item.event_type, _finish(item.data, None, item.time_ns, ids))]
