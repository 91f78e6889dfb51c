"""``configure()``: providers, OTLP exporters and SSE processors in one call.

Where telemetry goes when nobody calls ``configure()``: an emitter then uses
the application's SDK providers if it installed some globally (our processors
are added to them once per server), and otherwise a private SDK tracer and
logger provider wired to the emitter's server with no exporter. Either way
every event carries real trace and span ids.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import Logger
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Tracer

from otel_sse.processors.bridge import SSEBridge, SSELogRecordProcessor, SSESpanProcessor
from otel_sse.telemetry import attrs
from otel_sse.telemetry.config import TelemetryConfig
from otel_sse.telemetry.guard import (
    ExportHealth,
    GuardedLogExporter,
    GuardedMetricExporter,
    GuardedSpanExporter,
)
from otel_sse.telemetry.instruments import Instruments as Instruments  # re-exported

_log = logging.getLogger("otel_sse.telemetry")
_VERSION = "0.1.0"
_GRPC_CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 250),
                         ("grpc.min_reconnect_backoff_ms", 250),
                         ("grpc.max_reconnect_backoff_ms", 2000))


class Telemetry:
    """What ``configure()`` returns: the providers in use and our processors on them."""

    def __init__(
        self,
        config: TelemetryConfig,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        meter_provider: MeterProvider,
        *,
        owns_tracer_provider: bool,
        owns_logger_provider: bool,
        owned_meter_provider: SDKMeterProvider | None,
        health: Mapping[str, ExportHealth] | None = None,
    ) -> None:
        self.config = config
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        self.meter_provider = meter_provider
        self.health = dict(health or {})
        self._owns_tracer = owns_tracer_provider
        self._owns_logger = owns_logger_provider
        self._owned_meter = owned_meter_provider
        self.tracer: Tracer = tracer_provider.get_tracer(attrs.INSTRUMENTATION_NAME, _VERSION)
        self.logger: Logger = logger_provider.get_logger(attrs.INSTRUMENTATION_NAME, _VERSION)
        self.instruments = Instruments(
            meter_provider.get_meter(attrs.INSTRUMENTATION_NAME, _VERSION))
        # server id -> (server, bridge); the providers keep the bridge's processors.
        self._bridges: dict[int, tuple[Any, SSEBridge]] = {}
        self._lock = threading.Lock()
        self.alive = True

    # -- servers ----------------------------------------------------------------
    def attach_server(self, server: Any) -> SSEBridge:
        """Stream this handle's telemetry to ``server`` (idempotent per server)."""
        with self._lock:
            found = self._bridges.get(id(server))
            if found is not None and found[0] is server:
                return found[1]
            bridge = SSEBridge(server, self.config.live_queue_size)
            self.tracer_provider.add_span_processor(SSESpanProcessor(bridge))
            self.logger_provider.add_log_record_processor(SSELogRecordProcessor(bridge))
            self._bridges[id(server)] = (server, bridge)
            return bridge

    def bridge_for(self, server: Any) -> SSEBridge | None:
        found = self._bridges.get(id(server))
        return found[1] if found is not None and found[0] is server else None

    @property
    def bridges(self) -> list[SSEBridge]:
        return [entry[1] for entry in self._bridges.values()]

    # -- lifecycle ----------------------------------------------------------------
    def force_flush(self, timeout: float = 10.0) -> bool:
        """Export and stream everything recorded so far."""
        millis = int(timeout * 1000)
        ok = bool(self.tracer_provider.force_flush(millis))
        ok = bool(self.logger_provider.force_flush(millis)) and ok
        if self._owned_meter is not None:
            ok = bool(self._owned_meter.force_flush(millis)) and ok
        for bridge in self.bridges:
            ok = bridge.flush(timeout) and ok
        return ok

    def shutdown(self) -> None:
        """Flush everything, then stop what this handle owns; idempotent."""
        global _default
        if not self.alive:
            return
        self.alive = False
        try:
            self.force_flush(5.0)
        except Exception:
            _log.debug("otel-sse: flush at shutdown failed", exc_info=True)
        for bridge in self.bridges:
            bridge.close()
        if self._owns_tracer:
            self.tracer_provider.shutdown()
        if self._owns_logger:
            self.logger_provider.shutdown()
        if self._owned_meter is not None:
            self._owned_meter.shutdown()
        with _state_lock:
            if _default is self:
                _default = None
        atexit.unregister(self.shutdown)

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _resource(cfg: TelemetryConfig) -> Resource:
    """The config's resource attributes, with ``service.name`` when one is set."""
    resource_attrs: dict[str, Any] = dict(cfg.resource)
    if cfg.service_name:
        resource_attrs["service.name"] = cfg.service_name
    return Resource.create(resource_attrs)


