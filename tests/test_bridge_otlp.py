"""End to end: emitters -> OpenTelemetry -> (live SSE stream, OTLP receiver), in sync."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from otel_sse.emitters import TaskStream
from otel_sse.server import SSEServer
from otel_sse.telemetry import configure
from tests.agent_scenario import N_TASKS, Workload
from tests.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, OtlpReceiverBase
from tests.test_bridge_support import SEED_TYPES, StreamCollector, check_event


def _span_events(frames: list[tuple[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    by_span: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for event_type, data in frames:
        if isinstance(data, dict) and data.get("spanId"):
            by_span[data["spanId"]].append((event_type, data))
    return by_span


async def _run_and_compare(receiver: OtlpReceiverBase, protocol: str) -> None:
    server = SSEServer(port=0, host="127.0.0.1")
    await server.start()
    tel = configure(service_name=f"bridge-{protocol}", server=server,
                    otlp_endpoint=receiver.endpoint, otlp_protocol=protocol, otlp_timeout=5,
                    export_schedule_delay=0.1, metric_export_interval=60, set_global=False)
    try:
        async with StreamCollector(f"{server.url}/events") as collector:
            work = Workload(tel, server)
            await work.run()
            assert await tel.aforce_flush(10)
            server.publish("test:done", {})
            frames = await collector.finish()
        spans = {s["span_id"]: s for s in receiver.spans()}
        logs = receiver.logs()
    finally:
        await tel.ashutdown()
        await server.stop()

    for event_type, data in frames:
        check_event(event_type, data)
    assert work.max_call < 0.05, f"an emit_* call took {work.max_call * 1000:.1f} ms"

    by_span = _span_events(frames)
    # Every exported span is on the stream, with identical ids, name and status.
    assert spans
    for span_id, span in spans.items():
        events = dict(by_span.get(span_id, []))
        assert "span:started" in events and "span:ended" in events, span["name"]
        for key in ("span:started", "span:ended"):
            assert events[key]["traceId"] == span["trace_id"]
            assert events[key]["parentSpanId"] == span["parent_span_id"]
            assert events[key]["name"] == span["name"]
        assert events["span:ended"]["status"] == span["status_code"]
    # Every span-derived stream event has its exported span.
    span_types = {"span:started", "span:ended", "task:created", "task:completed", "task:failed",
                  "agent:started", "agent:stopped", "llm:request:started",
                  "llm:request:completed", "llm:request:error", "llm:tool:call",
                  "llm:tool:result", "agent:spawned"}
    for event_type, data in frames:
        if event_type in span_types:
            exported = spans.get(data["spanId"])
            assert exported is not None, (event_type, data)
            assert data["traceId"] == exported["trace_id"]
            assert data["parentSpanId"] == exported["parent_span_id"]

    # Names and numbers agree.
    seed = defaultdict(list)
    for event_type, data in frames:
        seed[event_type].append(data)
    assert len(seed["task:created"]) == N_TASKS
    assert len(seed["task:completed"]) == 16 and len(seed["task:failed"]) == 4
    for data in seed["task:completed"] + seed["task:failed"]:
        span = spans[data["spanId"]]
        assert span["attributes"]["otel_sse.task.id"] == data["taskId"]
        assert span["attributes"]["otel_sse.task.name"] == data["name"]
        assert span["name"] == f"task {data['name']}"
        assert span["attributes"]["otel_sse.task.status"] == data["status"]
        assert span["status_code"] == ("error" if data["status"] == "failed" else "unset")
        assert span["parent_span_id"] is not None  # a child of the agent's invocation
        parent = spans[span["parent_span_id"]]
        assert parent["name"].startswith("invoke_agent ")
        assert parent["attributes"]["otel_sse.agent.id"] == data["agentId"]
    for data in seed["llm:request:completed"]:
        span = spans[data["spanId"]]
        assert span["name"] == f"chat {data['model']}" and span["kind"] == "client"
        attrs = span["attributes"]
        assert attrs["gen_ai.request.model"] == data["model"]
        assert attrs["gen_ai.provider.name"] == data["provider"]
        assert attrs["gen_ai.usage.input_tokens"] == data["usage"]["promptTokens"]
        assert attrs["gen_ai.usage.output_tokens"] == data["usage"]["completionTokens"]
        assert attrs["gen_ai.request.temperature"] == 0.2
        assert attrs["gen_ai.request.max_tokens"] == 64
        parent = spans[span["parent_span_id"]]
        assert parent["attributes"]["otel_sse.task.id"] == data["taskId"]
    for data in seed["llm:request:error"]:
        span = spans[data["spanId"]]
        assert span["status_code"] == "error"
        assert span["attributes"]["error.type"] == "server_error"
        assert any(e["name"] == "exception" for e in span["events"])
    for data in seed["llm:tool:result"]:
        span = spans[data["spanId"]]
        assert span["name"] == "execute_tool search"
        assert spans[span["parent_span_id"]]["name"].startswith("chat ")
    # Tokens: all on the stream, in the request span, none exported one by one.
    tokens: Counter[str] = Counter(d["requestId"] for d in seed["llm:token"])
    assert tokens == work.tokens
    for data in seed["llm:token"]:
        assert spans[data["spanId"]]["attributes"]["otel_sse.llm.request_id"] == data["requestId"]
    assert not [r for r in logs if r["event_name"] == "otel_sse.llm.token"]
    # Log-record events (progress, output) agree with the exported records.
    exported_progress = {(r["trace_id"], r["span_id"]) for r in logs
                         if r["event_name"] == "otel_sse.task.progress"}
    live_progress = {(d["traceId"], d["spanId"]) for d in seed["task:progress"]}
    assert live_progress and live_progress == exported_progress
    finals = [d for d in seed["task:progress"] if d["progress"]["percentage"] == 100]
    assert len(finals) == N_TASKS
    assert {t for t in seed if t in SEED_TYPES} >= {
        "task:created", "task:started", "task:progress", "task:completed", "task:failed",
        "agent:spawned", "agent:started", "agent:stopped", "agent:output:stdout",
        "agent:metrics", "llm:request:started", "llm:token", "llm:tool:call",
        "llm:tool:result", "llm:usage", "llm:request:completed", "llm:request:error"}


async def test_stream_and_otlp_grpc_agree() -> None:
    with OtlpGrpcReceiver() as receiver:
        await _run_and_compare(receiver, "grpc")


async def test_stream_and_otlp_http_agree() -> None:
    with OtlpHttpReceiver() as receiver:
        await _run_and_compare(receiver, "http/protobuf")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_outage_keeps_app_fast_and_stream_complete(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver: OtlpGrpcReceiver | OtlpHttpReceiver = (
        OtlpGrpcReceiver() if protocol == "grpc" else OtlpHttpReceiver())
    receiver.start()
    server = SSEServer(port=0, host="127.0.0.1")
    await server.start()
    tel = configure(service_name="outage", server=server, otlp_endpoint=receiver.endpoint,
                    otlp_protocol=protocol, otlp_timeout=1, export_schedule_delay=0.05,
                    metrics_exporter="none", set_global=False)
    tasks = TaskStream(server, telemetry=tel, progress_update_interval=0)
    max_call = 0.0

    def burst(prefix: str, count: int) -> None:
        nonlocal max_call
        for i in range(count):
            start = time.perf_counter()
            tasks.emit_task_created(f"{prefix}-{i}", name=prefix)
            tasks.emit_progress(f"{prefix}-{i}", percentage=100, current_step="all")
            tasks.emit_task_completed(f"{prefix}-{i}")
            max_call = max(max_call, (time.perf_counter() - start) / 3)

    try:
        url = f"{server.url}/events?filters=task:completed,test:done"
        async with StreamCollector(url) as collector:
            burst("before", 20)
            await receiver.async_wait_for(lambda r: len(r.spans(name="task before")) == 20)
            port = receiver.port
            receiver.stop()  # the collector goes away: every export now fails
            for k in range(3):
                burst(f"during{k}", 30)
                await asyncio.sleep(0.3)
            await asyncio.to_thread(lambda: tel.tracer_provider.force_flush(3000))
            receiver = type(receiver)(port=port).start()  # and comes back on the same port
            # A batch exported while the exporter is still reconnecting is lost (the
            # SDK does not re-queue it), so keep the app busy until spans arrive again.
            after = 0
            for _ in range(60):
                burst(f"after{after}", 5)
                after += 1
                await asyncio.sleep(0.5)
                if any(s["name"].startswith("task after") for s in receiver.spans()):
                    break
            burst(f"after{after}", 5)
            after += 1
            last = f"task after{after - 1}"
            await receiver.async_wait_for(lambda r: len(r.spans(name=last)) == 5, timeout=20)
            server.publish("test:done", {})
            frames = await collector.finish()
    finally:
        await tel.ashutdown()
        await server.stop()
        receiver.stop()

    assert max_call < 0.05, f"an emit_* call took {max_call * 1000:.1f} ms during the outage"
    completed = [d["taskId"] for t, d in frames if t == "task:completed"]
    expected = 20 + 90 + 5 * after
    assert len(completed) == expected and len(set(completed)) == expected  # nothing missed
    ours = [r for r in caplog.records if r.name == "otel_sse.telemetry"]
    warnings = [r for r in ours if r.levelno == logging.WARNING and "traces" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in ours]
    assert any("recovered" in r.getMessage() for r in ours if "traces" in r.getMessage())
    noisy = [r for r in caplog.records
             if r.name.startswith("opentelemetry.exporter") and r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage() for r in noisy]
