"""The multi-agent scenario in-process and through OTLP gives the same events.

The scenario (tests/agent_scenario.py) runs with our emitters, content capture
on (so prompts and responses are exported) and the real OTLP exporter sending
to the real receiver of tests/otlp_receiver.py. What arrived goes through
``spans_from_proto`` / ``logs_from_proto`` and the conversion; ordered by time,
it is the same sequence of contract events (types and payloads) as the live
stream of the same run, ids and timestamps aside, except what is live-only by
design:

- ``llm:token``: without ``export_tokens`` tokens are not exported one by one
  (the span carries the totals); with it, they are log records and match too.
- ``span:started`` attributes: OTLP has no start message, so a start rebuilt
  from the ended span shows the attributes the span ended with (the seed start
  events read only attributes our emitters never change after the start, and
  match exactly).
- ``parentSpanId`` of events from log records: OTLP log records have no field
  for it (ids are aside anyway).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from otel_sse.convert import (
    Event,
    log_events,
    logs_from_proto,
    span_ended_events,
    span_started_events,
    spans_from_proto,
)
from otel_sse.telemetry import configure
from tests.agent_scenario import AGENTS, N_TASKS, Workload
from tests.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, OtlpReceiverBase
from tests.test_bridge_support import ListSink, check_event

_ASIDE = ("traceId", "spanId", "parentSpanId", "timestamp", "startTime", "endTime")
# Attributes that hold JSON text because the GenAI conventions record them so
# (and ours that follow them for open-typed values).
_JSON_ATTRIBUTES = {"gen_ai.input.messages", "gen_ai.output.messages",
                    "gen_ai.system_instructions", "gen_ai.tool.definitions",
                    "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
                    "otel_sse.task.result", "otel_sse.task.intermediate.data",
                    "otel_sse.agent.log.context"}


async def _run(receiver: OtlpReceiverBase, protocol: str, *, export_tokens: bool,
               sequential: bool) -> tuple[list[Event], Workload]:
    """Run the scenario; returns the live stream's events (the receiver has the rest)."""
    sink = ListSink()
    tel = configure(service_name="scenario", server=sink, otlp_endpoint=receiver.endpoint,
                    otlp_protocol=protocol, otlp_timeout=5, export_schedule_delay=0.05,
                    metrics_exporter="none", set_global=False,
                    capture_content="span_and_event", export_tokens=export_tokens)
    try:
        work = Workload(tel, sink, interval=0)
        if sequential:
            work.run_sequential()
        else:
            await work.run()
        assert await asyncio.to_thread(tel.force_flush, 10)
    finally:
        tel.shutdown()
    return sink.events, work


def _from_otlp(receiver: OtlpReceiverBase) -> list[Event]:
    """What the receiver got, converted, in the order it happened."""
    timed: list[tuple[int, int, Event]] = []
    for request in receiver.trace_requests:
        for span in spans_from_proto(request.resource_spans):
            assert span.end_time_ns is not None
            timed += [(span.start_time_ns, i, e) for i, e in enumerate(span_started_events(span))]
            timed += [(span.end_time_ns, i, e) for i, e in enumerate(span_ended_events(span))]
    for logs_request in receiver.log_requests:
        for record in logs_from_proto(logs_request.resource_logs):
            timed += [(record.time_ns, i, e) for i, e in enumerate(log_events(record))]
    timed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in timed]


def _comparable(event: Event) -> tuple[str, dict[str, Any]]:
    event_type, data = event
    data = {k: v for k, v in data.items() if k not in _ASIDE}
    if event_type == "span:started":
        data.pop("attributes")
    # One JSON form for both sides (tuples and lists alike).
    return event_type, json.loads(json.dumps(data, sort_keys=True))


@pytest.mark.parametrize("export_tokens", [False, True])
async def test_scenario_through_otlp_gives_the_live_events(export_tokens: bool) -> None:
    with OtlpGrpcReceiver() as receiver:
        live, work = await _run(receiver, "grpc", export_tokens=export_tokens, sequential=True)
        rebuilt = _from_otlp(receiver)
    for event_type, data in rebuilt:
        check_event(event_type, data)
    expected = [_comparable(e) for e in live
                if export_tokens or e[0] != "llm:token"]
    got = [_comparable(e) for e in rebuilt]
    assert len([t for t, _ in live if t == "llm:token"]) == sum(work.tokens.values())
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert have == want, f"event {index} differs"
    assert len(got) == len(expected)
    types = {t for t, _ in got}
    assert types >= {"task:created", "task:started", "task:progress", "task:completed",
                     "task:failed", "agent:spawned", "agent:started", "agent:stopped",
                     "agent:output:stdout", "agent:metrics", "llm:request:started",
                     "llm:tool:call", "llm:tool:result", "llm:usage",
                     "llm:request:completed", "llm:request:error", "span:started",
                     "span:ended"}
    assert ("llm:token" in types) is export_tokens
    # Prompts came over OTLP because content capture is on.
    prompts = [d["messages"] for t, d in got if t == "llm:request:started"]
    assert prompts[0] == [{"role": "user", "content": "do 0"}]


