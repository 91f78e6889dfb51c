"""Reading a streamed LLM response chunk by chunk (sans-I/O).

:class:`StreamReader` understands the chunks the common SDKs yield, as their
objects or as plain dicts (the JSON of the ``data:`` lines):

- OpenAI chat completion chunks: ``choices[0].delta.content``, tool-call deltas
  (``delta.tool_calls[i]`` by ``index``), ``choices[0].finish_reason``, and the
  ``usage`` chunk of ``stream_options={"include_usage": True}``;
- OpenAI Responses API events: ``response.output_text.delta``, function-call
  items and their argument deltas, ``response.completed`` with its usage;
- Anthropic message events: ``message_start`` (usage), ``content_block_start``
  (tool use), ``content_block_delta`` (``text_delta``, ``input_json_delta``),
  ``message_delta`` (stop reason, output tokens);
- plain strings (a text stream).

What a chunk adds to the visible text and whether it ends the response come
back from :meth:`StreamReader.feed`; the totals (text, tool calls, usage, the
response's id and model) accumulate on the reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_sse.wire.encoder import dumps


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` for a mapping, else the attribute (None when absent)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _first(sequence: Any) -> Any:
    if isinstance(sequence, (list, tuple)) and sequence:
        return sequence[0]
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class Delta:
    """What one chunk adds: text (maybe empty) and the finish reason, if it ends."""

    text: str
    finish_reason: str | None = None


@dataclass(slots=True)
class _Call:
    call_id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    final_arguments: str | None = None

    def as_dict(self, fallback_id: str) -> dict[str, Any]:
        arguments = (self.final_arguments if self.final_arguments is not None
                     else "".join(self.arguments))
        return {"tool_call_id": self.call_id or fallback_id, "tool_name": self.name or "tool",
                "arguments": arguments, "is_complete": True}


class StreamReader:
    """Accumulates one streamed response; :meth:`feed` one chunk at a time."""

    __slots__ = ("_calls", "_parts", "finish_reasons", "response_id", "response_model",
                 "usage")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._calls: dict[Any, _Call] = {}
        self.usage: dict[str, int] = {}
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] = []

    # -- totals -----------------------------------------------------------------
    @property
    def text(self) -> str:
        """The response text so far."""
        return "".join(self._parts)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls the response asked for, in order, as ``emit_tool_call`` fields
        (``tool_call_id``, ``tool_name``, ``arguments`` as JSON text, ``is_complete``)."""
        return [call.as_dict(f"call_{index}")
                for index, call in enumerate(self._calls.values())]

    # -- chunks -------------------------------------------------------------------
    def feed(self, chunk: Any) -> Delta | None:
        """Take one chunk; the text it adds and whether it ends the response, or None
        when it carries neither (a role, usage or bookkeeping chunk)."""
        if isinstance(chunk, str):
            return self._text(chunk)
        if isinstance(chunk, bytes):
            return self._text(chunk.decode("utf-8", "replace"))
        kind = _get(chunk, "type")
        if isinstance(kind, str):
            if kind.startswith("response."):
                return self._responses_event(kind, chunk)
            if kind.startswith(("message_", "content_block_")):
                return self._anthropic_event(kind, chunk)
        if _get(chunk, "choices") is not None or _get(chunk, "usage") is not None:
            return self._chat_chunk(chunk)
        return None

    def _text(self, text: str, finish: str | None = None) -> Delta | None:
        if text:
            self._parts.append(text)
        if finish is not None:
            self.finish_reasons.append(finish)
        if not text and finish is None:
            return None
        return Delta(text, finish)

    def _identity(self, source: Any) -> None:
        response_id, model = _get(source, "id"), _get(source, "model")
        if isinstance(response_id, str) and response_id:
            self.response_id = response_id
        if isinstance(model, str) and model:
            self.response_model = model

    def _call(self, key: Any) -> _Call:
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call()
        return call

    # -- OpenAI chat completions ------------------------------------------------
    def _chat_chunk(self, chunk: Any) -> Delta | None:
        self._identity(chunk)
        self._openai_usage(_get(chunk, "usage"))
        choice = _first(_get(chunk, "choices"))
        if choice is None:
            return None
        delta = _get(choice, "delta")
        for item in _get(delta, "tool_calls") or ():
            index = _get(item, "index")
            call = self._call(("chat", index if index is not None else len(self._calls)))
            call.call_id = _get(item, "id") or call.call_id
            function = _get(item, "function")
            call.name = _get(function, "name") or call.name
            arguments = _get(function, "arguments")
            if isinstance(arguments, str):
                call.arguments.append(arguments)
        content = _get(delta, "content")
        reason = _get(choice, "finish_reason")
        return self._text(content if isinstance(content, str) else "",
                          str(reason) if reason else None)

    def _openai_usage(self, usage: Any) -> None:
        if usage is None:
            return
        prompt = _count(_get(usage, "prompt_tokens"))
        if prompt is None:  # the Responses API names them input/output
            prompt = _count(_get(usage, "input_tokens"))
        completion = _count(_get(usage, "completion_tokens"))
        if completion is None:
            completion = _count(_get(usage, "output_tokens"))
        self._set_usage(prompt_tokens=prompt, completion_tokens=completion,
                        total_tokens=_count(_get(usage, "total_tokens")))
        details = _get(usage, "prompt_tokens_details") or _get(usage, "input_tokens_details")
        output = (_get(usage, "completion_tokens_details")
                  or _get(usage, "output_tokens_details"))
        self._set_usage(cache_read_input_tokens=_count(_get(details, "cached_tokens")),
                        reasoning_output_tokens=_count(_get(output, "reasoning_tokens")))

    def _set_usage(self, **counts: int | None) -> None:
        for key, value in counts.items():
            if value is not None:
                self.usage[key] = value

    # -- OpenAI Responses API ------------------------------------------------------
    def _responses_event(self, kind: str, event: Any) -> Delta | None:
        if kind == "response.output_text.delta":
            delta = _get(event, "delta")
            return self._text(delta if isinstance(delta, str) else "")
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = _get(event, "item")
            if _get(item, "type") == "function_call":
                call = self._call(("responses", _get(item, "id") or _get(item, "call_id")))
                call.call_id = _get(item, "call_id") or call.call_id
                call.name = _get(item, "name") or call.name
                if kind.endswith(".done") and isinstance(_get(item, "arguments"), str):
                    call.final_arguments = _get(item, "arguments")
            return None
        if kind == "response.function_call_arguments.delta":
            delta = _get(event, "delta")
            if isinstance(delta, str):
                self._call(("responses", _get(event, "item_id"))).arguments.append(delta)
            return None
        if kind in ("response.created", "response.in_progress"):
            self._identity(_get(event, "response"))
            return None
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = _get(event, "response")
            self._identity(response)
            self._openai_usage(_get(response, "usage"))
            reason = _get(_get(response, "incomplete_details"), "reason")
            return self._text("", str(reason)) if reason else None
        return None

    # -- Anthropic messages ----------------------------------------------------------
    def _anthropic_event(self, kind: str, event: Any) -> Delta | None:
        if kind == "message_start":
            message = _get(event, "message")
            self._identity(message)
            self._anthropic_usage(_get(message, "usage"))
            return None
        if kind == "content_block_start":
            block = _get(event, "content_block")
            if _get(block, "type") == "tool_use":
                call = self._call(("anthropic", _get(event, "index")))
                call.call_id, call.name = _get(block, "id"), _get(block, "name")
            return None
        if kind == "content_block_delta":
            delta = _get(event, "delta")
            delta_type = _get(delta, "type")
            if delta_type == "text_delta":
                text = _get(delta, "text")
                return self._text(text if isinstance(text, str) else "")
            if delta_type == "input_json_delta":
                partial = _get(delta, "partial_json")
                if isinstance(partial, str):
                    self._call(("anthropic", _get(event, "index"))).arguments.append(partial)
            return None
        if kind == "message_delta":
            self._anthropic_usage(_get(event, "usage"))
            reason = _get(_get(event, "delta"), "stop_reason")
            return self._text("", str(reason)) if reason else None
        return None

    def _anthropic_usage(self, usage: Any) -> None:
        if usage is None:
            return
        self._set_usage(prompt_tokens=_count(_get(usage, "input_tokens")),
                        completion_tokens=_count(_get(usage, "output_tokens")),
                        cache_read_input_tokens=_count(_get(usage, "cache_read_input_tokens")),
                        cache_write_input_tokens=_count(
                            _get(usage, "cache_creation_input_tokens")))

    # -- a whole (non-streamed) response -------------------------------------------------
    def read_response(self, response: Any) -> None:
        """Take a complete response object (an OpenAI chat completion, a Responses API
        response, an Anthropic message): its text, tool calls, usage and identity."""
        if isinstance(response, str):
            self._text(response)
            return
        self._identity(response)
        choice = _first(_get(response, "choices"))
        if choice is not None:  # a chat completion
            message = _get(choice, "message")
            content = _get(message, "content")
            for index, item in enumerate(_get(message, "tool_calls") or ()):
                call = self._call(("chat", index))
                function = _get(item, "function")
                call.call_id, call.name = _get(item, "id"), _get(function, "name")
                call.final_arguments = _get(function, "arguments")
            reason = _get(choice, "finish_reason")
            self._text(content if isinstance(content, str) else "",
                       str(reason) if reason else None)
            self._openai_usage(_get(response, "usage"))
            return
        if _get(response, "output") is not None:  # a Responses API response
            for item in _get(response, "output") or ():
                if _get(item, "type") == "function_call":
                    call = self._call(("responses", _get(item, "id")))
                    call.call_id, call.name = _get(item, "call_id"), _get(item, "name")
                    call.final_arguments = _get(item, "arguments")
                for part in _get(item, "content") or ():
                    if _get(part, "type") == "output_text":
                        self._text(_get(part, "text") or "")
            self._openai_usage(_get(response, "usage"))
            return
        for index, block in enumerate(_get(response, "content") or ()):  # Anthropic
            if _get(block, "type") == "text":
                self._text(_get(block, "text") or "")
            elif _get(block, "type") == "tool_use":
                call = self._call(("anthropic", index))
                call.call_id, call.name = _get(block, "id"), _get(block, "name")
                arguments = _get(block, "input")
                if arguments is not None:
                    call.final_arguments = dumps(arguments)
        reason = _get(response, "stop_reason")
        if reason:
            self.finish_reasons.append(str(reason))
        self._anthropic_usage(_get(response, "usage"))
