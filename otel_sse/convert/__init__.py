"""One conversion: spans and log records -> the contract's events.

Whatever made the telemetry (our emitters, a third-party GenAI
instrumentation, another process over OTLP), it reaches the conversion as the
plain records of :mod:`otel_sse.convert.model` and becomes events by reading
named attributes: ``gen_ai.*`` (GenAI semantic conventions), ``otel_sse.*``
(what they have no word for), OpenInference and OpenLLMetry. Pure functions:
no SDK objects, no I/O. The SDK processors (:mod:`otel_sse.processors`)
decide when to convert; this package decides what comes out.

- :func:`span_started_events`, :func:`span_ended_events`, :func:`log_events`,
  :func:`live_events`: records -> events; :func:`span_events` for spans
  received from elsewhere.
- :func:`span_from_proto`, :func:`log_from_proto` (and the ``*s_from_proto``
  iterators): OTLP protobuf -> records; :func:`span_to_proto`,
  :func:`log_to_proto`: records -> OTLP protobuf (what a forwarder sends).
- :mod:`~otel_sse.convert.state`, :mod:`~otel_sse.convert.llm`,
  :mod:`~otel_sse.convert.records`: the attribute tables our emitters encode
  with, so that writing and reading cannot drift apart.

A span start over OTLP
    OTLP has no message for a span that started. A forwarder that must report
    one sends an OTLP ``Span`` with ``end_time_unix_nano = 0`` (and status
    unset), carrying the span's ids, parent, name, kind, resource and the
    attributes it started with; it goes only to the receiver that converts it
    (a gateway), never to a trace backend, and the span is exported again,
    ended, as usual. :func:`span_from_proto` decodes it as a record with
    ``end_time_ns`` None and :func:`span_events` gives its start events. A
    receiver that only ever gets ended spans calls ``span_events(record,
    with_start=True)``: the start events are then rebuilt from the attributes
    the span ended with, identical to the live ones unless the producer changed
    an attribute they read mid-span (a task assigned to an agent after its
    creation shows that agent in ``task:created``; a tool call streamed in
    pieces shows its final arguments).

Live-only events
    Tokens are not exported one by one unless ``export_tokens=True``: without
    it ``llm:token`` exists only on the live stream of the process that made
    it. :func:`live_event_record` gives the OTLP log record (event name
    ``otel_sse.llm.token``, named attributes, trace and span ids) that a
    forwarder sends instead, and :func:`log_events` turns it back into the same
    event. Content kept out of exported telemetry (prompts, responses, tool
    arguments and results without content capture) rides on the in-process
    record as typed ``live`` fields; :func:`live_attributes` gives the
    attributes that carry it over OTLP. A log record's ``parentSpanId`` is null
    when it comes over OTLP, which has no field for it.
"""

from otel_sse.convert.events import (
    live_events,
    log_events,
    severity_name,
    span_ended_events,
    span_events,
    span_started_events,
)
from otel_sse.convert.live import live_attributes, live_event_record
from otel_sse.convert.model import Event, LiveEvent, LogRecordData, SpanRecord
from otel_sse.convert.otlp import (
    log_from_proto,
    log_to_proto,
    logs_from_proto,
    span_from_proto,
    span_to_proto,
    spans_from_proto,
)

__all__ = [
    "Event",
    "LiveEvent",
    "LogRecordData",
    "SpanRecord",
    "live_attributes",
    "live_event_record",
    "live_events",
    "log_events",
    "log_from_proto",
    "log_to_proto",
    "logs_from_proto",
    "severity_name",
    "span_ended_events",
    "span_events",
    "span_from_proto",
    "span_started_events",
    "span_to_proto",
    "spans_from_proto",
]
