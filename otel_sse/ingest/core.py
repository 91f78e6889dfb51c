"""OTLP export requests -> the one conversion -> the hub, on the hub's loop.

Whatever the transport (OTLP/HTTP on the server's port, OTLP/gRPC on its own),
a request is decoded into the plain records of :mod:`otel_sse.convert` and
converted exactly as in-process telemetry is. Work is done in slices with the
loop running in between, so a large batch does not hold up the fan-out, and
the bytes being decoded at once are bounded: past ``inflight_limit`` a request
is refused with a retryable answer (429 / UNAVAILABLE) and nothing it carried
is lost, since the exporter sends it again.

A span whose start this server never saw (a plain OTLP exporter sends ended
spans only) gets its start events rebuilt from the ended span, just before its
end events; a span started through a gateway forwarder (see
:mod:`otel_sse.convert`) gets its end events only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from otel_sse.bus.open_spans import LOCAL
from otel_sse.convert import log_events, log_from_proto, span_events, span_from_proto
from otel_sse.convert.otlp import any_value, service_name
from otel_sse.counters import Counters
from otel_sse.hub import EventHub
from otel_sse.ingest.decode import Request, Signal
from otel_sse.ingest.metrics import metric_events, point_count

# Records converted between two turns of the loop.
SLICE = 256


@dataclass(slots=True)
class IngestStats(Counters):
    requests: int = 0
    spans: int = 0
    log_records: int = 0
    metric_points: int = 0
    rejected: int = 0
    shed: int = 0


def _resource_keys(resource: Any) -> tuple[str, str]:
    """(service name, source key) of a resource: the source is the process that sent it."""
    attributes = {pair.key: any_value(pair.value) for pair in resource.attributes}
    service = str(attributes.get("service.name", "unknown_service"))
    instance = attributes.get("service.instance.id")
    return service, f"{service}/{instance}" if instance else LOCAL


class Ingest:
    """Turns OTLP export requests into events on ``hub``."""

    def __init__(self, hub: EventHub, inflight_limit: int) -> None:
        self.hub = hub
        self.inflight_limit = inflight_limit
        self.inflight = 0
        self.stats = IngestStats()

    def admit(self, size: int) -> bool:
        """Take ``size`` bytes of the in-flight budget (False: shed the request)."""
        if self.inflight and self.inflight + size > self.inflight_limit:
            self.stats.shed += 1
            return False
        self.inflight += size
        return True

    def release(self, size: int) -> None:
        self.inflight -= size

    async def export(self, signal: Signal, message: Request) -> tuple[int, str]:
        """Publish what ``message`` holds; returns (items rejected, why)."""
        self.stats.requests += 1
        if signal == "traces":
            return await self._traces(message)
        if signal == "logs":
            return await self._logs(message)
        return await self._metrics(message)

    async def _traces(self, message: Any) -> tuple[int, str]:
        hub, spans = self.hub, self.hub.spans
        publish = hub.publish_from
        rejected = done = 0
        for group in message.resource_spans:
            _, source = _resource_keys(group.resource)
            service = service_name(group.resource)
            hub.touch(source)
            for scoped in group.scope_spans:
                for span in scoped.spans:
                    if len(span.trace_id) != 16 or len(span.span_id) != 8:
                        rejected += 1
                        continue
                    record = span_from_proto(span, group.resource, scoped.scope,
                                             service=service)
                    with_start = record.end_time_ns is not None and \
                        not spans.is_open(f"{record.span_id:016x}")
                    for event_type, data in span_events(record, with_start=with_start):
                        publish(source, event_type, data)
                    done += 1
                    if done % SLICE == 0:
                        await asyncio.sleep(0)
        self.stats.spans += done
        self.stats.rejected += rejected
        return rejected, (f"{rejected} spans without a valid trace or span id"
                          if rejected else "")

    async def _logs(self, message: Any) -> tuple[int, str]:
        hub = self.hub
        done = 0
        for group in message.resource_logs:
            _, source = _resource_keys(group.resource)
            hub.touch(source)  # an empty group is a forwarder's keepalive
            for scoped in group.scope_logs:
                for record in scoped.log_records:
                    for event_type, data in log_events(log_from_proto(record, group.resource,
                                                                      scoped.scope)):
                        hub.publish_from(source, event_type, data)
                    done += 1
                    if done % SLICE == 0:
                        await asyncio.sleep(0)
        self.stats.log_records += done
        return 0, ""

    async def _metrics(self, message: Any) -> tuple[int, str]:
        hub = self.hub
        for group in message.resource_metrics:
            service, source = _resource_keys(group.resource)
            hub.touch(source)
            for event_type, data in metric_events([group], service):
                hub.publish_from(source, event_type, data)
            await asyncio.sleep(0)
        self.stats.metric_points += point_count(message.resource_metrics)
        return 0, ""
