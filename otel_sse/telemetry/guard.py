"""Exporter wrappers that keep an OTLP outage quiet and harmless, and let shutdown give up.

The OTLP exporters log a warning or error for every failed batch and retry;
during an outage that is a log line per batch per signal. The wrappers run the
real exporter with its loggers muted (a filter that only acts inside our
``export`` call on that thread), log one warning when a signal's export starts
failing and one info line when it recovers, and never let an exception out.
The export itself already runs on the SDK's worker thread, so the application
and the live stream do not wait for it.

Each wrapper counts what it exported, what failed and what it gave up. A
shutdown that reaches its deadline calls :meth:`ExportGuard.abandon`: the real
exporter is shut down at once, which is what interrupts its retry backoff and
the request in flight, and every batch still arriving is counted and dropped
instead of exported, so the processors empty their queues in no time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_log = logging.getLogger("otel_sse.telemetry")

_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
)


class _MuteInsideGuardedExport(logging.Filter):
    """Drops exporter log records emitted on a thread that is inside a guarded call."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.inside, "active", False)


_FILTER = _MuteInsideGuardedExport()


def _install_filter() -> None:
    for name in _EXPORTER_LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)  # a no-op when already there


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
    """Mute exporter loggers and suppress instrumentation for one exporter call."""

    def __enter__(self) -> None:
        _FILTER.inside.active = True
        self._token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))

    def __exit__(self, *exc: object) -> None:
        detach(self._token)
        _FILTER.inside.active = False


@dataclass(frozen=True, slots=True)
class ExportCounts:
    """Items (spans, log records, metric points) by outcome."""

    exported: int = 0
    failed: int = 0
    given_up: int = 0

    def __sub__(self, other: ExportCounts) -> ExportCounts:
        return ExportCounts(self.exported - other.exported, self.failed - other.failed,
                            self.given_up - other.given_up)


_Result = TypeVar("_Result", SpanExportResult, LogRecordExportResult, MetricExportResult)


class ExportGuard:
    """What the three exporter wrappers share: quiet calls, health, counts, giving up."""

    def __init__(self, signal: str, unit: str, health: ExportHealth,
                 shutdown_inner: Callable[[], object]) -> None:
        self.signal = signal
        self.unit = unit  # what one counted item is: "spans", "log records", ...
        self.health = health
        self._shutdown_inner = shutdown_inner
        self._lock = threading.Lock()
        self._exported = 0
        self._failed = 0
        self._given_up = 0
        self._in_flight = 0
        self._abandoned = False
        self._inner_down = False

    @property
    def endpoint(self) -> str:
        return self.health.endpoint

    def counts(self) -> ExportCounts:
        """What came through so far; once abandoned, a batch still in flight counts as
        given up (its export may never return)."""
        with self._lock:
            stuck = self._in_flight if self._abandoned else 0
            return ExportCounts(self._exported, self._failed, self._given_up + stuck)

    def run(self, count: int, results: type[_Result], export: Callable[[], _Result]) -> _Result:
        """Run ``export`` quietly; count and report its outcome; never raise."""
        if self._abandoned:
            with self._lock:
                self._given_up += count
            return results.FAILURE
        detail = ""
        with self._lock:
            self._in_flight += count
        try:
            with _Quiet():
                result = export()
        except Exception as exc:
            result, detail = results.FAILURE, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._in_flight -= count
            if result is results.SUCCESS:
                self._exported += count
            elif self._abandoned:  # interrupted by abandon(): part of what was given up
                self._given_up += count
                return result
            else:
                self._failed += count
        if result is results.SUCCESS:
            self.health.ok()
        else:
            self.health.fail(detail or "the exporter reported failure")
        return result

    def abandon(self) -> None:
        """Give up: shut the real exporter down now (which stops its retries and
        the request in flight) and count, not export, every later batch."""
        with self._lock:
            self._abandoned = True
        self.shutdown_inner()

    def shutdown_inner(self) -> None:
        """Shut the real exporter down once, quietly."""
        with self._lock:
            if self._inner_down:
                return
            self._inner_down = True
        try:
            with _Quiet():
                self._shutdown_inner()
        except Exception:
            _log.debug("otel-sse: shutting down the %s exporter failed", self.signal,
                       exc_info=True)


class GuardedSpanExporter(SpanExporter):
    """A span exporter run through an :class:`ExportGuard`."""

    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self.inner = inner
        self.guard = ExportGuard("traces", "spans", health, inner.shutdown)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.guard.run(len(spans), SpanExportResult, lambda: self.inner.export(spans))

    def shutdown(self) -> None:
        self.guard.shutdown_inner()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class GuardedLogExporter(LogRecordExporter):
    """A log record exporter run through an :class:`ExportGuard`."""

    def __init__(self, inner: LogRecordExporter, health: ExportHealth) -> None:
        self.inner = inner
        self.guard = ExportGuard("logs", "log records", health, inner.shutdown)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return self.guard.run(len(batch), LogRecordExportResult,
                              lambda: self.inner.export(batch))

    def shutdown(self) -> None:
        self.guard.shutdown_inner()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class GuardedMetricExporter(MetricExporter):
    """A metric exporter run through an :class:`ExportGuard` (counting data points)."""

    def __init__(self, inner: MetricExporter, health: ExportHealth) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.guard = ExportGuard("metrics", "metric points", health, inner.shutdown)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        return self.guard.run(
            _points(metrics_data), MetricExportResult,
            lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs))

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.guard.shutdown_inner()


def _points(data: MetricsData) -> int:
    return sum(len(metric.data.data_points)
               for resource in data.resource_metrics
               for scope in resource.scope_metrics
               for metric in scope.metrics)


def describe_losses(losses: Mapping[ExportGuard, ExportCounts], deadline: float | None,
                    blocked: Sequence[str]) -> str:
    """One line on what a shutdown did not export, or "" when it lost nothing.

    ``deadline`` is set when the shutdown gave up at it; ``blocked`` names the
    providers still stuck in an export then, whose queues could not be counted.
    """
    lost: dict[str, int] = {}
    places: list[str] = []
    for guard, counts in losses.items():
        count = counts.failed + counts.given_up
        if count:
            lost[guard.unit] = lost.get(guard.unit, 0) + count
            place = _place(guard.endpoint)
            if place not in places:
                places.append(place)
    if not lost and not blocked:
        return ""
    what = ", ".join(f"{count} {unit}" for unit, count in lost.items()) or "nothing counted"
    where = f" bound for {', '.join(places)}" if places else ""
    if deadline is None:
        line = f"otel-sse: telemetry shutdown could not export {what}{where}"
    else:
        line = (f"otel-sse: telemetry shutdown gave up at its {deadline:g} s deadline; "
                f"not exported: {what}{where}")
    if blocked:
        line += (f"; still blocked in an export: {', '.join(blocked)} "
                 "(what remained queued there is not counted)")
    return line


def _place(endpoint: str) -> str:
    """Where an endpoint points, without the per-signal path."""
    if "://" not in endpoint:
        return endpoint
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"