def _otlp_exporters(cfg: TelemetryConfig) -> dict[str, Any]:
    """Build the exporters the config asks for, keyed by signal."""
    out: dict[str, Any] = {}
    grpc = cfg.otlp_protocol == "grpc"
    headers = cfg.headers or None
    for signal, choice in (("traces", cfg.traces_exporter), ("logs", cfg.logs_exporter),
                           ("metrics", cfg.metrics_exporter)):
        if choice == "none":
            continue
        if choice == "console":
            out[signal] = {"traces": ConsoleSpanExporter, "logs": ConsoleLogRecordExporter,
                           "metrics": ConsoleMetricExporter}[signal]()
            continue
        kwargs: dict[str, Any] = {"headers": headers, "timeout": cfg.otlp_timeout}
        if grpc:
            if cfg.otlp_endpoint:
                kwargs["endpoint"] = cfg.otlp_endpoint
            if cfg.otlp_insecure is not None:
                kwargs["insecure"] = cfg.otlp_insecure
            # gRPC's own reconnect backoff grows to 2 minutes; a collector that
            # comes back should be found again within seconds.
            kwargs["channel_options"] = _GRPC_CHANNEL_OPTIONS
            if signal == "traces":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcSpans,
                )
                out[signal] = GrpcSpans(**kwargs)
            elif signal == "logs":
                from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
                    OTLPLogExporter as GrpcLogs,
                )
                out[signal] = GrpcLogs(**kwargs)
            else:
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                    OTLPMetricExporter as GrpcMetrics,
                )
                out[signal] = GrpcMetrics(**kwargs)
        else:
            if cfg.otlp_endpoint:
                kwargs["endpoint"] = f"{cfg.otlp_endpoint.rstrip('/')}/v1/{signal}"
            if signal == "traces":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter as HttpSpans,
                )
                out[signal] = HttpSpans(**kwargs)
            elif signal == "logs":
                from opentelemetry.exporter.otlp.proto.http._log_exporter import (
                    OTLPLogExporter as HttpLogs,
                )
                out[signal] = HttpLogs(**kwargs)
            else:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                    OTLPMetricExporter as HttpMetrics,
                )
                out[signal] = HttpMetrics(**kwargs)
    return out


_state_lock = threading.RLock()
_default: Telemetry | None = None
_global_attached: Telemetry | None = None
_private: weakref.WeakKeyDictionary[Any, Telemetry] = weakref.WeakKeyDictionary()
_private_by_id: dict[int, tuple[Any, Telemetry]] = {}


