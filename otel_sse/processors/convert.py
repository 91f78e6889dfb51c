"""Intermediate form -> contract events (CONTRACT.md sections 4 and 5).

Pure functions: no SDK objects, no I/O. They run on the server loop, off the
thread that made the telemetry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from otel_sse.processors.model import LiveEvent, LogRecordData, SpanRecord
from otel_sse.telemetry import attrs
from otel_sse.wire.encoder import iso_ms_ns, iso_us

Event = tuple[str, dict[str, Any]]

_SEVERITY_NAMES = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"),
                   (1, "TRACE"))


def trace_hex(trace_id: int | None) -> str | None:
    return f"{trace_id:032x}" if trace_id else None


def span_hex(span_id: int | None) -> str | None:
    return f"{span_id:016x}" if span_id else None


def _payload(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw:
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def _seed(payload: dict[str, Any], live: Mapping[str, Any] | None, time_ns: int,
          trace_id: int | None, span_id: int | None, parent: int | None) -> dict[str, Any]:
    return _seed_hex(payload, live, time_ns, trace_hex(trace_id), span_hex(span_id),
                     span_hex(parent))


def _seed_hex(payload: dict[str, Any], live: Mapping[str, Any] | None, time_ns: int,
              trace: str | None, span: str | None, parent: str | None) -> dict[str, Any]:
    if live:
        payload.update(live)
    if "timestamp" not in payload:
        payload["timestamp"] = iso_ms_ns(time_ns)
    payload["traceId"] = trace
    payload["spanId"] = span
    payload["parentSpanId"] = parent
    return payload


def span_started_events(span: SpanRecord) -> list[Event]:
    """``task:created`` / ``agent:started`` / ``llm:request:started`` ... and ``span:started``."""
    trace, span_id, parent = (trace_hex(span.trace_id), span_hex(span.span_id),
                              span_hex(span.parent_span_id))
    start = span.start_time_ns
    generic = {
        "traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": span.name,
        "kind": span.kind, "serviceName": span.service_name, "attributes": span.attributes,
        "startTime": iso_us(start), "timestamp": iso_ms_ns(start),
    }
    return _with_seed(span, attrs.EVENT, attrs.PAYLOAD, start, (trace, span_id, parent),
                      ("span:started", generic))


def span_ended_events(span: SpanRecord) -> list[Event]:
    """``task:completed`` / ``llm:request:error`` ... and ``span:ended``."""
    trace, span_id, parent = (trace_hex(span.trace_id), span_hex(span.span_id),
                              span_hex(span.parent_span_id))
    start = span.start_time_ns
    end = span.end_time_ns or start
    generic: dict[str, Any] = {
        "traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": span.name,
        "kind": span.kind, "serviceName": span.service_name, "attributes": span.attributes,
        "startTime": iso_us(start), "timestamp": iso_ms_ns(end), "endTime": iso_us(end),
        "durationMs": round((end - start) / 1e6, 3), "status": span.status,
    }
    if span.status_message:
        generic["statusMessage"] = span.status_message
    generic["events"] = [
        {"name": e["name"], "timestamp": iso_us(e["time_ns"]), "attributes": e["attributes"]}
        for e in span.events
    ]
    return _with_seed(span, attrs.END_EVENT, attrs.END_PAYLOAD, end, (trace, span_id, parent),
                      ("span:ended", generic))


def _with_seed(span: SpanRecord, event_key: str, payload_key: str, time_ns: int,
               ids: tuple[str | None, str | None, str | None], generic: Event) -> list[Event]:
    """The seed event our emitters asked for in ``event_key`` (if any), then ``generic``."""
    event_type = span.attributes.get(event_key)
    if isinstance(event_type, str) and event_type:
        data = _seed_hex(_payload(span.attributes.get(payload_key)), span.live, time_ns, *ids)
        return [(event_type, data), generic]
    return [generic]


def severity_name(number: int | None, text: str | None) -> str:
    if text:
        return text
    if number:
        for floor, name in _SEVERITY_NAMES:
            if number >= floor:
                return name
    return "UNSPECIFIED"


def log_events(record: LogRecordData) -> list[Event]:
    """A seed event for our records (by ``otel_sse.event``), else a generic ``log``."""
    event_type = record.attributes.get(attrs.EVENT)
    if isinstance(event_type, str) and event_type:
        seed = _seed(_payload(record.body), record.live, record.time_ns, record.trace_id,
                     record.span_id, record.parent_span_id)
        return [(event_type, seed)]
    data: dict[str, Any] = {}
    if record.trace_id:
        data["traceId"] = trace_hex(record.trace_id)
    if record.span_id:
        data["spanId"] = span_hex(record.span_id)
    data["serviceName"] = record.service_name
    data["severity"] = severity_name(record.severity_number, record.severity_text)
    if record.event_name:
        data["eventName"] = record.event_name
    data["body"] = record.body
    data["attributes"] = record.attributes
    data["timestamp"] = iso_ms_ns(record.time_ns)
    return [("log", data)]


def live_events(item: LiveEvent) -> list[Event]:
    data = _seed(item.data, None, item.time_ns, item.trace_id, item.span_id, item.parent_span_id)
    return [(item.event_type, data)]
