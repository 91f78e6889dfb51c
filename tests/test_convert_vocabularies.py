"""Spans from third-party instrumentations become typed contract events.

Each span is made by the real SDK with the attributes the named instrumentation
sets, where it sets them (at start, or only at the end), and reaches our real
span processor; every event must pass the contract's schema. Attribute names
follow the instrumentations' sources: opentelemetry-util-genai (used by
opentelemetry-instrumentation-openai-v2), its legacy mode (``gen_ai.system``,
deprecated usage names), Arize OpenInference's semantic conventions and its
OpenAI Agents processor, and Traceloop OpenLLMetry's semconv-ai and LangChain
callback handler.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context

from otel_sse.processors import SSEBridge, SSESpanProcessor
from tests.test_bridge_support import ListSink, check_event, settle

Events = list[tuple[str, dict[str, Any]]]


class Spans:
    """A real tracer whose spans reach our processor; ``run`` returns one span's events."""

    def __init__(self, sink: ListSink) -> None:
        self.sink = sink
        self.provider = TracerProvider(resource=Resource.create({"service.name": "app"}),
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(SSESpanProcessor(SSEBridge(sink)))
        self.tracer: Tracer = self.provider.get_tracer("instrumentation")

    async def run(self, name: str, start: dict[str, Any], end: dict[str, Any] | None = None,
                  *, kind: SpanKind = SpanKind.INTERNAL, error: str | None = None,
                  parent: Any = None) -> Events:
        span = self.tracer.start_span(name, kind=kind, attributes=start,
                                      context=set_span_in_context(parent) if parent else None)
        if end:
            span.set_attributes(end)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()
        await settle()
        span_id = f"{span.get_span_context().span_id:016x}"
        events = [(t, d) for t, d in self.sink.events if d.get("spanId") == span_id]
        for event_type, data in events:
            check_event(event_type, data)
        return [(t, d) for t, d in events if not t.startswith("span:")]


@pytest.fixture
async def spans() -> AsyncIterator[Spans]:
    made = Spans(ListSink())
    yield made
    made.provider.shutdown()


def _types(events: Events) -> list[str]:
    return [t for t, _ in events]


def _of(events: Events, event_type: str) -> dict[str, Any]:
    return next(d for t, d in events if t == event_type)


# -- GenAI semantic conventions ---------------------------------------------------------------
OPENAI_START = {  # util-genai's InferenceInvocation at start
    "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.provider.name": "openai", "server.address": "127.0.0.1", "server.port": 8080}
OPENAI_END = {  # ... and what it sets when the response is in (content capture on)
    "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 100,
    "gen_ai.request.top_p": 0.9, "gen_ai.request.stop_sequences": ("END",),
    "gen_ai.request.seed": 7, "gen_ai.response.finish_reasons": ("tool_call",),
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.usage.input_tokens": 21, "gen_ai.usage.output_tokens": 9,
    "gen_ai.usage.cache_read.input_tokens": 4,
    "gen_ai.input.messages": json.dumps([
        {"role": "system", "parts": [{"type": "text", "content": "You help."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]),
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
        {"type": "text", "content": "Let me check."},
        {"type": "tool_call", "id": "call_1", "name": "get_weather",
         "arguments": {"city": "Paris"}}], "finish_reason": "tool_call"}]),
}


async def test_genai_chat_span_gives_request_started_usage_and_completed(spans: Spans) -> None:
    events = await spans.run("chat gpt-4o-mini", OPENAI_START, OPENAI_END, kind=SpanKind.CLIENT)
    assert _types(events) == ["llm:request:started", "llm:usage", "llm:request:completed"]
    started, completed = _of(events, "llm:request:started"), _of(events, "llm:request:completed")
    # What the instrumentation knows at the start: provider and model, no messages yet.
    assert started["provider"] == "openai" and started["model"] == "gpt-4o-mini"
    assert started["messages"] == [] and started["requestId"] == started["spanId"]
    assert completed["requestId"] == started["requestId"]
    assert completed["response"] == "Let me check."
    assert completed["usage"] == {"promptTokens": 21, "completionTokens": 9, "totalTokens": 30}
    assert _of(events, "llm:usage")["usage"] == completed["usage"]
    assert completed["toolCalls"] == [{"toolCallId": "call_1", "toolName": "get_weather",
                                       "arguments": '{"city":"Paris"}'}]
    assert completed["duration"] >= 0


async def test_genai_attributes_given_at_start_make_a_full_request_started(spans: Spans
                                                                          ) -> None:
    events = await spans.run("chat gpt-4o-mini", {**OPENAI_START, **OPENAI_END},
                             kind=SpanKind.CLIENT)
    started = _of(events, "llm:request:started")
    assert started["messages"] == [{"role": "system", "content": "You help."},
                                   {"role": "user", "content": "Weather in Paris?"}]
    assert started["parameters"] == {"temperature": 0.2, "maxTokens": 100, "topP": 0.9,
                                     "stopSequences": ["END"]}