async def test_exported_spans_carry_named_fields_and_no_payload_blobs() -> None:
    with OtlpHttpReceiver() as receiver:
        live, _ = await _run(receiver, "http/protobuf", export_tokens=False, sequential=False)
        spans = receiver.spans()
        logs = receiver.logs()
    assert spans and logs
    for item in spans + logs:
        for key, value in item["attributes"].items():
            assert key not in ("otel_sse.payload", "otel_sse.end_payload", "otel_sse.event",
                               "otel_sse.end_event"), key
            if isinstance(value, str) and value[:1] in ("{", "["):
                assert key in _JSON_ATTRIBUTES, (key, value)
    for record in logs:  # a record's body is a line of text, never a payload
        assert record["body"] is None or not str(record["body"]).startswith("{")

    def named(prefix: str) -> list[dict[str, Any]]:
        return [s["attributes"] for s in spans if s["name"].startswith(prefix)]

    tasks = [a for a in named("task ") if not a.get("otel_sse.implicit")]
    assert len(tasks) == N_TASKS
    for attrs in tasks:
        assert {"otel_sse.task.id", "otel_sse.task.name", "otel_sse.task.type",
                "otel_sse.task.priority", "otel_sse.task.status", "otel_sse.agent.id"} <= set(
            attrs)
        assert attrs["otel_sse.task.status"] in ("completed", "failed")
        assert attrs["otel_sse.agent.id"] in AGENTS
        if attrs["otel_sse.task.status"] == "completed":
            assert json.loads(attrs["otel_sse.task.result"])["n"] >= 0
            assert attrs["otel_sse.task.metrics.execution_time"] == 12
            assert attrs["otel_sse.task.progress.percentage"] == 100
    for attrs in named("invoke_agent "):
        assert attrs["gen_ai.operation.name"] == "invoke_agent"
        assert attrs["otel_sse.agent.id"] in AGENTS and "gen_ai.agent.id" not in attrs
        assert attrs["gen_ai.agent.name"].startswith("coder-")
        assert attrs["otel_sse.agent.status"] == "busy" and "otel_sse.task.id" in attrs
    for attrs in named("create_agent "):
        assert attrs["otel_sse.agent.type"] == "coder"
    chats = named("chat ")
    assert len(chats) == N_TASKS
    for attrs in chats:
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "anthropic"
        assert attrs["gen_ai.request.model"] in ("model-0", "model-1")
        assert attrs["gen_ai.request.temperature"] == 0.2
        assert attrs["gen_ai.request.max_tokens"] == 64
        assert attrs["otel_sse.llm.request_id"].startswith("req-")
        assert attrs["otel_sse.task.id"].startswith("task-")
        assert attrs["otel_sse.agent.id"] in AGENTS
        assert attrs["gen_ai.request.stream"] is True  # tokens arrived
        assert json.loads(attrs["gen_ai.input.messages"])[0]["parts"][0]["type"] == "text"
        if "error.type" in attrs:
            assert attrs["gen_ai.response.finish_reasons"] == ["error"]
        else:
            assert attrs["gen_ai.usage.input_tokens"] >= 10
            assert attrs["gen_ai.usage.output_tokens"] >= 5
            assert attrs["otel_sse.llm.duration_ms"] == 12
            output = json.loads(attrs["gen_ai.output.messages"])
            assert output[0]["parts"][0] == {"type": "text", "content": "done"}
            assert "finish_reason" not in output[0]
    for attrs in named("execute_tool "):
        assert attrs["gen_ai.tool.name"] == "search" and attrs["gen_ai.tool.call.id"]
        assert attrs["gen_ai.tool.call.arguments"] == '{"q": "x"}'
        assert attrs["otel_sse.llm.tool.execution_time_ms"] == 3
    progress = [r["attributes"] for r in logs if r["event_name"] == "otel_sse.task.progress"]
    assert progress and all(isinstance(a["otel_sse.task.progress.percentage"], int)
                            for a in progress)
    output = [r for r in logs if r["event_name"] == "otel_sse.agent.output.stdout"]
    assert output and all(r["body"].startswith("working on ") for r in output)
    assert any(t == "task:completed" for t, _ in live)
