"""Real agent frameworks end to end against the stub model, with their real
instrumentations, and what reaches a real SSE subscription: ``agent:*``, ``llm:*``
and tool events in the order the run made them, with the ids of the spans a
real OTLP receiver got.

- The OpenAI Agents SDK (``openai-agents``, Responses API, streamed) instrumented
  by OpenInference (``openinference-instrumentation-openai-agents``);
- a LangGraph agent on LangChain's ``ChatOpenAI`` (Chat Completions, streamed)
  instrumented by OpenLLMetry (``opentelemetry-instrumentation-langchain``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import openai
from pydantic import SecretStr

from otel_sse.demo.script import Script
from otel_sse.demo.stub_model import StubModelServer
from otel_sse.telemetry import Telemetry
from tests.instrument_rig import Frames, Rig, rig, seeds

SCRIPT = Script.tool_then_answer("get_weather", {"city": "Paris"}, "It is sunny in Paris.")
ANSWER = "It is sunny in Paris."


def _index(events: Frames, event_type: str, **match: Any) -> int:
    """The position of the first ``event_type`` event whose fields include ``match``."""
    for position, (kind, data) in enumerate(events):
        if kind == event_type and all(data.get(k) == v for k, v in match.items()):
            return position
    raise AssertionError(f"no {event_type} with {match} in {[t for t, _ in events]}")


async def _same_ids_as_exported(r: Rig, events: Frames) -> None:
    """Every event names a span the receiver got, in the same trace."""
    spans = await r.spans(len({d["spanId"] for _, d in events}))
    for event_type, data in events:
        span = spans.get(data["spanId"])
        assert span is not None, (event_type, data)
        assert (span["trace_id"], span["parent_span_id"]) == (data["traceId"],
                                                              data["parentSpanId"])


async def _run_agent(instrument: Callable[[Telemetry], Callable[[], None]],
                     run: Callable[[StubModelServer], Awaitable[Any]]
                     ) -> tuple[Any, Frames, StubModelServer]:
    """``run(stub)`` with the framework instrumented (``instrument(telemetry)`` returns
    what undoes it): its output, its contract events (checked against the spans the
    receiver got) and the stub, which kept the requests."""
    outputs: list[Any] = []
    async with StubModelServer(SCRIPT) as stub, rig() as r:
        undo = instrument(r.tel)

        async def body() -> None:
            outputs.append(await run(stub))

        try:
            frames = await r.run(body)
        finally:
            undo()
        events = seeds(frames)
        await _same_ids_as_exported(r, events)
    return outputs[0], events, stub


def _check_weather_run(events: Frames, agent_name: str) -> None:
    """The agent, its two model requests and the tool between them, in order."""
    started = _index(events, "agent:started", name=agent_name)
    first = _index(events, "llm:request:completed")
    requests = [d for t, d in events if t == "llm:request:completed"]
    assert len(requests) == 2
    (call,) = requests[0]["toolCalls"]
    assert call["toolName"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert requests[0]["usage"]["totalTokens"] > 0
    assert requests[1]["response"] == ANSWER
    tool_call = _index(events, "llm:tool:call", toolName="get_weather")
    tool_result = _index(events, "llm:tool:result", toolName="get_weather")
    second = _index(events, "llm:request:completed", response=ANSWER)
    stopped = _index(events, "agent:stopped", name=agent_name)
    assert started < first < tool_call < tool_result < second < stopped
    result = events[tool_result][1]
    assert "sunny" in json.dumps(result["result"]) and "error" not in result
    # Every request nests in the agent's trace.
    agent_trace = events[started][1]["traceId"]
    assert {d["traceId"] for t, d in events if t.startswith("llm:")} == {agent_trace}


async def test_openai_agents_sdk_with_openinference() -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}, 21C"

    def instrument(tel: Telemetry) -> Callable[[], None]:
        instrumentor = OpenAIAgentsInstrumentor()
        instrumentor.instrument(tracer_provider=tel.tracer_provider)
        return instrumentor.uninstrument  # type: ignore[no-any-return]

    async def run(stub: StubModelServer) -> Any:
        async with openai.AsyncOpenAI(base_url=stub.url, api_key="stub",
                                      max_retries=0) as client:
            agent = Agent(name="Weather agent", instructions="Answer weather questions.",
                          tools=[get_weather],
                          model=OpenAIResponsesModel(model="stub-model", openai_client=client))
            streamed = Runner.run_streamed(agent, "Weather in Paris?")
            async for _ in streamed.stream_events():
                pass
            return streamed.final_output

    output, events, stub = await _run_agent(instrument, run)
    assert output == ANSWER
    assert [request["model"] for request in stub.requests] == ["stub-model", "stub-model"]
    _check_weather_run(events, "Weather agent")
    # OpenInference's spans: LLM (a response), TOOL (the function), AGENT.
    requests = [d for t, d in events if t == "llm:request:completed"]
    assert {(d["provider"], d["model"]) for d in requests} == {("openai", "stub-model")}


async def test_langgraph_agent_with_openllmetry() -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}, 21C"

    def instrument(tel: Telemetry) -> Callable[[], None]:
        instrumentor = LangchainInstrumentor()
        instrumentor.instrument(tracer_provider=tel.tracer_provider,
                                meter_provider=tel.meter_provider,
                                logger_provider=tel.logger_provider)
        return instrumentor.uninstrument  # type: ignore[no-any-return]

    async def run(stub: StubModelServer) -> Any:
        model = ChatOpenAI(model="stub-model", base_url=stub.url, api_key=SecretStr("stub"),
                           streaming=True, stream_usage=True, max_retries=0)
        try:
            graph = create_agent(model, tools=[get_weather], name="weather_agent",
                                 system_prompt="Answer weather questions.")
            state = await graph.ainvoke(
                {"messages": [{"role": "user", "content": "Weather in Paris?"}]})
            return state["messages"][-1].content
        finally:
            await model.root_async_client.close()

    output, events, stub = await _run_agent(instrument, run)
    assert output == ANSWER
    assert all(request["stream"] for request in stub.requests)
    _check_weather_run(events, "weather_agent")
    # OpenLLMetry gives every attribute after the span started: the start events
    # still come first, whole (messages, tools, system prompt).
    first = next(d for t, d in events if t == "llm:request:started")
    assert first["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert first["systemPrompt"] == "Answer weather questions."
    assert [tool["name"] for tool in first["tools"]] == ["get_weather"]
    # Its tool envelope is opened: the model's call id, the arguments, the result.
    call = next(d for t, d in events if t == "llm:tool:call")
    result = next(d for t, d in events if t == "llm:tool:result")
    model_call = next(d for t, d in events if t == "llm:request:completed")["toolCalls"][0]
    assert call["toolCallId"] == result["toolCallId"] == model_call["toolCallId"]
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert result["result"] == "sunny in Paris, 21C"
    # The graph's node steps are OpenLLMetry tasks: model, tools, model.
    assert [d["name"] for t, d in events if t == "task:completed"] == ["model", "tools",
                                                                       "model"]
