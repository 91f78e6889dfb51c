"""The live stream of this process, forwarded to a gateway (``otel-sse serve``) over OTLP/HTTP.

``configure(gateway="http://host:port", token=...)`` adds a
:class:`GatewayForwarder`: a span processor and a log record processor on the
providers, and the emitters' live path (tokens). What they see goes to the
gateway's ``/v1/traces`` and ``/v1/logs`` while it happens: span starts (a
``Span`` with end time 0), ended spans, log records and live events, in small
frequent batches (every ``interval``, 10 ms by default, or as soon as
``max_batch`` items wait), each in at most three requests: the spans that
started, the records, the spans that ended (each span's events keep their
order; see :mod:`~otel_sse.telemetry.gateway_encode`). The normal OTLP export
to a collector or Jaeger is untouched beside it.

The hooks only append to a deque, as the in-process stream's do; one sender
thread converts (:mod:`~otel_sse.telemetry.gateway_encode`) and posts
(:mod:`~otel_sse.telemetry.gateway_link`), one request after another on one
keep-alive connection. Bounded: the hand-off holds at most ``max_queue`` items
(a full one refuses the newest: the application never waits), and what waits
encoded for a gateway that is away at most ``max_bytes`` (past it the oldest
requests go: a live view wants what happens now). Every loss is counted in
:meth:`GatewayForwarder.stats`. A gateway that is away is retried with backoff,
with one log line when it goes and one when it is back.

Every request carries the resource of the providers, with a
``service.instance.id`` made up for this process when the resource has none, or
after a ``fork()`` (the application's resource object is not changed): the gateway tells this
process's spans from others' by it, and reports them ``span:stale`` when the
process goes silent. After ``keepalive`` seconds with nothing to send, an
empty export says that it is still there. Delivery is at least once: a
request whose answer was lost is sent again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY
from opentelemetry.context import Context, attach, set_value
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_sse.convert import LiveEvent
from otel_sse.processors.bridge import current_live
from otel_sse.processors.model import started_snapshot
from otel_sse.telemetry.gateway_config import GatewayConfig
from otel_sse.telemetry.gateway_encode import (
    END,
    FLUSH,
    LIVE,
    LOG,
    START,
    Item,
    Outgoing,
    RequestEncoder,
)
from otel_sse.telemetry.gateway_link import REFUSED, RETRYABLE, GatewayHealth, GatewayLink

_log = logging.getLogger("otel_sse.telemetry.gateway")
INSTANCE_ID: Final = "service.instance.id"
_NEVER: Final = 1 << 62  # a queue length no hook reaches: do not wake the sender


class GatewayForwarder:
    """Forwards spans, log records and live events to a gateway while they happen.

    ``resource`` is the resource of the providers whose telemetry it forwards.
    Add :attr:`span_processor` and :attr:`log_processor` to those providers and
    give live events to :meth:`submit_live`. :meth:`flush` waits until what was
    recorded so far is handled; :meth:`close` does that within a deadline and
    stops the sender thread.
    """

    def __init__(self, config: GatewayConfig, resource: Mapping[str, Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._given_resource = dict(resource)
        self.span_processor = GatewaySpanProcessor(self)
        self.log_processor = GatewayLogProcessor(self)
        self._setup(forked=False)
        weak = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(weak))

    def _setup(self, *, forked: bool) -> None:
        """The state a process starts with, again in a forked child: that is another
        process, which the gateway must tell from its parent (the resource's own
        ``service.instance.id``, which the SDK made before the fork, is its parent's)."""
        config = self.config
        resource = dict(self._given_resource)
        if forked or INSTANCE_ID not in resource:
            resource[INSTANCE_ID] = str(uuid.uuid4())
        self.resource = resource
        # Two slots per item (head, object), appended together by one ``extend``,
        # which the GIL makes atomic: no tuple per item outlives the hook.
        self._queue: deque[Any] = deque()
        self._max = config.max_queue * 2
        self._signal_at = _NEVER  # the queue length at which a hook wakes the sender
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._hurry = False  # a flush or close is waiting: no lingering
        self._closing = False
        self._closed = False
        self._gave_up = False  # closing, and the gateway failed the last attempt
        self._said_left = False  # the line on what a shutdown left undelivered
        self._deadline = float("inf")
        self._reserve = 0.0  # before the deadline, a request still in flight is ended
        self._encoder = RequestEncoder(resource, config.max_batch)
        self._link = GatewayLink(config)
        self._health = GatewayHealth(config, self.clock)
        self._backlog: deque[Outgoing] = deque()
        self._backlog_bytes = 0
        self._backlog_items = 0
        self._taken = 0
        self.refused = 0  # items the hand-off refused (full)
        self.evicted = 0  # items whose encoded request made room for newer ones
        self.sent = 0
        self.rejected = 0
        self.requests = 0
        self.failures = 0
        self.hook_errors = 0
        self._thread = threading.Thread(target=self._run, name="otel-sse-gateway", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"GatewayForwarder({self.config.url!r})"

    # -- any thread: the hooks ----------------------------------------------------
    def submit(self, code: int, obj: Any, live: Mapping[str, Any] | None = None) -> None:
        """Queue one item; never blocks, never raises."""
        queue = self._queue
        if len(queue) >= self._max:
            self._refuse()
            return
        queue.extend((code if live is None else (code, live), obj))
        if len(queue) >= self._signal_at:
            self._wake.set()

    def submit_live(self, event: LiveEvent) -> None:
        """A live event (a token) from an emitter."""
        try:
            self.submit(LIVE, event)
        except Exception:
            self.hook_errors += 1

    def _refuse(self) -> None:
        with self._lock:
            if not self._closed:
                self.refused += 1

    # -- stats -------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Items lost to the bounds: refused by the full hand-off, or evicted."""
        return self.refused + self.evicted

    def stats(self) -> dict[str, Any]:
        """Counters. Items: ``submitted`` (accepted by the hooks), ``sent``,
        ``dropped`` (refused when the hand-off was full, or evicted from the backlog),
        ``rejected`` (refused by the gateway), ``errors`` (could not be converted),
        ``pending`` (not yet handled); ``pending_bytes`` encoded and waiting;
        ``requests`` accepted, ``failures`` (attempts that got no answer or a
        refusal); ``connected``: the last attempt was accepted."""
        pending_queue = len(self._queue) // 2
        return {
            "url": self.config.url,
            "submitted": self._taken + pending_queue,
            "sent": self.sent,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "errors": self._encoder.errors + self.hook_errors,
            "pending": pending_queue + self._backlog_items,
            "pending_bytes": self._backlog_bytes,
            "requests": self.requests,
            "failures": self.failures,
            "connected": self._health.state == "up",
        }

    # -- flushing and closing ---------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything recorded before this call was sent, dropped or
        rejected (up to ``timeout`` seconds); True if it was in time."""
        if not self._thread.is_alive():
            return not self._queue and not self._backlog
        done = threading.Event()
        self._queue.extend((FLUSH, done.set))  # past the bound: a marker holds no data
        self._hurry = True
        self._wake.set()
        return done.wait(max(0.0, timeout))

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is queued and stop, within ``timeout`` seconds; True when
        everything was handled. The first call's deadline holds (see
        :meth:`start_close`): a later call (a provider shutting its processors
        down) waits for it up to its own ``timeout``."""
        self.start_close(timeout)
        until = min(self.clock() + max(0.0, timeout), self._deadline - self._reserve)
        self._thread.join(max(0.0, until - self.clock()))
        if self._thread.is_alive() and self.clock() >= self._deadline - self._reserve:
            self._link.abort()  # stuck in a request shortly before the deadline
            self._thread.join(self._reserve)
        if self._thread.is_alive():
            return False
        left = len(self._queue) // 2 + self._backlog_items
        with self._lock:
            said, self._said_left = self._said_left, True
        if left and not said:
            _log.warning("otel-sse: %d live items were not delivered to the gateway at %s "
                         "before shutdown", left, self.config.url)
        self._link.close()
        return left == 0

    def start_close(self, timeout: float) -> None:
        """Stop taking items and send the rest within ``timeout`` seconds, without
        waiting; idempotent (the first deadline holds). A gateway that is away gets
        one more attempt, not the backoff's: an application that exits does not
        wait for it. What could not be sent is counted and named in one log line."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._deadline = self.clock() + max(0.0, timeout)
            self._reserve = min(0.25, max(0.0, timeout) / 10)
            self._max = -1  # every hook now takes the slow path, which sees the flag
            self._closed = True
        self._health.next_attempt = 0.0
        self._hurry = True
        self._wake.set()

    # -- the sender thread -----------------------------------------------------------
    def _run(self) -> None:
        # Our own requests are not the application's telemetry.
        attach(set_value(_SUPPRESS_KEY, True))
        try:
            self._loop()
        except Exception:  # a bug here must not end the application's process
            _log.exception("otel-sse: the gateway forwarder stopped")
        finally:
            self._link.close()

    def _loop(self) -> None:
        config = self.config
        batch_slots = config.max_batch * 2
        last_send = self.clock()
        last_take = last_send - config.interval
        while True:
            now = self.clock()
            if self._closing and (now >= self._deadline or self._gave_up
                                  or not (self._queue or self._backlog)):
                return
            if not self._queue:
                # Idle: wait for an item (sent at once), the next retry or the keepalive.
                due = self._health.waiting if self._backlog else \
                    last_send + config.keepalive - now
                if due > 0:
                    self._wait(2, min(due, self._deadline - now))
                if not self._queue and not self._backlog:
                    if self._closing or self.clock() - last_send < config.keepalive:
                        continue
                    self._add(self._encoder.keepalive())
            elif not self._hurry:
                # Busy: one request per interval, sooner when a batch is full.
                wait = last_take + config.interval - now
                if wait > 0 and len(self._queue) < batch_slots:
                    self._wait(batch_slots, wait)
            if self._queue:
                self._hurry = False
                last_take = self.clock()
                self._encode(self._take(config.max_batch))
            if self._backlog and self._send_backlog():
                last_send = self.clock()

    def _wait(self, signal_at: int, seconds: float) -> bool:
        """Sleep up to ``seconds`` until a hook has made the queue ``signal_at`` slots
        long (or a flush or close wakes us); True if woken."""
        self._signal_at = signal_at
        try:
            if len(self._queue) >= signal_at or self._hurry:
                return True
            woken = self._wake.wait(max(0.0, seconds))
            self._wake.clear()
            return woken
        finally:
            self._signal_at = _NEVER

    def _take(self, limit: int) -> list[Item]:
        queue = self._queue
        pop = queue.popleft
        items: list[Item] = []
        while queue and len(items) < limit:
            head = pop()
            items.append((head, pop()))
        self._taken += sum(1 for head, _ in items if head != FLUSH)
        return items

    def _encode(self, items: list[Item]) -> None:
        for outgoing in self._encoder.encode(items):
            self._add(outgoing)

    def _add(self, outgoing: Outgoing) -> None:
        """Put ``outgoing`` on the backlog, making room by evicting the oldest."""
        size, limit = len(outgoing.body), self.config.max_bytes
        if size > limit:
            self.evicted += outgoing.items
            if outgoing.done is not None:
                outgoing.done()
            return
        while self._backlog and self._backlog_bytes + size > limit:
            self._forget(self._backlog.popleft(), evicted=True)
        self._backlog.append(outgoing)
        self._backlog_bytes += size
        self._backlog_items += outgoing.items

    def _forget(self, outgoing: Outgoing, *, evicted: bool = False) -> None:
        """Take ``outgoing`` off the backlog's books (sent, dropped or a marker reached)."""
        self._backlog_bytes -= len(outgoing.body)
        self._backlog_items -= outgoing.items
        if evicted:
            self.evicted += outgoing.items
        if outgoing.done is not None:
            outgoing.done()

    def _send_backlog(self) -> bool:
        """Send the backlog in order until it is empty or the gateway fails; True if
        anything reached the gateway."""
        backlog, health = self._backlog, self._health
        reached = False
        while backlog and health.waiting == 0.0:
            if self._closing and self.clock() >= self._deadline:
                break
            outgoing = backlog[0]
            if outgoing.signal is None:  # a flush marker: everything before it is handled
                self._forget(backlog.popleft())
                continue
            path = self.config.path(outgoing.signal)
            try:
                reply = self._link.post(path, outgoing.body)
            except Exception as exc:
                self.failures += 1
                if self._closing:  # what is left is named by close(), in one line
                    self._gave_up = True
                    break
                health.unreachable(_reason(exc), self.dropped)
                break
            reached = True
            status = reply.status
            if 200 <= status < 300:
                self.requests += 1
                self.sent += outgoing.items - self._partially_rejected(outgoing, reply.body)
                health.succeeded(self.dropped)
            elif status in RETRYABLE:
                self.failures += 1
                if status == 429:
                    health.throttled(reply.retry_after)
                else:
                    health.unreachable(f"{status} {reply.reason}", self.dropped)
                self._gave_up = self._closing
                break
            else:
                self.failures += 1
                self.rejected += outgoing.items
                if status in REFUSED:
                    health.refused(reply, path, self.dropped)
                    self._gave_up = self._closing
                else:
                    health.rejected(reply, path, outgoing.items)
            self._forget(backlog.popleft())
        return reached

    def _partially_rejected(self, outgoing: Outgoing, body: bytes) -> int:
        """Items a 2xx answer says were rejected (an OTLP partial success)."""
        if not body:
            return 0
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        try:
            if outgoing.signal == "traces":
                count = ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans
            else:
                count = ExportLogsServiceResponse.FromString(
                    body).partial_success.rejected_log_records
        except Exception:
            return 0
        count = min(int(count), outgoing.items)
        self.rejected += count
        return count


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _restart_in_child(weak: weakref.ref[GatewayForwarder]) -> None:
    """After ``fork()``: the child is another process, with a thread and an id of its own;
    what the parent had queued is the parent's to send."""
    forwarder = weak()
    if forwarder is None or forwarder._closing:
        return
    forwarder._setup(forked=True)


class _OnForwarder:
    """What both processors share: the forwarder, and flushing and closing it."""

    def __init__(self, forwarder: GatewayForwarder) -> None:
        self.forwarder = forwarder

    def shutdown(self) -> None:
        self.forwarder.close(1.0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.forwarder.flush(timeout_millis / 1000.0)


class GatewaySpanProcessor(_OnForwarder, SpanProcessor):
    """Queues each span's start (a snapshot, taken now) and its end for the gateway."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        forwarder = self.forwarder
        try:
            forwarder.submit(START, started_snapshot(span), current_live())
        except Exception:  # a hook must never raise into the application
            forwarder.hook_errors += 1

    def on_end(self, span: ReadableSpan) -> None:
        forwarder = self.forwarder
        try:
            forwarder.submit(END, span, current_live())
        except Exception:
            forwarder.hook_errors += 1


class GatewayLogProcessor(_OnForwarder, LogRecordProcessor):
    """Queues each log record for the gateway."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        forwarder = self.forwarder
        try:
            forwarder.submit(LOG, log_record)
        except Exception:
            forwarder.hook_errors += 1
