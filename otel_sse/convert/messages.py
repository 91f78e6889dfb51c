"""Chat messages: the contract's (OpenAI-style ``{role, content}``) and the
GenAI conventions' (``{role, parts: [...]}`` in ``gen_ai.input.messages``),
plus the flattened forms OpenInference and OpenLLMetry put on spans.

``to_genai`` and ``from_genai`` are inverses for the usual shapes: string
content, ``tool_calls`` of an assistant message, a ``tool`` message answering
a call, and extra keys (``name``) kept on the message. A list of content items
comes back as a list, except a single text item, which comes back as a string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from otel_sse.convert.values import loads_or_none
from otel_sse.wire.encoder import dumps

_TEXT = "text"
_MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id"})


# -- contract -> GenAI ---------------------------------------------------------------
def _content_part(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"type": _TEXT, "content": item}
    if isinstance(item, Mapping):
        if item.get("type") == _TEXT and "text" in item:
            return {"type": _TEXT, "content": item["text"]}
        kind = str(item.get("type", "content"))
        return {**item, "type": "generic", "generic_type": kind}
    return {"type": "generic", "generic_type": "content", "content": item}


def _tool_call_part(call: Any) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        return {"type": "tool_call", "name": str(call)}
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    part: dict[str, Any] = {"type": "tool_call", "id": call.get("id"),
                            "name": function.get("name", call.get("name"))}
    arguments = function.get("arguments", call.get("arguments"))
    if arguments is not None:
        part["arguments"] = arguments
    return part


def to_genai(messages: Any) -> list[dict[str, Any]]:
    """Contract messages in the GenAI input-messages shape."""
    out: list[dict[str, Any]] = []
    if not isinstance(messages, (list, tuple)):
        return out
    for message in messages:
        if not isinstance(message, Mapping):
            out.append({"role": "user", "parts": [_content_part(message)]})
            continue
        role = message.get("role", "user")
        content = message.get("content")
        parts: list[dict[str, Any]] = []
        if role == "tool" and "tool_call_id" in message:
            parts.append({"type": "tool_call_response", "id": message["tool_call_id"],
                          "response": content})
        elif isinstance(content, list):
            parts.extend(_content_part(item) for item in content)
        elif content is not None:
            parts.append(_content_part(content))
        for call in message.get("tool_calls") or ():
            parts.append(_tool_call_part(call))
        genai: dict[str, Any] = {"role": role, "parts": parts}
        for key, value in message.items():
            if key not in _MESSAGE_KEYS:
                genai[key] = value
        out.append(genai)
    return out


def system_instructions(text: Any) -> list[dict[str, Any]]:
    """A system prompt in the ``gen_ai.system_instructions`` shape."""
    return [{"type": _TEXT, "content": text if isinstance(text, str) else dumps(text)}]


def output_messages(response: Any, tool_calls: Any) -> list[dict[str, Any]]:
    """A completion (and the tool calls it asked for) in the ``gen_ai.output.messages``
    shape. Finish reasons belong in ``gen_ai.response.finish_reasons``, not here."""
    parts: list[dict[str, Any]] = []
    if isinstance(response, str):
        parts.append({"type": _TEXT, "content": response})
    elif response is not None:
        parts.append({"type": "generic", "generic_type": "response", "content": response})
    for call in tool_calls or ():
        if isinstance(call, Mapping):
            part = {"type": "tool_call", "id": call.get("toolCallId"),
                    "name": call.get("toolName"), "arguments": call.get("arguments")}
            part.update({k: v for k, v in call.items()
                         if k not in ("toolCallId", "toolName", "arguments")})
            parts.append(part)
    return [{"role": "assistant", "parts": parts}]


# -- GenAI -> contract ---------------------------------------------------------------
def _parsed(value: Any) -> Any:
    """A GenAI content attribute: JSON text on a span, a structured value elsewhere."""
    return loads_or_none(value) if isinstance(value, str) else value


def _arguments_text(arguments: Any) -> Any:
    return arguments if isinstance(arguments, str) or arguments is None else dumps(arguments)


def _content_item(part: Mapping[str, Any]) -> Any:
    kind = part.get("type")
    if kind == _TEXT:
        return {"type": _TEXT, "text": part.get("content")}
    if kind == "generic" and "generic_type" in part:
        item = {k: v for k, v in part.items() if k not in ("type", "generic_type")}
        if part["generic_type"] == "content" and set(item) == {"content"}:
            return item["content"]
        return {"type": part["generic_type"], **item}
    return dict(part)


def from_genai(value: Any) -> list[dict[str, Any]] | None:
    """GenAI input or output messages as contract messages (None when not messages)."""
    messages = _parsed(value)
    if not isinstance(messages, list):
        return None
    out: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        parts = [p for p in message.get("parts") or () if isinstance(p, Mapping)]
        result: dict[str, Any] = {"role": message.get("role")}
        calls = [p for p in parts if p.get("type") == "tool_call"]
        answers = [p for p in parts if p.get("type") == "tool_call_response"]
        rest = [p for p in parts if p.get("type") not in ("tool_call", "tool_call_response")]
        if answers:
            result["tool_call_id"] = answers[0].get("id")
            result["content"] = answers[0].get("response")
        elif len(rest) == 1 and rest[0].get("type") == _TEXT:
            result["content"] = rest[0].get("content")
        elif rest:
            result["content"] = [_content_item(p) for p in rest]
        else:
            result["content"] = None
        if calls:
            result["tool_calls"] = [
                {"id": p.get("id"), "type": "function",
                 "function": {"name": p.get("name"),
                              "arguments": _arguments_text(p.get("arguments"))}}
                for p in calls]
        for key, item in message.items():
            if key not in ("role", "parts", "finish_reason"):
                result[key] = item
        out.append(result)
    return out


def instructions_text(value: Any) -> str | None:
    """The text of ``gen_ai.system_instructions`` (a part list, or plain text)."""
    parsed = _parsed(value)
    if isinstance(parsed, list):
        texts = [p.get("content") for p in parsed
                 if isinstance(p, Mapping) and p.get("type") == _TEXT]
        return "".join(t for t in texts if isinstance(t, str))
    if isinstance(value, str):
        return value
    return None


def output_text_and_calls(value: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(response, tool calls) of ``gen_ai.output.messages``; response None when absent."""
    messages = _parsed(value)
    if not isinstance(messages, list):
        return None, []
    texts: list[str] = []
    other: Any = None
    calls: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        for part in message.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == _TEXT and isinstance(part.get("content"), str):
                texts.append(part["content"])
            elif kind == "generic" and part.get("generic_type") == "response":
                other = part.get("content")
            elif kind == "tool_call":
                call = {"toolCallId": part.get("id"), "toolName": part.get("name"),
                        "arguments": _arguments_text(part.get("arguments"))}
                call.update({k: v for k, v in part.items()
                             if k not in ("type", "id", "name", "arguments")})
                calls.append(call)
    if texts:
        return "".join(texts), calls
    return other, calls


