"""Self-tests of tests/otlp_receiver.py against the real SDK and its real OTLP exporters."""

from __future__ import annotations

import gzip
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, OtlpReceiverBase

RESOURCE = Resource.create({"service.name": "receiver-selftest", "deployment.environment": "test"})


@pytest.fixture
def grpc_receiver() -> Iterator[OtlpGrpcReceiver]:
    with OtlpGrpcReceiver() as receiver:
        yield receiver


@pytest.fixture
def http_receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as receiver:
        yield receiver


def _exporters(
    kind: str, receiver: OtlpReceiverBase
) -> tuple[SpanExporter, LogRecordExporter, MetricExporter]:
    if kind == "grpc":
        return (
            GrpcSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=3),
            GrpcLogExporter(endpoint=receiver.endpoint, insecure=True, timeout=3),
            GrpcMetricExporter(endpoint=receiver.endpoint, insecure=True, timeout=3),
        )
    assert isinstance(receiver, OtlpHttpReceiver)
    return (
        HttpSpanExporter(endpoint=receiver.traces_url, timeout=3, compression=Compression.Gzip),
        HttpLogExporter(endpoint=receiver.logs_url, timeout=3),
        HttpMetricExporter(endpoint=receiver.metrics_url, timeout=3, compression=Compression.Gzip),
    )


def _emit_everything(
    span_exporter: SpanExporter,
    log_exporter: LogRecordExporter,
    metric_exporter: MetricExporter,
) -> dict[str, Any]:
    """Spans, a log record and two instruments through real SDK providers; returns the ids."""
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    try:
        tracer = tracer_provider.get_tracer("selftest.tracer", "1.2.3")
        otel_logger = logger_provider.get_logger("selftest.logger")
        meter = meter_provider.get_meter("selftest.meter")
        histogram = meter.create_histogram("task.duration", unit="ms", description="durations")
        counter = meter.create_counter("tasks.done", unit="1", description="done tasks")

        with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
            with tracer.start_as_current_span("child") as child:
                child.set_attribute("task.id", "task-1")
                child.set_attribute("retries", 3)
                child.set_attribute("ratio", 0.5)
                child.set_attribute("ok", False)
                child.set_attribute("tags", ["a", "b"])
                child.add_event("checkpoint", {"step": 2})
                child.set_status(Status(StatusCode.ERROR, "boom"))
                otel_logger.emit(
                    event_name="task.log",
                    severity_number=SeverityNumber.WARN,
                    severity_text="WARN",
                    body={"message": "careful", "n": 1},
                    attributes={"agent.id": "agent-1"},
                )
            histogram.record(5, {"task.type": "code"})
            histogram.record(250, {"task.type": "code"})
            counter.add(2, {"agent.id": "agent-1"})
            counter.add(1, {"agent.id": "agent-1"})
        otel_logger.emit(body="no span here", severity_number=SeverityNumber.INFO)
        assert meter_provider.force_flush(timeout_millis=5000)
        return {"parent": parent.get_span_context(), "child": child.get_span_context()}
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown(timeout_millis=5000)


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_real_sdk_export_is_decoded(
    kind: str, grpc_receiver: OtlpGrpcReceiver, http_receiver: OtlpHttpReceiver
) -> None:
    receiver: OtlpReceiverBase = grpc_receiver if kind == "grpc" else http_receiver
    contexts = _emit_everything(*_exporters(kind, receiver))
    parent_ctx, child_ctx = contexts["parent"], contexts["child"]

    receiver.wait_for(lambda r: len(r.spans()) == 2 and len(r.logs()) == 2)
    child = receiver.spans(name="child")[0]
    parent = receiver.spans(name="parent")[0]
    assert child["trace_id"] == format(child_ctx.trace_id, "032x") == parent["trace_id"]
    assert child["span_id"] == format(child_ctx.span_id, "016x")
    assert child["parent_span_id"] == format(parent_ctx.span_id, "016x") == parent["span_id"]
    assert parent["parent_span_id"] is None
    assert parent["kind"] == "server" and child["kind"] == "internal"
    assert child["kind_value"] == 1
    assert child["attributes"] == {
        "task.id": "task-1",
        "retries": 3,
        "ratio": 0.5,
        "ok": False,
        "tags": ["a", "b"],
    }
    assert child["status_code"] == "error" and child["status_message"] == "boom"
    assert parent["status_code"] == "unset"
    assert [e["name"] for e in child["events"]] == ["checkpoint"]
    assert child["events"][0]["attributes"] == {"step": 2}
    assert child["start_ns"] <= child["events"][0]["time_ns"] <= child["end_ns"]
    assert child["resource"]["service.name"] == "receiver-selftest"
    assert child["scope"] == "selftest.tracer" and child["scope_version"] == "1.2.3"

    in_span = receiver.logs(event_name="task.log")
    assert len(in_span) == 1
    log = in_span[0]
    assert log["trace_id"] == format(child_ctx.trace_id, "032x")
    assert log["span_id"] == format(child_ctx.span_id, "016x")
    assert log["severity_number"] == SeverityNumber.WARN.value
    assert log["severity_text"] == "WARN"
    assert log["body"] == {"message": "careful", "n": 1}
    assert log["attributes"] == {"agent.id": "agent-1"}
    assert log["resource"]["deployment.environment"] == "test"
    assert log["scope"] == "selftest.logger"
    outside = next(r for r in receiver.logs() if r["body"] == "no span here")
    assert outside["trace_id"] is None and outside["span_id"] is None
    assert outside["event_name"] == ""

    receiver.wait_for(lambda r: r.metrics("task.duration") and r.metrics("tasks.done"))
    hist = receiver.metrics("task.duration")[-1]
    assert hist["kind"] == "histogram" and hist["unit"] == "ms"
    assert hist["description"] == "durations"
    (point,) = hist["data_points"]
    assert point["attributes"] == {"task.type": "code"}
    assert point["count"] == 2 and point["sum"] == 255
    assert point["min"] == 5 and point["max"] == 250
    assert len(point["bucket_counts"]) == len(point["explicit_bounds"]) + 1
    assert sum(point["bucket_counts"]) == 2
    total = receiver.metrics("tasks.done")[-1]
    assert total["kind"] == "sum" and total["is_monotonic"] is True
    assert total["temporality"] == "cumulative"
    assert total["data_points"][0]["value"] == 3
    assert total["data_points"][0]["attributes"] == {"agent.id": "agent-1"}

    receiver.clear()
    assert receiver.spans() == [] and receiver.logs() == [] and receiver.metrics() == []


