"""``otel_sse.llm_request``: reading streamed responses of the common shapes (the
OpenAI SDK's own chunk types, Responses API events, Anthropic events, plain
strings), and the request's events and span for sync and async streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import otel_sse
from otel_sse.instrumentation.chunks import StreamReader
from tests.instrument_rig import of, rig, seeds, types


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any
           ) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({
        "id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


OPENAI_CHUNKS = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Let me "}),
    _chunk({"content": "check."}),
    _chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"ci'}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
    _chunk({}, "tool_calls"),
    ChatCompletionChunk.model_validate({
        "id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini-2024-07-18", "choices": [],
        "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30,
                  "prompt_tokens_details": {"cached_tokens": 4}}}),
]
ANTHROPIC_EVENTS: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4",
                                          "usage": {"input_tokens": 12, "output_tokens": 1,
                                                    "cache_read_input_tokens": 3}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": '{"q": '}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": '"otel"}'}},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
     "usage": {"output_tokens": 7}},
    {"type": "message_stop"},
]
RESPONSES_EVENTS: list[dict[str, Any]] = [
    {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-4.1"}},
    {"type": "response.output_text.delta", "item_id": "m1", "delta": "Sun"},
    {"type": "response.output_text.delta", "item_id": "m1", "delta": "ny"},
    {"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc_1",
                                                    "call_id": "call_9", "name": "forecast",
                                                    "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"d":'},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": "1}"},
    {"type": "response.completed", "response": {
        "id": "resp_1", "model": "gpt-4.1",
        "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8,
                  "output_tokens_details": {"reasoning_tokens": 1}}}},
]


def test_reader_openai_chat_chunks() -> None:
    reader = StreamReader()
    deltas = [reader.feed(chunk) for chunk in OPENAI_CHUNKS]
    assert [(d.text, d.finish_reason) if d else None for d in deltas] == [
        None, ("Let me ", None), ("check.", None), None, None, ("", "tool_calls"), None]
    assert reader.text == "Let me check."
    assert reader.tool_calls == [{"tool_call_id": "call_1", "tool_name": "get_weather",
                                  "arguments": '{"city": "Paris"}', "is_complete": True}]
    assert reader.usage == {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30,
                            "cache_read_input_tokens": 4}
    assert (reader.response_id, reader.response_model) == ("chatcmpl-7",
                                                           "gpt-4o-mini-2024-07-18")
    assert reader.finish_reasons == ["tool_calls"]


def test_reader_anthropic_events_and_responses_events() -> None:
    reader = StreamReader()
    deltas = [reader.feed(event) for event in ANTHROPIC_EVENTS]
    assert [d.text for d in deltas if d and d.text] == ["Hi"]
    assert reader.finish_reasons == ["tool_use"]
    assert reader.tool_calls == [{"tool_call_id": "toolu_1", "tool_name": "search",
                                  "arguments": '{"q": "otel"}', "is_complete": True}]
    assert reader.usage == {"prompt_tokens": 12, "completion_tokens": 7,
                            "cache_read_input_tokens": 3}
    assert reader.response_model == "claude-sonnet-4"

    reader = StreamReader()
    for event in RESPONSES_EVENTS:
        reader.feed(event)
    assert reader.text == "Sunny" and reader.response_id == "resp_1"
    assert reader.tool_calls == [{"tool_call_id": "call_9", "tool_name": "forecast",
                                  "arguments": '{"d":1}', "is_complete": True}]
    assert reader.usage == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
                            "reasoning_output_tokens": 1}


def test_reader_plain_strings_and_whole_responses() -> None:
    reader = StreamReader()
    assert [reader.feed(s) for s in ("a", "", b"b")][1] is None
    assert reader.text == "ab"
    reader = StreamReader()
    reader.read_response(ChatCompletion.model_validate({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "Done.", "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}))
    assert reader.text == "Done." and reader.finish_reasons == ["stop"]
    assert reader.tool_calls[0]["tool_name"] == "f" and reader.usage["total_tokens"] == 3
    assert reader.feed(object()) is None  # something else entirely: ignored


async def _async(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_request_events_and_span_for_a_streamed_response(mode: str) -> None:
    passed: list[Any] = []

    @otel_sse.task("ask")
    async def ask() -> None:
        request = otel_sse.llm_request(provider="openai", model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "Weather?"}],
                                       parameters={"temperature": 0.2, "max_tokens": 50})
        if mode == "sync":
            with request:
                for chunk in request.wrap(iter(OPENAI_CHUNKS)):
                    passed.append(chunk)
        else:
            async with request:
                async for chunk in request.wrap(_async(OPENAI_CHUNKS)):
                    passed.append(chunk)
        assert request.response == "Let me check."

    async with rig(capture_content=True) as r:
        frames = await r.run(ask)
        spans = await r.spans(2)
    assert passed == OPENAI_CHUNKS  # the caller gets every chunk, unchanged
    events = seeds(frames)
    llm = [(t, d) for t, d in events if t.startswith("llm:")]
    assert types(llm) == ["llm:request:started", "llm:token", "llm:token", "llm:token",
                          "llm:usage", "llm:request:completed"]
    tokens = of(llm, "llm:token")
    assert [(d["token"], d["index"]) for d in tokens] == [("Let me ", 0), ("check.", 1),
                                                          ("", 2)]
    assert tokens[-1]["isFinal"] is True and tokens[-1]["finishReason"] == "tool_calls"
    started = of(llm, "llm:request:started")[0]
    assert started["parameters"] == {"temperature": 0.2, "maxTokens": 50}
    assert started["taskId"] == of(events, "task:created")[0]["taskId"]
    completed = of(llm, "llm:request:completed")[0]
    assert completed["response"] == "Let me check."
    assert completed["usage"] == {"promptTokens": 21, "completionTokens": 9, "totalTokens": 30}
    assert completed["toolCalls"] == [{"toolCallId": "call_1", "toolName": "get_weather",
                                       "arguments": '{"city": "Paris"}', "isComplete": True}]
    assert {d["spanId"] for _, d in llm} == {started["spanId"]}
    span = spans[started["spanId"]]
    attributes = span["attributes"]
    assert span["name"] == "chat gpt-4o-mini" and span["kind"] == "client"
    assert span["parent_span_id"] == of(events, "task:created")[0]["spanId"]
    assert attributes["gen_ai.usage.input_tokens"] == 21
    assert attributes["gen_ai.usage.output_tokens"] == 9
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert attributes["gen_ai.response.id"] == "chatcmpl-7"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert attributes["gen_ai.request.stream"] is True
    output = json.loads(attributes["gen_ai.output.messages"])
    assert output[0]["parts"][1]["name"] == "get_weather"


async def test_anthropic_and_text_streams_and_manual_tokens() -> None:
    async def body() -> None:
        with otel_sse.llm_request(provider="anthropic", model="claude-sonnet-4") as request:
            for _ in request.wrap(ANTHROPIC_EVENTS):
                pass
        async with otel_sse.llm_request(provider="local", model="echo") as request:
            async for _ in request.wrap(_async(["one ", "two"])):
                pass
            request.token("!", finish_reason="stop")
            request.set_usage(prompt_tokens=2, completion_tokens=3)

    async with rig() as r:
        frames = await r.run(body)
    completed = of(frames, "llm:request:completed")
    assert completed[0]["response"] == "Hi" and completed[0]["model"] == "claude-sonnet-4"
    assert completed[0]["usage"] == {"promptTokens": 12, "completionTokens": 7,
                                     "totalTokens": 19}
    assert completed[1]["response"] == "one two!"
    assert completed[1]["usage"] == {"promptTokens": 2, "completionTokens": 3, "totalTokens": 5}
    echo = [d for d in of(frames, "llm:token") if d["model"] == "echo"]
    assert [d["token"] for d in echo] == ["one ", "two", "!"]
    assert echo[-1]["finishReason"] == "stop"


async def test_a_failing_request_is_an_error_and_the_exception_passes() -> None:
    class RateLimited(RuntimeError):
        pass

    error = RateLimited("slow down")

    def broken() -> Iterator[str]:
        yield "partial"
        raise error

    async def body() -> None:
        with pytest.raises(RateLimited) as caught:
            with otel_sse.llm_request(provider="openai", model="gpt-4o") as request:
                for _ in request.wrap(broken()):
                    pass
        assert caught.value is error

    async with rig() as r:
        frames = await r.run(body)
        spans = await r.spans(1)
    failed = of(frames, "llm:request:error")[0]
    assert failed["error"] == "slow down" and failed["errorType"] == "RateLimited"
    span = spans[failed["spanId"]]
    assert span["status_code"] == "error"
    assert span["attributes"]["error.type"] == "RateLimited"
    assert span["attributes"]["gen_ai.response.finish_reasons"] == ["error"]


async def test_a_tool_run_inside_the_request_block_answers_that_request() -> None:
    @otel_sse.tool("get_weather")
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    @otel_sse.task("inside")
    def inside() -> None:
        with otel_sse.llm_request(provider="openai", model="gpt-4o-mini") as request:
            for _ in request.wrap(OPENAI_CHUNKS):
                pass
            for call in request.tool_calls:
                get_weather(**json.loads(call["arguments"]))
            get_weather("Lyon")  # a call the model did not ask for

    async with rig() as r:
        frames = await r.run(lambda: asyncio.to_thread(inside))
        spans = await r.spans(4)
    started = of(frames, "llm:request:started")[0]
    calls = of(frames, "llm:tool:call")
    assert [c["requestId"] for c in calls] == [started["requestId"]] * 2
    assert calls[0]["toolCallId"] == "call_1"  # the model's id
    assert calls[1]["toolCallId"] != "call_1"
    # Run inside the block, the tools are children of the request's span.
    assert {spans[c["spanId"]]["parent_span_id"] for c in calls} == {started["spanId"]}
    assert [t for t, _ in seeds(frames) if t.startswith("llm:")][-1] == "llm:request:completed"