async def test_genai_failed_request_gives_request_error(spans: Spans) -> None:
    events = await spans.run("chat gpt-4o-mini", OPENAI_START,
                             {"error.type": "APIConnectionError"}, kind=SpanKind.CLIENT,
                             error="Connection error.")
    assert _types(events) == ["llm:request:started", "llm:request:error"]
    failed = _of(events, "llm:request:error")
    assert failed["error"] == "Connection error." and failed["errorType"] == "APIConnectionError"


@pytest.mark.parametrize("operation", ["text_completion", "generate_content", "embeddings"])
async def test_other_inference_operations_are_requests(spans: Spans, operation: str) -> None:
    events = await spans.run(f"{operation} m", {**OPENAI_START, "gen_ai.operation.name":
                                                 operation}, {"gen_ai.usage.input_tokens": 3},
                             kind=SpanKind.CLIENT)
    assert _types(events) == ["llm:request:started", "llm:usage", "llm:request:completed"]
    assert _of(events, "llm:request:completed")["usage"] == {
        "promptTokens": 3, "completionTokens": 0, "totalTokens": 3}


async def test_deprecated_genai_names_are_understood(spans: Spans) -> None:
    legacy = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
              "gen_ai.request.model": "gpt-3.5-turbo"}
    events = await spans.run("chat gpt-3.5-turbo", legacy, {
        "gen_ai.usage.prompt_tokens": 12, "gen_ai.usage.completion_tokens": 4},
        kind=SpanKind.CLIENT)
    completed = _of(events, "llm:request:completed")
    assert completed["provider"] == "openai"
    assert completed["usage"] == {"promptTokens": 12, "completionTokens": 4, "totalTokens": 16}


async def test_genai_tool_span_gives_tool_call_and_result(spans: Spans) -> None:
    events = await spans.run("execute_tool get_weather", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call_1", "gen_ai.tool.type": "function",
        "gen_ai.tool.call.arguments": '{"city": "Paris"}'},
        {"gen_ai.tool.call.result": '{"temp": 21}'})
    assert _types(events) == ["llm:tool:call", "llm:tool:result"]
    call, result = _of(events, "llm:tool:call"), _of(events, "llm:tool:result")
    assert (call["toolCallId"], call["toolName"]) == ("call_1", "get_weather")
    assert call["arguments"] == '{"city": "Paris"}' and call["isComplete"] is True
    assert result["result"] == {"temp": 21} and result["executionTime"] >= 0
    failed = await spans.run("execute_tool get_weather", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
        error="timeout")
    assert _of(failed, "llm:tool:result")["error"] == "timeout"
    # With an error.type, the contract's error object names it.
    typed = await spans.run("execute_tool get_weather", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
        {"error.type": "TimeoutError"}, error="timeout")
    assert _of(typed, "llm:tool:result")["error"] == {"message": "timeout",
                                                      "name": "TimeoutError"}


async def test_genai_agent_spans_give_agent_events(spans: Spans) -> None:
    created = await spans.run("create_agent researcher", {
        "gen_ai.operation.name": "create_agent", "gen_ai.agent.name": "researcher",
        "gen_ai.agent.id": "asst_123", "gen_ai.provider.name": "openai"},
        kind=SpanKind.CLIENT)
    assert created == [("agent:spawned", {**created[0][1], "agentId": "asst_123",
                                          "status": "idle", "name": "researcher"})]
    parent = spans.tracer.start_span("invoke_workflow plan")
    invoked = await spans.run("invoke_agent researcher", {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"},
        parent=parent)
    assert _types(invoked) == ["agent:started", "agent:stopped"]
    started = _of(invoked, "agent:started")
    assert started["agentId"] == "researcher" and started["status"] == "busy"
    assert started["currentTaskId"] == f"{parent.get_span_context().span_id:016x}"
    failed = await spans.run("invoke_agent researcher", {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"},
        error="max turns exceeded")
    assert _of(failed, "agent:error")["error"] == "max turns exceeded"
    parent.end()


async def test_genai_workflow_span_gives_task_events(spans: Spans) -> None:
    events = await spans.run("invoke_workflow triage", {
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "triage"},
        {"gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
            {"type": "text", "content": "routed"}]}])})
    assert _types(events) == ["task:created", "task:started", "task:completed"]
    assert _of(events, "task:created")["name"] == "triage"
    assert _of(events, "task:completed")["result"] == "routed"
    assert len({d["taskId"] for _, d in events}) == 1


