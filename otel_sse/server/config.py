"""Server settings: one typed object, validated when built.

Every field can come from, in order of precedence: an explicit option (a
keyword argument, a command-line flag), an ``OTEL_SSE_<FIELD>`` environment
variable, a configuration file (TOML, read by the CLI), the default. A bad
value raises :class:`~otel_sse.errors.ConfigError` naming where it came from.
Secrets (the tokens) never appear in a ``repr``, an error message or the stats.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import otel_sse.env as envtypes
from otel_sse.bus.fanout import SlowClientPolicy
from otel_sse.bus.log import EventLog, MemoryEventLog
from otel_sse.bus.redis_config import (
    DEFAULT_STREAM_KEY,
    RedisBusConfig,
    check_stream_key,
    is_memory_bus,
    redact,
)
from otel_sse.env import Env
from otel_sse.errors import ConfigError
from otel_sse.hub import HubLimits
from otel_sse.wire.encoder import check_field

ENV_PREFIX = "OTEL_SSE_"
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
# Fields not read from OTEL_SSE_* variables (objects, or set only in code).
_NOT_FROM_ENV = frozenset({"extra"})
_SECRETS = frozenset({"token", "producer_token"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (a name or an address, no lookup)."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything :class:`~otel_sse.server.SSEServer` can be told; durations in seconds.

    Build it with :meth:`build`; every value is checked when it is built.
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
    # Authentication: with a token, every route but a minimal liveness answer needs
    # ``Authorization: Bearer <token>``; ingest and publish need the producer token
    # (the same one unless set). Binding a non-loopback address needs a token, or
    # insecure_no_auth to say that the network is trusted.
    token: str | None = field(default=None, repr=False)
    producer_token: str | None = field(default=None, repr=False)
    insecure_no_auth: bool = False
    # Host names accepted besides loopback ones (a loopback server refuses others:
    # DNS rebinding); on other binds, when listed, the only names accepted.
    allowed_hosts: tuple[str, ...] = ()
    # The lifetime of the session cookie a browser gets for the token (seconds).
    session_ttl: float = 12 * 3600.0
    # OTLP/gRPC ingest on a port of its own (None: off). The CLI's default, 4319,
    # sits beside a collector's 4317/4318 without taking either.
    grpc_port: int | None = None
    # The live dashboard at / (browsers) and /dashboard, linking traces to Jaeger.
    dashboard: bool = True
    jaeger_url: str = "http://localhost:16686"
    # Spans open longer than this get a span:heartbeat event each interval; spans of a
    # gateway source silent for stale_after are reported span:stale.
    heartbeat_interval: float = 15.0
    stale_after: float = 30.0
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
    # no open stream) is closed after idle_timeout; a request head or body (or a
    # TLS handshake) must arrive within request_timeout.
    idle_timeout: float = 30.0
    request_timeout: float = 10.0
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    # Request bodies (OTLP ingest, publish), and what they may decompress to.
    max_body_bytes: int = 8 * 1024 * 1024
    max_decompressed_bytes: int = 64 * 1024 * 1024
    # Ingest bodies being decoded at once; past it, 429 with Retry-After.
    ingest_inflight_bytes: int = 64 * 1024 * 1024
    h2_max_streams: int = 100
    # HTTP/2 control frames (SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE,
    # empty DATA) a connection may send per second, with bursts of twice that (and
    # credit for the data it received); all connections together, twenty times that.
    h2_control_frame_rate: int = 200
    # The event bus: None (or "memory") for the in-process log; redis://, rediss:// or
    # unix:// for a Redis Streams log shared by several gateways (a password in the
    # URL is a secret: never in a repr, an error or the stats).
    bus: str | None = field(default=None, repr=False)
    # The stream on that bus: one per tenant (gateways on one key share their events).
    stream_key: str = DEFAULT_STREAM_KEY
    # What publishing may buffer while the bus is unreachable; past it the newest are
    # dropped and counted (busDropped).
    bus_buffer_bytes: int = 16 * 1024 * 1024
    # SO_REUSEPORT on the listening sockets: several processes serve one port
    # (``otel-sse serve --workers N`` sets it).
    reuse_port: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port!r}")
        if self.grpc_port is not None and not 0 <= self.grpc_port <= 65535:
            raise ConfigError(f"grpc_port must be 0-65535, got {self.grpc_port!r}")
        if not 0 <= self.compression_level <= 9:
            raise ConfigError(f"compression_level must be 0-9, got {self.compression_level!r}")
        for name, low in (("max_clients", 1), ("history_size", 1), ("history_bytes", 1024),
                          ("client_queue_size", 1), ("client_buffer_bytes", 1024),
                          ("backlog", 1), ("pending_events", 1), ("pending_bytes", 1024),
                          ("max_event_bytes", 1024), ("max_connections", 0),
                          ("max_head_bytes", 1024), ("max_headers", 8), ("max_body_bytes", 0),
                          ("max_decompressed_bytes", 1024), ("ingest_inflight_bytes", 1024),
                          ("h2_max_streams", 1), ("h2_control_frame_rate", 10)):
            envtypes.int_at_least(getattr(self, name), name, low)
        for name in ("keep_alive_interval", "shutdown_timeout", "idle_timeout",
                     "request_timeout", "session_ttl", "heartbeat_interval", "stale_after"):
            envtypes.positive_seconds(getattr(self, name), name)
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
        for name in _SECRETS:
            secret = getattr(self, name)
            if secret is not None and (len(secret) < 8 or any(c.isspace() for c in secret)):
                # The message never shows the value: it is a secret.
                raise ConfigError(f"{name} must be at least 8 characters, without spaces")
        if not self.token and not self.insecure_no_auth and not is_loopback(self.host):
            raise ConfigError(
                f"host {self.host!r} is not a loopback address: the stream (prompts and "
                "responses included) would be open to the network without authentication. "
                "Set a token (--token, --token-file or OTEL_SSE_TOKEN), or pass "
                "--insecure-no-auth (insecure_no_auth=True) on a network you trust")
        if self.max_connections == 0:
            object.__setattr__(self, "max_connections", self.max_clients + 100)
        check_stream_key(self.stream_key)
        envtypes.http_url(self.jaeger_url, "jaeger_url")
        envtypes.int_at_least(self.bus_buffer_bytes, "bus_buffer_bytes", 1024)
        if self.bus is not None and not isinstance(self.bus, str):
            raise ConfigError(f"bus must be 'memory' or a redis:// URL, got {self.bus!r}")
        if not is_memory_bus(self.bus):
            self.redis_bus()  # checks the URL

    @property
    def shared_bus(self) -> bool:
        """Whether events go through a bus shared with other gateways (Redis)."""
        return not is_memory_bus(self.bus)

    def redis_bus(self) -> RedisBusConfig:
        """The Redis bus's settings (``bus`` must be a Redis URL)."""
        return RedisBusConfig(url=str(self.bus), stream_key=self.stream_key,
                              max_len=self.history_size, buffer_bytes=self.bus_buffer_bytes)

    def event_log(self) -> EventLog:
        """A new event log for ``bus``: in-process, or on Redis (the ``redis`` package
        is imported only then)."""
        if not self.shared_bus:
            return MemoryEventLog(self.history_size, self.history_bytes)
        try:
            from otel_sse.bus.redis_log import RedisEventLog
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(f"bus {redact(str(self.bus))!r} needs the redis package: "
                              f"pip install 'otel-sse[redis]' ({exc})") from None
        return RedisEventLog(self.redis_bus(), self.history_size, self.history_bytes,
                             backlog_bytes=max(1024, self.client_buffer_bytes // 2))

    @property
    def tls(self) -> bool:
        """Whether ``cert_path`` and ``key_path`` are set (the port speaks TLS)."""
        return bool(self.cert_path and self.key_path)

    @property
    def ingest_token(self) -> str | None:
        """What producers (OTLP ingest, publish) must present."""
        return self.producer_token or self.token

    def hub_limits(self) -> HubLimits:
        """The bounds of the hub this server publishes through."""
        return HubLimits(
            history_size=self.history_size, history_bytes=self.history_bytes,
            client_queue_size=self.client_queue_size,
            client_buffer_bytes=self.client_buffer_bytes,
            slow_client_policy=self.slow_client_policy, pending_events=self.pending_events,
            pending_bytes=self.pending_bytes, max_event_bytes=self.max_event_bytes)

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The variable a field is read from: ``OTEL_SSE_<FIELD>``."""
        return ENV_PREFIX + field_name.upper()

    @classmethod
    def build(cls, file: Mapping[str, Any] | None = None,
              environ: Mapping[str, str] | None = None, **options: Any) -> ServerConfig:
        """Explicit ``options`` win; then ``OTEL_SSE_*`` variables (from ``environ``,
        default ``os.environ``); then ``file`` (a configuration file's values); then the
        defaults. ``token_file`` / ``producer_token_file`` name files holding a token."""
        known = {f.name for f in fields(cls)}
        layers: list[tuple[str, dict[str, Any]]] = [
            ("the configuration file", dict(file or {})),
            ("the environment", _from_env(Env(environ))),
            ("the options", {k: v for k, v in options.items() if v is not None}),
        ]
        merged: dict[str, Any] = {}
        for where, values in layers:
            for secret in ("token", "producer_token"):
                path = values.pop(f"{secret}_file", None)
                if path is not None:
                    values[secret] = _read_secret(str(path), f"{secret}_file")
            unknown = set(values) - known
            if unknown:
                raise ConfigError(f"unknown server option(s) in {where}: "
                                  f"{', '.join(sorted(unknown))}")
            merged.update(values)
        for key in ("cors_origins", "allowed_hosts"):
            if key in merged:
                value = merged[key]
                merged[key] = (value,) if isinstance(value, str) else tuple(value)
        if "headers" in merged:
            merged["headers"] = _normalise_headers(merged["headers"])
        if "slow_client_policy" in merged:
            try:
                merged["slow_client_policy"] = SlowClientPolicy(merged["slow_client_policy"])
            except ValueError:
                raise ConfigError(
                    f"slow_client_policy must be 'disconnect' or 'drop-oldest', "
                    f"got {merged['slow_client_policy']!r}") from None
        for name, kind in _KINDS.items():
            if kind == "float" and isinstance(merged.get(name), int) \
                    and not isinstance(merged[name], bool):
                merged[name] = float(merged[name])
        return cls(**merged)


def _kind(annotation: str) -> str:
    """How a field's value is read from a variable, from its annotation."""
    for kind in ("bool", "int", "float"):
        if annotation in (kind, f"{kind} | None"):
            return kind
    if annotation.startswith("tuple[tuple"):
        return "pairs"
    if annotation.startswith("tuple[str"):
        return "list"
    return "str"


_KINDS = {f.name: _kind(str(f.type)) for f in fields(ServerConfig)
          if f.name not in _NOT_FROM_ENV}


def _from_env(env: Env) -> dict[str, Any]:
    values: dict[str, Any] = {}
    names = [*_KINDS, "token_file", "producer_token_file"]
    for name in names:
        var = ServerConfig.env_name(name)
        raw = env.get(var)
        if raw is None:
            continue
        kind = _KINDS.get(name, "str")
        if kind == "int":
            values[name] = envtypes.integer(raw, var)
        elif kind == "float":
            values[name] = envtypes.seconds(raw, var)
        elif kind == "bool":
            values[name] = envtypes.loose_bool(raw, var)
        elif kind == "list":
            values[name] = tuple(item.strip() for item in raw.split(",") if item.strip())
        elif kind == "pairs":
            values[name] = tuple(envtypes.pairs(raw, var))
        else:
            values[name] = raw
    return values


def _read_secret(path: str, source: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {path!r}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"{source}: {path!r} is empty")
    return text


def _normalise_headers(
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), str(v)) for k, v in items)
