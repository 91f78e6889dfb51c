"""The connection state machine: open, read, reconnect with backoff, settle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from otel_sse.client.backoff import compute_reconnect_delay, parse_retry_after
from otel_sse.client.buffer import _EventBuffer
from otel_sse.client.compression import ACCEPT_ENCODING
from otel_sse.client.events import ConnectionState, SSEEvent
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
_USER_AGENT = "otel-sse-client/0.1.0"


def is_permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: most 4xx, a wrong content type, an untrusted certificate."""
    if isinstance(error, BadStatusError):
        return not (error.status in (408, 429) or 500 <= error.status <= 599)
    return isinstance(error, (BadContentTypeError, CertificateError))


class _NoContent(Exception):
    """204: the server tells the client to stop reconnecting (WHATWG)."""


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
    _invalid_seen: int

    _retry_after: float | None = None
    _resumed_from: str | None = None
    _transport_stale = False

    @property
    def url(self) -> str:
        """The URL actually requested (with the ``filters`` query)."""
        return build_url(self._options.url, self._options.filters)

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
            opts.max_reconnect_delay,
            opts.reconnect_jitter,
        )
        retry_after, self._retry_after = self._retry_after, None
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

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
