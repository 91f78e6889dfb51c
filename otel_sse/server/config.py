"""Server settings: typed, validated when built, with ``OTEL_SSE_*`` environment fallbacks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_sse.bus.fanout import SlowClientPolicy
from otel_sse.errors import ConfigError
from otel_sse.hub import HubLimits
from otel_sse.wire.encoder import check_field

_ENV_PREFIX = "OTEL_SSE_"


def _env(name: str) -> str | None:
    value = os.environ.get(_ENV_PREFIX + name)
    return value if value not in (None, "") else None


def _env_number(name: str, kind: type[int] | type[float]) -> int | float | None:
    raw = _env(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{_ENV_PREFIX}{name}={raw!r} is not a valid {kind.__name__}") from None


def _env_bool(name: str) -> bool | None:
    raw = _env(name)
    if raw is None:
        return None
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{_ENV_PREFIX}{name}={raw!r} is not a boolean (true/false)")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything :class:`~otel_sse.server.SSEServer` can be told; durations in seconds.

    Build it with :meth:`build` (explicit options, then ``OTEL_SSE_*`` variables,
    then the defaults); every value is checked when it is built and a bad one
    raises :class:`~otel_sse.errors.ConfigError` naming it.
    """

    port: int = 3000
    host: str = "localhost"
    http2: bool = False
    cert_path: str | None = None
    key_path: str | None = None
    keep_alive_interval: float = 15.0
    compression: bool = True
    compression_level: int = 6
    max_clients: int = 1000
    # No cross-origin access unless origins are listed ("*" only when asked for):
    # the stream can carry prompts and responses.
    cors_origins: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    history_size: int = 10_000
    history_bytes: int = 64 * 1024 * 1024
    client_queue_size: int = 2_000
    # What one client may hold unsent and be due, in bytes (socket buffer, HTTP/2
    # windows and the events after its cursor); past it the slow-client policy applies.
    client_buffer_bytes: int = 1024 * 1024
    slow_client_policy: SlowClientPolicy = SlowClientPolicy.DISCONNECT
    retry: int | None = None  # milliseconds; sent to clients as ``retry:`` when set
    backlog: int = 2048
    shutdown_timeout: float = 1.5
    # Events other threads may have queued for the loop, by count and bytes.
    pending_events: int = 65_536
    pending_bytes: int = 64 * 1024 * 1024
    max_event_bytes: int = 4 * 1024 * 1024
    # Connections of any protocol (0: max_clients + 100).
    max_connections: int = 0
    # A connection with no request in progress (HTTP/1.1 keep-alive, HTTP/2 with
    # no open stream, a TLS handshake) is closed after idle_timeout; a request
    # head or body must arrive within request_timeout.
    idle_timeout: float = 30.0
    request_timeout: float = 10.0
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 8 * 1024 * 1024
    h2_max_streams: int = 100
    # HTTP/2 control frames (SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE,
    # empty DATA) a client may send per second, with bursts of twice that.
    h2_control_frame_rate: int = 1000
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port!r}")
        if not 0 <= self.compression_level <= 9:
            raise ConfigError(f"compression_level must be 0-9, got {self.compression_level!r}")
        for name, low in (("max_clients", 1), ("history_size", 1), ("history_bytes", 1024),
                          ("client_queue_size", 1), ("client_buffer_bytes", 1024),
                          ("backlog", 1), ("pending_events", 1), ("pending_bytes", 1024),
                          ("max_event_bytes", 1024), ("max_connections", 0),
                          ("max_head_bytes", 1024), ("max_headers", 8), ("max_body_bytes", 0),
                          ("h2_max_streams", 1), ("h2_control_frame_rate", 10)):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        for name in ("keep_alive_interval", "shutdown_timeout", "idle_timeout",
                     "request_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {value!r}")
        if self.retry is not None and (type(self.retry) is not int or self.retry < 0):
            raise ConfigError(f"retry must be an int >= 0 milliseconds, got {self.retry!r}")
        if self.http2 and (not self.cert_path or not self.key_path):
            raise ConfigError("http2=True needs cert_path and key_path (HTTP/2 over TLS); "
                              "HTTP/2 cleartext with prior knowledge works without them")
        for name, value in self.headers:
            try:
                check_field("header name", name)
                check_field("header value", value)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.max_connections == 0:
            object.__setattr__(self, "max_connections", self.max_clients + 100)

    def hub_limits(self) -> HubLimits:
        """The bounds of the hub this server publishes through."""
        return HubLimits(
            history_size=self.history_size, history_bytes=self.history_bytes,
            client_queue_size=self.client_queue_size,
            client_buffer_bytes=self.client_buffer_bytes,
            slow_client_policy=self.slow_client_policy, pending_events=self.pending_events,
            pending_bytes=self.pending_bytes, max_event_bytes=self.max_event_bytes)

    @classmethod
    def build(cls, **options: Any) -> ServerConfig:
        """Explicit options win; then ``OTEL_SSE_*`` variables; then the defaults."""
        env: dict[str, Any] = {
            "port": _env_number("PORT", int),
            "host": _env("HOST"),
            "http2": _env_bool("HTTP2"),
            "cert_path": _env("CERT_PATH"),
            "key_path": _env("KEY_PATH"),
            "keep_alive_interval": _env_number("KEEP_ALIVE_INTERVAL", float),
            "compression": _env_bool("COMPRESSION"),
            "max_clients": _env_number("MAX_CLIENTS", int),
            "history_size": _env_number("HISTORY_SIZE", int),
            "history_bytes": _env_number("HISTORY_BYTES", int),
            "client_buffer_bytes": _env_number("CLIENT_BUFFER_BYTES", int),
            "slow_client_policy": _env("SLOW_CLIENT_POLICY"),
            "max_connections": _env_number("MAX_CONNECTIONS", int),
            "idle_timeout": _env_number("IDLE_TIMEOUT", float),
            "request_timeout": _env_number("REQUEST_TIMEOUT", float),
            "max_body_bytes": _env_number("MAX_BODY_BYTES", int),
            "shutdown_timeout": _env_number("SHUTDOWN_TIMEOUT", float),
        }
        cors = _env("CORS_ORIGINS")
        if cors is not None:
            env["cors_origins"] = [o.strip() for o in cors.split(",") if o.strip()]
        merged = {k: v for k, v in env.items() if v is not None}
        merged.update({k: v for k, v in options.items() if v is not None})
        unknown = set(merged) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown SSEServer option(s): {', '.join(sorted(unknown))}")
        if "cors_origins" in merged:
            origins = merged["cors_origins"]
            merged["cors_origins"] = (origins,) if isinstance(origins, str) else tuple(origins)
        if "headers" in merged:
            merged["headers"] = _normalise_headers(merged["headers"])
        if "slow_client_policy" in merged:
            try:
                merged["slow_client_policy"] = SlowClientPolicy(merged["slow_client_policy"])
            except ValueError:
                raise ConfigError(
                    f"slow_client_policy must be 'disconnect' or 'drop-oldest', "
                    f"got {merged['slow_client_policy']!r}") from None
        for key in ("keep_alive_interval", "shutdown_timeout", "idle_timeout",
                    "request_timeout"):
            if isinstance(merged.get(key), int):
                merged[key] = float(merged[key])
        return cls(**merged)


def _normalise_headers(
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), str(v)) for k, v in items)
