"""The OpenAI HTTP API's shapes, for the stub model (sans-I/O).

Reading a request of the Chat Completions API (``POST /v1/chat/completions``)
or of the Responses API (``POST /v1/responses``) into a
:class:`~otel_sse.demo.script.Request`, and writing a scripted
:class:`~otel_sse.demo.script.Reply` the way the real API does: a whole
response, or the streamed chunks (chat) and events (responses), each a JSON
object the server writes as one SSE ``data:`` line. Token counts are
deterministic: words in the request, pieces streamed in the reply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otel_sse.demo.script import Reply, Request, ToolCall
from otel_sse.errors import OtelSSEError

Json = dict[str, Any]


class StubRequestError(OtelSSEError, ValueError):
    """A request the stub model cannot answer; the message names the bad value."""


def _require(body: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or (isinstance(value, (str, list)) and not value):
        raise StubRequestError(f"{where}: {key}={value!r} must be a non-empty {kind.__name__}")
    return value


def _text_of(content: Any) -> str:
    """The text of a message's content: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content
                        if isinstance(part, Mapping))
    return ""


# The fields of messages and input items that hold what a model reads.
_READ = ("content", "text", "output", "arguments")


def _words(value: Any) -> int:
    """Words of what a model reads in ``value`` (text, or messages and their parts)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_words(value.get(key)) for key in _READ)
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0


def _tool_names(tools: Any) -> tuple[str, ...]:
    """Names of the function tools offered (chat: ``{function: {name}}``, responses:
    ``{type: function, name}``)."""
    names = []
    for tool in tools or ():
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
        if isinstance(name, str) and name:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A request as the script sees it, whether it streams, and its size in words."""

    request: Request
    stream: bool
    include_usage: bool
    prompt_tokens: int


def parse_chat(body: Mapping[str, Any]) -> Parsed:
    """A Chat Completions request body."""
    model = _require(body, "model", str, "chat.completions")
    messages = _require(body, "messages", list, "chat.completions")
    if not all(isinstance(m, Mapping) for m in messages):
        raise StubRequestError("chat.completions: every message must be an object")
    users = [m for m in messages if m.get("role") == "user"]
    options = body.get("stream_options")
    return Parsed(
        Request(model=model, last_user_text=_text_of(users[-1].get("content")) if users else "",
                after_tool=messages[-1].get("role") in ("tool", "function"),
                tools=_tool_names(body.get("tools"))),
        stream=bool(body.get("stream")),
        include_usage=isinstance(options, Mapping) and bool(options.get("include_usage")),
        prompt_tokens=_words(messages))


def parse_responses(body: Mapping[str, Any]) -> Parsed:
    """A Responses API request body (``input`` text or a list of items)."""
    model = _require(body, "model", str, "responses")
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise StubRequestError(f"responses: input={items!r} must be text or a non-empty list")
    items = [i for i in items if isinstance(i, Mapping)]
    users = [i for i in items if i.get("role") == "user"]
    last = items[-1] if items else {}
    return Parsed(
        Request(model=model, last_user_text=_text_of(users[-1].get("content")) if users else "",
                after_tool=last.get("type") == "function_call_output",
                tools=_tool_names(body.get("tools"))),
        stream=bool(body.get("stream")), include_usage=True,
        prompt_tokens=_words(items) + _words(body.get("instructions")))


@dataclass(frozen=True, slots=True)
class Answer:
    """One reply to one request: its ids, pieces, tool calls and token counts."""

    response_id: str
    model: str
    created: int
    pieces: list[str]
    calls: list[tuple[str, ToolCall]]  # (call id, call)
    prompt_tokens: int

    @classmethod
    def of(cls, reply: Reply, parsed: Parsed, serial: int, created: int) -> Answer:
        calls = [(call.call_id or f"call_{serial}_{index}", call)
                 for index, call in enumerate(reply.calls_for(parsed.request.tools))]
        return cls(f"{serial:06d}", parsed.request.model, created, reply.pieces(), calls,
                   parsed.prompt_tokens)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces) + sum(len(_argument_pieces(c.arguments_json))
                                      for _, c in self.calls)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.calls else "stop"


def _argument_pieces(arguments: str) -> list[str]:
    """Arguments streamed in a few pieces, as models do."""
    if not arguments:
        return []
    step = max(1, -(-len(arguments) // 3))
    return [arguments[i:i + step] for i in range(0, len(arguments), step)]


# -- chat completions ------------------------------------------------------------------------
def _chat_usage(answer: Answer) -> Json:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


def chat_completion(answer: Answer) -> Json:
    """The whole (non-streamed) chat completion."""
    message: Json = {"role": "assistant", "content": answer.text or None}
    if answer.calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments_json}}
            for call_id, call in answer.calls]
    return {"id": f"chatcmpl-{answer.response_id}", "object": "chat.completion",
            "created": answer.created, "model": answer.model,
            "choices": [{"index": 0, "message": message, "finish_reason": answer.finish_reason,
                         "logprobs": None}],
            "usage": _chat_usage(answer)}


