"""``SSEClient`` options: their record, their validation, the requested URL."""

from __future__ import annotations

import dataclasses
import math
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from otel_sse.client.transport import HTTP2Mode
from otel_sse.env import http_url
from otel_sse.errors import ConfigError
from otel_sse.wire.decoder import SSEDecoder
from otel_sse.wire.filters import FilterError, parse_filters

__all__ = ["build_url"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Options:
    urls: tuple[str, ...]
    filters: tuple[str, ...]
    auto_reconnect: bool
    reconnect_delay: float
    max_reconnect_delay: float
    reconnect_backoff: float
    max_reconnect_attempts: int
    headers: tuple[tuple[str, str], ...]
    reconnect_jitter: float
    read_timeout: float | None
    connect_timeout: float | None
    http2: HTTP2Mode
    verify: bool | str | ssl.SSLContext
    ca_file: str | None
    compression: bool
    max_buffered_events: int


# Options whose change needs a new transport (the rest apply to the next
# connection or the next delay computation by themselves).
_TRANSPORT_OPTIONS = frozenset(
    {"urls", "read_timeout", "connect_timeout", "http2", "verify", "ca_file"}
)


def _duration(
    name: str, value: object, *, allow_none: bool = False, positive: bool = False
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'> 0' if positive else '>= 0'} seconds, got {value!r}")


def _check_header_text(kind: str, text: str) -> None:
    if any(c in text for c in "\r\n\0"):
        raise ConfigError(f"header {kind} {text!r} contains CR, LF or NUL")


def _normalise_urls(url: object) -> tuple[str, ...]:
    """The ``url`` option as a tuple: one URL, or several replicas of one stream."""
    if isinstance(url, str):
        return (url,)
    if isinstance(url, (list, tuple)) and all(isinstance(u, str) for u in url):
        return tuple(url)
    raise ConfigError(f"url must be a str or a list of str, got {url!r}")


def _validate(options: _Options) -> None:
    if not options.urls:
        raise ConfigError("url must name at least one URL, got an empty list")
    for url in options.urls:
        http_url(url, "url")
    if len(set(options.urls)) != len(options.urls):
        raise ConfigError(f"url lists the same URL twice: {list(options.urls)!r}")
    for name in ("reconnect_delay", "max_reconnect_delay"):
        _duration(name, getattr(options, name))
    if options.max_reconnect_delay < options.reconnect_delay:
        raise ConfigError(
            f"max_reconnect_delay ({options.max_reconnect_delay!r}) must be >= "
            f"reconnect_delay ({options.reconnect_delay!r})"
        )
    backoff = options.reconnect_backoff
    if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not (
        math.isfinite(backoff) and backoff >= 1.0
    ):
        raise ConfigError(f"reconnect_backoff must be a number >= 1, got {backoff!r}")
    attempts = options.max_reconnect_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise ConfigError(
            f"max_reconnect_attempts must be an int >= 0 (0 = forever), got {attempts!r}"
        )
    jitter = options.reconnect_jitter
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 1:
        raise ConfigError(f"reconnect_jitter must be in [0, 1), got {jitter!r}")
    _duration("read_timeout", options.read_timeout, allow_none=True, positive=True)
    _duration("connect_timeout", options.connect_timeout, allow_none=True, positive=True)
    if options.http2 not in (True, False, "prior-knowledge"):
        raise ConfigError(f"http2 must be True, False or 'prior-knowledge', got {options.http2!r}")
    if not isinstance(options.verify, (bool, str, ssl.SSLContext)):
        raise ConfigError(
            f"verify must be a bool, a CA file path or an SSLContext, got {options.verify!r}"
        )
    buffered = options.max_buffered_events
    if isinstance(buffered, bool) or not isinstance(buffered, int) or buffered < 0:
        raise ConfigError(f"max_buffered_events must be an int >= 0, got {buffered!r}")
    for name, value in options.headers:
        if not name or not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"headers must map str to str, got {name!r}: {value!r}")
        _check_header_text("name", name)
        _check_header_text("value", value)


def _set_last_event_id(decoder: SSEDecoder[Any], value: object) -> None:
    """Give ``decoder`` the ``last_event_id`` option; a bad value is a ConfigError."""
    if not isinstance(value, str):
        raise ConfigError(f"last_event_id must be a str, got {value!r}")
    try:
        decoder.set_last_event_id(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _normalise_filters(filters: str | Iterable[str] | None) -> tuple[str, ...]:
    try:
        return parse_filters(filters)
    except FilterError as exc:
        raise ConfigError(str(exc)) from exc


def build_url(url: str, filters: tuple[str, ...]) -> str:
    """``url`` with ``filters=a,b`` in its query; other parameters kept byte for byte."""
    if not filters:
        return url
    parts = urlsplit(url)
    kept = [
        item
        for item in parts.query.split("&")
        if item and unquote_plus(item.partition("=")[0]) != "filters"
    ]
    kept.append("filters=" + quote(",".join(filters), safe=":*,/"))
    return urlunsplit(parts._replace(query="&".join(kept)))
