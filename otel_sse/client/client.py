"""``SSEClient``: subscribe to an event stream, survive disconnections, miss nothing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterable, Mapping, Sequence
from typing import Any, Self

from otel_sse.client.buffer import _EventIterator
from otel_sse.client.connection import _Connection
from otel_sse.client.events import ConnectionState, SSEEvent, make_event
from otel_sse.client.failover import Rotation
from otel_sse.client.handlers import Handler, _Entry
from otel_sse.client.options import (
    _TRANSPORT_OPTIONS,
    _normalise_filters,
    _normalise_urls,
    _Options,
    _set_last_event_id,
    _validate,
)
from otel_sse.client.options import build_url as build_url
from otel_sse.client.sync import iter_client
from otel_sse.client.transport import HTTP2Mode, StreamResponse, Transport
from otel_sse.errors import ConfigError
from otel_sse.wire.decoder import SSEDecoder
from otel_sse.wire.filters import EventFilter

__all__ = ["Handler", "SSEClient"]


class SSEClient(_Connection):
    """An async Server-Sent Events client: WHATWG parsing, reconnection with
    ``Last-Event-ID``, exponential backoff, event-type filters, handlers and
    ``async for``.

    ``async for event in client`` yields the server's events (``stream:gap``
    and ``shutdown`` included; the server's ``connected`` handshake is not,
    it goes to ``on("connected")``). Lifecycle notifications (``connected``,
    ``disconnected``, ``reconnecting``, ``error``, ``parse_error``) go to
    handlers registered with :meth:`on`. See the README for every option.

    ``url`` is one URL or a list of replicas of one stream (gateways sharing
    a bus): the client starts with the first and, when a connection fails or
    drops, moves to the next at once, resuming with ``Last-Event-ID``; it
    backs off only after every URL failed in a row, and gives up on a URL
    that fails permanently (404, 401, ...) only when all of them did.
    """

    def __init__(
        self,
        url: str | Sequence[str],
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
        options = _Options(
            urls=_normalise_urls(url),
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
        _validate(options)
        self._decoder = SSEDecoder(factory=make_event)
        if last_event_id is not None:
            _set_last_event_id(self._decoder, last_event_id)
        self._apply_options(options)

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
        self._consumers = 0
        self._finished = False
        self._final_error: BaseException | None = None

        self._handshake_pending = False
        self._http_version: str | None = None
        self._connected_since: float | None = None
        self._connected_url: str | None = None
        self._retry_seen: int | None = None
        self._invalid_seen = 0
        self._stats = {
            "events_received": 0,
            "bytes_received": 0,
            "connections": 0,
            "reconnects": 0,
            "reconnect_attempts": 0,
            "failovers": 0,
            "errors": 0,
            "handler_errors": 0,
            "parse_errors": 0,
            "events_dropped": 0,
        }

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> ConnectionState:
        """Where the client is in its life (see :class:`ConnectionState`)."""
        return self._state

    @property
    def last_event_id(self) -> str | None:
        """The id to resume from (sent as ``Last-Event-ID``); None before any id."""
        return self._decoder.last_event_id or None

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
        resuming from ``last_event_id``; if that happens while this call
        waits for the old connection to end, the new one is left alone.
        """
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            if task is asyncio.current_task():
                return
            task.cancel()
            await asyncio.wait({task})
        # The task released its connection on its way out. If someone started
        # the client again meanwhile, the connection and the state are theirs.
        if self._task is task:
            self._settle(ConnectionState.CLOSED, None)

    def get_stats(self) -> dict[str, Any]:
        """Counters and connection facts (``connected_since`` is a Unix time).

        ``url`` is the URL in use (connected, or tried next), ``urls`` every
        configured one, ``failovers`` how many connections were made to
        another URL than the one before."""
        since = self._connected_since
        return {
            **self._stats,
            "state": self._state.value,
            "url": self.url,
            "urls": list(self._options.urls),
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
        names = {f.name for f in dataclasses.fields(_Options)} - {"urls"}
        unknown = set(changes) - names - {"url", "last_event_id"}
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        last_event_id = changes.pop("last_event_id", None)
        if "url" in changes:
            changes["urls"] = _normalise_urls(changes.pop("url"))
        if "filters" in changes:
            changes["filters"] = _normalise_filters(changes["filters"])
        if "headers" in changes:
            changes["headers"] = tuple((changes["headers"] or {}).items())
        options = dataclasses.replace(self._options, **changes)
        _validate(options)
        if last_event_id is not None:
            _set_last_event_id(self._decoder, last_event_id)
        self._apply_options(options)
        if _TRANSPORT_OPTIONS & changes.keys() and self._transport is not None:
            # The running stream keeps its transport; the next one gets a new one.
            self._transport_stale = True

    def _apply_options(self, options: _Options) -> None:
        """Adopt validated options and what is derived from them."""
        previous = getattr(self, "_options", None)
        if previous is None or previous.urls != options.urls:
            self._rotation = Rotation(options.urls)
        self._options = options
        self._local_filter = EventFilter(options.filters) if options.filters else None
        self._low_water = options.max_buffered_events // 2

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    def __aiter__(self) -> AsyncIterator[SSEEvent]:
        iterator = _EventIterator(self)
        self._ensure_started()
        return iterator

    @staticmethod
    def iter_sync(url: str | Sequence[str], **options: Any) -> Generator[SSEEvent, None, None]:
        """Blocking iteration for scripts and notebooks: ``for event in
        SSEClient.iter_sync(url, ...)``. The client runs in a background
        thread with its own event loop; closing the generator (or leaving the
        ``for`` loop) stops it."""
        # Built here so that a bad option raises in the caller's thread, at once.
        # Nothing in it is bound to an event loop yet (asyncio.Event binds on
        # first wait since Python 3.10), so the pump thread's loop can use it.
        return iter_client(SSEClient(url, **options))

    @property
    def buffered(self) -> int:
        """Events received and not yet yielded."""
        return len(self._buffer)

    def __repr__(self) -> str:
        return f"<SSEClient {self._rotation.url!r} {self._state.value}>"
