"""OpenLLMetry's LangChain envelopes, opened.

OpenLLMetry's LangChain callback handler records what a callback received, not
what the tool saw: a tool span's ``traceloop.entity.input`` (and, copied from
it, ``gen_ai.tool.call.arguments``) is ``{"input_str", "tags", "metadata",
"inputs", "kwargs": {"tool_call_id", ...}}``, and its output (also
``gen_ai.tool.call.result``) is ``{"output": <the LangChain ToolMessage,
serialized>, "kwargs"}``. These helpers take out the tool's arguments, its
result and the model's tool-call id; anything else passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import otel_sse.convert.names as n
from otel_sse.convert.values import loads_or_none
from otel_sse.wire.encoder import dumps


def _envelope(attributes: Mapping[str, Any], value: Any, key: str) -> Mapping[str, Any] | None:
    """``value`` parsed, when it is an OpenLLMetry envelope holding ``key``."""
    if n.TL_SPAN_KIND not in attributes or not isinstance(value, str):
        return None
    parsed = loads_or_none(value)
    return parsed if isinstance(parsed, Mapping) and key in parsed else None


def tool_arguments(attributes: Mapping[str, Any], value: Any) -> Any:
    """The tool's arguments (JSON text) in an input envelope, else ``value``."""
    envelope = _envelope(attributes, value, "inputs")
    if envelope is None:
        envelope = _envelope(attributes, value, "input_str")
        return envelope["input_str"] if envelope is not None else value
    inputs = envelope["inputs"]
    return inputs if isinstance(inputs, str) else dumps(inputs)


def _message_content(output: Any) -> tuple[Any, Any]:
    """(content, tool call id) of a serialized LangChain message, else (output, None)."""
    if isinstance(output, Mapping) and output.get("lc") is not None:
        kwargs = output.get("kwargs")
        if isinstance(kwargs, Mapping) and "content" in kwargs:
            return kwargs["content"], kwargs.get("tool_call_id")
    return output, None


def tool_result(attributes: Mapping[str, Any], value: Any) -> Any:
    """The tool's result (a message's content) in an output envelope, else ``value``."""
    envelope = _envelope(attributes, value, "output")
    if envelope is None:
        return value
    return _message_content(envelope["output"])[0]


def tool_call_id(attributes: Mapping[str, Any]) -> Any:
    """The model's tool-call id an envelope carries (None when there is none)."""
    for attribute, key in ((n.TL_ENTITY_INPUT, "inputs"), (n.TL_ENTITY_OUTPUT, "output")):
        envelope = _envelope(attributes, attributes.get(attribute), key)
        if envelope is None:
            continue
        if key == "output":
            found = _message_content(envelope["output"])[1]
        else:
            kwargs = envelope.get("kwargs")
            found = kwargs.get("tool_call_id") if isinstance(kwargs, Mapping) else None
        if isinstance(found, str) and found:
            return found
    return None
