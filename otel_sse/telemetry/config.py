"""Typed, validated telemetry configuration with the standard ``OTEL_*`` fallbacks.

Every field of :class:`TelemetryConfig` comes from, in order: the argument given
to :func:`otel_sse.configure`, the environment variable the OpenTelemetry
specification defines for it (for OTLP options the per-signal variable before
the generic one, see :mod:`otel_sse.telemetry.otlp_config`), a default. A bad
value raises :class:`~otel_sse.errors.ConfigError` naming the variable (or
argument) and the value, at configure time rather than at the first export.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar

import otel_sse.env as envtypes
from otel_sse.env import Env
from otel_sse.errors import ConfigError
from otel_sse.telemetry.gateway_config import GatewayConfig
from otel_sse.telemetry.otlp_config import (
    SIGNALS,
    OtlpArgs,
    OtlpSettings,
    Protocol,
    Signal,
)

__all__ = ["ContentCapture", "ExporterName", "GatewayConfig", "OtlpSettings", "Protocol",
           "Signal", "TelemetryConfig", "parse_capture"]

_T = TypeVar("_T")
ExporterName = Literal["otlp", "console"]
ContentCapture = Literal["none", "span", "event", "span_and_event"]

_EXPORTERS: Final[tuple[ExporterName, ...]] = ("otlp", "console")
_EXPORTER_VARS: Final[Mapping[Signal, str]] = {
    "traces": "OTEL_TRACES_EXPORTER", "logs": "OTEL_LOGS_EXPORTER",
    "metrics": "OTEL_METRICS_EXPORTER"}
DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0

# Values accepted by the official GenAI instrumentations for
# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, old booleans included.
_CAPTURE: dict[str, ContentCapture] = {
    "no_content": "none", "none": "none", "false": "none", "0": "none", "": "none",
    "span_only": "span", "span": "span",
    "event_only": "event", "event": "event",
    "span_and_event": "span_and_event", "true": "span_and_event", "1": "span_and_event",
}


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """What :func:`otel_sse.configure` sets up. Durations are seconds.

    ``traces_exporter`` / ``logs_exporter`` / ``metrics_exporter`` list the
    exporters of each signal (``()`` for none); ``otlp_traces`` / ``otlp_logs`` /
    ``otlp_metrics`` say where and how each signal goes over OTLP. With
    ``sdk_disabled`` (``OTEL_SDK_DISABLED=true``) nothing is exported and no global
    provider is installed; the live stream still works (see ``configure()``).
    ``gateway`` says where the live stream is forwarded to in another process
    (``OTEL_SSE_GATEWAY``; None: nowhere).
    """

    service_name: str | None = None
    resource_attributes: tuple[tuple[str, str], ...] = ()
    otlp_traces: OtlpSettings = field(default_factory=lambda: OtlpSettings("traces"))
    otlp_logs: OtlpSettings = field(default_factory=lambda: OtlpSettings("logs"))
    otlp_metrics: OtlpSettings = field(default_factory=lambda: OtlpSettings("metrics"))
    traces_exporter: tuple[ExporterName, ...] = ()
    logs_exporter: tuple[ExporterName, ...] = ()
    metrics_exporter: tuple[ExporterName, ...] = ()
    metric_export_interval: float = 60.0
    export_schedule_delay: float = 5.0
    export_max_queue_size: int = 2048
    export_max_batch_size: int = 512
    capture_content: ContentCapture = "none"
    export_tokens: bool = False
    set_global: bool = True
    live_queue_size: int = 65536
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    sdk_disabled: bool = False
    gateway: GatewayConfig | None = None

    @property
    def resource(self) -> dict[str, str]:
        return dict(self.resource_attributes)

    @property
    def content_on_spans(self) -> bool:
        return self.capture_content in ("span", "span_and_event")

    @property
    def content_on_events(self) -> bool:
        return self.capture_content in ("event", "span_and_event")

    def otlp(self, signal: Signal) -> OtlpSettings:
        """Where and how ``signal`` is exported over OTLP."""
        return {"traces": self.otlp_traces, "logs": self.otlp_logs,
                "metrics": self.otlp_metrics}[signal]

    def exporters(self, signal: Signal) -> tuple[ExporterName, ...]:
        """The exporters ``signal`` goes to, in the order given."""
        return {"traces": self.traces_exporter, "logs": self.logs_exporter,
                "metrics": self.metrics_exporter}[signal]

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        service_name: str | None = None,
        resource_attributes: Mapping[str, str] | None = None,
        otlp_endpoint: str | None = None,
        otlp_protocol: str | None = None,
        otlp_headers: Mapping[str, str] | None = None,
        otlp_timeout: float | None = None,
        otlp_insecure: bool | None = None,
        otlp_compression: str | None = None,
        otlp_certificate: str | None = None,
        otlp_client_key: str | None = None,
        otlp_client_certificate: str | None = None,
        traces_exporter: str | Sequence[str] | None = None,
        logs_exporter: str | Sequence[str] | None = None,
        metrics_exporter: str | Sequence[str] | None = None,
        metric_export_interval: float | None = None,
        export_schedule_delay: float | None = None,
        export_max_queue_size: int | None = None,
        export_max_batch_size: int | None = None,
        capture_content: bool | str | None = None,
        export_tokens: bool | None = None,
        set_global: bool = True,
        live_queue_size: int | None = None,
        shutdown_timeout: float | None = None,
        sdk_disabled: bool | None = None,
        gateway: str | GatewayConfig | None = None,
        gateway_token: str | None = None,
    ) -> TelemetryConfig:
        """Build a config from arguments, falling back to ``env`` (default ``os.environ``)."""
        source = Env(env)
        get = source.get

        resource = dict(envtypes.pairs(get("OTEL_RESOURCE_ATTRIBUTES"),
                                       "OTEL_RESOURCE_ATTRIBUTES"))
        if resource_attributes:
            resource.update({str(k): str(v) for k, v in resource_attributes.items()})
        name = service_name or get("OTEL_SERVICE_NAME") or resource.get("service.name")

        args = OtlpArgs(endpoint=otlp_endpoint, protocol=otlp_protocol, headers=otlp_headers,
                        timeout=otlp_timeout, insecure=otlp_insecure,
                        compression=otlp_compression, certificate=otlp_certificate,
                        client_key=otlp_client_key, client_certificate=otlp_client_certificate)
        otlp = {signal: OtlpSettings.resolve(signal, source, args) for signal in SIGNALS}

        disabled = sdk_disabled if sdk_disabled is not None else _optional(
            get("OTEL_SDK_DISABLED"), "OTEL_SDK_DISABLED", envtypes.spec_bool, False)
        given = {"traces": traces_exporter, "logs": logs_exporter,
                 "metrics": metrics_exporter}
        exporters: dict[Signal, tuple[ExporterName, ...]] = {}
        for signal in SIGNALS:
            arg, var = given[signal], _EXPORTER_VARS[signal]
            if arg is not None:
                chosen = exporter_list(arg, f"{signal}_exporter")
            elif (raw := get(var)) is not None:
                chosen = exporter_list(raw, var)
            else:
                # No endpoint for the signal means "stream live only": exporting to
                # an assumed localhost collector would warn of an outage that is not one.
                chosen = ("otlp",) if otlp[signal].endpoint_configured else ()
            # OTEL_SDK_DISABLED is the operator's switch: it wins over code.
            exporters[signal] = () if disabled else chosen

        interval = _seconds_or(metric_export_interval, "metric_export_interval",
                               get("OTEL_METRIC_EXPORT_INTERVAL"), "OTEL_METRIC_EXPORT_INTERVAL",
                               60.0)
        delay = _seconds_or(export_schedule_delay, "export_schedule_delay",
                            get("OTEL_BSP_SCHEDULE_DELAY"), "OTEL_BSP_SCHEDULE_DELAY", 5.0)
        queue = export_max_queue_size if export_max_queue_size is not None else _optional(
            get("OTEL_BSP_MAX_QUEUE_SIZE"), "OTEL_BSP_MAX_QUEUE_SIZE", envtypes.integer, 2048)
        batch = export_max_batch_size if export_max_batch_size is not None else _optional(
            get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            envtypes.integer, 512)
        for label, count in (("export_max_queue_size", queue), ("export_max_batch_size", batch),
                             ("live_queue_size", live_queue_size or 1)):
            if count < 1:
                raise ConfigError(f"{label}={count!r} must be >= 1")
        if batch > queue:
            raise ConfigError(
                f"export_max_batch_size={batch!r} must not exceed export_max_queue_size={queue!r}")
        deadline = (envtypes.positive_seconds(shutdown_timeout, "shutdown_timeout")
                    if shutdown_timeout is not None else _optional(
                        get("OTEL_SSE_SHUTDOWN_TIMEOUT"), "OTEL_SSE_SHUTDOWN_TIMEOUT",
                        envtypes.seconds, DEFAULT_SHUTDOWN_TIMEOUT))

        capture = _capture(capture_content,
                           get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"))
        tokens = export_tokens if export_tokens is not None else _optional(
            get("OTEL_SSE_EXPORT_TOKENS"), "OTEL_SSE_EXPORT_TOKENS", envtypes.loose_bool, False)

        return cls(
            service_name=name,
            resource_attributes=tuple(sorted(resource.items())),
            otlp_traces=otlp["traces"],
            otlp_logs=otlp["logs"],
            otlp_metrics=otlp["metrics"],
            traces_exporter=exporters["traces"],
            logs_exporter=exporters["logs"],
            metrics_exporter=exporters["metrics"],
            metric_export_interval=interval,
            export_schedule_delay=delay,
            export_max_queue_size=queue,
            export_max_batch_size=batch,
            capture_content=capture,
            export_tokens=tokens,
            set_global=set_global,
            live_queue_size=live_queue_size or 65536,
            shutdown_timeout=deadline,
            sdk_disabled=disabled,
            gateway=GatewayConfig.from_env(source, gateway, gateway_token),
        )


def exporter_list(raw: str | Sequence[str], source: str) -> tuple[ExporterName, ...]:
    """``otlp,console`` (or a sequence of names) as a tuple without repeats; ``none`` is ()."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    if not names:
        raise ConfigError(f"{source}={raw!r} names no exporter; use 'none' for none")
    if "none" in names:
        if any(name != "none" for name in names):
            raise ConfigError(f"{source}={raw!r}: 'none' cannot be combined with exporters")
        return ()
    chosen: list[ExporterName] = []
    for name in names:
        if name not in _EXPORTERS:
            raise ConfigError(
                f"{source}={raw!r}: {name!r} is not supported; use 'otlp', 'console' or 'none'")
        if name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def parse_capture(value: bool | str | None) -> ContentCapture | None:
    """Map a ``capture_content`` option (bool or env-style string) to a mode; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "span_and_event" if value else "none"
    mode = _CAPTURE.get(value.strip().lower())
    if mode is None:
        raise ConfigError(
            f"capture_content={value!r} is not one of NO_CONTENT, SPAN_ONLY, EVENT_ONLY, "
            "SPAN_AND_EVENT, true, false")
    return mode


def _capture(arg: bool | str | None, env_value: str | None) -> ContentCapture:
    if arg is not None:
        return parse_capture(arg) or "none"
    if env_value is None:
        return "none"
    mode = _CAPTURE.get(env_value.lower())
    if mode is None:
        raise ConfigError(
            f"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT={env_value!r} is not one of "
            "NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT, true, false")
    return mode


def _optional(raw: str | None, source: str, parse: Callable[[str, str], _T], default: _T) -> _T:
    return default if raw is None else parse(raw, source)


def _seconds_or(arg: float | None, arg_name: str, raw: str | None, var: str,
                default: float) -> float:
    """An argument in seconds, else a spec Duration variable in milliseconds."""
    if arg is not None:
        return envtypes.positive_seconds(arg, arg_name)
    return default if raw is None else envtypes.duration_millis(raw, var)
