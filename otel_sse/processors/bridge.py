"""The SSE span and log record processors, and the bounded hand-off they share.

SDK hooks run on the application's threads, inside its calls. They do the
least possible there: append a snapshot of a starting span, the ended span or
the log record to a deque and, only when the queue goes from idle to busy,
wake the server loop once. Conversion to
contract events and encoding happen on that loop. While work keeps arriving
the drain re-arms itself with a short ``call_later``, so a busy stream costs no
cross-thread wake-up (a syscall) per span.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY
from opentelemetry.context import Context, attach, detach, set_value
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_sse.convert import (
    Event,
    LiveEvent,
    live_events,
    log_events,
    span_ended_events,
    span_started_events,
)
from otel_sse.convert.spans import MARKERS
from otel_sse.processors.model import (
    log_from_sdk,
    span_from_sdk,
    span_from_started,
    started_snapshot,
    words_given_later,
)
from otel_sse.processors.sink import sink_loop

_log = logging.getLogger(__name__)

_START, _END, _LOG, _LIVE = 0, 1, 2, 3
# How long an idle-looking drain stays armed after it did work: a steady
# stream then costs one timer per interval instead of one wake-up per item.
# Short, because what waits in the queue is the application's telemetry: SDK
# spans held past the moment the exporter lets go of them stay in the
# application's memory and its garbage collections (25 ms cost more span
# overhead in bench/overhead.py than 5 ms, not less).
_REARM_SECONDS = 0.005
# Items converted and published per loop callback. A backlog (after the loop
# was held up) is published in slices, the loop running in between, so the
# server's writers send each slice before the next: a whole backlog published
# in one callback would put every subscriber further behind than the server's
# slow-client limit (``client_queue_size``, 2,000 by default) and get it cut off.
# An item makes at most about two events; a slice stays under a quarter of the
# limit when the server sets a smaller one.
_BATCH = 256
_MIN_BATCH = 8
# Open spans remembered as having had their start events (see SSEBridge._seeded).
_SEEDED_LIMIT = 100_000


def _slice_for(sink: Any) -> int:
    limit = getattr(getattr(sink, "config", None), "client_queue_size", None)
    if not isinstance(limit, int) or limit <= 0:
        return _BATCH
    return max(_MIN_BATCH, min(_BATCH, limit // 8))

# Live-only payload fields for the span being started or ended on this
# thread. The emitter sets them around ``start_span`` / ``end`` because the
# hooks get objects it cannot annotate beforehand (``on_start`` runs before
# ``start_span`` returns; ``on_end`` gets a fresh ReadableSpan copy).
# Processors only read them, so several bridges on one provider all see them.
class _Live(threading.local):
    value: Mapping[str, Any] | None = None  # the class default serves every thread


_live = _Live()


def set_live(live: Mapping[str, Any] | None) -> None:
    _live.value = live


def current_live() -> Mapping[str, Any] | None:
    """The live-only fields the emitter set for the span starting or ending on this
    thread (for processors other than ours here, e.g. the gateway forwarder's)."""
    return _live.value


class SSEBridge:
    """A bounded queue from telemetry hooks to one sink (the SSE server).

    ``dropped`` counts what the queue refused when full (the newest item: the
    app never waits); ``published`` what reached the sink; ``errors`` items
    that failed to convert or publish.
    """

    __slots__ = ("__weakref__", "_batch", "_closed", "_draining", "_max", "_publish", "_queue",
                 "_scheduled", "_seeded", "_taken", "dropped", "errors", "published", "sink")

    def __init__(self, sink: Any, max_queue: int = 65536) -> None:
        self.sink = sink
        publish = getattr(sink, "publish", None)
        if publish is None:
            broadcast = sink.broadcast

            def publish(event_type: str, data: Mapping[str, Any]) -> int:
                return int(broadcast({"event": event_type, "data": data}))

        self._publish: Callable[[str, Mapping[str, Any]], Any] = publish
        # Two slots per item, appended together by one ``extend`` (atomic under the
        # GIL, so producers on several threads cannot interleave them): a head (the
        # item's code, or ``(code, live fields)`` when there are any) and the object.
        # No tuple per item outlives the hook: a tracked container per queued span
        # made every garbage collection on the application's threads walk the
        # queue, which cost more than the hooks' own code.
        self._queue: deque[Any] = deque()
        self._max = max_queue * 2
        self._batch = _slice_for(sink)
        self._scheduled = False
        self._draining = False
        self._closed = False
        self._taken = 0  # items the drain took off the queue (counted on the loop)
        # Open spans whose start stood for contract events (task:created, ...), as an
        # ordered set (oldest first, bounded): a span that ends classified but is not
        # here had its words set after it started, and its start events come late.
        self._seeded: dict[int, None] = {}
        self.dropped = 0
        self.published = 0
        self.errors = 0
        on_bind = getattr(sink, "on_bind", None)
        if callable(on_bind):  # optional: a sink that is started after telemetry begins
            on_bind(self._sink_started)

    # -- any thread ---------------------------------------------------------
    def submit(self, code: int, obj: Any, extra: Any = None) -> None:
        if self._closed:
            return
        queue = self._queue
        if len(queue) >= self._max:
            self.dropped += 1
            if not self._scheduled:  # full because nothing drained yet (sink just started)
                self._wake()
            return
        queue.extend((code if extra is None else (code, extra), obj))
        if not self._scheduled:
            self._wake()

    def submit_live(self, event: LiveEvent) -> None:
        self.submit(_LIVE, event)

    def _wake(self) -> None:
        loop = sink_loop(self.sink)
        if loop is None or loop.is_closed():
            return  # items wait (bounded) until the sink has a loop
        self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain, loop)
        except RuntimeError:  # loop closed between the check and the call
            self._scheduled = False

    def _sink_started(self) -> None:
        # On the sink's new loop. A drain scheduled on a loop that has since stopped
        # never ran and left the flag set: what waits is due now, on this one.
        self._scheduled = False
        if self._queue and not self._closed:
            self._wake()

    @property
    def pending(self) -> int:
        return len(self._queue) // 2

    @property
    def submitted(self) -> int:
        """Items accepted so far (the hooks do not count: one write fewer per span)."""
        return self._taken + self.pending

    def stats(self) -> dict[str, int]:
        return {"submitted": self.submitted, "published": self.published,
                "dropped": self.dropped, "errors": self.errors, "pending": self.pending}

    # -- the sink's loop ----------------------------------------------------
    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        done = self._drain_some(self._batch)
        if self._queue:
            loop.call_soon(self._drain, loop)
        elif done:
            loop.call_later(_REARM_SECONDS, self._drain, loop)
        else:
            self._scheduled = False
            # A producer may have appended after our last look but before the
            # flag dropped, and seen the flag still set: look once more.
            if self._queue:
                self._scheduled = True
                loop.call_soon(self._drain, loop)

    def _drain_some(self, limit: int) -> int:
        queue = self._queue
        if not queue:
            return 0
        done = 0
        self._draining = True
        # Publishing is our own I/O: nothing it triggers should be traced.
        token = attach(set_value(_SUPPRESS_KEY, True))
        try:
            pop = queue.popleft
            while queue and done < limit:
                head = pop()
                obj = pop()
                done += 1
                self._taken += 1
                try:
                    for event_type, data in self._convert(head, obj):
                        self._publish(event_type, data)
                        self.published += 1
                except Exception:
                    self.errors += 1
                    if self.errors == 1:
                        _log.warning("otel-sse: could not stream a telemetry item", exc_info=True)
        finally:
            detach(token)
            self._draining = False
        return done

    def _convert(self, head: int | tuple[int, Mapping[str, Any]], obj: Any) -> list[Event]:
        if isinstance(head, int):
            code, extra = head, None
        else:
            code, extra = head
        if code == _LIVE:  # the most frequent (tokens)
            return live_events(obj)
        if code == _START:
            span = span_from_started(obj, extra)
            events = span_started_events(span, words=words_given_later(obj))
            if len(events) > 1:  # more than span:started
                seeded = self._seeded
                seeded[span.span_id] = None
                if len(seeded) > _SEEDED_LIMIT:  # spans that never end: forget the oldest
                    del seeded[next(iter(seeded))]
            return events
        if code == _END:
            span = span_from_sdk(obj, True, extra)
            if MARKERS.isdisjoint(span.attributes):
                return span_ended_events(span)
            started = self._seeded.pop(span.span_id, 0) is None
            return span_ended_events(span, late_start=not started)
        return log_events(log_from_sdk(obj))

    # -- flushing -------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver everything queued so far. From the sink's loop thread this drains
        in place; from another thread it waits for the loop (up to ``timeout``)."""
        loop = sink_loop(self.sink)
        if loop is None or loop.is_closed():
            return not self._queue
        if _on_loop(loop):
            while self._queue:
                self._drain_some(self._batch)
            return True
        if self._queue and not self._scheduled:
            self._wake()
        deadline = time.monotonic() + timeout
        while self._queue or self._draining:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    async def wait_idle(self, seconds: float = 5.0) -> bool:
        """For code on the loop: let the drain run until the queue is empty."""
        deadline = time.monotonic() + seconds
        while self._queue or self._draining:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    def close(self) -> None:
        self._closed = True
        self._max = -1  # sends every hook down submit's slow path, which sees the flag


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class _OnBridge:
    """What both processors share: the bridge, and flushing and closing it."""

    def __init__(self, bridge: SSEBridge) -> None:
        self.bridge = bridge

    def shutdown(self) -> None:
        self.bridge.flush(1.0)
        self.bridge.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.bridge.flush(timeout_millis / 1000.0)


class SSESpanProcessor(_OnBridge, SpanProcessor):
    """Streams every span's start and end (``task:created``, ``span:started``, ...)."""

    # The hooks inline SSEBridge.submit's common case (room in the queue): they run
    # twice per span on the application's thread, so they check one thing (room),
    # write one thing (the queue) and count nothing.
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        bridge = self.bridge
        try:
            queue = bridge._queue
            live = _live.value
            if len(queue) >= bridge._max:  # full, or closed
                bridge.submit(_START, started_snapshot(span), live)
                return
            queue.extend((_START if live is None else (_START, live), started_snapshot(span)))
            if not bridge._scheduled:
                bridge._wake()
        except Exception:  # a hook must never raise into the application
            bridge.errors += 1

    def on_end(self, span: ReadableSpan) -> None:
        bridge = self.bridge
        try:
            queue = bridge._queue
            live = _live.value
            if len(queue) >= bridge._max:  # full, or closed
                bridge.submit(_END, span, live)
                return
            queue.extend((_END if live is None else (_END, live), span))
            if not bridge._scheduled:
                bridge._wake()
        except Exception:
            bridge.errors += 1


class SSELogRecordProcessor(_OnBridge, LogRecordProcessor):
    """Streams every log record (seed events for ours, ``log`` for the rest)."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        bridge = self.bridge
        try:
            queue = bridge._queue
            if len(queue) >= bridge._max:  # full, or closed
                bridge.submit(_LOG, log_record)
                return
            queue.extend((_LOG, log_record))
            if not bridge._scheduled:
                bridge._wake()
        except Exception:
            bridge.errors += 1
