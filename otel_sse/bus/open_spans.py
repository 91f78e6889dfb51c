"""The work open right now, kept from the events as they are published.

A subscriber that connects in the middle of a run needs more than what starts
after it connected: :meth:`OpenSpans.snapshot` describes every span open at
that moment with the events that opened it (``span:started`` and its task,
agent or LLM request events), a running task's latest progress and a running
LLM request's text so far. The same state gives:

* ``trace:completed`` when the root span of a trace ends, with the trace's
  duration, span count and error count (:meth:`observe` returns it);
* ``span:heartbeat``: every interval, the spans open longer than it, so that a
  viewer can tell a long-running span from a lost one (:meth:`heartbeat`);
* ``span:stale``: the spans of a source (another process sending through the
  gateway) that went silent, which will never end here (:meth:`stale`).

It also tells the OTLP ingest whether it saw a span start (:meth:`is_open`).
Bounded: at most ``limit`` open spans and traces (the oldest are forgotten and
counted), a request's text at most ``text_bytes``. Runs on the hub's loop;
events are observed as dicts, before they are encoded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_sse.wire.encoder import iso_ms_now

Event = tuple[str, dict[str, Any]]

# Events that belong to the opening of a span (kept for the snapshot).
OPENING = frozenset({
    "task:created", "task:queued", "task:assigned", "task:started",
    "agent:spawned", "agent:started", "llm:request:started",
})
# Events replaced by their latest value while the span is open.
LATEST = frozenset({"task:progress", "task:metrics", "agent:metrics", "agent:health"})
TRACKED = OPENING | LATEST | {"span:started", "span:ended", "llm:token"}
LOCAL = ""  # the source of in-process telemetry: never stale
# A span's seed events (task:created, llm:request:started, ...) are published just
# before its span:started: they wait here for it, this many spans at most.
EARLY_SPANS = 256
OPENING_PER_SPAN = 16


@dataclass(slots=True)
class _Span:
    started: dict[str, Any]
    source: str
    opened: float
    opening: list[Event] = field(default_factory=list)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    text_bytes: int = 0
    llm: dict[str, Any] | None = None


@dataclass(slots=True)
class _Trace:
    spans: int = 0
    errors: int = 0


class OpenSpans:
    """Open spans by id, and span counts by trace."""

    def __init__(self, limit: int = 10_000, text_bytes: int = 16 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.text_bytes = text_bytes
        self.clock = clock
        self.spans: OrderedDict[str, _Span] = OrderedDict()
        self.traces: OrderedDict[str, _Trace] = OrderedDict()
        self.sources: dict[str, float] = {}
        self.early: OrderedDict[str, list[Event]] = OrderedDict()
        self.forgotten = 0
        self.completed = 0

    def touch(self, source: str) -> None:
        """``source`` sent something (a keepalive counts): its spans are not stale."""
        if source:
            self.sources[source] = self.clock()

    def is_open(self, span_id: str | None) -> bool:
        return span_id is not None and span_id in self.spans

    def observe(self, event_type: str, data: dict[str, Any], source: str = LOCAL) -> list[Event]:
        """Note one published event; returns the events it causes (``trace:completed``)."""
        span_id = data.get("spanId")
        if not isinstance(span_id, str):
            return []
        if event_type == "span:started":
            self._open(span_id, data, source)
            return []
        if event_type == "span:ended":
            return self._close(span_id, data)
        span = self.spans.get(span_id)
        if span is None:
            if event_type in OPENING:
                self._stash(span_id, event_type, data)
            return []
        if event_type == "llm:token":
            token = data.get("token")
            if isinstance(token, str) and span.text_bytes < self.text_bytes:
                span.tokens.append(token)
                span.text_bytes += len(token)
        elif event_type in LATEST:
            span.latest[event_type] = data
        elif event_type in OPENING and len(span.opening) < OPENING_PER_SPAN:
            span.opening.append((event_type, data))
            if event_type == "llm:request:started":
                span.llm = data
        return []

    def _stash(self, span_id: str, event_type: str, data: dict[str, Any]) -> None:
        group = self.early.get(span_id)
        if group is None:
            group = self.early[span_id] = []
            if len(self.early) > EARLY_SPANS:  # never started here: forget the oldest
                self.early.popitem(last=False)
        if len(group) < OPENING_PER_SPAN:
            group.append((event_type, data))

    def _open(self, span_id: str, data: dict[str, Any], source: str) -> None:
        span = self.spans[span_id] = _Span(data, source, self.clock())
        early = self.early.pop(span_id, None)
        if early is not None:
            span.opening = early
            span.llm = next((d for t, d in early if t == "llm:request:started"), None)
        trace_id = data.get("traceId")
        if isinstance(trace_id, str):
            trace = self.traces.get(trace_id)
            if trace is None:
                trace = self.traces[trace_id] = _Trace()
                if len(self.traces) > self.limit:
                    self.traces.popitem(last=False)
            trace.spans += 1
        if len(self.spans) > self.limit:
            self.spans.popitem(last=False)
            self.forgotten += 1

    def _close(self, span_id: str, data: dict[str, Any]) -> list[Event]:
        seen = self.spans.pop(span_id, None) is not None
        trace_id = data.get("traceId")
        if not isinstance(trace_id, str):
            return []
        trace = self.traces.get(trace_id)
        if trace is None:
            trace = self.traces[trace_id] = _Trace()
        if not seen:
            trace.spans += 1
        if data.get("status") == "error":
            trace.errors += 1
        if data.get("parentSpanId") is not None:
            return []
        del self.traces[trace_id]
        self.completed += 1
        return [("trace:completed", {
            "traceId": trace_id, "rootSpanId": span_id, "name": data.get("name"),
            "serviceName": data.get("serviceName"), "durationMs": data.get("durationMs"),
            "spanCount": trace.spans, "errorCount": trace.errors,
            "status": data.get("status"), "timestamp": iso_ms_now(),
        })]

    def snapshot(self, max_events: int = 5000) -> dict[str, Any]:
        """The ``snapshot`` event's data: the events that describe the open work, in
        the order it opened (the newest spans when there are more than ``max_events``)."""
        events: list[dict[str, Any]] = []
        for span in reversed(self.spans.values()):
            group = [{"event": "span:started", "data": span.started}]
            group += [{"event": t, "data": d} for t, d in span.opening]
            group += [{"event": t, "data": d} for t, d in span.latest.items()]
            if span.tokens and span.llm is not None:
                group.append({"event": "llm:text", "data": {
                    "requestId": span.llm.get("requestId"), "spanId": span.started["spanId"],
                    "traceId": span.started.get("traceId"), "text": "".join(span.tokens),
                    "truncated": span.text_bytes >= self.text_bytes}})
            if len(events) + len(group) > max_events:
                break
            events[:0] = group
        return {"openSpans": len(self.spans), "events": events, "timestamp": iso_ms_now()}

    def heartbeat(self, older_than: float) -> Event | None:
        """A ``span:heartbeat`` naming the spans open for more than ``older_than`` s."""
        now = self.clock()
        spans = [{"traceId": s.started.get("traceId"), "spanId": span_id,
                  "name": s.started.get("name"), "elapsedMs": round((now - s.opened) * 1000)}
                 for span_id, s in self.spans.items() if now - s.opened >= older_than]
        if not spans:
            return None
        return ("span:heartbeat", {"spans": spans[:1000], "count": len(spans),
                                   "timestamp": iso_ms_now()})

    def stale(self, silent_for: float) -> list[Event]:
        """``span:stale`` for each open span of a source silent for ``silent_for`` s;
        they are forgotten (nothing will end them here)."""
        now = self.clock()
        gone = {source for source, seen in self.sources.items() if now - seen >= silent_for}
        if not gone:
            return []
        for source in gone:
            del self.sources[source]
        out: list[Event] = []
        for span_id, span in list(self.spans.items()):
            if span.source in gone:
                del self.spans[span_id]
                out.append(("span:stale", {
                    "traceId": span.started.get("traceId"), "spanId": span_id,
                    "name": span.started.get("name"),
                    "serviceName": span.started.get("serviceName"),
                    "reason": f"its source sent nothing for {silent_for:g} s",
                    "timestamp": iso_ms_now()}))
        return out
