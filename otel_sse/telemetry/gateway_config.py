"""Where and how the live stream goes to a gateway (``otel-sse serve``) in another process.

``configure(gateway="http://host:port", token=...)`` or ``OTEL_SSE_GATEWAY``: the
token comes from the argument, else ``OTEL_SSE_GATEWAY_TOKEN``, else
``OTEL_SSE_PRODUCER_TOKEN``, else ``OTEL_SSE_TOKEN``. The token is a secret: it is
in no ``repr`` and no error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import SplitResult, urlsplit

import otel_sse.env as envtypes
from otel_sse.env import Env
from otel_sse.errors import ConfigError

GatewaySignal = Literal["traces", "logs"]
TOKEN_VARIABLES: Final = ("OTEL_SSE_GATEWAY_TOKEN", "OTEL_SSE_PRODUCER_TOKEN", "OTEL_SSE_TOKEN")
# Durations read from the environment, in seconds like every OTEL_SSE_* duration.
_DURATIONS: Final = (("interval", "OTEL_SSE_GATEWAY_INTERVAL"),
                     ("keepalive", "OTEL_SSE_GATEWAY_KEEPALIVE"),
                     ("timeout", "OTEL_SSE_GATEWAY_TIMEOUT"))


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The gateway forwarder's settings. Durations are seconds.

    ``url`` is the gateway's base URL (``http`` or ``https``, maybe with a path
    prefix); requests go to ``<url>/v1/traces`` and ``<url>/v1/logs``. ``token`` is
    the gateway's producer token, sent as ``Authorization: Bearer``.
    ``certificate`` is a CA bundle to verify an ``https`` gateway with (default:
    the system's). What was recorded is sent every ``interval`` or as soon as
    ``max_batch`` items wait; at most ``max_queue`` items wait to be encoded and
    ``max_bytes`` of encoded requests wait for a gateway that is away. After
    ``keepalive`` seconds with nothing to send, an empty export tells the gateway
    that this process is alive (its open spans are not stale). A request gets
    ``timeout``; retries back off from ``retry_initial`` to ``retry_max``.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    certificate: str | None = None
    interval: float = 0.01
    max_batch: int = 512
    max_queue: int = 65536
    max_bytes: int = 32 * 1024 * 1024
    keepalive: float = 5.0
    timeout: float = 5.0
    retry_initial: float = 0.1
    retry_max: float = 5.0

    def __post_init__(self) -> None:
        parts = _parse_url(self.url)
        object.__setattr__(self, "url", parts.geturl().rstrip("/"))
        if self.token is not None:
            _check_token(self.token)
        for name in ("interval", "keepalive", "timeout", "retry_initial", "retry_max"):
            envtypes.positive_seconds(getattr(self, name), name)
        for name, least in (("max_batch", 1), ("max_queue", 1), ("max_bytes", 1024)):
            envtypes.int_at_least(getattr(self, name), name, least)
        if self.retry_max < self.retry_initial:
            raise ConfigError(f"retry_max={self.retry_max!r} must not be less than "
                              f"retry_initial={self.retry_initial!r}")

    @property
    def https(self) -> bool:
        return self.url.startswith("https:")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def path(self, signal: GatewaySignal) -> str:
        """The request path of ``signal`` (``/v1/traces``, after the URL's own path)."""
        return f"{urlsplit(self.url).path.rstrip('/')}/v1/{signal}"

    @classmethod
    def from_env(cls, env: Env, gateway: str | GatewayConfig | None = None,
                 token: str | None = None) -> GatewayConfig | None:
        """The gateway ``configure()`` was given, else ``OTEL_SSE_GATEWAY``; None when
        neither names one. A ``token`` without a gateway is refused (it would go
        nowhere, and a typo in the gateway's variable would go unnoticed)."""
        if isinstance(gateway, GatewayConfig):
            return gateway if token is None else replace(gateway, token=token)
        url = gateway if gateway is not None else env.get("OTEL_SSE_GATEWAY")
        if url is None:
            if token is not None:
                raise ConfigError("token= is the gateway's producer token: pass gateway= "
                                  "(or set OTEL_SSE_GATEWAY) too")
            return None
        source = "gateway" if gateway is not None else "OTEL_SSE_GATEWAY"
        if token is None:
            found = env.first(TOKEN_VARIABLES)
            token = found[1] if found is not None else None
        options: dict[str, Any] = {}
        for name, variable in _DURATIONS:
            raw = env.get(variable)
            if raw is not None:
                options[name] = envtypes.seconds(raw, variable)
        try:
            return cls(url=url, token=token,
                       certificate=env.get("OTEL_SSE_GATEWAY_CERTIFICATE"), **options)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def _parse_url(url: object) -> SplitResult:
    if not isinstance(url, str):
        raise ConfigError(f"the gateway URL must be a string, got {url!r}")
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"{_shown(url)!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the gateway URL {_shown(url)!r} must be http://host:port or "
                          "https://host:port")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"the gateway URL {_shown(url)!r} must not hold credentials: "
                          "pass the token (token=, OTEL_SSE_GATEWAY_TOKEN)")
    if parts.query or parts.fragment:
        raise ConfigError(f"the gateway URL {_shown(url)!r} must have no query or fragment")
    return parts


def _shown(url: str) -> str:
    """``url`` without what may be a secret (the user info before ``@``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url if "@" not in url else "<a URL with credentials>"
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return f"{scheme}://{netloc}{slash}{path}"


def _check_token(token: str) -> None:
    # Named but never shown: the message must not leak the secret.
    if not isinstance(token, str) or not token:
        raise ConfigError("the gateway token must be a non-empty string")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in token):
        raise ConfigError("the gateway token must be one word (no spaces, line breaks or "
                          "control characters)")


def bearer(config: GatewayConfig) -> Mapping[str, str]:
    """The authorization header for ``config`` (empty without a token)."""
    return {"Authorization": f"Bearer {config.token}"} if config.token else {}
