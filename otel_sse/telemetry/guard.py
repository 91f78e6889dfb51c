"""Exporter wrappers that keep an OTLP outage quiet and harmless.

The OTLP exporters log a warning or error for every failed batch and retry;
during an outage that is a log line per batch per signal. The wrappers run the
real exporter with its loggers muted (a filter that only acts inside our
``export`` call on that thread), log one warning when a signal's export starts
failing and one info line when it recovers, and never let an exception out.
The export itself already runs on the SDK's worker thread, so the application
and the live stream do not wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_log = logging.getLogger("otel_sse.telemetry")
_quiet = threading.local()

_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
)


class _MuteInsideGuardedExport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "active", False)


_FILTER = _MuteInsideGuardedExport()
_installed = False
_install_lock = threading.Lock()


def _install_filter() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        for name in _EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(_FILTER)
        _installed = True


class ExportHealth:
    """Tracks one signal's export state; logs only on transitions."""

    def __init__(self, signal: str, endpoint: str) -> None:
        self.signal = signal
        self.endpoint = endpoint
        self.failing = False
        self._lock = threading.Lock()
        _install_filter()

    def ok(self) -> None:
        with self._lock:
            if not self.failing:
                return
            self.failing = False
        _log.info("otel-sse: OTLP %s export to %s recovered", self.signal, self.endpoint)

    def fail(self, detail: str) -> None:
        with self._lock:
            if self.failing:
                return
            self.failing = True
        _log.warning(
            "otel-sse: OTLP %s export to %s is failing (%s); the live stream carries on and "
            "further failures are not logged until export recovers",
            self.signal, self.endpoint, detail,
        )


class _Quiet:
    """Mute exporter loggers and suppress instrumentation for one export call."""

    def __enter__(self) -> None:
        _quiet.active = True
        self._token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))

    def __exit__(self, *exc: object) -> None:
        detach(self._token)
        _quiet.active = False


_Result = TypeVar("_Result", SpanExportResult, LogRecordExportResult, MetricExportResult)


def _guarded_export(health: ExportHealth, results: type[_Result],
                    export: Callable[[], _Result]) -> _Result:
    """Run ``export`` quietly; report the outcome to ``health``; never raise."""
    try:
        with _Quiet():
            result = export()
    except Exception as exc:
        health.fail(f"{type(exc).__name__}: {exc}")
        return results.FAILURE
    if result is results.SUCCESS:
        health.ok()
    else:
        health.fail("the exporter reported failure")
    return result


class GuardedSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self.inner = inner
        self.health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return _guarded_export(self.health, SpanExportResult,
                               lambda: self.inner.export(spans))

    def shutdown(self) -> None:
        with _Quiet():
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class GuardedLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, health: ExportHealth) -> None:
        self.inner = inner
        self.health = health

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return _guarded_export(self.health, LogRecordExportResult,
                               lambda: self.inner.export(batch))

    def shutdown(self) -> None:
        with _Quiet():
            self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class GuardedMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, health: ExportHealth) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.health = health

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        return _guarded_export(
            self.health, MetricExportResult,
            lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs))

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        with _Quiet():
            self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)
