"""What the three emitters share: span entries, field specs, listeners, and
the three ways an emitter records something (span, log record, live event).

What an emitter records is named attributes (:mod:`otel_sse.convert`'s tables
say which); the conversion rebuilds the contract's events from them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypedDict

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

import otel_sse.convert.names as n
from otel_sse.convert import LiveEvent
from otel_sse.convert.records import record_fields
from otel_sse.convert.values import error_text
from otel_sse.processors.bridge import SSEBridge, set_live
from otel_sse.processors.model import OtelSSELogRecord
from otel_sse.processors.sink import LiveSink
from otel_sse.telemetry.config import parse_capture
from otel_sse.telemetry.instruments import OpenSpans
from otel_sse.telemetry.setup import Telemetry, resolve

_log = logging.getLogger("otel_sse.emitters")

REDACTED = "[redacted]"
Spec = dict[str, Any]  # camelCase field -> None (opaque value) | Spec | ("list", Spec)


class SpanEntry:
    """An open span an id (task, agent, request, tool call) refers to."""

    __slots__ = ("context", "parent_id", "span", "span_id", "start", "trace_id")

    def __init__(self, span: Span, parent_id: int | None) -> None:
        self.span = span
        ctx = span.get_span_context()
        self.trace_id = ctx.trace_id
        self.span_id = ctx.span_id
        self.parent_id = parent_id
        self.context: Context = trace.set_span_in_context(span)
        self.start = time.monotonic()


def camel(key: str) -> str:
    """``current_step`` -> ``currentStep``."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def plain(value: Any) -> Any:
    """Enums as their values (state dicts keep the seed's strings)."""
    return value.value if isinstance(value, Enum) else value


def normalize(data: Mapping[str, Any], spec: Spec, where: str) -> dict[str, Any]:
    """snake_case or camelCase keys -> the seed's camelCase; None means absent."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key if key in spec else camel(key)
        if name not in spec:
            raise TypeError(f"{where}() got an unexpected field {key!r}")
        if value is None:
            continue
        sub = spec[name]
        if isinstance(sub, dict) and isinstance(value, Mapping):
            value = normalize(value, sub, f"{where}.{name}")
        elif isinstance(sub, tuple) and isinstance(value, (list, tuple)):
            value = [normalize(v, sub[1], f"{where}.{name}") if isinstance(v, Mapping) else v
                     for v in value]
        out[name] = plain(value)
    return out


def error_parts(error: Any, default_type: str) -> tuple[str, str]:
    """(message, ``error.type``) of an error given as text or as the contract's error
    object ``{message, name?, code?}``: the object's name (else code) is its type."""
    if isinstance(error, Mapping):
        message = error.get("message")
        kind = error.get("name") or error.get("code")
        return (str(message) if message is not None else error_text(error),
                str(kind) if kind else default_type)
    return str(error), default_type


def one_dict_or_kwargs(value: Mapping[str, Any] | None, kwargs: Mapping[str, Any],
                       where: str) -> Mapping[str, Any]:
    """``emit_metrics(id, {...})`` and ``emit_metrics(id, cpu_usage=...)`` are both fine.

    Returns its argument uncopied: callers pass it to ``normalize``, which builds a new dict.
    """
    if value is not None and kwargs:
        raise TypeError(f"{where}() takes a dict or keyword arguments, not both")
    return value if value is not None else kwargs


_SEVERITY = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"),
    "info": (SeverityNumber.INFO, "INFO"),
    "warn": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
    "fatal": (SeverityNumber.FATAL, "FATAL"),
}


class EmitterOptions(TypedDict, total=False):
    """The keyword options every emitter takes, passed on to :class:`Emitter`."""

    telemetry: Telemetry | None
    capture_content: bool | str | None
    redact_content: bool


