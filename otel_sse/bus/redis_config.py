"""Where and how a gateway (or an application) reaches the Redis Streams bus.

``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS) or
``unix:///path/to/redis.sock?db=N``: authentication (a password, or an ACL user
and its password) and TLS come from the URL, as the ``redis`` package reads it.
The password is a secret: :attr:`RedisBusConfig.display_url` and every error
message show the URL without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import SplitResult, urlsplit

from otel_sse.env import int_at_least, positive_seconds
from otel_sse.errors import ConfigError

SCHEMES: Final = ("redis", "rediss", "unix")
DEFAULT_STREAM_KEY: Final = "otel-sse:events"


def is_memory_bus(bus: str | None) -> bool:
    """Whether ``bus`` names the in-process log (None, ``""`` or ``memory``)."""
    return bus is None or bus.strip() in ("", "memory")


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if _port(parts) else "")
    return parts._replace(netloc=netloc).geturl()


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def check_stream_key(key: object) -> str:
    """A stream key: a non-empty string of printable characters without spaces."""
    if not isinstance(key, str) or not key or len(key) > 256 \
            or any(not ch.isprintable() or ch.isspace() for ch in key):
        raise ConfigError(f"stream_key must be 1-256 printable characters without spaces, "
                          f"got {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class RedisBusConfig:
    """The Redis bus's settings; durations in seconds, sizes in bytes.

    ``url`` names the server (see the module docstring); ``stream_key`` the
    stream (one per tenant: streams are independent, and Redis Cluster places
    each on one shard). ``max_len`` is the approximate ``MAXLEN`` of every
    ``XADD`` (the gateway's ``history_size``). While Redis is away, what is
    published waits in a buffer of ``buffer_bytes`` at most (past it the newest
    are dropped and counted), and is sent in order when it is back; attempts
    back off from ``retry_initial`` to ``retry_max``. The reader blocks in
    ``XREAD`` for ``block`` at most and takes ``read_count`` entries a call;
    the leader lease (who publishes derived events) lasts ``lease_ttl``.
    """

    url: str = field(repr=False)
    stream_key: str = DEFAULT_STREAM_KEY
    max_len: int = 10_000
    buffer_bytes: int = 16 * 1024 * 1024
    write_batch: int = 512
    read_count: int = 1024
    block: float = 1.0
    retry_initial: float = 0.05
    retry_max: float = 2.0
    lease_ttl: float = 5.0
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise ConfigError(f"bus must be a redis:// URL, got {self.url!r}")
        try:
            parts = urlsplit(self.url)
        except ValueError as exc:
            raise ConfigError(f"bus {redact(self.url)!r} is not a URL: {exc}") from None
        if parts.scheme not in SCHEMES:
            raise ConfigError(f"bus {redact(self.url)!r} is neither 'memory' nor a "
                              f"redis://, rediss:// or unix:// URL")
        if parts.scheme != "unix" and not parts.hostname:
            raise ConfigError(f"bus {redact(self.url)!r} names no host")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError:
            raise ConfigError(f"bus {redact(self.url)!r} has a bad port") from None
        db = parts.path.strip("/")
        if parts.scheme != "unix" and db and not db.isdigit():
            raise ConfigError(f"bus {redact(self.url)!r}: the database must be a number, "
                              f"got {db!r}")
        check_stream_key(self.stream_key)
        for name, low in (("max_len", 1), ("buffer_bytes", 1024), ("write_batch", 1),
                          ("read_count", 1)):
            int_at_least(getattr(self, name), name, low)
        for name in ("block", "retry_initial", "retry_max", "lease_ttl", "connect_timeout"):
            positive_seconds(getattr(self, name), name)
        if self.retry_max < self.retry_initial:
            raise ConfigError(f"retry_max ({self.retry_max!r}) must not be less than "
                              f"retry_initial ({self.retry_initial!r})")

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages and stats."""
        return redact(self.url)

    @property
    def lease_key(self) -> str:
        """Who publishes the events derived from the open-work state."""
        return f"{self.stream_key}:leader"

    def writer_key(self, writer: str) -> str:
        """The last batch number ``writer`` appended (to tell, after a lost answer,
        whether its batch went in)."""
        return f"{self.stream_key}:writer:{writer}"