def test_wait_for_times_out_with_summary(grpc_receiver: OtlpGrpcReceiver) -> None:
    with pytest.raises(AssertionError, match=r"within 0\.1s"):
        grpc_receiver.wait_for(lambda r: r.spans(), timeout=0.1)


async def test_async_wait_for(http_receiver: OtlpHttpReceiver) -> None:
    exporter = HttpSpanExporter(endpoint=http_receiver.traces_url, timeout=3)
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with provider.get_tracer("t").start_as_current_span("async-span"):
            pass
        spans = await http_receiver.async_wait_for(lambda r: r.spans("async-span"))
        assert spans[0]["name"] == "async-span"
    finally:
        provider.shutdown()


def test_http_receiver_raw_requests(http_receiver: OtlpHttpReceiver) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name = "raw"
    span.trace_id = bytes(range(1, 17))
    span.span_id = bytes(range(1, 9))
    body = gzip.compress(request.SerializeToString())
    post = urllib.request.Request(
        http_receiver.traces_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    with urllib.request.urlopen(post, timeout=3) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/x-protobuf"
    (got,) = http_receiver.spans()
    assert got["trace_id"] == "0102030405060708090a0b0c0d0e0f10"
    assert got["span_id"] == "0102030405060708"
    assert got["parent_span_id"] is None

    bad = urllib.request.Request(
        f"{http_receiver.endpoint}/v1/nope",
        data=b"",
        method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=3)
    assert info.value.code == 404
    info.value.close()


def _export_one(exporter: SpanExporter, name: str) -> SpanExportResult:
    """Export one finished span directly (no processor), returning the exporter's verdict."""
    provider = TracerProvider(resource=RESOURCE)
    captured: list[Any] = []

    class _Capture(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            captured.extend(spans)
            return SpanExportResult.SUCCESS

    provider.add_span_processor(SimpleSpanProcessor(_Capture()))
    with provider.get_tracer("t").start_as_current_span(name):
        pass
    provider.shutdown()
    return exporter.export(captured)


def test_grpc_stop_and_restart_on_same_port(caplog: pytest.LogCaptureFixture) -> None:
    receiver = OtlpGrpcReceiver().start()
    try:
        port = receiver.port
        exporter = GrpcSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=0.5)
        try:
            assert _export_one(exporter, "before") == SpanExportResult.SUCCESS
            receiver.stop()
            assert not receiver.running
            with caplog.at_level(logging.CRITICAL):  # the exporter logs the failure
                assert _export_one(exporter, "during") == SpanExportResult.FAILURE
            receiver.start()
            assert receiver.port == port
            assert receiver.endpoint == f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while _export_one(exporter, "after") != SpanExportResult.SUCCESS:
                assert time.monotonic() < deadline, "exporter never reconnected"
            names = [s["name"] for s in receiver.spans()]
            assert names[0] == "before" and "after" in names and "during" not in names
        finally:
            exporter.shutdown()
    finally:
        receiver.stop()


def test_http_stop_and_restart_on_same_port(caplog: pytest.LogCaptureFixture) -> None:
    receiver = OtlpHttpReceiver().start()
    try:
        port = receiver.port
        exporter: SpanExporter = HttpSpanExporter(endpoint=receiver.traces_url, timeout=0.5)
        try:
            assert _export_one(exporter, "before") == SpanExportResult.SUCCESS
            receiver.stop()
            with caplog.at_level(logging.CRITICAL):
                assert _export_one(exporter, "during") == SpanExportResult.FAILURE
            receiver.start()
            assert receiver.port == port
            assert _export_one(exporter, "after") == SpanExportResult.SUCCESS
            assert [s["name"] for s in receiver.spans()] == ["before", "after"]
        finally:
            exporter.shutdown()
    finally:
        receiver.stop()


def test_fixed_port_constructor() -> None:
    with OtlpHttpReceiver() as first:
        port = first.port
    with OtlpHttpReceiver(port=port) as second:
        assert second.port == port
    with OtlpGrpcReceiver() as third:
        port = third.port
    with OtlpGrpcReceiver(port=port) as fourth:
        assert fourth.port == port


def test_grpc_pause_answers_unavailable(
    grpc_receiver: OtlpGrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = GrpcSpanExporter(endpoint=grpc_receiver.endpoint, insecure=True, timeout=1)
    try:
        grpc_receiver.pause(retry_after=0.05)
        assert grpc_receiver.paused
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            result = _export_one(exporter, "paused")
        elapsed = time.monotonic() - started
        assert result == SpanExportResult.FAILURE
        # RetryInfo of 50 ms: the exporter retries quickly until its 1 s deadline or
        # its retry cap, well before the default 1-2-4 s exponential backoff.
        assert grpc_receiver.rejected_count >= 2
        assert elapsed < 3
        assert "UNAVAILABLE" in caplog.text
        assert grpc_receiver.spans() == []

        grpc_receiver.resume()
        assert _export_one(exporter, "resumed") == SpanExportResult.SUCCESS
        assert [s["name"] for s in grpc_receiver.spans()] == ["resumed"]
    finally:
        exporter.shutdown()


def test_http_pause_answers_503(
    http_receiver: OtlpHttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    exporter: SpanExporter = HttpSpanExporter(endpoint=http_receiver.traces_url, timeout=0.5)
    try:
        http_receiver.pause()
        with caplog.at_level(logging.WARNING):
            assert _export_one(exporter, "paused") == SpanExportResult.FAILURE
        assert http_receiver.rejected_count >= 1
        assert http_receiver.spans() == []
        http_receiver.resume()
        assert _export_one(exporter, "resumed") == SpanExportResult.SUCCESS
        assert [s["name"] for s in http_receiver.spans()] == ["resumed"]
    finally:
        exporter.shutdown()
