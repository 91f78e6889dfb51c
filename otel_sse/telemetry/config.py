"""Typed, validated telemetry configuration with the standard ``OTEL_*`` fallbacks.

Every field of :class:`TelemetryConfig` comes from, in order: the argument given
to :func:`otel_sse.configure`, the environment variable the OpenTelemetry
specification defines for it, a default. A bad value raises
:class:`~otel_sse.errors.ConfigError` naming the variable and the value, at
configure time rather than at the first export.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import unquote, urlsplit

from otel_sse.errors import ConfigError

Protocol = Literal["grpc", "http/protobuf"]
ExporterChoice = Literal["otlp", "console", "none"]
ContentCapture = Literal["none", "span", "event", "span_and_event"]

_PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
_EXPORTERS: tuple[ExporterChoice, ...] = ("otlp", "console", "none")

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
    """What :func:`otel_sse.configure` sets up. Durations are seconds."""

    service_name: str | None = None
    resource_attributes: tuple[tuple[str, str], ...] = ()
    otlp_endpoint: str | None = None
    otlp_protocol: Protocol = "grpc"
    otlp_headers: tuple[tuple[str, str], ...] = ()
    otlp_timeout: float = 10.0
    otlp_insecure: bool | None = None
    traces_exporter: ExporterChoice = "none"
    logs_exporter: ExporterChoice = "none"
    metrics_exporter: ExporterChoice = "none"
    metric_export_interval: float = 60.0
    export_schedule_delay: float = 5.0
    export_max_queue_size: int = 2048
    export_max_batch_size: int = 512
    capture_content: ContentCapture = "none"
    export_tokens: bool = False
    set_global: bool = True
    live_queue_size: int = 65536

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.otlp_headers)

    @property
    def resource(self) -> dict[str, str]:
        return dict(self.resource_attributes)

    @property
    def content_on_spans(self) -> bool:
        return self.capture_content in ("span", "span_and_event")

    @property
    def content_on_events(self) -> bool:
        return self.capture_content in ("event", "span_and_event")

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
    ) -> TelemetryConfig:
        """Build a config from arguments, falling back to ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        resource = dict(_parse_pairs(get("OTEL_RESOURCE_ATTRIBUTES"), "OTEL_RESOURCE_ATTRIBUTES"))
        if resource_attributes:
            resource.update({str(k): str(v) for k, v in resource_attributes.items()})
        name = service_name or get("OTEL_SERVICE_NAME") or resource.get("service.name")

        protocol_raw = otlp_protocol or get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
        if protocol_raw not in _PROTOCOLS:
            source = "otlp_protocol" if otlp_protocol else "OTEL_EXPORTER_OTLP_PROTOCOL"
            raise ConfigError(
                f"{source}={protocol_raw!r} is not supported; use 'grpc' or 'http/protobuf'"
            )
        protocol = cast(Protocol, protocol_raw)  # type: ignore[redundant-cast]

        endpoint = otlp_endpoint or get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint is not None:
            _check_endpoint(endpoint, protocol, "otlp_endpoint" if otlp_endpoint else
                            "OTEL_EXPORTER_OTLP_ENDPOINT")
        signal_endpoint = any(
            get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") for signal in ("TRACES", "LOGS", "METRICS")
        )

        headers = dict(_parse_pairs(get("OTEL_EXPORTER_OTLP_HEADERS"),
                                    "OTEL_EXPORTER_OTLP_HEADERS"))
        if otlp_headers:
            headers.update({str(k): str(v) for k, v in otlp_headers.items()})

        # No endpoint anywhere means "stream live only": exporting to an assumed
        # localhost collector would just warn about an outage that is not one.
        default_exporter: ExporterChoice = "otlp" if endpoint or signal_endpoint else "none"

        def exporter(arg: str | None, var: str) -> ExporterChoice:
            raw = arg or get(var) or default_exporter
            if raw not in _EXPORTERS:
                raise ConfigError(
                    f"{var}={raw!r} is not supported; use 'otlp', 'console' or 'none'")
            return cast(ExporterChoice, raw)  # type: ignore[redundant-cast]

        timeout = otlp_timeout if otlp_timeout is not None else _millis(
            get("OTEL_EXPORTER_OTLP_TIMEOUT"), "OTEL_EXPORTER_OTLP_TIMEOUT", 10.0)
        interval = metric_export_interval if metric_export_interval is not None else _millis(
            get("OTEL_METRIC_EXPORT_INTERVAL"), "OTEL_METRIC_EXPORT_INTERVAL", 60.0)
        delay = export_schedule_delay if export_schedule_delay is not None else _millis(
            get("OTEL_BSP_SCHEDULE_DELAY"), "OTEL_BSP_SCHEDULE_DELAY", 5.0)
        queue = export_max_queue_size if export_max_queue_size is not None else _int(
            get("OTEL_BSP_MAX_QUEUE_SIZE"), "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        batch = export_max_batch_size if export_max_batch_size is not None else _int(
            get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        for label, number in (("otlp_timeout", timeout), ("metric_export_interval", interval),
                              ("export_schedule_delay", delay)):
            if not number > 0:
                raise ConfigError(f"{label}={number!r} must be a positive number of seconds")
        for label, count in (("export_max_queue_size", queue), ("export_max_batch_size", batch),
                             ("live_queue_size", live_queue_size or 1)):
            if count < 1:
                raise ConfigError(f"{label}={count!r} must be >= 1")
        if batch > queue:
            raise ConfigError(
                f"export_max_batch_size={batch!r} must not exceed export_max_queue_size={queue!r}")

        capture = _capture(capture_content,
                           get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"))
        tokens = export_tokens if export_tokens is not None else _bool(
            get("OTEL_SSE_EXPORT_TOKENS"), "OTEL_SSE_EXPORT_TOKENS", False)

        return cls(
            service_name=name,
            resource_attributes=tuple(sorted(resource.items())),
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,
            otlp_headers=tuple(sorted(headers.items())),
            otlp_timeout=float(timeout),
            otlp_insecure=otlp_insecure,
            traces_exporter=exporter(traces_exporter, "OTEL_TRACES_EXPORTER"),
            logs_exporter=exporter(logs_exporter, "OTEL_LOGS_EXPORTER"),
            metrics_exporter=exporter(metrics_exporter, "OTEL_METRICS_EXPORTER"),
            metric_export_interval=float(interval),
            export_schedule_delay=float(delay),
            export_max_queue_size=queue,
            export_max_batch_size=batch,
            capture_content=capture,
            export_tokens=tokens,
            set_global=set_global,
            live_queue_size=live_queue_size or 65536,
        )


def _parse_pairs(raw: str | None, var: str) -> list[tuple[str, str]]:
    """``k=v,k2=v2`` with percent-encoding, as the spec defines for headers and resources."""
    if raw is None:
        return []
    pairs = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{var} entry {item.strip()!r} is not of the form key=value")
        pairs.append((unquote(key.strip()), unquote(value.strip())))
    return pairs


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


def _check_endpoint(endpoint: str, protocol: Protocol, source: str) -> None:
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if "://" in endpoint and parts.scheme not in ("http", "https"):
        raise ConfigError(f"{source}={endpoint!r}: the scheme must be http or https")
    if protocol == "http/protobuf" and "://" not in endpoint:
        raise ConfigError(f"{source}={endpoint!r}: OTLP/HTTP needs a URL such as http://host:4318")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{source}={endpoint!r}: bad port") from exc
    if not parts.hostname:
        raise ConfigError(f"{source}={endpoint!r} names no host")
    del port


def _millis(raw: str | None, var: str, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw) / 1000.0
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number of milliseconds") from None
    if not value > 0:
        raise ConfigError(f"{var}={raw!r} must be a positive number of milliseconds")
    return value


def _int(raw: str | None, var: str, default: int) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not an integer") from None


def _bool(raw: str | None, var: str, default: bool) -> bool:
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{var}={raw!r} is not a boolean (true/false)")
