"""The real ``openai`` SDK, instrumented by the real ``opentelemetry-instrumentation-openai-v2``,
calls the stub model (a streamed chat completion with a tool call and usage, then the
answer): its spans become ``llm:*`` events on a real SSE subscription, with the ids of
the spans a real OTLP receiver got, nested in a decorated task that also runs the
decorated tool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import openai
import pytest
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import otel_sse
from otel_sse.demo.script import Script
from otel_sse.demo.stub_model import StubModelServer
from otel_sse.telemetry import Telemetry
from tests.instrument_rig import of, rig, seeds, types

WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
SCRIPT = Script.tool_then_answer("get_weather", {"city": "Paris"}, "It is sunny in Paris.",
                                 preamble="Let me check.")


@pytest.fixture
def content(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Whether the instrumentation records content (it reads this when instrumenting)."""
    on = bool(request.param)
    if on:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    else:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    yield on


def _instrumented(tel: Telemetry) -> OpenAIInstrumentor:
    instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=tel.tracer_provider,
                            logger_provider=tel.logger_provider,
                            meter_provider=tel.meter_provider)
    return instrumentor


@otel_sse.tool("get_weather")
def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "sunny", "celsius": 21}


@pytest.mark.parametrize("content", [True, False], indirect=True, ids=["content", "no-content"])
async def test_openai_sdk_streamed_tool_call_and_usage(content: bool) -> None:
    async with StubModelServer(SCRIPT) as stub, rig() as r:
        instrumentor = _instrumented(r.tel)

        @otel_sse.task("weather question")
        async def ask() -> str:
            async with openai.AsyncOpenAI(base_url=stub.url, api_key="stub",
                                          max_retries=0) as client:
                messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
                stream = await client.chat.completions.create(
                    model="stub-model", messages=messages, tools=[WEATHER_TOOL], stream=True,
                    stream_options={"include_usage": True})
                text, calls = "", cast(dict[int, dict[str, str]], {})
                async for chunk in stream:
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta
                    text += delta.content or ""
                    for call in delta.tool_calls or ():
                        entry = calls.setdefault(call.index, {"id": "", "name": "", "args": ""})
                        entry["id"] = call.id or entry["id"]
                        if call.function:
                            entry["name"] = call.function.name or entry["name"]
                            entry["args"] += call.function.arguments or ""
                (made,) = calls.values()
                result = get_weather(**json.loads(made["args"]))
                messages += [
                    {"role": "assistant", "content": text, "tool_calls": [
                        {"id": made["id"], "type": "function",
                         "function": {"name": made["name"], "arguments": made["args"]}}]},
                    {"role": "tool", "tool_call_id": made["id"], "content": json.dumps(result)}]
                answer = await client.chat.completions.create(
                    model="stub-model", messages=messages, tools=[WEATHER_TOOL])
                return answer.choices[0].message.content or ""

        answers: list[str] = []

        async def body() -> None:
            answers.append(await ask())

        try:
            frames = await r.run(body)
        finally:
            instrumentor.uninstrument()
        spans = await r.spans(4)  # task, two chat spans, the tool
    assert answers == ["It is sunny in Paris."]
    events = seeds(frames)
    llm = [(t, d) for t, d in events if t.startswith("llm:")]
    assert types(llm) == ["llm:request:started", "llm:usage", "llm:request:completed",
                          "llm:tool:call", "llm:tool:result",
                          "llm:request:started", "llm:usage", "llm:request:completed"]
    task = of(events, "task:created")[0]
    requests = of(llm, "llm:request:completed")
    for started, completed in zip(of(llm, "llm:request:started"), requests, strict=True):
        assert (started["provider"], started["model"]) == ("openai", "stub-model")
        assert completed["requestId"] == started["requestId"] == started["spanId"]
        # The same span at the receiver: same trace, same parent (the decorated task).
        span = spans[started["spanId"]]
        assert span["name"] == "chat stub-model" and span["kind"] == "client"
        assert span["scope"] == "opentelemetry.util.genai.handler"  # openai-v2 records through it
        assert span["trace_id"] == started["traceId"] == task["traceId"]
        assert span["parent_span_id"] == started["parentSpanId"] == task["spanId"]
        assert span["attributes"]["gen_ai.usage.input_tokens"] == completed["usage"][
            "promptTokens"]
    # Usage as the stub counted it: words asked, pieces streamed.
    assert requests[0]["usage"] == {"promptTokens": 3, "completionTokens": 6, "totalTokens": 9}
    assert of(llm, "llm:usage")[0]["usage"] == requests[0]["usage"]
    if content:
        assert requests[0]["response"] == "Let me check."
        (tool_call,) = requests[0]["toolCalls"]
        assert tool_call["toolName"] == "get_weather"
        assert json.loads(tool_call["arguments"]) == {"city": "Paris"}
        assert requests[1]["response"] == "It is sunny in Paris."
    else:
        assert requests[0]["response"] == "" and "toolCalls" not in requests[0]
    tool = of(llm, "llm:tool:result")[0]
    assert tool["toolName"] == "get_weather" and tool["taskId"] == task["taskId"]
    assert spans[tool["spanId"]]["parent_span_id"] == task["spanId"]
    assert of(events, "task:completed")[0]["spanId"] == task["spanId"]