def configure(
    service_name: str | None = None,
    server: Any = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    *,
    resource_attributes: Mapping[str, str] | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    otlp_timeout: float | None = None,
    otlp_insecure: bool | None = None,
    traces_exporter: str | None = None,
    logs_exporter: str | None = None,
    metrics_exporter: str | None = None,
    metric_export_interval: float | None = None,
    export_schedule_delay: float | None = None,
    export_max_queue_size: int | None = None,
    export_max_batch_size: int | None = None,
    capture_content: bool | str | None = None,
    export_tokens: bool | None = None,
    set_global: bool = True,
    live_queue_size: int | None = None,
    metric_readers: list[MetricReader] | None = None,
    env: Mapping[str, str] | None = None,
) -> Telemetry:
    """Set up tracing, logs and metrics with OTLP export and the live SSE stream.

    Arguments left as None fall back to the standard ``OTEL_*`` environment
    variables. With ``set_global`` (the default) the providers become the
    OpenTelemetry globals; when the application already installed SDK
    providers globally, ours are not created: the SSE processors are added to
    the application's providers instead, and its own exporters stay in charge.
    Emitters created afterwards use the returned handle.
    """
    global _default
    cfg = TelemetryConfig.from_env(
        env,
        service_name=service_name, resource_attributes=resource_attributes,
        otlp_endpoint=otlp_endpoint, otlp_protocol=otlp_protocol, otlp_headers=otlp_headers,
        otlp_timeout=otlp_timeout, otlp_insecure=otlp_insecure,
        traces_exporter=traces_exporter, logs_exporter=logs_exporter,
        metrics_exporter=metrics_exporter, metric_export_interval=metric_export_interval,
        export_schedule_delay=export_schedule_delay, export_max_queue_size=export_max_queue_size,
        export_max_batch_size=export_max_batch_size, capture_content=capture_content,
        export_tokens=export_tokens, set_global=set_global, live_queue_size=live_queue_size,
    )
    resource = _resource(cfg)
    exporters = _otlp_exporters(cfg)
    endpoint = cfg.otlp_endpoint or "the default endpoint"
    health = {signal: ExportHealth(signal, endpoint) for signal in exporters}
    batching: dict[str, Any] = {  # the same for the span and the log record processor
        "max_queue_size": cfg.export_max_queue_size,
        "schedule_delay_millis": cfg.export_schedule_delay * 1000,
        "max_export_batch_size": cfg.export_max_batch_size,
        "export_timeout_millis": cfg.otlp_timeout * 1000,
    }

    existing_tp = trace.get_tracer_provider() if set_global else None
    if isinstance(existing_tp, TracerProvider):
        tracer_provider, owns_tp = existing_tp, False
    else:
        tracer_provider, owns_tp = TracerProvider(resource=resource, shutdown_on_exit=False), True
        if "traces" in exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(
                GuardedSpanExporter(exporters["traces"], health["traces"]),
                **batching))
        if set_global:
            trace.set_tracer_provider(tracer_provider)

    existing_lp = _logs.get_logger_provider() if set_global else None
    if isinstance(existing_lp, LoggerProvider):
        logger_provider, owns_lp = existing_lp, False
    else:
        logger_provider, owns_lp = LoggerProvider(resource=resource, shutdown_on_exit=False), True
        if "logs" in exporters:
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(
                GuardedLogExporter(exporters["logs"], health["logs"]),
                **batching))
        if set_global:
            _logs.set_logger_provider(logger_provider)

    existing_mp = metrics.get_meter_provider() if set_global else None
    owned_meter: SDKMeterProvider | None = None
    meter_provider: MeterProvider
    if isinstance(existing_mp, SDKMeterProvider):
        meter_provider = existing_mp
    else:
        readers: list[MetricReader] = list(metric_readers or [])
        if "metrics" in exporters:
            readers.append(PeriodicExportingMetricReader(
                GuardedMetricExporter(exporters["metrics"], health["metrics"]),
                export_interval_millis=cfg.metric_export_interval * 1000,
                export_timeout_millis=cfg.otlp_timeout * 1000,
            ))
        owned_meter = SDKMeterProvider(resource=resource, metric_readers=readers,
                                       shutdown_on_exit=False)
        meter_provider = owned_meter
        if set_global:
            metrics.set_meter_provider(owned_meter)

    handle = Telemetry(cfg, tracer_provider, logger_provider, meter_provider,
                       owns_tracer_provider=owns_tp, owns_logger_provider=owns_lp,
                       owned_meter_provider=owned_meter, health=health)
    if server is not None:
        handle.attach_server(server)
    with _state_lock:
        _default = handle
    atexit.register(handle.shutdown)
    return handle


def current() -> Telemetry | None:
    """The handle of the last ``configure()`` that is not shut down."""
    return _default


def resolve(server: Any, telemetry: Telemetry | None = None) -> Telemetry:
    """The handle an emitter created now should use (see the module docstring)."""
    global _global_attached
    handle = telemetry or _default
    if handle is None or not handle.alive:
        with _state_lock:
            tp, lp = trace.get_tracer_provider(), _logs.get_logger_provider()
            if isinstance(tp, TracerProvider) and isinstance(lp, LoggerProvider):
                if _global_attached is None or _global_attached.tracer_provider is not tp:
                    _global_attached = Telemetry(
                        TelemetryConfig.from_env(set_global=False), tp, lp,
                        metrics.get_meter_provider(), owns_tracer_provider=False,
                        owns_logger_provider=False, owned_meter_provider=None)
                handle = _global_attached
            else:
                handle = _private_handle(server)
    if server is not None:
        handle.attach_server(server)
    return handle


def _private_handle(server: Any) -> Telemetry:
    try:
        found = _private.get(server)
    except TypeError:  # an unhashable or non-weakref-able sink
        entry = _private_by_id.get(id(server))
        found = entry[1] if entry is not None and entry[0] is server else None
    if found is not None:
        return found
    cfg = TelemetryConfig.from_env(set_global=False)
    resource = _resource(cfg)
    handle = Telemetry(
        cfg, TracerProvider(resource=resource, shutdown_on_exit=False),
        LoggerProvider(resource=resource, shutdown_on_exit=False),
        metrics.get_meter_provider(), owns_tracer_provider=True, owns_logger_provider=True,
        owned_meter_provider=None)
    try:
        _private[server] = handle
    except TypeError:
        _private_by_id[id(server)] = (server, handle)
    return handle
