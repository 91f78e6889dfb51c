"""``SSEClient``: subscribe to an event stream, survive disconnections, miss nothing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import math
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Self
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from otel_sse.client.backoff import compute_reconnect_delay, parse_retry_after
from otel_sse.client.compression import ACCEPT_ENCODING
from otel_sse.client.events import ConnectionState, SSEEvent, make_event
from otel_sse.client.transport import (
    AiohttpTransport,
    HTTP2Mode,
    StreamResponse,
    Transport,
    make_ssl_context,
)
from otel_sse.errors import (
    BadContentTypeError,
    BadStatusError,
    CertificateError,
    ClientError,
    ConfigError,
    ReconnectExhaustedError,
)
from otel_sse.wire.decoder import SSEDecoder
from otel_sse.wire.filters import EventFilter, FilterError, parse_filters

__all__ = ["Handler", "SSEClient"]

logger = logging.getLogger("otel_sse.client")

Handler = Callable[[SSEEvent], Any] | Callable[[SSEEvent], Awaitable[Any]]

# Events the server sends about the stream itself: they pass the client-side
# filter whatever it says, because a subscriber must learn about a gap or a
# shutdown even when it only asked for task:*.
_CONTROL_EVENTS = frozenset({"stream:gap", "shutdown"})
_HANDSHAKE = "connected"
_USER_AGENT = "otel-sse-client/0.1.0"


@dataclasses.dataclass(frozen=True, slots=True)
class _Options:
    url: str
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
    {"url", "read_timeout", "connect_timeout", "http2", "verify", "ca_file"}
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


def _validate(options: _Options) -> None:
    parts = urlsplit(options.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"url must be an absolute http:// or https:// URL, got {options.url!r}")
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


def is_permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: most 4xx, a wrong content type, an untrusted certificate."""
    if isinstance(error, BadStatusError):
        return not (error.status in (408, 429) or 500 <= error.status <= 599)
    return isinstance(error, (BadContentTypeError, CertificateError))


class _NoContent(Exception):
    """204: the server tells the client to stop reconnecting (WHATWG)."""


@dataclasses.dataclass(slots=True)
class _Entry:
    pattern: str
    handler: Handler
    match: EventFilter
    once: bool


class _EventIterator:
    """One ``async for`` over a client; events are shared, each delivered once."""

    __slots__ = ("_client", "_detached")

    def __init__(self, client: SSEClient) -> None:
        self._client = client
        self._detached = False
        client._consumers += 1
        client._nobody_iterates = False
        client._space.set()

    def _detach(self) -> None:
        if not self._detached:
            self._detached = True
            self._client._consumers -= 1
            self._client._space.set()

    def __del__(self) -> None:
        # A ``break`` out of ``async for`` drops the iterator without telling
        # it; the reader must then stop waiting for a consumer that is gone.
        with contextlib.suppress(Exception):
            self._detach()

    def __aiter__(self) -> _EventIterator:
        return self

    async def __anext__(self) -> SSEEvent:
        client = self._client
        buffer = client._buffer
        while not buffer:
            if client._finished:
                self._detach()
                error = client._final_error
                if error is not None:
                    raise error
                raise StopAsyncIteration
            client._ready.clear()
            await client._ready.wait()
        event = buffer.popleft()
        if client._space_wanted and len(buffer) <= client._low_water:
            client._space.set()
        return event


