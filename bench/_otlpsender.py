"""OTLP senders for the ingest benchmark: trace export requests as an SDK exporter sends them.

Run by ``ingest.py --send TRANSPORT``; driven by stdin / stdout lines:

* opens its connections (``connections`` HTTP/1.1 keep-alive connections, or one
  gRPC channel carrying that many calls at once), then prints ``ready``;
* on ``start`` it exports batches of ``batch`` spans for ``duration`` seconds, at
  ``rate`` spans/s (0: as fast as the gateway answers), then prints
  ``result <json>``;
* on ``quit`` (or EOF) it exits.

What a batch holds: what ``BatchSpanProcessor`` hands an OTLP exporter, one
resource (``service.name``, ``service.instance.id`` and the SDK's
``telemetry.sdk.*``) and one scope, traces of ``PER_TRACE`` spans (a server span
whose children are client spans, the children first, in the order they ended), each
span with the attributes of the HTTP or database conventions and ``bench.t``:
the wall time (``time.time_ns()``) at which the batch was due to leave, which the
subscribers subtract from their receive time. Ids are fresh in every batch.

The messages are built once and only their ids and times are rewritten per batch
(an SDK exporter builds them anew; that cost is the application's, not the
gateway's, and would only take CPU from the machine the gateway runs on).

* ``http-protobuf``: ``POST /v1/traces``, ``application/x-protobuf``, one request at
  a time per connection, as ``OTLPSpanExporter`` (HTTP) does with a ``requests``
  session;
* ``http-json``: the same with OTLP/JSON (hex ids, 64-bit integers as strings);
* ``grpc``: ``TraceService/Export`` with the ``grpcio`` stub, as ``OTLPSpanExporter``
  (gRPC) does.

Pacing: batch ``k`` is due at ``start + k * batch / rate``; ``connections``
workers take batches in order, each sending its next one when it is due (or at
once when it is already late). ``bench.t`` is the due time, so a batch held back
because every connection was waiting for the gateway counts that wait as latency
too (no coordinated omission); ``lag`` reports how late batches left. A 429 or
``UNAVAILABLE`` answer is counted as shed and not retried (an exporter retries it
later; its spans are not among those accepted).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _proc import commands, install_uvloop
from _results import percentile
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

TRANSPORTS = ("http-protobuf", "http-json", "grpc")
PER_TRACE = 8  # spans per trace: a server span and its children
ROOT_NAME = "GET /api/items/{id}"
CHILD_NAME = "SELECT items"
ROOT_ATTRIBUTES: list[tuple[str, str | int]] = [
    ("http.request.method", "GET"), ("url.path", "/api/items/42"),
    ("http.route", "/api/items/{id}"), ("http.response.status_code", 200),
]
CHILD_ATTRIBUTES: list[tuple[str, str | int]] = [
    ("db.system.name", "postgresql"), ("db.operation.name", "SELECT"),
    ("db.collection.name", "items"), ("server.address", "db.internal"),
]
TIME_ATTRIBUTE = "bench.t"  # always the last attribute of a span
CHILD_NS = 2_000_000  # how long a child span lasts
ROOT_NS = 5_000_000


def resource_attributes(sender: int) -> list[tuple[str, str]]:
    return [("service.name", "bench-shop"), ("service.instance.id", f"bench-sender-{sender}"),
            ("telemetry.sdk.language", "python"), ("telemetry.sdk.name", "opentelemetry"),
            ("telemetry.sdk.version", "1.38.0")]


@dataclass
class Ids:
    """Fresh ids for batch ``k`` of sender ``sender``: unique across senders and batches."""

    sender: int
    batch: int

    def trace(self, k: int, i: int) -> int:
        return (self.sender + 1) << 96 | (k * self.batch + i) // PER_TRACE + 1

    def span(self, k: int, i: int) -> int:
        return (self.sender + 1) << 56 | k * self.batch + i + 1

    def parent(self, k: int, i: int) -> int | None:
        """Children point at the trace's last span, the root (None for the root)."""
        root = i - i % PER_TRACE + PER_TRACE - 1
        return None if i == root else self.span(k, root)