# -- OpenInference ----------------------------------------------------------------------------
OI_LLM_END = {  # what OpenInference's OpenAI Agents processor sets when a generation ends
    "llm.model_name": "gpt-4o", "llm.provider": "openai",
    "llm.invocation_parameters": json.dumps({"temperature": 0.3, "max_tokens": 50}),
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "Be brief.",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.contents.0.message_content.type": "text",
    "llm.input_messages.1.message.contents.0.message_content.text": "Hi",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.content": "Hello!",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_9",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"q": 1}',
    "llm.token_count.prompt": 11, "llm.token_count.completion": 3,
    "llm.token_count.total": 14, "llm.token_count.prompt_details.cache_read": 2,
    "llm.tools.0.tool.json_schema": json.dumps({"type": "function",
                                                "function": {"name": "lookup"}}),
}


async def test_openinference_llm_span(spans: Spans) -> None:
    start = {"openinference.span.kind": "LLM", "llm.system": "openai"}
    events = await spans.run("response", start, OI_LLM_END)
    assert _types(events) == ["llm:request:started", "llm:usage", "llm:request:completed"]
    assert _of(events, "llm:request:started")["provider"] == "openai"
    completed = _of(events, "llm:request:completed")
    assert completed["model"] == "gpt-4o" and completed["response"] == "Hello!"
    assert completed["usage"] == {"promptTokens": 11, "completionTokens": 3, "totalTokens": 14}
    assert completed["toolCalls"] == [{"toolCallId": "call_9", "toolName": "lookup",
                                       "arguments": '{"q": 1}'}]
    full = await spans.run("response", {**start, **OI_LLM_END})
    started = _of(full, "llm:request:started")
    assert started["messages"] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hi"}]
    assert started["parameters"] == {"temperature": 0.3, "maxTokens": 50}
    assert started["tools"] == [{"type": "function", "function": {"name": "lookup"}}]


async def test_openinference_tool_agent_and_chain_spans(spans: Spans) -> None:
    tool = await spans.run("lookup", {"openinference.span.kind": "TOOL"}, {
        "tool.name": "lookup", "input.value": '{"q": 1}', "input.mime_type": "application/json",
        "output.value": '{"hits": 3}', "output.mime_type": "application/json"})
    assert _types(tool) == ["llm:tool:call", "llm:tool:result"]
    assert _of(tool, "llm:tool:result")["toolName"] == "lookup"
    assert _of(tool, "llm:tool:result")["result"] == {"hits": 3}
    agent = await spans.run("Assistant", {"openinference.span.kind": "AGENT",
                                          "llm.system": "openai"})
    assert _types(agent) == ["agent:started", "agent:stopped"]
    assert _of(agent, "agent:started")["agentId"] == "Assistant"
    named = await spans.run("agent run", {"openinference.span.kind": "AGENT",
                                          "agent.name": "planner"})
    assert _of(named, "agent:started")["name"] == "planner"
    chain = await spans.run("RunnableSequence", {"openinference.span.kind": "CHAIN"},
                            {"output.value": "final answer"})
    assert _types(chain) == ["task:created", "task:started", "task:completed"]
    assert _of(chain, "task:completed")["result"] == "final answer"


# -- OpenLLMetry ------------------------------------------------------------------------------
async def test_openllmetry_workflow_task_agent_and_tool_spans(spans: Spans) -> None:
    workflow = await spans.run("research.workflow", {
        "traceloop.span.kind": "workflow", "traceloop.entity.name": "research",
        "traceloop.workflow.name": "research"},
        {"traceloop.entity.output": json.dumps({"outputs": "done"})})
    assert _types(workflow) == ["task:created", "task:started", "task:completed"]
    assert _of(workflow, "task:completed")["result"] == {"outputs": "done"}
    task = await spans.run("summarize.task", {
        "traceloop.span.kind": "task", "traceloop.entity.name": "summarize",
        "traceloop.workflow.name": "research"}, error="bad input")
    assert _of(task, "task:failed")["name"] == "summarize"
    assert _of(task, "task:failed")["error"] == "bad input"
    agent = await spans.run("researcher.agent", {
        "traceloop.span.kind": "agent", "traceloop.entity.name": "researcher"})
    assert _types(agent) == ["agent:started", "agent:stopped"]
    assert _of(agent, "agent:started")["agentId"] == "researcher"
    tool = await spans.run("search.tool", {
        "traceloop.span.kind": "tool", "traceloop.entity.name": "search",
        "traceloop.entity.input": json.dumps({"inputs": {"q": "otel"}})},
        {"traceloop.entity.output": json.dumps({"output": ["a", "b"]})})
    call, result = _of(tool, "llm:tool:call"), _of(tool, "llm:tool:result")
    # The callback's envelope is opened: the tool's own arguments.
    assert call["toolName"] == "search" and json.loads(call["arguments"]) == {"q": "otel"}
    assert result["result"] == ["a", "b"]  # the callback's envelope opened


