"""Emitters against a list sink: every contract event, exact keys, state API, listeners,
throttling, nesting, content capture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sse.emitters import AgentStatus, AgentStream, LLMStream, LogLevel, TaskStatus, TaskStream
from otel_sse.telemetry import Telemetry, configure
from tests.test_bridge_support import KEYS, ListSink, check_event, settle


@pytest.fixture
async def sink() -> ListSink:
    return ListSink()


@pytest.fixture
async def tel(sink: ListSink) -> AsyncIterator[Telemetry]:
    handle = configure(service_name="emitters", server=sink, set_global=False)
    yield handle
    handle.shutdown()


def _exported(tel: Telemetry) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    tel.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_every_contract_event_with_exact_keys(sink: ListSink, tel: Telemetry) -> None:
    tasks = TaskStream(sink, telemetry=tel, progress_update_interval=0)
    agents = AgentStream(sink, telemetry=tel, metrics_update_interval=0)
    llm = LLMStream(sink, telemetry=tel)
    for emitter in (tasks, agents, llm):
        emitter.start()
    agents.emit_agent_spawned("a", name="coder", type="coder")
    agents.emit_agent_started("a", "t")
    agents.emit_agent_paused("a")
    tasks.emit_task_created("t", name="n", description="d", priority="high", type="code",
                            agent_id="a", dependencies=["x"])
    tasks.emit_task_queued("t")
    tasks.emit_task_assigned("t", "a")
    tasks.emit_task_started("t")
    tasks.emit_progress("t", percentage=5, current_step="s", total_steps=2,
                        current_step_number=1, estimated_time_remaining=10)
    tasks.emit_intermediate_result("t", data={"p": 1}, type="partial", sequence=1, is_final=False)
    tasks.emit_metrics("t", {"executionTime": 3, "cpu_usage": 4, "token_count": 5})
    llm.emit_request_started("r", provider="openai", model="gpt", task_id="t", agent_id="a",
                             system_prompt="sys", messages=[{"role": "user", "content": "q"}],
                             parameters={"topP": 0.5, "stop_sequences": ["\n"]},
                             tools=[{"name": "f", "description": "g"}])
    llm.emit_token("r", "a", 0)
    llm.emit_token("r", "b", 1, is_final=True, finish_reason="stop")
    llm.emit_tool_call("r", tool_call_id="c", tool_name="f", arguments="{", is_complete=False)
    llm.emit_tool_call("r", tool_call_id="c", tool_name="f", arguments="{}", is_complete=True)
    llm.emit_tool_result("r", tool_call_id="c", tool_name="f", result=1, execution_time=2,
                         error="bad")
    llm.emit_usage("r", prompt_tokens=1, completion_tokens=2, total_tokens=3, cost=0.1,
                   cost_breakdown={"prompt_cost": 0.05, "completion_cost": 0.05})
    llm.emit_request_error("r", "slow", error_code="429", error_type="rate_limit",
                           will_retry=True, retry_attempt=1)
    llm.emit_request_completed("r", response="ab", usage={"promptTokens": 1,
                               "completionTokens": 2, "totalTokens": 3}, duration=5,
                               tool_calls=[{"tool_call_id": "c", "tool_name": "f",
                                            "arguments": "{}", "is_complete": True}])
    llm.emit_request_started("r2", provider="openai", model="gpt", messages=[])
    llm.emit_request_error("r2", "boom", error_type="server_error")
    tasks.emit_task_completed("t", result={"ok": True})
    for name in ("t2", "t3"):
        tasks.emit_task_created(name)
    tasks.emit_task_failed("t2", "broken")
    tasks.emit_task_cancelled("t3")
    agents.emit_output("a", "stdout", "out")
    agents.emit_output("a", "stderr", "err")
    for level in LogLevel:
        agents.emit_log("a", level, f"{level.value} message", {"k": 1})
    agents.emit_metrics("a", {"tasks_completed": 1})
    agents.emit_health("a", healthy=False, score=40, issues=["slow"],
                       last_check=datetime(2026, 1, 1, tzinfo=UTC))
    agents.emit_agent_error("a", "crashed")
    agents.emit_agent_stopped("a")
    # A foreign span and a foreign log record: the generic events.
    with tel.tracer_provider.get_tracer("foreign").start_as_current_span("http GET"):
        tel.logger_provider.get_logger("foreign").emit(body="hello", severity_text="INFO")
    await settle()

    seen = set(sink.types())
    assert seen == set(KEYS), sorted(set(KEYS) - seen)
    for event_type, data in sink.events:
        check_event(event_type, data)
    health = sink.of("agent:health")[0]["health"]
    assert health["lastCheck"] == "2026-01-01T00:00:00.000Z"
    assert sink.of("task:metrics")[0]["metrics"] == {"executionTime": 3, "cpuUsage": 4,
                                                       "tokenCount": 5}
    assert sink.of("llm:usage")[0]["usage"]["costBreakdown"] == {"promptCost": 0.05,
                                                                 "completionCost": 0.05}
    log = sink.of("log")[0]
    assert log["body"] == "hello" and log["severity"] == "INFO" and "spanId" in log
    assert sink.of("task:failed")[0]["error"] == "broken"
    assert [d["level"] for d in sink.of("agent:log:fatal")] == ["fatal"]


async def test_state_api_and_listeners(sink: ListSink, tel: Telemetry) -> None:
    tasks = TaskStream(sink, telemetry=tel, progress_update_interval=0)
    agents = AgentStream(sink, telemetry=tel, output_buffer_size=2)
    llm = LLMStream(sink, telemetry=tel, token_buffer_size=3)
    got: list[str] = []
    tasks.on("task_created", lambda d: got.append(d["taskId"]))
    tasks.on("task_progress", lambda d: got.append(f"{d['percentage']}%"))
    agents.on("agent_output", lambda d: got.append(d["data"]))
    llm.on("token", lambda d: got.append(d["token"]))
    tasks.emit_task_created("t", name="x")
    tasks.emit_progress("t", percentage=50, current_step="half")
    assert tasks.get_task_state("t")["status"] == TaskStatus.PENDING  # type: ignore[index]
    assert len(tasks.get_all_task_states()) == 1
    for line in ("1", "2", "3"):
        agents.emit_output("a", "stdout", line)
    assert agents.get_output_buffer("a") == ["2", "3"]
    agents.emit_agent_spawned("b")
    assert agents.get_agent_state("b")["status"] == AgentStatus.IDLE  # type: ignore[index]
    llm.emit_request_started("r", provider="p", model="m", messages=[])
    for i, tok in enumerate("abcd"):
        llm.emit_token("r", tok, i)
    assert llm.get_token_buffer("r") == ["b", "c", "d"]
    assert llm.get_full_response("r") == "bcd"
    assert llm.get_request_state("r")["model"] == "m"  # type: ignore[index]
    assert got == ["t", "50%", "1", "2", "3", "a", "b", "c", "d"]
    tasks.clear_task_state("t")
    agents.clear_agent_state("a")
    llm.clear_request_state("r")
    assert tasks.get_task_state("t") is None and agents.get_output_buffer("a") == []
    assert llm.get_request_state("r") is None
    with pytest.raises(TypeError):
        tasks.emit_task_created("t", colour="blue")
    tasks.stop()
    agents.stop()
    llm.stop()


async def test_progress_is_coalesced_on_the_trailing_edge(sink: ListSink, tel: Telemetry) -> None:
    tasks = TaskStream(sink, telemetry=tel, progress_update_interval=0.2)
    tasks.emit_task_created("t")
    for pct in range(0, 60, 10):  # 0 goes at once, 10..50 coalesce into 50
        tasks.emit_progress("t", percentage=pct, current_step=str(pct))
    await settle()
    assert [d["progress"]["percentage"] for d in sink.of("task:progress")] == [0]
    await asyncio.sleep(0.3)
    assert [d["progress"]["percentage"] for d in sink.of("task:progress")] == [0, 50]
    await asyncio.sleep(0.25)  # a quiet interval: the next one goes at once
    tasks.emit_progress("t", percentage=70, current_step="70")
    tasks.emit_progress("t", percentage=100, current_step="done")
    tasks.emit_task_completed("t")  # flushes the pending 100 % before completing
    await settle()
    assert [d["progress"]["percentage"] for d in sink.of("task:progress")] == [0, 50, 70, 100]
    order = [t for t in sink.types() if t in ("task:progress", "task:completed")]
    assert order[-2:] == ["task:progress", "task:completed"]


async def test_agent_metrics_throttle_delivers_last_value(sink: ListSink, tel: Telemetry) -> None:
    agents = AgentStream(sink, telemetry=tel, metrics_update_interval=0.1)
    for n in range(1, 6):
        agents.emit_metrics("a", tasks_completed=n)
    await asyncio.sleep(0.25)
    assert [d["metrics"]["tasksCompleted"] for d in sink.of("agent:metrics")] == [1, 5]


async def test_nesting_agent_task_llm_tool(sink: ListSink, tel: Telemetry) -> None:
    exporter = _exported(tel)
    agents = AgentStream(sink, telemetry=tel)
    tasks = TaskStream(sink, telemetry=tel)
    llm = LLMStream(sink, telemetry=tel)
    agents.emit_agent_spawned("a", name="planner")
    agents.emit_agent_started("a", "t")

    def other_thread() -> None:  # explicit ids link spans across threads
        tasks.emit_task_created("t", name="plan", agent_id="a")
        llm.emit_request_started("r", provider="p", model="m", task_id="t", messages=[])
        llm.emit_tool_call("r", tool_call_id="c", tool_name="grep", arguments="{}",
                           is_complete=True)
        llm.emit_tool_result("r", tool_call_id="c", tool_name="grep", result=[],
                             execution_time=1)
        llm.emit_request_completed("r", response="", duration=1)
        tasks.emit_task_completed("t")

    await asyncio.to_thread(other_thread)
    agents.emit_agent_stopped("a")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    agent, task = spans["invoke_agent planner"], spans["task plan"]
    chat, tool = spans["chat m"], spans["execute_tool grep"]
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"  # type: ignore[index]
    assert agent.attributes["otel_sse.agent.id"] == "a"  # type: ignore[index]
    # An in-process instance id is not the conventions' stable gen_ai.agent.id.
    assert "gen_ai.agent.id" not in agent.attributes  # type: ignore[operator]
    assert task.parent.span_id == agent.context.span_id  # type: ignore[union-attr]
    assert chat.parent.span_id == task.context.span_id  # type: ignore[union-attr]
    assert tool.parent.span_id == chat.context.span_id  # type: ignore[union-attr]
    assert len({s.context.trace_id for s in (agent, task, chat, tool)}) == 1
    await settle()
    tool_event = sink.of("llm:tool:result")[0]
    assert tool_event["parentSpanId"] == f"{chat.context.span_id:016x}"


@pytest.mark.parametrize("capture", [False, True, "SPAN_ONLY"])
async def test_content_capture_switch(sink: ListSink, capture: bool | str) -> None:
    tel = configure(server=sink, set_global=False, capture_content=capture)
    try:
        exporter = _exported(tel)
        llm = LLMStream(sink, telemetry=tel)
        llm.emit_request_started("r", provider="p", model="m", system_prompt="secret prompt",
                                 messages=[{"role": "user", "content": "secret question"}])
        llm.emit_token("r", "secret", 0)
        llm.emit_tool_call("r", tool_call_id="c", tool_name="t", arguments="secret args",
                           is_complete=True)
        llm.emit_tool_result("r", tool_call_id="c", tool_name="t", result="secret result",
                             execution_time=1)
        llm.emit_request_completed("r", response="secret answer", duration=1)
        exported = json.dumps([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
        assert ("secret" in exported) is bool(capture)
        if capture:
            assert "gen_ai.input.messages" in exported and "gen_ai.output.messages" in exported
        await settle()
        # The live stream carries the content either way.
        assert sink.of("llm:request:started")[0]["messages"][0]["content"] == "secret question"
        assert sink.of("llm:request:started")[0]["systemPrompt"] == "secret prompt"
        assert sink.of("llm:token")[0]["token"] == "secret"
        assert sink.of("llm:tool:call")[0]["arguments"] == "secret args"
        assert sink.of("llm:tool:result")[0]["result"] == "secret result"
        assert sink.of("llm:request:completed")[0]["response"] == "secret answer"
    finally:
        tel.shutdown()


async def test_content_env_switch_and_redaction(sink: ListSink,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    tel = configure(server=sink, set_global=False)
    try:
        exporter = _exported(tel)
        llm = LLMStream(sink, telemetry=tel, redact_content=True)
        llm.emit_request_started("r", provider="p", model="m",
                                 messages=[{"role": "user", "content": "secret"}])
        llm.emit_token("r", "secret", 0)
        llm.emit_request_completed("r", response="secret", duration=1)
        assert "secret" in json.dumps([dict(s.attributes or {})
                                       for s in exporter.get_finished_spans()])
        await settle()
        live = json.dumps([d for t, d in sink.events if t.startswith("llm:")])
        assert "secret" not in live and "[redacted]" in live
        assert sink.of("llm:request:started")[0]["messages"][0]["role"] == "user"
    finally:
        tel.shutdown()


async def test_exported_tokens_option(sink: ListSink) -> None:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    tel = configure(server=sink, set_global=False, export_tokens=True)
    try:
        logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        tel.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
        llm = LLMStream(sink, telemetry=tel)
        llm.emit_request_started("r", provider="p", model="m", messages=[])
        llm.emit_token("r", "hi", 0)
        records = [r for r in logs.get_finished_logs()
                   if r.log_record.event_name == "otel_sse.llm.token"]
        assert len(records) == 1 and records[0].log_record.body is None
        exported = dict(records[0].log_record.attributes or {})
        assert "hi" not in str(exported)  # content capture is off
        assert exported["otel_sse.llm.token.index"] == 0
        assert exported["otel_sse.llm.request_id"] == "r"
        await settle()
        assert sink.of("llm:token")[0]["token"] == "hi"
    finally:
        tel.shutdown()


async def test_without_configure_events_have_real_ids(sink: ListSink) -> None:
    tasks = TaskStream(sink)
    tasks.emit_task_created("solo", name="alone")
    tasks.emit_task_completed("solo")
    await settle()
    for event_type, data in sink.events:
        check_event(event_type, data)
    assert {"task:created", "task:completed", "span:started", "span:ended"} <= set(sink.types())


async def test_tool_runs_outside_an_open_request_and_error_objects(sink: ListSink,
                                                                   tel: Telemetry) -> None:
    exporter = _exported(tel)
    llm = LLMStream(sink, telemetry=tel)
    tasks = TaskStream(sink, telemetry=tel)
    llm.emit_request_started("r", provider="openai", model="gpt", messages=[])
    llm.emit_request_completed("r", response="", duration=1)
    # After its request completed a call without an origin is ignored, as before ...
    llm.emit_tool_call("r", tool_call_id="lost", tool_name="f", arguments="{}")
    # ... and one that names where it comes from is recorded.
    llm.emit_tool_call("r", tool_call_id="c", tool_name="f", arguments="{}",
                       provider="openai", model="gpt", task_id="t")
    llm.emit_tool_result("r", tool_call_id="c", tool_name="f", result=None,
                         provider="openai", model="gpt", task_id="t",
                         error={"message": "no such file", "name": "FileNotFoundError"})
    tasks.emit_task_created("t2")
    tasks.emit_task_failed("t2", {"message": "bad input", "name": "ValueError"})
    await settle()
    calls = sink.of("llm:tool:call")
    assert [c["toolCallId"] for c in calls] == ["c"]
    assert calls[0]["requestId"] == "r" and calls[0]["taskId"] == "t"
    result = sink.of("llm:tool:result")[0]
    assert result["error"] == {"message": "no such file", "name": "FileNotFoundError"}
    assert sink.of("task:failed")[0]["error"] == {"message": "bad input", "name": "ValueError"}
    for event_type, data in sink.events:
        check_event(event_type, data)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    tool, task = spans["execute_tool f"], spans["task"]
    assert tool.attributes["error.type"] == "FileNotFoundError"  # type: ignore[index]
    assert tool.status.description == "no such file"
    assert task.attributes["error.type"] == "ValueError"  # type: ignore[index]
    assert task.status.description == "bad input"
