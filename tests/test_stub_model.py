"""The stub model server against the real ``openai`` SDK: every route, streamed and
whole, tool calls, usage, pacing, bad requests; the SDK's own types parse what it
sends (strictly, with pydantic validation)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionToolParam
from openai.types.responses import Response, ResponseFunctionToolCall, ResponseStreamEvent
from pydantic import TypeAdapter

from otel_sse.demo.script import Reply, Rule, Script, ToolCall
from otel_sse.demo.stub_model import StubModelServer
from otel_sse.errors import ConfigError, ServerError

WEATHER_TOOL: ChatCompletionToolParam = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
SCRIPT = Script(rules=(
    Rule(Reply(text="It is sunny in Paris."), after_tool=True),
    Rule(Reply(text="Let me check.", tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)),
         with_tools=True),
    Rule(Reply(text="Bonjour !", chunks=("Bon", "jour", " !")), contains="french"),
), default=Reply(text="Hello there, friend."))


@pytest.fixture
async def stub() -> AsyncIterator[StubModelServer]:
    async with StubModelServer(SCRIPT, models=("stub-model", "stub-mini")) as server:
        yield server


@pytest.fixture
async def client(stub: StubModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=stub.url, api_key="stub", max_retries=0) as made:
        yield made


async def test_chat_whole_and_streamed_with_a_tool_call_and_usage(
        stub: StubModelServer, client: openai.AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    whole = await client.chat.completions.create(model="stub-model", messages=messages,
                                                 tools=[WEATHER_TOOL])
    ChatCompletion.model_validate(whole.model_dump())
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert whole.usage is not None and whole.usage.prompt_tokens == 3

    stream = await client.chat.completions.create(
        model="stub-model", messages=messages, tools=[WEATHER_TOOL], stream=True,
        stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(tc.function.arguments or "" for c in chunks if c.choices
                        for tc in c.choices[0].delta.tool_calls or () if tc.function)
    assert text == "Let me check." and json.loads(arguments) == {"city": "Paris"}
    first_call = next(tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ())
    assert first_call.id and first_call.function and first_call.function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens

    # With the tool's result the script answers; without tools offered, no tool call.
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}]
    answer = await client.chat.completions.create(model="stub-model", messages=messages,
                                                  tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content == "It is sunny in Paris."
    plain = await client.chat.completions.create(
        model="stub-mini", messages=[{"role": "user", "content": "Say it in French"}],
        stream=True)
    pieces = [c.choices[0].delta.content async for c in plain if c.choices
              and c.choices[0].delta.content]
    assert pieces == ["Bon", "jour", " !"]
    assert stub.requests[-1]["model"] == "stub-mini"


async def test_responses_api_streamed_and_whole(client: openai.AsyncOpenAI) -> None:
    tools: list[Any] = [{"type": "function", "name": "get_weather", "parameters": {},
                         "strict": False}]
    stream = await client.responses.create(model="stub-model", input="Weather in Paris?",
                                           tools=tools, stream=True)
    events = [event async for event in stream]
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event.model_dump())
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta"
                   ) == "Let me check."
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    Response.model_validate(final.model_dump())
    call = final.output[-1]
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert final.usage is not None and final.usage.output_tokens > 0

    history: list[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": "get_weather",
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "21C"}]
    answer = await client.responses.create(model="stub-model", tools=tools, input=history)
    Response.model_validate(answer.model_dump())
    assert answer.output_text == "It is sunny in Paris."


async def test_models_bad_requests_and_lifecycle(stub: StubModelServer,
                                                 client: openai.AsyncOpenAI) -> None:
    listed = await client.models.list()
    assert [m.id for m in listed.data] == ["stub-model", "stub-mini"]
    with pytest.raises(openai.BadRequestError, match="messages=\\[\\]"):
        await client.chat.completions.create(model="stub-model", messages=[])
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{stub.url}/responses", data=b"{not json") as response:
            assert response.status == 400
            assert "not JSON" in (await response.json())["error"]["message"]
    with pytest.raises(ConfigError, match="token_delay=-1"):
        StubModelServer(token_delay=-1)
    with pytest.raises(ConfigError, match="do not join"):
        Reply(text="abc", chunks=("a", "b"))
    with pytest.raises(ServerError, match="not started"):
        _ = StubModelServer().url


async def test_pacing_goes_through_the_injected_sleep() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    script = Script(rules=(Rule(Reply(text="fast", token_delay=0.0), contains="fast"),),
                    default=Reply(text="one two three"))
    async with (StubModelServer(script, token_delay=0.25, sleep=sleep) as stub,
                openai.AsyncOpenAI(base_url=stub.url, api_key="stub") as client):
        stream = await client.chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": "go"}], stream=True)
        assert [c async for c in stream]
        assert waits == [0.25, 0.25, 0.25]  # one per piece: "one", " two", " three"
        stream = await client.chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": "fast"}], stream=True)
        assert [c async for c in stream]
        assert waits == [0.25, 0.25, 0.25]  # the reply's own delay (none) wins
