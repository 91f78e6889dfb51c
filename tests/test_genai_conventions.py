"""Our spans and metrics against the GenAI semantic conventions' current text.

Span attributes: no transient ``gen_ai.agent.id``; ``"error"`` in
``gen_ai.response.finish_reasons`` on failure and no per-message
``finish_reason``; tool-call arguments as JSON; ``gen_ai.request.stream`` at
the start; response id/model, cache and reasoning token counts and the
conversation id passed through when given and never invented; an int
``gen_ai.request.top_k``. Metrics: the released v1.41 names by default, the
newest (``gen_ai.client.inference.*``, ``gen_ai.invocation.duration``,
``gen_ai.execute_tool.duration``) under
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``; utilization in
unit ``1``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sse.emitters import AgentStream, LLMStream
from otel_sse.telemetry import Telemetry, configure
from otel_sse.telemetry.instruments import GenAIConventions
from tests.test_bridge_support import ListSink, check_event, settle


@pytest.fixture
async def sink() -> ListSink:
    return ListSink()


@pytest.fixture
async def tel(sink: ListSink) -> AsyncIterator[Telemetry]:
    handle = configure(server=sink, set_global=False, capture_content="span_only")
    yield handle
    handle.shutdown()


@pytest.fixture
def exported(tel: Telemetry) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tel.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter


def _span(exporter: InMemorySpanExporter, prefix: str) -> dict[str, Any]:
    spans: list[ReadableSpan] = [s for s in exporter.get_finished_spans()
                                 if s.name.startswith(prefix)]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return dict(spans[0].attributes or {})


async def test_agent_spans_use_our_id_not_the_conventions_agent_id(
        sink: ListSink, tel: Telemetry, exported: InMemorySpanExporter) -> None:
    agents = AgentStream(sink, telemetry=tel)
    agents.emit_agent_spawned("worker-7f3a", name="researcher")
    agents.emit_agent_started("worker-7f3a", "t1")
    agents.emit_agent_stopped("worker-7f3a")
    for prefix in ("create_agent", "invoke_agent"):
        attributes = _span(exported, prefix)
        assert "gen_ai.agent.id" not in attributes
        assert attributes["otel_sse.agent.id"] == "worker-7f3a"
        assert attributes["gen_ai.agent.name"] == "researcher"


async def test_finish_reasons_get_error_on_failure_and_messages_no_finish_reason(
        sink: ListSink, tel: Telemetry, exported: InMemorySpanExporter) -> None:
    llm = LLMStream(sink, telemetry=tel)
    llm.emit_request_started("ok", provider="p", model="m", messages=[])
    llm.emit_token("ok", "hi", 0, is_final=True, finish_reason="stop")
    llm.emit_request_completed("ok", response="hi")
    llm.emit_request_started("bad", provider="p", model="n", messages=[])
    llm.emit_token("bad", "par", 0)
    llm.emit_request_error("bad", "stream cut", error_type="network")
    good, failed = _span(exported, "chat m"), _span(exported, "chat n")
    assert list(good["gen_ai.response.finish_reasons"]) == ["stop"]
    assert "finish_reason" not in json.loads(good["gen_ai.output.messages"])[0]
    assert list(failed["gen_ai.response.finish_reasons"]) == ["error"]
    assert failed["error.type"] == "network"


async def test_tool_call_arguments_are_json(sink: ListSink, tel: Telemetry,
                                            exported: InMemorySpanExporter) -> None:
    llm = LLMStream(sink, telemetry=tel)
    llm.emit_request_started("r", provider="p", model="m", messages=[])
    llm.emit_tool_call("r", tool_call_id="c", tool_name="search",
                       arguments={"q": "otel", "limit": 2}, is_complete=True)
    llm.emit_tool_result("r", tool_call_id="c", tool_name="search", result=["a"],
                         execution_time=1)
    llm.emit_request_completed("r", response="")
    arguments = _span(exported, "execute_tool")["gen_ai.tool.call.arguments"]
    assert json.loads(arguments) == {"q": "otel", "limit": 2}


async def test_stream_is_set_when_the_request_starts(sink: ListSink, tel: Telemetry,
                                                     exported: InMemorySpanExporter) -> None:
    llm = LLMStream(sink, telemetry=tel)
    llm.emit_request_started("s", provider="p", model="streamed", messages=[], stream=True)
    llm.emit_request_started("n", provider="p", model="whole", messages=[])
    llm.emit_request_started("t", provider="p", model="tokens", messages=[])
    llm.emit_token("t", "x", 0)
    for request_id in ("s", "n", "t"):
        llm.emit_request_completed(request_id, response="x")
    await settle()
    started = {d["name"]: d["attributes"] for d in sink.of("span:started")}
    assert started["chat streamed"]["gen_ai.request.stream"] is True
    assert "gen_ai.request.stream" not in started["chat whole"]
    assert "gen_ai.request.stream" not in _span(exported, "chat whole")
    # Not said at the start: the first token shows it, on the ended span.
    assert _span(exported, "chat tokens")["gen_ai.request.stream"] is True
    for event_type, data in sink.events:
        check_event(event_type, data)  # stream is telemetry only, not a payload field


async def test_provider_details_pass_through_when_given_and_are_never_invented(
        sink: ListSink, tel: Telemetry, exported: InMemorySpanExporter) -> None:
    llm = LLMStream(sink, telemetry=tel)
    llm.emit_request_started("given", provider="openai", model="gpt", messages=[],
                             conversation_id="conv_1",
                             parameters={"top_k": 40.0, "temperature": 0.5})
    llm.emit_usage("given", prompt_tokens=10, completion_tokens=4, total_tokens=14,
                   cache_read_input_tokens=6, cache_write_input_tokens=2,
                   reasoning_output_tokens=3)
    llm.emit_request_completed("given", response="ok", response_id="chatcmpl-9",
                               response_model="gpt-2025-01-01")
    llm.emit_request_started("bare", provider="openai", model="other", messages=[])
    llm.emit_request_completed("bare", response="ok", usage={"prompt_tokens": 1,
                                                              "completion_tokens": 1,
                                                              "total_tokens": 2})
    given, bare = _span(exported, "chat gpt"), _span(exported, "chat other")
    assert given["gen_ai.conversation.id"] == "conv_1"
    assert given["gen_ai.response.id"] == "chatcmpl-9"
    assert given["gen_ai.response.model"] == "gpt-2025-01-01"
    assert given["gen_ai.usage.cache_read.input_tokens"] == 6
    assert given["gen_ai.usage.cache_write.input_tokens"] == 2
    assert given["gen_ai.usage.reasoning.output_tokens"] == 3
    assert given["gen_ai.request.top_k"] == 40 and type(given["gen_ai.request.top_k"]) is int
    for key in ("gen_ai.conversation.id", "gen_ai.response.id", "gen_ai.response.model",
                "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_write.input_tokens",
                "gen_ai.usage.reasoning.output_tokens", "gen_ai.request.top_k"):
        assert key not in bare, key
    await settle()
    for event_type, data in sink.events:
        check_event(event_type, data)  # none of them leaks into a payload
    assert sink.of("llm:usage")[0]["usage"] == {"promptTokens": 10, "completionTokens": 4,
                                                "totalTokens": 14}


# -- metrics ----------------------------------------------------------------------------------
def _metrics(reader: InMemoryMetricReader) -> dict[str, tuple[str, list[Any]]]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, tuple[str, list[Any]]] = {}
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                out[metric.name] = (metric.unit or "", list(metric.data.data_points))
    return out


async def _workload(sink: ListSink, monkeypatch: pytest.MonkeyPatch, opt_in: str | None
                    ) -> dict[str, tuple[str, list[Any]]]:
    if opt_in is None:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    reader = InMemoryMetricReader()
    tel = configure(server=sink, set_global=False, metric_readers=[reader])
    try:
        agents = AgentStream(sink, telemetry=tel, metrics_update_interval=0)
        llm = LLMStream(sink, telemetry=tel)
        agents.emit_agent_spawned("a", name="coder")
        agents.emit_agent_started("a", "t")
        agents.emit_metrics("a", cpu_usage=45, memory_usage=1024)
        llm.emit_request_started("r", provider="openai", model="gpt", agent_id="a",
                                 messages=[])
        llm.emit_token("r", "x", 0)
        llm.emit_tool_call("r", tool_call_id="c", tool_name="search", arguments="{}")
        llm.emit_tool_result("r", tool_call_id="c", tool_name="search", result=1,
                             execution_time=1)
        llm.emit_request_completed("r", response="x", usage={
            "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
            "cache_read_input_tokens": 5})
        llm.emit_request_started("e", provider="openai", model="gpt", messages=[])
        llm.emit_request_error("e", "boom", error_type="server_error")
        agents.emit_agent_stopped("a")
        return _metrics(reader)
    finally:
        tel.shutdown()


async def test_released_metric_names_by_default(sink: ListSink,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = await _workload(sink, monkeypatch, None)
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage",
            "gen_ai.client.operation.time_to_first_chunk"} <= set(metrics)
    assert not [name for name in metrics if name.startswith(("gen_ai.client.inference",
                                                             "gen_ai.invocation",
                                                             "gen_ai.execute_tool"))]
    usage = {p.attributes["gen_ai.token.type"]: p.sum
             for p in metrics["gen_ai.client.token.usage"][1]}
    assert usage == {"input": 7, "output": 3}
    errors = [p.attributes.get("error.type")
              for p in metrics["gen_ai.client.operation.duration"][1]]
    assert sorted(map(str, errors)) == ["None", "server_error"]
    unit, points = metrics["otel_sse.agent.cpu.utilization"]
    assert unit == "1" and points[0].value == pytest.approx(0.45)
    assert points[0].attributes == {"otel_sse.agent.id": "a"}


async def test_newest_metric_names_under_the_opt_in(sink: ListSink,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = await _workload(sink, monkeypatch, "http, gen_ai_latest_experimental")
    assert not {"gen_ai.client.operation.duration", "gen_ai.client.token.usage",
                "gen_ai.client.operation.time_to_first_chunk"} & set(metrics)
    durations = metrics["gen_ai.client.inference.duration"]
    assert durations[0] == "s" and len(durations[1]) == 2
    assert "gen_ai.client.inference.time_to_first_chunk" in metrics

    def counted(name: str) -> dict[str, int]:
        return {p.attributes["gen_ai.token.modality"]: p.value for p in metrics[name][1]}

    # The failed request had no usage: 0 with modality "unknown", as the conventions say.
    assert counted("gen_ai.client.inference.usage.input_tokens") == {"text": 7, "unknown": 0}
    assert counted("gen_ai.client.inference.usage.output_tokens") == {"text": 3, "unknown": 0}
    assert counted("gen_ai.client.inference.usage.cache_read.input_tokens") == {"text": 5}
    assert "gen_ai.client.inference.usage.reasoning.output_tokens" not in metrics  # not given
    assert [p.sum for p in metrics["gen_ai.client.inference.operation.input_tokens"][1]] == [7]
    tool = metrics["gen_ai.execute_tool.duration"][1][0]
    assert tool.attributes["gen_ai.tool.name"] == "search" and tool.count == 1
    invocation = metrics["gen_ai.invocation.duration"][1][0]
    assert invocation.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert invocation.attributes["gen_ai.agent.name"] == "coder"
    assert invocation.attributes["gen_ai.invocation.is_nested"] is False


def test_the_opt_in_is_read_from_the_environment() -> None:
    assert GenAIConventions.from_env({}).latest is False
    assert GenAIConventions.from_env({"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai"}).latest is False
    assert GenAIConventions.from_env(
        {"OTEL_SEMCONV_STABILITY_OPT_IN": "database,GEN_AI_LATEST_EXPERIMENTAL"}).latest