class SSEClient:
    """An async Server-Sent Events client: WHATWG parsing, reconnection with
    ``Last-Event-ID``, exponential backoff, event-type filters, handlers and
    ``async for``.

    ``async for event in client`` yields the server's events (``stream:gap``
    and ``shutdown`` included; the server's ``connected`` handshake is not,
    it goes to ``on("connected")``). Lifecycle notifications (``connected``,
    ``disconnected``, ``reconnecting``, ``error``, ``parse_error``) go to
    handlers registered with :meth:`on`. See the README for every option.
    """

    def __init__(
        self,
        url: str,
        filters: str | Iterable[str] | None = None,
        auto_reconnect: bool = True,
        reconnect_delay: float = 1.0,
        max_reconnect_delay: float = 30.0,
        reconnect_backoff: float = 2.0,
        max_reconnect_attempts: int = 0,
        headers: Mapping[str, str] | None = None,
        *,
        last_event_id: str | None = None,
        reconnect_jitter: float = 0.2,
        read_timeout: float | None = 35.0,
        connect_timeout: float | None = 10.0,
        http2: HTTP2Mode = False,
        verify: bool | str | ssl.SSLContext = True,
        ca_file: str | None = None,
        compression: bool = True,
        max_buffered_events: int = 10_000,
    ) -> None:
        if not isinstance(url, str):
            raise ConfigError(f"url must be a str, got {url!r}")
        self._options = _Options(
            url=url,
            filters=_normalise_filters(filters),
            auto_reconnect=bool(auto_reconnect),
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            reconnect_backoff=reconnect_backoff,
            max_reconnect_attempts=max_reconnect_attempts,
            headers=tuple((headers or {}).items()),
            reconnect_jitter=reconnect_jitter,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
            http2=http2,
            verify=verify,
            ca_file=ca_file,
            compression=bool(compression),
            max_buffered_events=max_buffered_events,
        )
        _validate(self._options)
        if last_event_id is not None and not isinstance(last_event_id, str):
            raise ConfigError(f"last_event_id must be a str, got {last_event_id!r}")
        try:
            self._decoder = SSEDecoder(last_event_id or "", factory=make_event)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self._local_filter: EventFilter | None = (
            EventFilter(self._options.filters) if self._options.filters else None
        )

        self._state = ConnectionState.DISCONNECTED
        self._entries: list[_Entry] = []
        self._routes: dict[str, tuple[_Entry, ...]] = {}
        self._check_json = False

        self._task: asyncio.Task[None] | None = None
        self._transport: Transport | None = None
        self._response: StreamResponse | None = None
        self._closing = False
        self._waiters: list[asyncio.Future[None]] = []

        # Events waiting for ``async for``: a deque, not a queue, so that a
        # whole chunk's events go in with one C call.
        self._buffer: deque[SSEEvent] = deque()
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space_wanted = False
        self._low_water = self._options.max_buffered_events // 2
        self._consumers = 0
        self._finished = False
        self._final_error: BaseException | None = None

        self._handshake_pending = False
        self._http_version: str | None = None
        self._connected_since: float | None = None
        self._retry_seen: int | None = None
        self._invalid_seen = 0
        self._stats = {
            "events_received": 0,
            "bytes_received": 0,
            "connections": 0,
            "reconnects": 0,
            "reconnect_attempts": 0,
            "errors": 0,
            "handler_errors": 0,
            "parse_errors": 0,
            "events_dropped": 0,
        }

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def last_event_id(self) -> str | None:
        """The id to resume from (sent as ``Last-Event-ID``); None before any id."""
        return self._decoder.last_event_id or None

    @property
    def url(self) -> str:
        """The URL actually requested (with the ``filters`` query)."""
        return build_url(self._options.url, self._options.filters)

    def on(self, pattern: str, handler: Handler) -> Handler:
        """Call ``handler(event)`` for every event whose type matches ``pattern``.

        ``pattern`` is an event type or a ``*`` pattern (``task:*``, ``*``);
        it sees server events and lifecycle events alike. ``handler`` may be
        sync or async; async handlers are awaited in order, before the next
        event, so a slow handler slows the stream rather than reordering it.
        Returns the handler, so ``on`` works as a decorator factory's core.
        """
        self._add(pattern, handler, once=False)
        return handler

    def once(self, pattern: str, handler: Handler) -> Handler:
        """Like :meth:`on`, removed after its first call."""
        self._add(pattern, handler, once=True)
        return handler

    def off(self, pattern: str, handler: Handler | None = None) -> int:
        """Remove ``handler`` (or every handler) registered for ``pattern``; returns how many."""
        before = len(self._entries)
        self._entries = [
            e
            for e in self._entries
            if not (e.pattern == pattern and (handler is None or e.handler == handler))
        ]
        self._changed_handlers()
        return before - len(self._entries)

    async def connect(self) -> None:
        """Open the stream; return once it is open (HTTP 200 with an event stream).

        Transient failures are retried as configured, so with
        ``max_reconnect_attempts=0`` this waits until the server is there; use
        ``asyncio.timeout`` to bound the wait (the client keeps trying until
        :meth:`disconnect`). Raises the error when the failure is permanent
        (e.g. :class:`BadStatusError` for a 404), when the attempts are used up
        (:class:`ReconnectExhaustedError`), or ``BadStatusError(204)`` when the
        server says there is nothing to stream.
        """
        if self._state is ConnectionState.CONNECTED:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._ensure_started()
        try:
            await waiter
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def disconnect(self) -> None:
        """Close the stream and stop reconnecting; state becomes ``CLOSED``.

        Safe to call from a handler (the client stops after that handler) and
        more than once. ``connect()`` or ``async for`` starts it again,
        resuming from ``last_event_id``.
        """
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            if task is asyncio.current_task():
                return
            task.cancel()
            await asyncio.wait({task})
        if self._transport is not None:
            await self._release()
        self._settle(ConnectionState.CLOSED, None)

    def get_stats(self) -> dict[str, Any]:
        """Counters and connection facts (``connected_since`` is a Unix time)."""
        since = self._connected_since
        return {
            **self._stats,
            "state": self._state.value,
            "url": self.url,
            "http_version": self._http_version,
            "connected_since": since,
            "uptime_seconds": (time.time() - since) if since is not None else 0.0,
            "last_event_id": self.last_event_id,
            "retry_ms": self._decoder.retry,
            "buffered_events": len(self._buffer),
            "handlers": len(self._entries),
        }

    def update_config(self, **changes: Any) -> None:
        """Change options (the constructor's names). Reconnection options apply
        to the next delay; ``url``, ``filters``, ``headers`` and transport
        options (``http2``, timeouts, TLS) to the next connection;
        ``last_event_id`` replaces the resume point."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(_Options)} - {"last_event_id"}
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        last_event_id = changes.pop("last_event_id", None)
        if "filters" in changes:
            changes["filters"] = _normalise_filters(changes["filters"])
        if "headers" in changes:
            changes["headers"] = tuple((changes["headers"] or {}).items())
        options = dataclasses.replace(self._options, **changes)
        _validate(options)
        if last_event_id is not None:
            try:
                fresh = SSEDecoder(last_event_id, factory=make_event)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            self._decoder.last_event_id = fresh.last_event_id
            self._decoder.reset()
        self._options = options
        self._local_filter = EventFilter(options.filters) if options.filters else None
        self._low_water = options.max_buffered_events // 2
        if _TRANSPORT_OPTIONS & changes.keys() and self._transport is not None:
            # The running stream keeps its transport; the next one gets a new one.
            self._transport_stale = True

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    def __aiter__(self) -> AsyncIterator[SSEEvent]:
        iterator = _EventIterator(self)
        if self._task is None or self._task.done():
            self._ensure_started()
        return iterator

    @staticmethod
    def iter_sync(url: str, **options: Any) -> Iterator[SSEEvent]:
        """Blocking iteration for scripts and notebooks: ``for event in
        SSEClient.iter_sync(url, ...)``. The client runs in a background
        thread with its own event loop; closing the generator (or leaving the
        ``for`` loop) stops it."""
        from otel_sse.client.sync import iter_sync

        return iter_sync(url, **options)

    def __repr__(self) -> str:
        return f"<SSEClient {self._options.url!r} {self._state.value}>"

    # -------------------------------------------------------------- handlers

    def _add(self, pattern: str, handler: Handler, *, once: bool) -> None:
        if not callable(handler):
            raise ConfigError(f"handler for {pattern!r} must be callable, got {handler!r}")
        try:
            match = EventFilter([pattern])
        except FilterError as exc:
            raise ConfigError(str(exc)) from exc
        if not match.patterns:
            raise ConfigError(f"event pattern must not be empty, got {pattern!r}")
        self._entries.append(_Entry(pattern, handler, match, once))
        self._changed_handlers()

    def _changed_handlers(self) -> None:
        self._routes.clear()
        self._check_json = any(e.match("parse_error") for e in self._entries)

    def _route(self, event_type: str) -> tuple[_Entry, ...]:
        entries = self._routes.get(event_type)
        if entries is None:
            entries = tuple(e for e in self._entries if e.match(event_type))
            if len(self._routes) < 4096:
                self._routes[event_type] = entries
        return entries

    async def _invoke(self, entries: tuple[_Entry, ...], event: SSEEvent) -> None:
        for entry in entries:
            if entry.once:
                if entry not in self._entries:
                    continue
                self._entries.remove(entry)
                self._changed_handlers()
            try:
                result = entry.handler(event)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:  # a handler's bug must not end the stream
                self._stats["handler_errors"] += 1
                await self._report_error(exc, event=event, handler=entry.handler)

    async def _report_error(
        self,
        exc: BaseException,
        *,
        event: SSEEvent | None = None,
        handler: Handler | None = None,
        fatal: bool = False,
    ) -> None:
        self._stats["errors"] += 1
        entries = self._route("error")
        if event is not None and event.type == "error" and handler is not None:
            # An error handler that fails is only logged: reporting it to
            # itself would recurse.
            logger.error("SSE 'error' handler %r raised", handler, exc_info=exc)
            return
        if not entries:
            if handler is not None:
                logger.error("SSE handler %r raised on %r", handler, event, exc_info=exc)
            else:
                logger.warning("SSE client %s: %s", self._options.url, exc)
            return
        payload = {
            "error": exc,
            "message": str(exc) or type(exc).__name__,
            "fatal": fatal,
            "event": event,
            "handler": getattr(handler, "__qualname__", repr(handler)) if handler else None,
        }
        event = SSEEvent("error", payload, raw="", id=self._decoder.last_event_id)
        await self._invoke(entries, event)

    async def _lifecycle(self, event_type: str, payload: dict[str, Any]) -> None:
        entries = self._route(event_type)
        if entries:
            event = SSEEvent(event_type, payload, id=self._decoder.last_event_id)
            await self._invoke(entries, event)

    # ----------------------------------------------------------- connection

    def _ensure_started(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._closing = False
        self._finished = False
        self._final_error = None
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"otel-sse client {self._options.url}"
        )

    def _make_transport(self) -> Transport:
        opts = self._options
        # Loading the system CA store costs ~20 ms: not for http:// URLs.
        secure = urlsplit(opts.url).scheme == "https"
        plain = AiohttpTransport(
            read_timeout=opts.read_timeout,
            connect_timeout=opts.connect_timeout,
            ssl_context=make_ssl_context(opts.verify, opts.ca_file) if secure else None,
        )
        if opts.http2 is False:
            return plain
        from otel_sse.client.h2transport import H2Transport

        alpn = ["h2"] if opts.http2 == "prior-knowledge" else ["h2", "http/1.1"]
        return H2Transport(
            mode=opts.http2,
            read_timeout=opts.read_timeout,
            connect_timeout=opts.connect_timeout,
            ssl_context=make_ssl_context(opts.verify, opts.ca_file, alpn=alpn) if secure else None,
            fallback=plain,
        )

    def _request_headers(self) -> dict[str, str]:
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
            "Accept-Encoding": ACCEPT_ENCODING if self._options.compression else "identity",
            "User-Agent": _USER_AGENT,
        }
        lowered = {k.lower(): k for k in headers}
        for name, value in self._options.headers:
            existing = lowered.get(name.lower())
            if existing is not None:
                del headers[existing]
            headers[name] = value
            lowered[name.lower()] = name
        last_id = self._decoder.last_event_id
        if last_id and "last-event-id" not in lowered:
            headers["Last-Event-ID"] = last_id
        return headers

    async def _open_stream(self) -> StreamResponse:
        if self._transport is None or getattr(self, "_transport_stale", False):
            if self._transport is not None:
                await self._transport.aclose()
            self._transport_stale = False
            self._transport = self._make_transport()
        response = await self._transport.open(self.url, self._request_headers())
        try:
            status = response.status
            if status == 204:
                raise _NoContent()
            if status != 200:
                excerpt = (await response.read_excerpt()).strip().splitlines()
                reason = response.reason
                if excerpt:
                    reason = f"{reason} ({excerpt[0][:200]})" if reason else excerpt[0][:200]
                error = BadStatusError(status, reason)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if retry_after is not None:
                    self._retry_after = retry_after
                raise error
            content_type = response.headers.get("content-type", "")
            if content_type.partition(";")[0].strip().lower() != "text/event-stream":
                raise BadContentTypeError(content_type)
        except BaseException:
            await response.aclose()
            raise
        return response

    def _next_delay(self, attempt: int) -> float:
        opts = self._options
        retry_ms = self._decoder.retry
        base = retry_ms / 1000.0 if retry_ms is not None else opts.reconnect_delay
        delay = compute_reconnect_delay(
            attempt,
            base,
            opts.reconnect_backoff,
            max(opts.max_reconnect_delay, 0.0),
            opts.reconnect_jitter,
        )
        retry_after, self._retry_after = self._retry_after, None
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    _retry_after: float | None = None
    _nobody_iterates = False
    #: Seconds a full buffer waits for an ``async for`` to start before dropping.
    _consumer_grace = 1.0
    _resumed_from: str | None = None
    _transport_stale = False

    async def _run(self) -> None:
        attempt = 0
        delay = 0.0
        last_error: BaseException | None = None
        try:
            while not self._closing:
                if attempt:
                    limit = self._options.max_reconnect_attempts
                    if limit and attempt > limit:
                        exhausted = ReconnectExhaustedError(limit, last_error)
                        await self._report_error(exhausted, fatal=True)
                        self._settle(ConnectionState.FAILED, exhausted)
                        return
                    self._state = ConnectionState.RECONNECTING
                    self._stats["reconnect_attempts"] += 1
                    await self._lifecycle("reconnecting", {"attempt": attempt, "delay": delay})
                    await asyncio.sleep(delay)
                    if self._closing:
                        break
                elif self._state is not ConnectionState.RECONNECTING:
                    self._state = ConnectionState.CONNECTING
                try:
                    response = await self._open_stream()
                except _NoContent:
                    self._settle(ConnectionState.CLOSED, BadStatusError(204, "No Content"))
                    return
                except Exception as exc:
                    last_error = exc
                    permanent = is_permanent(exc) or not self._options.auto_reconnect
                    await self._report_error(exc, fatal=permanent)
                    if permanent:
                        self._settle(ConnectionState.FAILED, exc)
                        return
                    attempt += 1
                    delay = self._next_delay(attempt)
                    continue

                if attempt:
                    self._stats["reconnects"] += 1
                attempt = 0
                last_error = None
                reason, error = await self._stream(response)
                if self._closing:
                    break
                will_reconnect = self._options.auto_reconnect
                attempt = 1
                delay = self._next_delay(attempt) if will_reconnect else 0.0
                if error is not None:
                    last_error = error
                    await self._report_error(error)
                await self._lifecycle(
                    "disconnected",
                    {
                        "will_reconnect": will_reconnect,
                        "reconnect_delay": delay if will_reconnect else None,
                        "reason": reason,
                        "error": error,
                    },
                )
                if not will_reconnect:
                    self._settle(ConnectionState.DISCONNECTED, None)
                    return
            self._settle(ConnectionState.CLOSED, None)
        except asyncio.CancelledError:
            if self._closing:
                self._settle(ConnectionState.CLOSED, None)
            raise
        except Exception as exc:  # a bug here must not leave connect() waiting forever
            logger.exception("SSE client %s stopped unexpectedly", self._options.url)
            self._settle(ConnectionState.FAILED, exc)
        finally:
            await self._release()

    async def _release(self) -> None:
        response, self._response = self._response, None
        transport, self._transport = self._transport, None
        with contextlib.suppress(Exception):
            if response is not None:
                await response.aclose()
        with contextlib.suppress(Exception):
            if transport is not None:
                await transport.aclose()

    def _settle(self, state: ConnectionState, error: BaseException | None) -> None:
        """Reach a final state: wake ``connect()`` callers and end ``async for``."""
        self._state = state
        self._connected_since = None
        if error is None and state is not ConnectionState.DISCONNECTED:
            error_for_waiters: BaseException = ClientError(
                f"client {state.value} before a connection was established"
            )
        else:
            error_for_waiters = error or ClientError("stream ended")
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error_for_waiters)
        self._finished = True
        # A 204 ends iteration quietly; only failures are raised to ``async for``.
        self._final_error = error if state is ConnectionState.FAILED else None
        self._ready.set()
        self._space.set()

    async def _stream(self, response: StreamResponse) -> tuple[str, BaseException | None]:
        """Read one open stream to its end; return why it ended."""
        self._response = response
        self._state = ConnectionState.CONNECTED
        self._http_version = response.http_version
        self._connected_since = time.time()
        self._stats["connections"] += 1
        self._handshake_pending = True
        decoder = self._decoder
        self._resumed_from = decoder.last_event_id or None
        decoder.reset()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        stats = self._stats
        try:
            async for chunk in response.chunks():
                stats["bytes_received"] += len(chunk)
                events = decoder.feed(chunk)
                if decoder.invalid_sequences != self._invalid_seen:
                    await self._invalid_utf8(decoder.invalid_sequences)
                if events:
                    await self._deliver(events)
                    if self._closing:
                        return "disconnect() called", None
            reason, error = "stream ended by the server", None
        except (ClientError, OSError, TimeoutError) as exc:
            error = exc
            reason = str(exc) if isinstance(exc, ClientError) else f"stream broken: {exc!r}"
        finally:
            decoder.end()
            self._response = None
            self._connected_since = None
            await response.aclose()
        if self._handshake_pending and not self._closing:
            self._handshake_pending = False
            await self._lifecycle(_HANDSHAKE, self._synthetic_handshake())
        return reason, error

    async def _invalid_utf8(self, total: int) -> None:
        fresh = total - self._invalid_seen
        self._invalid_seen = total
        self._stats["parse_errors"] += fresh
        await self._lifecycle(
            "parse_error",
            {"message": f"{fresh} invalid UTF-8 sequence(s) replaced by U+FFFD", "raw": None},
        )

    def _synthetic_handshake(self) -> dict[str, Any]:
        return {
            "clientId": None,
            "serverTime": None,
            "lastEventId": self._resumed_from,
            "synthetic": True,
        }

    async def _deliver(self, events: list[SSEEvent]) -> None:
        self._stats["events_received"] += len(events)
        if self._handshake_pending:
            self._handshake_pending = False
            first = events[0]
            if first._type == _HANDSHAKE:
                events = events[1:]
                await self._lifecycle_event(first)
            else:
                await self._lifecycle(_HANDSHAKE, self._synthetic_handshake())
        keep = self._local_filter
        if self._entries:
            check_json = self._check_json
            routes = self._routes
            for index, event in enumerate(events):
                event_type = event._type
                if check_json and event._raw[:1] in ("{", "["):
                    await self._check_parse(event)
                entries = routes.get(event_type)
                if entries is None:
                    entries = self._route(event_type)
                if entries:
                    await self._invoke(entries, event)
                    if self._closing:
                        events = events[: index + 1]
                        break
        if keep is not None:
            events = [e for e in events if keep(e._type) or e._type in _CONTROL_EVENTS]
        if events:
            await self._push(events)

    async def _lifecycle_event(self, event: SSEEvent) -> None:
        entries = self._route(event.type)
        if entries:
            await self._invoke(entries, event)

    async def _check_parse(self, event: SSEEvent) -> None:
        # Only done when someone listens to parse_error: otherwise data is
        # parsed lazily, on first access.
        if isinstance(event.data, str):
            self._stats["parse_errors"] += 1
            await self._lifecycle(
                "parse_error",
                {"message": f"data of {event.type!r} looks like JSON but is not", "raw": event.raw},
            )

    async def _push(self, batch: list[SSEEvent]) -> None:
        buffer = self._buffer
        buffer.extend(batch)
        self._ready.set()
        limit = self._options.max_buffered_events
        if len(buffer) <= limit:
            return
        if not self._consumers and not self._nobody_iterates:
            # An ``async for`` may be about to start (the first read often
            # lands between connect() returning and the loop's first
            # __anext__): give it a moment before deciding nobody iterates.
            try:
                async with asyncio.timeout(self._consumer_grace):
                    while not self._consumers and not self._closing:
                        self._space.clear()
                        await self._space.wait()
            except TimeoutError:
                self._nobody_iterates = True
        if self._consumers:
            # Someone iterates: wait for them rather than lose events (the
            # server sees TCP backpressure and decides what to drop).
            while len(buffer) > limit and self._consumers and not self._closing:
                self._space_wanted = True
                self._space.clear()
                await self._space.wait()
            self._space_wanted = False
        excess = len(buffer) - limit
        if excess > 0:
            # Nobody iterates (handlers only): keep the newest for a later ``async for``.
            for _ in range(excess):
                buffer.popleft()
            self._stats["events_dropped"] += excess
