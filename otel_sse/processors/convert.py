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
    if live:
        payload.update(live)
    if "timestamp" not in payload:
        payload["timestamp"] = iso_ms_ns(time_ns)
    payload["traceId"] = trace_hex(trace_id)
    payload["spanId"] = span_hex(span_id)
    payload["parentSpanId"] = span_hex(parent)
    return payload


def _generic_span(span: SpanRecord) -> dict[str, Any]:
    return {
        "traceId": trace_hex(span.trace_id),
        "spanId": span_hex(span.span_id),
        "parentSpanId": span_hex(span.parent_span_id),
        "name": span.name,
        "kind": span.kind,
        "serviceName": span.service_name,
        "attributes": span.attributes,
        "startTime": iso_us(span.start_time_ns),
        "timestamp": iso_ms_ns(span.start_time_ns),
    }


def span_started_events(span: SpanRecord) -> list[Event]:
    """``task:created`` / ``agent:started`` / ``llm:request:started`` ... and ``span:started``."""
    out: list[Event] = []
    event_type = span.attributes.get(attrs.EVENT)
    if isinstance(event_type, str) and event_type:
        data = _seed(_payload(span.attributes.get(attrs.PAYLOAD)), span.live, span.start_time_ns,
                     span.trace_id, span.span_id, span.parent_span_id)
        out.append((event_type, data))
    out.append(("span:started", _generic_span(span)))
    return out


def span_ended_events(span: SpanRecord) -> list[Event]:
    """``task:completed`` / ``llm:request:error`` ... and ``span:ended``."""
    out: list[Event] = []
    end_ns = span.end_time_ns or span.start_time_ns
    event_type = span.attributes.get(attrs.END_EVENT)
    if isinstance(event_type, str) and event_type:
        data = _seed(_payload(span.attributes.get(attrs.END_PAYLOAD)), span.live, end_ns,
                     span.trace_id, span.span_id, span.parent_span_id)
        out.append((event_type, data))
    generic = _generic_span(span)
    generic["endTime"] = iso_us(end_ns)
    generic["timestamp"] = iso_ms_ns(end_ns)
    generic["durationMs"] = round((end_ns - span.start_time_ns) / 1e6, 3)
    generic["status"] = span.status
    if span.status_message:
        generic["statusMessage"] = span.status_message
    generic["events"] = [
        {"name": e["name"], "timestamp": iso_us(e["time_ns"]), "attributes": e["attributes"]}
        for e in span.events
    ]
    out.append(("span:ended", generic))
    return out


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
