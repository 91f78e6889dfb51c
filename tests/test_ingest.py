"""OTLP ingest on the gateway, from plain OpenTelemetry SDKs (no otel_sse in the sender),
over OTLP/HTTP (protobuf, JSON, gzip) and OTLP/gRPC, with the specification's answers."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace import Status as SpanStatus

from tests.sse_helpers import FrameReader, running_server, stream
from tests.test_bridge_support import check_event

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@contextmanager
def plain_app(endpoint: str, grpc: bool = False,
              headers: dict[str, str] | None = None) -> Iterator[TracerProvider]:
    """A plain OpenTelemetry application: SDK, OTLP exporter, nothing of otel_sse."""
    resource = Resource.create({"service.name": "plain-app"})
    provider = TracerProvider(resource=resource)
    exporter = (GrpcSpans(endpoint=endpoint, insecure=True, headers=headers) if grpc
                else OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider
    finally:
        provider.shutdown()


def record_work(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("plain")
    with tracer.start_as_current_span("handle request", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                 "gen_ai.request.model": "gpt-4o",
                                 "gen_ai.usage.prompt_tokens": 12,
                                 "gen_ai.usage.completion_tokens": 30})
        with tracer.start_as_current_span("broken step") as broken:
            broken.set_status(SpanStatus(StatusCode.ERROR, "it broke"))


async def collect(reader: FrameReader, until: str, count: int = 1,
                  timeout: float = 10.0) -> list[tuple[str, Any]]:
    frames: list[tuple[str, Any]] = []
    while sum(1 for t, _ in frames if t == until) < count:
        frame = await reader.next(timeout)
        frames.append((frame.event, frame.data))
    return frames


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_plain_opentelemetry_app_becomes_events(transport: str) -> None:
    async with running_server(grpc_port=0) as server, \
            stream(f"{server.url}/events") as (_, reader):
        await reader.until("connected")
        endpoint = (f"http://127.0.0.1:{server.grpc_port}" if transport == "grpc"
                    else server.url)
        with plain_app(endpoint, grpc=transport == "grpc") as provider:
            await asyncio.to_thread(record_work, provider)
        frames = await collect(reader, "trace:completed")
    types = [t for t, _ in frames]
    for event_type, data in frames:
        check_event(event_type, data)
    assert types.count("span:started") == 3 and types.count("span:ended") == 3
    assert "llm:request:started" in types and "llm:request:completed" in types
    completed = next(d for t, d in frames if t == "llm:request:completed")
    assert completed["provider"] == "openai" and completed["model"] == "gpt-4o"
    assert completed["usage"]["promptTokens"] == 12
    trace = next(d for t, d in frames if t == "trace:completed")
    assert trace["spanCount"] == 3 and trace["errorCount"] == 1
    assert trace["name"] == "handle request"
    # Each span's start comes before its end, and the ids are the exported ones.
    for _, data in frames:
        if "spanId" in data:
            assert data["traceId"] == trace["traceId"]
    assert server.get_stats()["ingestSpans"] == 3


async def test_logs_and_metrics_over_http() -> None:
    async with running_server() as server, stream(f"{server.url}/events") as (_, reader):
        await reader.until("connected")
        resource = Resource.create({"service.name": "plain-app"})
        logs = LoggerProvider(resource=resource)
        logs.add_log_record_processor(SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{server.url}/v1/logs")))
        reader_ = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{server.url}/v1/metrics"),
            export_interval_millis=60_000)
        meters = MeterProvider(resource=resource, metric_readers=[reader_])

        def work() -> None:
            logs.get_logger("plain").emit(body="disk almost full",
                                          severity_number=SeverityNumber.WARN,
                                          attributes={"disk": "/dev/sda"})
            meters.get_meter("plain").create_counter("jobs", unit="{job}").add(3)
            meters.force_flush()
            logs.shutdown()
            meters.shutdown()

        await asyncio.to_thread(work)
        frames = await collect(reader, "metric")
        if not any(t == "log" for t, _ in frames):
            frames += await collect(reader, "log")
    log = next(d for t, d in frames if t == "log")
    assert log["body"] == "disk almost full" and log["severity"] == "WARN"
    metric = next(d for t, d in frames if t == "metric")
    assert metric["name"] == "jobs" and metric["kind"] == "sum"
    assert metric["points"][0]["value"] == 3
    check_event("log", log)


def _span_request(count: int = 1, bad: int = 0) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    group = request.resource_spans.add()
    group.resource.attributes.add(key="service.name").value.string_value = "raw"
    spans = group.scope_spans.add().spans
    for i in range(count + bad):
        span: Span = spans.add()
        span.trace_id = (i + 1).to_bytes(16, "big") if i < count else b"\x01"
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = f"op {i}"
        span.start_time_unix_nano = 1_700_000_000_000_000_000
        span.end_time_unix_nano = 1_700_000_000_500_000_000
    return request


async def test_http_answers_follow_the_specification() -> None:
    async with running_server(max_body_bytes=64 * 1024, max_decompressed_bytes=256 * 1024) \
            as server, aiohttp.ClientSession() as session:
        url = f"{server.url}/v1/traces"
        # A partial success counts what was rejected.
        body = _span_request(count=2, bad=1).SerializeToString()
        async with session.post(url, data=body, headers=PROTOBUF) as resp:
            assert resp.status == 200
            answer = ExportTraceServiceResponse.FromString(await resp.read())
            assert answer.partial_success.rejected_spans == 1
            assert "valid trace or span id" in answer.partial_success.error_message
        # gzip is accepted...
        async with session.post(url, data=gzip.compress(_span_request(3).SerializeToString()),
                                headers={**PROTOBUF, "Content-Encoding": "gzip"}) as resp:
            assert resp.status == 200
        # ...but not beyond its decompressed bound (a gzip bomb).
        bomb = gzip.compress(b"\0" * (1024 * 1024))
        assert len(bomb) < 64 * 1024
        async with session.post(url, data=bomb,
                                headers={**PROTOBUF, "Content-Encoding": "gzip"}) as resp:
            assert resp.status == 413
        async with session.post(url, data=b"x" * (65 * 1024), headers=PROTOBUF) as resp:
            assert resp.status == 413
        async with session.post(url, data=b"\xff\xff\xff", headers=PROTOBUF) as resp:
            assert resp.status == 400
            assert Status.FromString(await resp.read()).message
        async with session.post(url, data=b"{}", headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 415
            assert (await resp.text()).count("\n") == 1
        async with session.post(url, data=b"{not json", headers={
                "Content-Type": "application/json"}) as resp:
            assert resp.status == 400
            assert "message" in await resp.json()
        async with session.get(url) as resp:
            assert resp.status == 405
        assert server.get_stats()["ingestRejected"] == 1


async def test_otlp_json_with_hex_ids() -> None:
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    document = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "json-app"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "from json", "kind": 2,
            "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000250000000",
            "attributes": [{"key": "http.route", "value": {"stringValue": "/x"}}],
        }]}],
    }]}
    async with running_server() as server, stream(f"{server.url}/events") as (_, reader), \
            aiohttp.ClientSession() as session:
        await reader.until("connected")
        async with session.post(f"{server.url}/v1/traces", json=document) as resp:
            assert resp.status == 200
            assert await resp.json() == {}
        ended = await reader.until("span:ended")
    assert ended.data["traceId"] == trace_id and ended.data["spanId"] == span_id
    assert ended.data["name"] == "from json" and ended.data["kind"] == "server"
    assert ended.data["durationMs"] == 250.0
    assert ended.data["attributes"] == {"http.route": "/x"}


async def test_load_is_shed_with_retry_after_and_nothing_is_lost() -> None:
    big = _span_request(count=4000).SerializeToString()
    async with running_server(ingest_inflight_bytes=len(big) + 10) as server, \
            aiohttp.ClientSession() as session:
        url = f"{server.url}/v1/traces"

        async def post() -> int:
            async with session.post(url, data=big, headers=PROTOBUF) as resp:
                if resp.status == 429:
                    assert resp.headers["Retry-After"] == "1"
                return resp.status

        statuses = await asyncio.gather(*(post() for _ in range(4)))
        assert 200 in statuses and 429 in statuses
        accepted = statuses.count(200)
        assert server.get_stats()["ingestSpans"] == 4000 * accepted
        assert server.get_stats()["ingestShed"] == statuses.count(429)


async def test_grpc_needs_the_producer_token() -> None:
    async with running_server(grpc_port=0, token="subscriber-token-1",
                              producer_token="producer-token-1") as server:
        endpoint = f"http://127.0.0.1:{server.grpc_port}"
        with plain_app(endpoint, grpc=True, headers={"authorization": "Bearer wrong-one"}) as p:
            await asyncio.to_thread(record_work, p)
        assert server.get_stats()["ingestSpans"] == 0
        with plain_app(endpoint, grpc=True,
                       headers={"authorization": "Bearer producer-token-1"}) as p:
            await asyncio.to_thread(record_work, p)
        assert server.get_stats()["ingestSpans"] == 3


async def test_publish_endpoint() -> None:
    async with running_server() as server, stream(f"{server.url}/events") as (_, reader), \
            aiohttp.ClientSession() as session:
        await reader.until("connected")
        url = f"{server.url}/v1/events"
        async with session.post(url, json=[{"event": "deploy:started", "data": {"v": 1}},
                                           {"event": "deploy:done", "data": {"v": 1}}]) as resp:
            assert resp.status == 202
            ids = (await resp.json())["ids"]
        first, second = await reader.next(), await reader.next()
        assert [first.event, second.event] == ["deploy:started", "deploy:done"]
        assert [first.id, second.id] == ids
        async with session.post(url, json=[{"event": "ok", "data": {}},
                                           {"event": "bad\nname", "data": {}}]) as resp:
            assert resp.status == 400
            assert "event 1" in await resp.text()
        async with session.post(url, data=b"not json",
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
        async with session.post(url, data=b"{}", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        assert server.get_stats()["eventsPublished"] == 2  # the bad batch: none of it
