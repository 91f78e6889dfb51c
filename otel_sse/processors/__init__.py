"""OpenTelemetry processors that turn spans and log records into contract events."""

from otel_sse.processors.bridge import SSEBridge, SSELogRecordProcessor, SSESpanProcessor
from otel_sse.processors.convert import (
    live_events,
    log_events,
    span_ended_events,
    span_started_events,
)
from otel_sse.processors.model import (
    LiveEvent,
    LogRecordData,
    SpanRecord,
    log_from_sdk,
    span_from_sdk,
)
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
