"""The connection state machine: open, read, reconnect with backoff, settle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from otel_sse._version import __version__
from otel_sse.client.backoff import compute_reconnect_delay, parse_retry_after
from otel_sse.client.buffer import _EventBuffer
from otel_sse.client.compression import ACCEPT_ENCODING
from otel_sse.client.events import ConnectionState, SSEEvent
from otel_sse.client.failover import Rotation
from otel_sse.client.handlers import _HandlerRegistry
from otel_sse.client.options import build_url
from otel_sse.client.tls import TLSSettings
from otel_sse.client.transport import AiohttpTransport, StreamResponse, Transport
from otel_sse.errors import (
    BadContentTypeError,
    BadStatusError,
    CertificateError,
    ClientError,
    ReconnectExhaustedError,
)
from otel_sse.wire.filters import EventFilter

__all__ = ["is_permanent"]

logger = logging.getLogger("otel_sse.client")

# Events the server sends about the stream itself: they pass the client-side
# filter whatever it says, because a subscriber must learn about a gap or a
# shutdown even when it only asked for task:*.
_CONTROL_EVENTS = frozenset({"stream:gap", "shutdown"})
_HANDSHAKE = "connected"
_USER_AGENT = f"otel-sse-client/{__version__}"


def is_permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: most 4xx, a wrong content type, an untrusted certificate."""
    if isinstance(error, BadStatusError):
        return not (error.status in (408, 429) or 500 <= error.status <= 599)
    return isinstance(error, (BadContentTypeError, CertificateError))


def _is_no_content(error: BaseException) -> bool:
    """204: the server tells the client to stop reconnecting (WHATWG)."""
    return isinstance(error, BadStatusError) and error.status == 204


class _Connection(_EventBuffer, _HandlerRegistry):
    """The connection half of ``SSEClient``; its state is set up by ``SSEClient.__init__``."""

    _state: ConnectionState
    _task: asyncio.Task[None] | None
    _transport: Transport | None
    _response: StreamResponse | None
    _waiters: list[asyncio.Future[None]]
    _local_filter: EventFilter | None
    _handshake_pending: bool
    _http_version: str | None
    _connected_since: float | None
    _connected_url: str | None
    _invalid_seen: int
    _rotation: Rotation

    _retry_after: float | None = None
    _resumed_from: str | None = None
    _transport_stale = False

    @property
    def url(self) -> str:
        """The URL in use, as requested (with the ``filters`` query): the one
        connected to, or while reconnecting the one tried next."""
        return build_url(self._rotation.url, self._options.filters)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every configured URL, in the order they are tried."""
        return self._options.urls

    def _ensure_started(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._closing = False
        self._finished = False
        self._final_error = None
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"otel-sse client {self._rotation.url}"
        )

    def _make_transport(self) -> Transport:
        opts = self._options
        # Each transport builds its TLS context at its first https request, if any.
        tls = TLSSettings(opts.verify, opts.ca_file)
        plain = AiohttpTransport(
            read_timeout=opts.read_timeout, connect_timeout=opts.connect_timeout, tls=tls
        )
        if opts.http2 is False:
            return plain
        from otel_sse.client.h2transport import H2Transport

        return H2Transport(
            mode=opts.http2,
            read_timeout=opts.read_timeout,
            connect_timeout=opts.connect_timeout,
            tls=tls,
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
        if self._transport is None or self._transport_stale:
            if self._transport is not None:
                await self._transport.aclose()
            self._transport_stale = False
            self._transport = self._make_transport()
        response = await self._transport.open(self.url, self._request_headers())
        try:
            status = response.status
            if status == 204:
                raise BadStatusError(204, "No Content")
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

    def _backoff(self, rounds: int) -> float:
        """The delay after ``rounds`` full rounds of failures (a server ``retry:`` is the base)."""
        opts = self._options
        retry_ms = self._decoder.retry
        base = retry_ms / 1000.0 if retry_ms is not None else opts.reconnect_delay
        return compute_reconnect_delay(
            rounds,
            base,
            opts.reconnect_backoff,
            opts.max_reconnect_delay,
            opts.reconnect_jitter,
        )

    def _give_up(self, error: BaseException) -> tuple[ConnectionState, BaseException]:
        """The final state once the client stops trying, and the error it reports."""
        rotation = self._rotation
        if rotation.usable():
            # Stopped after one round because auto_reconnect is off.
            return ConnectionState.FAILED, error
        failures = [e.permanent for e in rotation.endpoints if e.permanent is not None]
        real = [e for e in failures if not _is_no_content(e)]
        if not real:
            # Every server said 204: stop quietly, as WHATWG asks.
            return ConnectionState.CLOSED, error
        return ConnectionState.FAILED, error if error in real else real[-1]

    async def _run(self) -> None:
        # self._rotation, not a local: update_config(url=...) replaces it, and
        # the new URLs apply from the next attempt.
        self._rotation.restart()
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
                    await self._lifecycle(
                        "reconnecting", {"attempt": attempt, "delay": delay, "url": self.url}
                    )
                    await asyncio.sleep(delay)
                    if self._closing:
                        break
                elif self._state is not ConnectionState.RECONNECTING:
                    self._state = ConnectionState.CONNECTING
                url = self.url
                try:
                    response = await self._open_stream()
                except Exception as exc:
                    last_error = exc
                    retry_after, self._retry_after = self._retry_after, None
                    self._rotation.failed(
                        permanent=exc if is_permanent(exc) else None, retry_after=retry_after
                    )
                    upcoming = self._rotation.advance(self._backoff)
                    give_up = upcoming is None or (
                        upcoming.new_round and not self._options.auto_reconnect
                    )
                    if not _is_no_content(exc):
                        await self._report_error(exc, fatal=give_up, url=url)
                    if upcoming is None or give_up:
                        self._settle(*self._give_up(exc))
                        return
                    attempt += 1
                    delay = upcoming.delay
                    continue

                if attempt:
                    self._stats["reconnects"] += 1
                if self._connected_url is not None and url != self._connected_url:
                    self._stats["failovers"] += 1
                self._connected_url = url
                self._rotation.succeeded()
                attempt = 0
                last_error = None
                reason, error = await self._stream(response)
                if self._closing:
                    break
                upcoming = None
                if self._options.auto_reconnect:
                    self._rotation.dropped()
                    upcoming = self._rotation.advance(self._backoff)
                will_reconnect = upcoming is not None
                attempt = 1
                delay = upcoming.delay if upcoming is not None else 0.0
                if error is not None:
                    last_error = error
                    await self._report_error(error, url=url)
                await self._lifecycle(
                    "disconnected",
                    {
                        "will_reconnect": will_reconnect,
                        "reconnect_delay": delay if will_reconnect else None,
                        "reason": reason,
                        "error": error,
                        "url": url,
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
            logger.exception("SSE client %s stopped unexpectedly", self._rotation.url)
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
            "url": self.url,
        }

    def _handshake_event(self, event: SSEEvent) -> SSEEvent:
        """The server's ``connected`` event, with the URL it came from added."""
        data = event.data
        if not isinstance(data, dict):
            return event
        return SSEEvent(_HANDSHAKE, {**data, "url": self.url}, id=event.id, retry=event.retry)

    async def _deliver(self, events: list[SSEEvent]) -> None:
        self._stats["events_received"] += len(events)
        if self._handshake_pending:
            self._handshake_pending = False
            first = events[0]
            if first._type == _HANDSHAKE:
                events = events[1:]
                if self._route(_HANDSHAKE):
                    await self._lifecycle_event(self._handshake_event(first))
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