async def test_openllmetry_llm_span(spans: Spans) -> None:
    events = await spans.run("ChatOpenAI.chat", {
        "llm.request.type": "chat", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.request.temperature": 0.1,
        "llm.request.functions.0.name": "search",
        "llm.request.functions.0.description": "web search",
        "llm.request.functions.0.parameters": json.dumps({"type": "object"}),
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Find otel"}, {
        "gen_ai.response.model": "gpt-4o-2024", "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Found it", "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.completion.0.tool_calls.0.id": "c1",
        "gen_ai.completion.0.tool_calls.0.name": "search",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"q": "otel"}',
        "gen_ai.usage.prompt_tokens": 8, "gen_ai.usage.completion_tokens": 2,
        "llm.usage.total_tokens": 10}, kind=SpanKind.CLIENT)
    started, completed = _of(events, "llm:request:started"), _of(events, "llm:request:completed")
    assert started["provider"] == "openai" and started["model"] == "gpt-4o"
    assert started["messages"] == [{"role": "user", "content": "Find otel"}]
    assert started["parameters"] == {"temperature": 0.1}
    assert started["tools"] == [{"name": "search", "description": "web search",
                                 "parameters": {"type": "object"}}]
    assert completed["response"] == "Found it"
    assert completed["usage"] == {"promptTokens": 8, "completionTokens": 2, "totalTokens": 10}
    assert completed["toolCalls"][0]["toolName"] == "search"


async def test_spans_in_no_vocabulary_stay_generic(spans: Spans) -> None:
    assert await spans.run("GET /items", {"http.route": "/items"}) == []
    assert await spans.run("retrieval docs", {"gen_ai.operation.name": "retrieval"}) == []


# -- attributes given after the start (OpenLLMetry) ---------------------------------------------
_TL_TOOL = {
    "traceloop.span.kind": "tool", "traceloop.entity.name": "get_weather",
    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
    "traceloop.entity.input": json.dumps({
        "input_str": "{'city': 'Paris'}", "tags": [], "metadata": {},
        "inputs": {"city": "Paris"}, "kwargs": {"tool_call_id": "call_7"}}),
}
_TL_TOOL_END = {"traceloop.entity.output": json.dumps({"output": {
    "lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "ToolMessage"],
    "kwargs": {"content": "sunny", "tool_call_id": "call_7"}}, "kwargs": {}})}


async def test_attributes_set_right_after_the_start_still_give_start_events(spans: Spans
                                                                           ) -> None:
    span = spans.tracer.start_span("execute_tool get_weather")
    span.set_attributes(_TL_TOOL)  # as OpenLLMetry does, once start_span returned
    await settle()
    # The span is still open: its start was read with the attributes it has now.
    assert [t for t, _ in spans.sink.events] == ["llm:tool:call", "span:started"]
    call = spans.sink.of("llm:tool:call")[0]
    assert call["toolCallId"] == "call_7" and call["toolName"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}  # the envelope opened
    span.set_attributes(_TL_TOOL_END)
    span.end()
    await settle()
    assert [t for t, _ in spans.sink.events if not t.startswith("span:")] == [
        "llm:tool:call", "llm:tool:result"]
    assert spans.sink.of("llm:tool:result")[0]["result"] == "sunny"
    for event_type, data in spans.sink.events:
        check_event(event_type, data)


async def test_a_span_classified_only_at_its_end_gives_its_start_events_first(spans: Spans
                                                                             ) -> None:
    def short_lived() -> None:
        span = spans.tracer.start_span("weather_agent.workflow")
        span.set_attributes({"traceloop.span.kind": "workflow",
                             "traceloop.entity.name": "weather_agent"})
        span.end()  # gone before the stream looks at its start

    short_lived()
    await settle()
    events = [(t, d) for t, d in spans.sink.events if not t.startswith("span:")]
    assert [t for t, _ in events] == ["task:created", "task:started", "task:completed"]
    assert {d["name"] for _, d in events} == {"weather_agent"}
    created, completed = events[0][1], events[2][1]
    assert created["timestamp"] <= completed["timestamp"]
    for event_type, data in spans.sink.events:
        check_event(event_type, data)


async def test_an_operation_the_conventions_do_not_name_falls_back_to_openllmetry(
        spans: Spans) -> None:
    events = await spans.run("execute_task model", {
        "gen_ai.operation.name": "execute_task", "traceloop.span.kind": "task",
        "traceloop.entity.name": "model"})
    assert _types(events) == ["task:created", "task:started", "task:completed"]
    assert _of(events, "task:created")["name"] == "model"