class ProtoBatch:
    """An ``ExportTraceServiceRequest`` rewritten in place for every batch."""

    def __init__(self, sender: int, batch: int) -> None:
        self.ids = Ids(sender, batch)
        self.message = message = ExportTraceServiceRequest()
        group = message.resource_spans.add()
        for key, text in resource_attributes(sender):
            pair = group.resource.attributes.add()
            pair.key = key
            pair.value.string_value = text
        scoped = group.scope_spans.add()
        scoped.scope.name = "bench.ingest"
        scoped.scope.version = "1.0"
        for i in range(batch):
            span = scoped.spans.add()
            root = self.ids.parent(0, i) is None
            span.name = ROOT_NAME if root else CHILD_NAME
            span.kind = 2 if root else 3  # type: ignore[assignment]  # SERVER, CLIENT
            for key, value in [*(ROOT_ATTRIBUTES if root else CHILD_ATTRIBUTES),
                               (TIME_ATTRIBUTE, 0)]:
                pair = span.attributes.add()
                pair.key = key
                if isinstance(value, int):
                    pair.value.int_value = value
                else:
                    pair.value.string_value = value
        self.spans = list(scoped.spans)
        self.stamps = [span.attributes[len(span.attributes) - 1].value for span in self.spans]

    def fill(self, k: int, t_ns: int) -> ExportTraceServiceRequest:
        ids = self.ids
        for i, (span, stamp) in enumerate(zip(self.spans, self.stamps, strict=True)):
            parent = ids.parent(k, i)
            span.trace_id = ids.trace(k, i).to_bytes(16, "big")
            span.span_id = ids.span(k, i).to_bytes(8, "big")
            span.parent_span_id = parent.to_bytes(8, "big") if parent else b""
            span.start_time_unix_nano = t_ns - (ROOT_NS if parent is None else CHILD_NS)
            span.end_time_unix_nano = t_ns
            stamp.int_value = t_ns
        return self.message


def _json_value(value: str | int) -> dict[str, str]:
    # The protobuf JSON mapping writes 64-bit integers as strings.
    return {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}


class JsonBatch:
    """The same request as OTLP/JSON: a document rewritten in place, encoded per batch."""

    def __init__(self, sender: int, batch: int) -> None:
        self.ids = Ids(sender, batch)
        self.spans: list[dict[str, Any]] = []
        for i in range(batch):
            root = self.ids.parent(0, i) is None
            attributes = [{"key": key, "value": _json_value(value)} for key, value in
                          [*(ROOT_ATTRIBUTES if root else CHILD_ATTRIBUTES), (TIME_ATTRIBUTE, 0)]]
            self.spans.append({"traceId": "", "spanId": "", "name": ROOT_NAME if root else
                               CHILD_NAME, "kind": 2 if root else 3, "startTimeUnixNano": "",
                               "endTimeUnixNano": "", "attributes": attributes})
        self.stamps = [span["attributes"][-1]["value"] for span in self.spans]
        self.document = {"resourceSpans": [{
            "resource": {"attributes": [{"key": key, "value": {"stringValue": text}}
                                        for key, text in resource_attributes(sender)]},
            "scopeSpans": [{"scope": {"name": "bench.ingest", "version": "1.0"},
                            "spans": self.spans}],
        }]}
        try:
            import orjson

            self.dumps: Callable[[Any], bytes] = orjson.dumps
        except ImportError:  # pragma: no cover - depends on the environment
            self.dumps = lambda document: json.dumps(document).encode()

    def fill(self, k: int, t_ns: int) -> bytes:
        ids = self.ids
        for i, (span, stamp) in enumerate(zip(self.spans, self.stamps, strict=True)):
            parent = ids.parent(k, i)
            span["traceId"] = f"{ids.trace(k, i):032x}"
            span["spanId"] = f"{ids.span(k, i):016x}"
            if parent:
                span["parentSpanId"] = f"{parent:016x}"
            span["startTimeUnixNano"] = str(t_ns - (ROOT_NS if parent is None else CHILD_NS))
            span["endTimeUnixNano"] = str(t_ns)
            stamp["intValue"] = str(t_ns)
        return self.dumps(self.document)


# --------------------------------------------------------------------------- transports

# (HTTP status or gRPC code name, spans the gateway says it rejected)
Answer = tuple[str, int]
Exporter = Callable[[int, int], Awaitable[Answer]]


class HttpExporter:
    """One keep-alive HTTP/1.1 connection posting ``/v1/traces``, one request at a time."""

    def __init__(self, host: str, port: int, batch: ProtoBatch | JsonBatch) -> None:
        self.host = host
        self.port = port
        self.batch = batch
        self.media = "application/json" if isinstance(batch, JsonBatch) else \
            "application/x-protobuf"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def __call__(self, k: int, t_ns: int) -> Answer:
        assert self.reader is not None and self.writer is not None
        filled = self.batch.fill(k, t_ns)
        body = filled if isinstance(filled, bytes) else filled.SerializeToString()
        head = (f"POST /v1/traces HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: {self.media}\r\nContent-Length: {len(body)}\r\n"
                "User-Agent: OTel-OTLP-Exporter-Python/1.38.0\r\n\r\n").encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)[1]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        answer = await self.reader.readexactly(length) if length else b""
        return status, self._rejected(status, answer)

    def _rejected(self, status: str, answer: bytes) -> int:
        if status != "200" or not answer:
            return 0
        if self.media == "application/json":
            partial = json.loads(answer).get("partialSuccess") or {}
            return int(partial.get("rejectedSpans") or 0)
        response = ExportTraceServiceResponse()
        response.ParseFromString(answer)
        return int(response.partial_success.rejected_spans)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class GrpcExporter:
    """``TraceService/Export`` calls on one shared channel (``grpcio``'s asyncio stub)."""

    def __init__(self, stub: Any, batch: ProtoBatch) -> None:
        self.stub = stub
        self.batch = batch

    async def __call__(self, k: int, t_ns: int) -> Answer:
        import grpc

        try:
            response = await self.stub.Export(self.batch.fill(k, t_ns), timeout=30)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name, 0
        return "OK", int(response.partial_success.rejected_spans)


