"""The export side of ``configure()``: each signal's exporters, guarded and batched.

Every setting is passed to the SDK exporters explicitly, resolved beforehand by
:class:`~otel_sse.telemetry.otlp_config.OtlpSettings` (per-signal variables
before generic ones): left to themselves the exporters would read the
environment again with other rules (the Python SDK reads
``OTEL_EXPORTER_OTLP_TIMEOUT`` as seconds, the specification says
milliseconds).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
)
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from otel_sse.errors import ConfigError
from otel_sse.telemetry.config import ExporterName, TelemetryConfig
from otel_sse.telemetry.guard import (
    ExportGuard,
    ExportHealth,
    GuardedLogExporter,
    GuardedMetricExporter,
    GuardedSpanExporter,
)
from otel_sse.telemetry.http_session import AbortableSession
from otel_sse.telemetry.otlp_config import OtlpSettings, Signal

# gRPC's own reconnect backoff grows to 2 minutes; a collector that comes back
# should be found again within seconds.
_GRPC_CHANNEL_OPTIONS: Final = (("grpc.initial_reconnect_backoff_ms", 250),
                                ("grpc.min_reconnect_backoff_ms", 250),
                                ("grpc.max_reconnect_backoff_ms", 2000))
# The Python SDK's own credential plugins for OTLP/HTTP bring their session;
# with one configured, ours (which aborts requests at shutdown) steps aside.
_HTTP_CREDENTIAL_VARS: Final = ("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
                                "OTEL_PYTHON_EXPORTER_OTLP_HTTP_{}_CREDENTIAL_PROVIDER")


@dataclass
class Pipelines:
    """What the export side adds to the providers, and the guards a shutdown may abandon."""

    span_processors: list[SpanProcessor] = field(default_factory=list)
    log_processors: list[LogRecordProcessor] = field(default_factory=list)
    metric_readers: list[MetricReader] = field(default_factory=list)
    guards: list[ExportGuard] = field(default_factory=list)
    # OTLP export health by signal ("traces", "logs", "metrics").
    health: dict[str, ExportHealth] = field(default_factory=dict)


def build_pipelines(cfg: TelemetryConfig) -> Pipelines:
    """One batch processor (or periodic reader) per exporter the config names."""
    out = Pipelines()
    batching: dict[str, Any] = {  # the same for the span and the log record processor
        "max_queue_size": cfg.export_max_queue_size,
        "schedule_delay_millis": cfg.export_schedule_delay * 1000,
        "max_export_batch_size": cfg.export_max_batch_size,
    }
    for kind in cfg.traces_exporter:
        settings = cfg.otlp_traces
        inner = _exporter(kind, settings)
        assert isinstance(inner, SpanExporter)
        spans = GuardedSpanExporter(inner, _health(out, kind, settings))
        out.span_processors.append(BatchSpanProcessor(
            spans, export_timeout_millis=settings.timeout * 1000, **batching))
        out.guards.append(spans.guard)
    for kind in cfg.logs_exporter:
        settings = cfg.otlp_logs
        inner = _exporter(kind, settings)
        assert isinstance(inner, LogRecordExporter)
        logs = GuardedLogExporter(inner, _health(out, kind, settings))
        out.log_processors.append(BatchLogRecordProcessor(
            logs, export_timeout_millis=settings.timeout * 1000, **batching))
        out.guards.append(logs.guard)
    for kind in cfg.metrics_exporter:
        settings = cfg.otlp_metrics
        inner = _exporter(kind, settings)
        assert isinstance(inner, MetricExporter)
        points = GuardedMetricExporter(inner, _health(out, kind, settings))
        out.metric_readers.append(PeriodicExportingMetricReader(
            points, export_interval_millis=cfg.metric_export_interval * 1000,
            export_timeout_millis=settings.timeout * 1000))
        out.guards.append(points.guard)
    return out


def _health(out: Pipelines, kind: ExporterName, settings: OtlpSettings) -> ExportHealth:
    if kind == "console":
        return ExportHealth(settings.signal, "the console")
    health = ExportHealth(settings.signal, settings.endpoint)
    out.health[settings.signal] = health
    return health


_CONSOLE_EXPORTERS: Final[Mapping[Signal, Callable[[], object]]] = {
    "traces": ConsoleSpanExporter, "logs": ConsoleLogRecordExporter,
    "metrics": ConsoleMetricExporter}
# The SDK's OTLP exporter class per signal: (gRPC module, HTTP module, class name).
_OTLP_EXPORTERS: Final[Mapping[Signal, tuple[str, str, str]]] = {
    "traces": ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
               "opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    "logs": ("opentelemetry.exporter.otlp.proto.grpc._log_exporter",
             "opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    "metrics": ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
                "opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
}


def _exporter(kind: ExporterName, settings: OtlpSettings) -> object:
    """The signal's console exporter, or the SDK's OTLP one for its protocol (imported
    when first needed: the gRPC one pulls in grpcio)."""
    if kind == "console":
        return _CONSOLE_EXPORTERS[settings.signal]()
    grpc_module, http_module, name = _OTLP_EXPORTERS[settings.signal]
    grpc = settings.protocol == "grpc"
    exporter_class = getattr(importlib.import_module(grpc_module if grpc else http_module), name)
    return exporter_class(**(_grpc_options(settings) if grpc else _http_options(settings)))


def _grpc_options(settings: OtlpSettings) -> dict[str, Any]:
    import grpc

    options: dict[str, Any] = {
        "endpoint": settings.endpoint,
        "insecure": settings.insecure,
        "headers": dict(settings.headers) or None,
        "timeout": settings.timeout,
        "compression": {"none": grpc.Compression.NoCompression, "gzip": grpc.Compression.Gzip,
                        "deflate": grpc.Compression.Deflate}[settings.compression],
        "channel_options": _GRPC_CHANNEL_OPTIONS,
    }
    if not settings.insecure:
        options["credentials"] = grpc.ssl_channel_credentials(
            root_certificates=_read(settings.certificate),
            private_key=_read(settings.client_key),
            certificate_chain=_read(settings.client_certificate))
    return options


def _http_options(settings: OtlpSettings) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http import Compression

    options: dict[str, Any] = {
        "endpoint": settings.endpoint,
        "headers": dict(settings.headers),
        "timeout": settings.timeout,
        "compression": {"none": Compression.NoCompression, "gzip": Compression.Gzip,
                        "deflate": Compression.Deflate}[settings.compression],
        "certificate_file": settings.certificate,
        "client_key_file": settings.client_key,
        "client_certificate_file": settings.client_certificate,
    }
    plugin_vars = (_HTTP_CREDENTIAL_VARS[0],
                   _HTTP_CREDENTIAL_VARS[1].format(settings.signal.upper()))
    if not any(os.environ.get(name) for name in plugin_vars):
        options["session"] = AbortableSession()
    return options


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path!r}: {exc.strerror}") from None
