"""Server settings: typed, validated when built, with ``OTEL_SSE_*`` environment fallbacks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_sse.bus.fanout import SlowClientPolicy
from otel_sse.errors import ConfigError
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
    port: int = 3000
    host: str = "localhost"
    http2: bool = False
    cert_path: str | None = None
    key_path: str | None = None
    keep_alive_interval: float = 15.0
    compression: bool = True
    compression_level: int = 6
    max_clients: int = 1000
    cors_origins: tuple[str, ...] = ("*",)
    headers: tuple[tuple[str, str], ...] = ()
    history_size: int = 10_000
    history_bytes: int = 64 * 1024 * 1024
    client_queue_size: int = 2_000
    slow_client_policy: SlowClientPolicy = SlowClientPolicy.DISCONNECT
    retry: int | None = None  # milliseconds; sent to clients as ``retry:`` when set
    backlog: int = 2048
    shutdown_timeout: float = 1.5
    # Cleartext listeners: serve HTTP/1.1 event streams natively, proxy the rest to
    # hypercorn (see otel_sse/server/front.py). Ignored with TLS (http2=True).
    fast_http1: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port!r}")
        if self.keep_alive_interval <= 0:
            raise ConfigError(
                f"keep_alive_interval must be > 0 seconds, got {self.keep_alive_interval!r}"
            )
        if not 0 <= self.compression_level <= 9:
            raise ConfigError(f"compression_level must be 0-9, got {self.compression_level!r}")
        if self.max_clients < 1:
            raise ConfigError(f"max_clients must be >= 1, got {self.max_clients!r}")
        if self.history_size < 1:
            raise ConfigError(f"history_size must be >= 1, got {self.history_size!r}")
        if self.history_bytes < 1024:
            raise ConfigError(f"history_bytes must be >= 1024, got {self.history_bytes!r}")
        if self.client_queue_size < 1:
            raise ConfigError(f"client_queue_size must be >= 1, got {self.client_queue_size!r}")
        if self.retry is not None and self.retry < 0:
            raise ConfigError(f"retry must be >= 0 milliseconds, got {self.retry!r}")
        if self.backlog < 1:
            raise ConfigError(f"backlog must be >= 1, got {self.backlog!r}")
        if self.shutdown_timeout <= 0:
            raise ConfigError(f"shutdown_timeout must be > 0, got {self.shutdown_timeout!r}")
        if self.http2 and (not self.cert_path or not self.key_path):
            raise ConfigError("http2=True needs cert_path and key_path (HTTP/2 over TLS); "
                              "HTTP/2 cleartext with prior knowledge works without them")
        for name, value in self.headers:
            try:
                check_field("header name", name)
                check_field("header value", value)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None

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
            "slow_client_policy": _env("SLOW_CLIENT_POLICY"),
            "fast_http1": _env_bool("FAST_HTTP1"),
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
        for key in ("keep_alive_interval", "shutdown_timeout"):
            if key in merged:
                merged[key] = float(merged[key])
        return cls(**merged)


def _normalise_headers(
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), str(v)) for k, v in items)