# --------------------------------------------------------------------------- the run


@dataclass
class Tally:
    """What the gateway answered."""

    batches: int = 0
    spans_ok: int = 0
    rejected: int = 0
    shed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_send_ns: int = 0
    first_answer_ns: int = 0
    first_answer_spans: int = 0
    last_answer_ns: int = 0
    lag_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)


async def _drive(exporters: list[Exporter], batch: int, rate: float, duration: float,
                 tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    # One origin for both clocks: due times are monotonic, bench.t is wall time.
    mono0, wall0 = loop.time(), time.time_ns()
    interval = batch / rate if rate > 0 else 0.0
    total = max(1, round(duration * rate / batch)) if rate > 0 else None
    end = mono0 + duration
    taken = 0

    def next_batch() -> tuple[int, float] | None:
        nonlocal taken
        k = taken
        if total is not None:
            if k >= total:
                return None
            due = mono0 + k * interval
        else:
            due = loop.time()
            if due >= end:
                return None
        taken += 1
        return k, due

    async def worker(export: Exporter) -> None:
        while (job := next_batch()) is not None:
            k, due = job
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time()
            t_ns = wall0 + round((due - mono0) * 1e9)
            if not tally.first_send_ns:
                tally.first_send_ns = time.time_ns()
            status, rejected = await export(k, t_ns)
            answered = loop.time()
            tally.batches += 1
            tally.lag_ms.append((sent - due) * 1000)
            tally.answer_ms.append((answered - sent) * 1000)
            if status in ("200", "OK"):
                tally.spans_ok += batch - rejected
                tally.rejected += rejected
                tally.last_answer_ns = time.time_ns()
                if not tally.first_answer_ns:
                    tally.first_answer_ns = tally.last_answer_ns
                    tally.first_answer_spans = batch - rejected
            elif status in ("429", "503", "UNAVAILABLE", "RESOURCE_EXHAUSTED"):
                tally.shed += 1
            else:
                tally.errors[status] = tally.errors.get(status, 0) + 1

    await asyncio.gather(*(worker(export) for export in exporters))


async def run(transport: str, host: str, port: int, sender: int, connections: int,
              batch: int, rate: float, duration: float) -> None:
    exporters: list[Exporter] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    if transport == "grpc":
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
            TraceServiceStub,
        )

        channel = grpc.aio.insecure_channel(f"{host}:{port}")
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        exporters = [GrpcExporter(stub, ProtoBatch(sender, batch)) for _ in range(connections)]
        closers.append(channel.close)
    else:
        for _ in range(connections):
            made = ProtoBatch(sender, batch) if transport == "http-protobuf" else \
                JsonBatch(sender, batch)
            http = HttpExporter(host, port, made)
            await http.open()
            exporters.append(http)
            closers.append(http.close)
    print("ready", flush=True)
    async for line in commands():
        if line[0] != "start":
            continue
        tally = Tally()
        await _drive(exporters, batch, rate, duration, tally)
        result = {
            "batches": tally.batches, "spans_ok": tally.spans_ok, "rejected": tally.rejected,
            "shed": tally.shed, "errors": tally.errors, "first_send_ns": tally.first_send_ns,
            "first_answer_ns": tally.first_answer_ns,
            "first_answer_spans": tally.first_answer_spans,
            "last_answer_ns": tally.last_answer_ns,
            "lag_p50_ms": percentile(sorted(tally.lag_ms), 0.5),
            "lag_p99_ms": percentile(sorted(tally.lag_ms), 0.99),
            "answer_p50_ms": percentile(sorted(tally.answer_ms), 0.5),
            "answer_p99_ms": percentile(sorted(tally.answer_ms), 0.99),
            "answer_mean_ms": statistics.fmean(tally.answer_ms) if tally.answer_ms else 0.0,
        }
        print("result " + json.dumps(result), flush=True)
    for close in closers:
        await close()


def main(transport: str, host: str, port: int, sender: int, connections: int, batch: int,
         rate: float, duration: float) -> None:
    if transport != "grpc":  # grpc.aio runs on asyncio's own loop
        install_uvloop()
    asyncio.run(run(transport, host, port, sender, connections, batch, rate, duration))