def chat_chunks(answer: Answer, include_usage: bool) -> Iterator[tuple[Json, bool]]:
    """The streamed chunks, each with whether it is a piece of text (paced)."""
    def chunk(delta: Json, finish: str | None = None) -> Json:
        return {"id": f"chatcmpl-{answer.response_id}", "object": "chat.completion.chunk",
                "created": answer.created, "model": answer.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}]}

    yield chunk({"role": "assistant", "content": ""}), False
    for piece in answer.pieces:
        yield chunk({"content": piece}), True
    for index, (call_id, call) in enumerate(answer.calls):
        yield chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                     "function": {"name": call.name, "arguments": ""}}]}), False
        for piece in _argument_pieces(call.arguments_json):
            yield chunk({"tool_calls": [{"index": index,
                                         "function": {"arguments": piece}}]}), True
    yield chunk({}, answer.finish_reason), False
    if include_usage:
        yield {"id": f"chatcmpl-{answer.response_id}", "object": "chat.completion.chunk",
               "created": answer.created, "model": answer.model, "choices": [],
               "usage": _chat_usage(answer)}, False


# -- responses -------------------------------------------------------------------------------
def _message_item(answer: Answer, text: str, status: str) -> Json:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": f"msg_{answer.response_id}", "type": "message", "role": "assistant",
            "status": status, "content": content if status == "completed" else []}


def _call_item(call_id: str, call: ToolCall, arguments: str, status: str) -> Json:
    return {"id": f"fc_{call_id}", "type": "function_call", "call_id": call_id,
            "name": call.name, "arguments": arguments, "status": status}


def _outputs(answer: Answer) -> list[Json]:
    items = [_message_item(answer, answer.text, "completed")] if answer.pieces else []
    items += [_call_item(call_id, call, call.arguments_json, "completed")
              for call_id, call in answer.calls]
    return items


def response(answer: Answer, body: Mapping[str, Any], status: str = "completed") -> Json:
    """The Responses API's response object (``status`` completed or in_progress)."""
    done = status == "completed"
    return {
        "id": f"resp_{answer.response_id}", "object": "response", "created_at": answer.created,
        "status": status, "model": answer.model, "output": _outputs(answer) if done else [],
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "tool_choice": body.get("tool_choice") or "auto", "tools": list(body.get("tools") or []),
        "instructions": body.get("instructions"), "temperature": body.get("temperature"),
        "top_p": body.get("top_p"), "max_output_tokens": body.get("max_output_tokens"),
        "previous_response_id": body.get("previous_response_id"), "error": None,
        "incomplete_details": None, "metadata": {}, "text": {"format": {"type": "text"}},
        "truncation": "disabled", "reasoning": None, "user": None,
        "usage": {"input_tokens": answer.prompt_tokens,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": answer.completion_tokens,
                  "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": answer.prompt_tokens + answer.completion_tokens}
        if done else None,
    }


def response_events(answer: Answer, body: Mapping[str, Any]) -> Iterator[tuple[Json, bool]]:
    """The streamed Responses API events, each with whether it is a piece (paced)."""
    sequence = 0

    def event(kind: str, **fields: Any) -> Json:
        nonlocal sequence
        sequence += 1
        return {"type": kind, "sequence_number": sequence - 1, **fields}

    yield event("response.created", response=response(answer, body, "in_progress")), False
    yield event("response.in_progress", response=response(answer, body, "in_progress")), False
    output_index = 0
    if answer.pieces:
        item_id = f"msg_{answer.response_id}"
        yield event("response.output_item.added", output_index=0,
                    item=_message_item(answer, "", "in_progress")), False
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield event("response.content_part.added", item_id=item_id, output_index=0,
                    content_index=0, part=part), False
        for piece in answer.pieces:
            yield event("response.output_text.delta", item_id=item_id, output_index=0,
                        content_index=0, delta=piece, logprobs=[]), True
        yield event("response.output_text.done", item_id=item_id, output_index=0,
                    content_index=0, text=answer.text, logprobs=[]), False
        yield event("response.content_part.done", item_id=item_id, output_index=0,
                    content_index=0, part={**part, "text": answer.text}), False
        yield event("response.output_item.done", output_index=0,
                    item=_message_item(answer, answer.text, "completed")), False
        output_index = 1
    for offset, (call_id, call) in enumerate(answer.calls):
        index = output_index + offset
        yield event("response.output_item.added", output_index=index,
                    item=_call_item(call_id, call, "", "in_progress")), False
        for piece in _argument_pieces(call.arguments_json):
            yield event("response.function_call_arguments.delta", item_id=f"fc_{call_id}",
                        output_index=index, delta=piece), True
        yield event("response.function_call_arguments.done", item_id=f"fc_{call_id}",
                    output_index=index, arguments=call.arguments_json), False
        yield event("response.output_item.done", output_index=index,
                    item=_call_item(call_id, call, call.arguments_json, "completed")), False
    yield event("response.completed", response=response(answer, body)), False


def models(names: Sequence[str], created: int) -> Json:
    """``GET /v1/models``."""
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                        "owned_by": "otel-sse"} for name in names]}


def error_body(message: str) -> Json:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": None,
                      "code": None}}
