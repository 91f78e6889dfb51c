"""OTLP protobuf messages -> the plain records of :mod:`otel_sse.convert.model`.

Spans and log records another process exported (our emitters there, any SDK,
any instrumentation) go through the same conversion as our own. A span whose
``end_time_unix_nano`` is 0 is a span start (see the package docstring): its
record has ``end_time_ns`` None.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from otel_sse.convert.model import LogRecordData, SpanRecord

if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import (
        AnyValue,
        InstrumentationScope,
        KeyValue,
    )
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

# OTLP's SpanKind counts from UNSPECIFIED = 0; the SDK's from INTERNAL = 0.
_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}


def any_value(value: AnyValue) -> Any:
    """An ``AnyValue`` as a Python value (bytes as base64 text, as OTLP/JSON writes them)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, which)


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict."""
    return {pair.key: any_value(pair.value) for pair in pairs}


def _int_id(raw: bytes) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def _service(resource: Resource | None) -> str:
    if resource is not None:
        for pair in resource.attributes:
            if pair.key == "service.name":
                return str(any_value(pair.value))
    return "unknown_service"


def span_from_proto(span: Span, resource: Resource | None = None,
                    scope: InstrumentationScope | None = None) -> SpanRecord:
    """One OTLP ``Span`` (with the ``Resource`` of its ``ResourceSpans``) as a record.
    ``scope`` is accepted for symmetry with the SDK path; the conversion does not
    depend on which instrumentation made the span."""
    parent = _int_id(span.parent_span_id)
    end = span.end_time_unix_nano
    return SpanRecord(
        trace_id=_int_id(span.trace_id),
        span_id=_int_id(span.span_id),
        parent_span_id=parent or None,
        name=span.name,
        kind=_KINDS.get(int(span.kind), "internal"),
        service_name=_service(resource),
        attributes=attributes_of(span.attributes),
        start_time_ns=span.start_time_unix_nano,
        end_time_ns=end or None,
        status=_STATUS.get(int(span.status.code), "unset"),
        status_message=span.status.message or None,
        events=[{"name": event.name, "time_ns": event.time_unix_nano,
                 "attributes": attributes_of(event.attributes)} for event in span.events],
    )


def log_from_proto(record: LogRecord, resource: Resource | None = None,
                   scope: InstrumentationScope | None = None) -> LogRecordData:
    """One OTLP ``LogRecord`` (with its ``Resource``) as a record. OTLP carries no
    parent span id for a log record: ``parentSpanId`` of its event is null."""
    return LogRecordData(
        trace_id=_int_id(record.trace_id) or None,
        span_id=_int_id(record.span_id) or None,
        parent_span_id=None,
        service_name=_service(resource),
        severity_text=record.severity_text or None,
        severity_number=int(record.severity_number) or None,
        event_name=record.event_name or None,
        body=any_value(record.body) if record.HasField("body") else None,
        attributes=attributes_of(record.attributes),
        time_ns=record.time_unix_nano or record.observed_time_unix_nano,
    )


def spans_from_proto(resource_spans: Iterable[ResourceSpans]) -> Iterator[SpanRecord]:
    """Every span of ``ExportTraceServiceRequest.resource_spans`` (or ``TracesData``)."""
    for group in resource_spans:
        resource = group.resource
        for scoped in group.scope_spans:
            for span in scoped.spans:
                yield span_from_proto(span, resource, scoped.scope)


def logs_from_proto(resource_logs: Iterable[ResourceLogs]) -> Iterator[LogRecordData]:
    """Every record of ``ExportLogsServiceRequest.resource_logs`` (or ``LogsData``)."""
    for group in resource_logs:
        resource = group.resource
        for scoped in group.scope_logs:
            for record in scoped.log_records:
                yield log_from_proto(record, resource, scoped.scope)