class Emitter:
    """Base of TaskStream / AgentStream / LLMStream.

    ``server`` is the in-process SSE server to stream to; None when there is
    none (the telemetry still goes wherever the telemetry handle sends it: an
    OTLP exporter, a gateway in another process).
    """

    def __init__(
        self,
        server: Any = None,
        *,
        telemetry: Telemetry | None = None,
        capture_content: bool | str | None = None,
        redact_content: bool = False,
    ) -> None:
        self.server = server
        self.telemetry = resolve(server, telemetry)
        self._bridge: SSEBridge | None = (
            self.telemetry.bridge_for(server) if server is not None else None)
        # Where live events go: this process's stream, and a gateway's.
        self._live_sinks: tuple[LiveSink, ...] = tuple(
            sink for sink in (self._bridge, self.telemetry.gateway) if sink is not None)
        capture = parse_capture(capture_content) or self.telemetry.config.capture_content
        self.content_on_spans = capture in ("span", "span_and_event")
        self.content_on_events = capture in ("event", "span_and_event")
        self.redact_content = redact_content
        self._tracer = self.telemetry.tracer
        self._logger = self.telemetry.logger
        self._instruments = self.telemetry.instruments
        # Open spans by id, shared by every emitter on this telemetry handle.
        self._spans: OpenSpans[SpanEntry] = self._instruments.open_spans
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self._running = False

    # -- listeners ------------------------------------------------------------
    def on(self, name: str, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Call ``handler(payload)`` on this thread whenever ``name`` happens."""
        self._listeners.setdefault(name, []).append(handler)
        return handler

    def off(self, name: str, handler: Callable[[Any], Any]) -> None:
        """Stop calling ``handler`` for ``name``."""
        handlers = self._listeners.get(name)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def _fire(self, name: str, payload: Any) -> None:
        handlers = self._listeners.get(name)
        if not handlers:
            return
        for handler in list(handlers):
            try:
                handler(payload)
            except Exception:  # a listener's bug must not break the emitter
                _log.exception("otel-sse: listener for %r failed", name)

    def start(self) -> None:
        """Mark the emitter running and tell ``started`` listeners."""
        self._running = True
        self._fire("started", None)

    def _end_open_spans(self, kind: str, keys: Iterable[str]) -> None:
        """End spans this emitter opened and never closed (without a seed event)."""
        for key in list(keys):
            entry = self._spans.pop(kind, key)
            if entry is not None:
                self._abandon(entry)

    def _stopped(self) -> None:
        self._running = False
        self._fire("stopped", None)

    @staticmethod
    def _merge_state(states: dict[str, dict[str, Any]], id_field: str, key: str,
                     default_status: str, updates: Mapping[str, Any]) -> dict[str, Any]:
        """The entity's state with ``updates`` applied, stored back, stamped now."""
        state = states.get(key) or {id_field: key, "status": default_status}
        state = {**state, **updates, "timestamp": now()}
        states[key] = state
        return state

    @property
    def running(self) -> bool:
        """Between ``start()`` and ``stop()``."""
        return self._running

    # -- content ------------------------------------------------------------------
    def _split_content(self, content: Mapping[str, Any], exported: bool,
                       redacted: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Split content fields into (what the exported payload carries, live-only extras)."""
        out = dict(content) if exported else {}
        if self.redact_content:
            return out, dict(redacted)
        return out, (None if exported else dict(content))

    # -- running code inside an entity's span ----------------------------------------
    def _context_of(self, kind: str, key: str | None) -> Context | None:
        entry = self._spans.get(kind, key)
        return entry.context if entry is not None else None

    # -- recording ----------------------------------------------------------------
    def _parent(self, *candidates: SpanEntry | None) -> Context | None:
        """The first registered span named by an explicit id, unless the current
        span belongs to the same trace (then it is at least as deep)."""
        current = trace.get_current_span().get_span_context()
        for entry in candidates:
            if entry is not None:
                if current.is_valid and current.trace_id == entry.trace_id:
                    return None
                return entry.context
        return None

    def _start_span(
        self,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        parent: Context | None,
        live: Mapping[str, Any] | None,
        links: list[Link] | None = None,
    ) -> SpanEntry:
        if live:
            set_live(live)
            try:
                span = self._tracer.start_span(name, context=parent, kind=kind,
                                               attributes=attributes, links=links)
            finally:
                set_live(None)
        else:
            span = self._tracer.start_span(name, context=parent, kind=kind,
                                           attributes=attributes, links=links)
        parent_ctx = getattr(span, "parent", None)
        parent_id = parent_ctx.span_id if parent_ctx is not None and parent_ctx.is_valid else None
        return SpanEntry(span, parent_id)

    @staticmethod
    def _end_span(
        entry: SpanEntry,
        live: Mapping[str, Any] | None = None,
        *,
        error: str | None = None,
        error_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        span = entry.span
        if attributes:
            span.set_attributes(dict(attributes))
        if error is not None:
            span.add_event("exception", {"exception.type": error_type or "Error",
                                         "exception.message": error})
            span.set_attribute(n.ERROR_TYPE, error_type or "_OTHER")
            span.set_status(Status(StatusCode.ERROR, error))
        if live:
            # Read by our span processor on this thread; exporters never see it.
            set_live(live)
            try:
                span.end()
            finally:
                set_live(None)
        else:
            span.end()

    @classmethod
    def _abandon(cls, entry: SpanEntry) -> None:
        """End a span whose entity was dropped: it stands for no seed event."""
        cls._end_span(entry, attributes={n.ABANDONED: True})

    def _emit_record(
        self,
        entry: SpanEntry,
        event_type: str,
        payload: Mapping[str, Any],
        live: Mapping[str, Any] | None = None,
        level: str = "info",
    ) -> None:
        """A log record in ``entry``'s span standing for ``event_type``: ``payload``
        (what may be exported) as named attributes, ``live`` for the stream only."""
        number, text = _SEVERITY.get(level, _SEVERITY["info"])
        event_name, attributes, body = record_fields(event_type, payload)
        record = OtelSSELogRecord(
            timestamp=time.time_ns(),
            context=entry.context,
            severity_number=number,
            severity_text=text,
            body=body,
            attributes=attributes,
            event_name=event_name,
        )
        record.otel_sse_live = live
        record.otel_sse_parent = entry.parent_id
        self._logger.emit(record)

    def _emit_live(self, entry: SpanEntry, event_type: str, data: dict[str, Any]) -> None:
        sinks = self._live_sinks
        if not sinks:
            return
        now = time.time_ns()
        first = LiveEvent(event_type, data, entry.trace_id, entry.span_id, entry.parent_id, now)
        if len(sinks) == 1:
            sinks[0].submit_live(first)
            return
        # The in-process stream completes its event's data in place, on its loop:
        # every other sink gets a copy, taken before that can start.
        others = [LiveEvent(event_type, dict(data), entry.trace_id, entry.span_id,
                            entry.parent_id, now) for _ in sinks[1:]]
        sinks[0].submit_live(first)
        for sink, event in zip(sinks[1:], others, strict=True):
            sink.submit_live(event)


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)

