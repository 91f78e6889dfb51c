"""OTLP protobuf messages <-> the plain records of :mod:`otel_sse.convert.model`.

Spans and log records another process exported (our emitters there, any SDK,
any instrumentation) go through the same conversion as our own. A span whose
``end_time_unix_nano`` is 0 is a span start (see the package docstring): its
record has ``end_time_ns`` None.

The other way, :func:`span_to_proto` and :func:`log_to_proto` give the OTLP
messages a forwarder sends to a gateway: ``x_from_proto(x_to_proto(r)) == r``
for every field OTLP has (not ``live``, which a forwarder turns into attributes
first; not a log record's ``parent_span_id``; a span's ``service_name`` comes
from the resource the message is sent with, see :func:`resource_to_proto`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping
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
_KIND_VALUES = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_STATUS_VALUES = {"unset": 0, "ok": 1, "error": 2}
_INT64 = range(-(2**63), 2**63)
# AnyValue fields that are the Python value as they are (most attribute values).
_PLAIN = frozenset({"string_value", "int_value", "bool_value", "double_value"})


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
    # any_value inlined for the plain values: this runs for every attribute of
    # every span a gateway receives.
    out: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        which = value.WhichOneof("value")
        out[pair.key] = getattr(value, which) if which in _PLAIN else any_value(value)
    return out


def _int_id(raw: bytes) -> int:
    return int.from_bytes(raw, "big") if raw else 0


def service_name(resource: Resource | None) -> str:
    """The ``service.name`` of a resource (``unknown_service`` without one)."""
    if resource is not None:
        for pair in resource.attributes:
            if pair.key == "service.name":
                return str(any_value(pair.value))
    return "unknown_service"


def span_from_proto(span: Span, resource: Resource | None = None,
                    scope: InstrumentationScope | None = None, *,
                    service: str | None = None) -> SpanRecord:
    """One OTLP ``Span`` (with the ``Resource`` of its ``ResourceSpans``) as a record.
    ``scope`` is accepted for symmetry with the SDK path; the conversion does not
    depend on which instrumentation made the span. ``service``: the resource's
    :func:`service_name`, when the caller has it already (one per resource, not
    one per span)."""
    parent = _int_id(span.parent_span_id)
    end = span.end_time_unix_nano
    status = span.status
    return SpanRecord(
        trace_id=_int_id(span.trace_id),
        span_id=_int_id(span.span_id),
        parent_span_id=parent or None,
        name=span.name,
        kind=_KINDS.get(int(span.kind), "internal"),
        service_name=service_name(resource) if service is None else service,
        attributes=attributes_of(span.attributes),
        start_time_ns=span.start_time_unix_nano,
        end_time_ns=end or None,
        status=_STATUS.get(int(status.code), "unset"),
        status_message=status.message or None,
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
        service_name=service_name(resource),
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
        service = service_name(resource)
        for scoped in group.scope_spans:
            for span in scoped.spans:
                yield span_from_proto(span, resource, scoped.scope, service=service)


def logs_from_proto(resource_logs: Iterable[ResourceLogs]) -> Iterator[LogRecordData]:
    """Every record of ``ExportLogsServiceRequest.resource_logs`` (or ``LogsData``)."""
    for group in resource_logs:
        resource = group.resource
        for scoped in group.scope_logs:
            for record in scoped.log_records:
                yield log_from_proto(record, resource, scoped.scope)


# -- records -> OTLP ------------------------------------------------------------------------
def set_any_value(out: AnyValue, value: Any) -> None:
    """Write ``value`` into ``out``: str, bool, int (one past int64 as text), float,
    bytes, a list or tuple (``array_value``), a mapping (``kvlist_value``); None
    leaves it empty; anything else is written as its text."""
    kind = type(value)
    if kind is str:
        out.string_value = value
    elif kind is bool:
        out.bool_value = value
    elif kind is int:
        if value in _INT64:
            out.int_value = value
        else:
            out.string_value = str(value)
    elif kind is float:
        out.double_value = value
    elif value is None:
        return
    elif isinstance(value, list | tuple):
        array = out.array_value
        array.SetInParent()  # an empty list is still a list
        for item in value:
            set_any_value(array.values.add(), item)
    elif isinstance(value, Mapping):
        kvlist = out.kvlist_value
        kvlist.SetInParent()
        set_attributes(kvlist.values, value)
    elif isinstance(value, bytes | bytearray):
        out.bytes_value = bytes(value)
    elif isinstance(value, bool):  # subclasses of the plain types (enums and the like)
        out.bool_value = bool(value)
    elif isinstance(value, int):
        set_any_value(out, int(value))
    elif isinstance(value, float):
        out.double_value = float(value)
    else:
        out.string_value = str(value)


def set_attributes(out: Any, attributes: Mapping[str, Any]) -> None:
    """Append ``attributes`` to a repeated ``KeyValue`` field."""
    add = out.add
    for key, value in attributes.items():
        pair = add()
        pair.key = key
        set_any_value(pair.value, value)


def resource_to_proto(attributes: Mapping[str, Any], out: Resource | None = None) -> Resource:
    """A ``Resource`` with ``attributes`` (``service.name`` among them, which
    :func:`span_from_proto` and :func:`log_from_proto` read back as ``service_name``)."""
    if out is None:
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceMessage

        out = ResourceMessage()
    set_attributes(out.attributes, attributes)
    return out


def span_to_proto(record: SpanRecord, out: Span | None = None) -> Span:
    """A record as an OTLP ``Span`` (written into ``out`` when given, e.g. a new
    element of ``ScopeSpans.spans``). A start (``end_time_ns`` None) has
    ``end_time_unix_nano`` 0 and its status unset, as the package docstring says."""
    if out is None:
        from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage

        out = SpanMessage()
    out.trace_id = record.trace_id.to_bytes(16, "big")
    out.span_id = record.span_id.to_bytes(8, "big")
    if record.parent_span_id:
        out.parent_span_id = record.parent_span_id.to_bytes(8, "big")
    out.name = record.name
    out.kind = _KIND_VALUES.get(record.kind, 1)  # type: ignore[assignment]
    out.start_time_unix_nano = record.start_time_ns
    set_attributes(out.attributes, record.attributes)
    if record.end_time_ns is None:
        return out
    out.end_time_unix_nano = record.end_time_ns
    code = _STATUS_VALUES.get(record.status, 0)
    if code or record.status_message:
        out.status.code = code  # type: ignore[assignment]
        if record.status_message:
            out.status.message = record.status_message
    add_event = out.events.add
    for event in record.events:
        message = add_event()
        message.name = event["name"]
        message.time_unix_nano = event["time_ns"]
        set_attributes(message.attributes, event["attributes"])
    return out


def log_to_proto(record: LogRecordData, out: LogRecord | None = None) -> LogRecord:
    """A record as an OTLP ``LogRecord`` (written into ``out`` when given). OTLP has
    no field for ``parent_span_id``."""
    if out is None:
        from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as LogRecordMessage

        out = LogRecordMessage()
    out.time_unix_nano = record.time_ns
    out.observed_time_unix_nano = record.time_ns
    if record.trace_id:
        out.trace_id = record.trace_id.to_bytes(16, "big")
    if record.span_id:
        out.span_id = record.span_id.to_bytes(8, "big")
    if record.severity_number:
        out.severity_number = record.severity_number  # type: ignore[assignment]
    if record.severity_text:
        out.severity_text = record.severity_text
    if record.event_name:
        out.event_name = record.event_name
    if record.body is not None:
        set_any_value(out.body, record.body)
    set_attributes(out.attributes, record.attributes)
    return out
