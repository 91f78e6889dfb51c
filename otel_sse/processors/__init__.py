"""OpenTelemetry processors that hand spans and log records to the conversion.

Processors decide when (SDK hooks, a bounded hand-off to the server's loop);
:mod:`otel_sse.convert` decides what (records -> contract events).
"""

from otel_sse.convert import (
    LiveEvent,
    LogRecordData,
    SpanRecord,
    live_events,
    log_events,
    span_ended_events,
    span_started_events,
)
from otel_sse.processors.bridge import SSEBridge, SSELogRecordProcessor, SSESpanProcessor
from otel_sse.processors.model import log_from_sdk, span_from_sdk
from otel_sse.processors.sink import EventSink

__all__ = [
    "EventSink",
    "LiveEvent",
    "LogRecordData",
    "SSEBridge",
    "SSELogRecordProcessor",
    "SSESpanProcessor",
    "SpanRecord",
    "live_events",
    "log_events",
    "log_from_sdk",
    "span_ended_events",
    "span_from_sdk",
    "span_started_events",
]
