"""What the gateway forwarder's hooks queued -> OTLP/HTTP request bodies.

Sans-I/O: items in, request bodies out. An item is what a hook queued: the
snapshot of a span that started, a span that ended, a log record, a live event
(a token), or a flush marker. A batch (what the forwarder took off its queue
at once, at most ``interval`` of activity or ``max_batch`` items) becomes at
most three requests, sent in this order: the spans that started, the log
records and live events, the spans that ended. Each span's own events keep
their order (its start, its records, its end), and batches follow each other
in order; only across spans, within one batch, does a start move before a
record or an end after one. Keeping every item in place instead cost one
request per change of signal: the multi-agent scenario alternates nearly at
every item, and a request's round trip (about a millisecond here) per item or
two let a burst of spans put the stream a tenth of a second behind.

The wire forms are those of :mod:`otel_sse.convert`: a span start is a ``Span``
with end time 0, a live event the log record of
:func:`~otel_sse.convert.live_event_record`, and the live-only fields of a span
or log record (content kept off the exported telemetry) ride as the attributes
of :func:`~otel_sse.convert.live_attributes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sse._version import __version__
from otel_sse.convert import live_attributes, live_event_record
from otel_sse.convert.model import LogRecordData, SpanRecord
from otel_sse.convert.otlp import log_to_proto, resource_to_proto, span_to_proto
from otel_sse.processors.model import log_from_sdk, span_from_sdk, span_from_started
from otel_sse.telemetry.attrs import INSTRUMENTATION_NAME
from otel_sse.telemetry.gateway_config import GatewaySignal

# What a hook queued: the code, or (code, live-only fields) when there are some.
START: Final = 0
END: Final = 1
LOG: Final = 2
LIVE: Final = 3
FLUSH: Final = 4  # a marker: its object is called once everything before it is handled

Item = tuple[Any, Any]  # (head, object), as the hooks queued them


@dataclass(slots=True)
class Outgoing:
    """One request for the gateway, or a flush marker (``signal`` None, ``done`` set)."""

    signal: GatewaySignal | None
    body: bytes = b""
    items: int = 0
    done: Callable[[], object] | None = None


# Per signal: the request message, and the repeated fields from it down to the items.
_SHAPES: Final[dict[GatewaySignal, tuple[type[Any], str, str, str]]] = {
    "traces": (ExportTraceServiceRequest, "resource_spans", "scope_spans", "spans"),
    "logs": (ExportLogsServiceRequest, "resource_logs", "scope_logs", "log_records"),
}


class _Run:
    """The request being filled with consecutive items of one signal."""

    __slots__ = ("container", "count", "request", "signal")

    def __init__(self, signal: GatewaySignal, resource: Any) -> None:
        message, groups, scopes, items = _SHAPES[signal]
        self.signal = signal
        self.count = 0
        self.request: ExportTraceServiceRequest | ExportLogsServiceRequest = message()
        group = getattr(self.request, groups).add()
        group.resource.CopyFrom(resource)
        scoped = getattr(group, scopes).add()
        scoped.scope.name, scoped.scope.version = INSTRUMENTATION_NAME, __version__
        # The repeated field the items go to (spans or log records).
        self.container: Any = getattr(scoped, items)

    def finish(self) -> Outgoing:
        return Outgoing(self.signal, self.request.SerializeToString(), self.count)


class RequestEncoder:
    """Turns queued items into :class:`Outgoing` requests for one resource.

    ``resource`` is the resource every request carries (its ``service.name``
    and ``service.instance.id`` name this process to the gateway). ``errors``
    counts items that could not be converted (they are left out).
    """

    def __init__(self, resource: Mapping[str, Any], max_batch: int) -> None:
        self.service_name = str(resource.get("service.name", "unknown_service"))
        self.resource = resource_to_proto(resource)
        self.max_batch = max_batch
        self.errors = 0

    def encode(self, items: Iterable[Item]) -> list[Outgoing]:
        """The requests (and flush markers) for ``items``: per stretch between flush
        markers, span starts, then records, then span ends (see the module docstring)."""
        out: list[Outgoing] = []
        stretch: list[Item] = []
        for item in items:
            if item[0] == FLUSH:
                out += self._stretch(stretch)
                stretch = []
                out.append(Outgoing(None, done=item[1]))
            else:
                stretch.append(item)
        out += self._stretch(stretch)
        return out

    def _stretch(self, items: list[Item]) -> list[Outgoing]:
        starts: list[Outgoing] = []
        records: list[Outgoing] = []
        ends: list[Outgoing] = []
        runs: dict[int, _Run] = {}
        for head, obj in items:
            code, live = (head, None) if isinstance(head, int) else head
            try:
                record = self._record(code, obj, live)
            except Exception:
                self.errors += 1
                continue
            group = START if code == START else END if code == END else LOG
            run = runs.get(group)
            if run is None or run.count >= self.max_batch:
                if run is not None:
                    (starts if group == START else ends if group == END else records).append(
                        run.finish())
                run = runs[group] = _Run("logs" if group == LOG else "traces", self.resource)
            message = run.container.add()
            try:
                if isinstance(record, SpanRecord):
                    span_to_proto(record, message)
                else:
                    log_to_proto(record, message)
            except Exception:
                del run.container[-1]
                self.errors += 1
                continue
            run.count += 1
        for group, done in ((START, starts), (LOG, records), (END, ends)):
            run = runs.get(group)
            if run is not None and run.count:
                done.append(run.finish())
        return starts + records + ends

    def keepalive(self) -> Outgoing:
        """An empty logs export with the resource: this process is still there."""
        request = ExportLogsServiceRequest()
        request.resource_logs.add().resource.CopyFrom(self.resource)
        return Outgoing("logs", request.SerializeToString(), 0)

    def _record(self, code: int, obj: Any, live: Mapping[str, Any] | None
                ) -> SpanRecord | LogRecordData:
        record: SpanRecord | LogRecordData
        if code == LIVE:
            return live_event_record(obj, self.service_name)
        if code == START:
            record = span_from_started(obj)
        elif code == END:
            record = span_from_sdk(obj, True)
        else:
            record = log_from_sdk(obj)
            live = record.live
        if live:
            record.attributes = {**record.attributes, **live_attributes(live)}
        return record