# -- flattened vocabularies (OpenInference, OpenLLMetry) ------------------------------------
_INDEXED = re.compile(r"(\d+)\.(.+)")


def indexed(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix + "{i}.{rest}"`` attributes grouped by ``i``, in index order."""
    groups: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        match = _INDEXED.fullmatch(key[len(prefix):])
        if match is not None:
            groups.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [groups[i] for i in sorted(groups)]


def _openinference_message(flat: Mapping[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": flat.get("message.role")}
    if "message.content" in flat:
        message["content"] = flat["message.content"]
    else:
        texts = [item.get("message_content.text")
                 for item in indexed(flat, "message.contents.")
                 if item.get("message_content.type", _TEXT) == _TEXT]
        message["content"] = "".join(t for t in texts if isinstance(t, str)) if texts else None
    calls = [
        {"id": call.get("tool_call.id"), "type": "function",
         "function": {"name": call.get("tool_call.function.name"),
                      "arguments": call.get("tool_call.function.arguments")}}
        for call in indexed(flat, "message.tool_calls.")]
    if calls:
        message["tool_calls"] = calls
    if "message.tool_call_id" in flat:
        message["tool_call_id"] = flat["message.tool_call_id"]
    if "message.name" in flat:
        message["name"] = flat["message.name"]
    return message


def openinference_messages(attributes: Mapping[str, Any], prefix: str
                           ) -> list[dict[str, Any]] | None:
    """OpenInference ``llm.input_messages.{i}.message.*`` (or output) as messages."""
    return [_openinference_message(m) for m in indexed(attributes, prefix)] or None


def _openllmetry_message(flat: Mapping[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": flat.get("role"), "content": flat.get("content")}
    calls = [{"id": call.get("id"), "type": "function",
              "function": {"name": call.get("name"), "arguments": call.get("arguments")}}
             for call in indexed(flat, "tool_calls.")]
    if calls:
        message["tool_calls"] = calls
    if "tool_call_id" in flat:
        message["tool_call_id"] = flat["tool_call_id"]
    return message


def openllmetry_messages(attributes: Mapping[str, Any], prefix: str
                         ) -> list[dict[str, Any]] | None:
    """OpenLLMetry ``gen_ai.prompt.{i}.*`` (or ``gen_ai.completion``) as messages."""
    return [_openllmetry_message(m) for m in indexed(attributes, prefix)] or None


def response_of(messages: Iterable[Mapping[str, Any]]) -> tuple[str | None,
                                                                  list[dict[str, Any]]]:
    """(text, tool calls) of contract-shaped output messages."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            calls.append({"toolCallId": call.get("id"), "toolName": function.get("name"),
                          "arguments": function.get("arguments") or ""})
    return ("".join(texts) if texts else None), calls
