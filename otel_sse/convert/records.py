"""Our log-record events: a contract payload <-> event name, attributes and body.

A task's queued/assigned/started steps, its progress, intermediate results and
metrics, an agent's output lines, logs, metrics, health, pause, stop and error,
an LLM request's usage, retried errors, streamed tool-call arguments and (when
exported) tokens are log records in the context of their span. Each has an
event name (``task:progress`` is ``otel_sse.task.progress``), named attributes
and, for a line of text (an output line, a log message, an error message), a
body. :func:`record_fields` and :func:`record_payload` are inverses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import otel_sse.convert.llm as llm
import otel_sse.convert.names as n
from otel_sse.convert.state import agent_attributes, agent_state, task_attributes, task_state
from otel_sse.convert.values import from_json_text, json_text, scalar

Encoder = Callable[[Mapping[str, Any]], tuple[dict[str, Any], Any]]
# (attributes, body, fallback request id) -> payload
Decoder = Callable[[Mapping[str, Any], Any, str], dict[str, Any]]


def _task_encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    return task_attributes(payload), None


def _task_decode(attributes: Mapping[str, Any], body: Any, _: str) -> dict[str, Any]:
    return task_state(attributes)


def _intermediate_encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    out: dict[str, Any] = {n.TASK_ID: scalar(payload.get("taskId"))}
    if "data" in payload:
        out[n.TASK_INTERMEDIATE_DATA] = json_text(payload["data"])
    for key, attribute in (("type", n.TASK_INTERMEDIATE_TYPE),
                           ("sequence", n.TASK_INTERMEDIATE_SEQUENCE),
                           ("isFinal", n.TASK_INTERMEDIATE_IS_FINAL)):
        if payload.get(key) is not None:
            out[attribute] = scalar(payload[key])
    return out, None


def _intermediate_decode(attributes: Mapping[str, Any], body: Any, _: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"taskId": attributes.get(n.TASK_ID)}
    if n.TASK_INTERMEDIATE_DATA in attributes:
        payload["data"] = from_json_text(attributes[n.TASK_INTERMEDIATE_DATA])
    for key, attribute in (("type", n.TASK_INTERMEDIATE_TYPE),
                           ("sequence", n.TASK_INTERMEDIATE_SEQUENCE),
                           ("isFinal", n.TASK_INTERMEDIATE_IS_FINAL)):
        if attributes.get(attribute) is not None:
            payload[key] = attributes[attribute]
    return payload


def _agent_encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    return agent_attributes(payload), None


def _agent_decode(attributes: Mapping[str, Any], body: Any, _: str) -> dict[str, Any]:
    return agent_state(attributes)


def _text(body: Any) -> str:
    return body if isinstance(body, str) else "" if body is None else str(body)


def _output(stream: str) -> tuple[Encoder, Decoder]:
    def encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        return {n.AGENT_ID: scalar(payload.get("agentId"))}, payload.get("data")

    def decode(attributes: Mapping[str, Any], body: Any, _: str) -> dict[str, Any]:
        return {"agentId": attributes.get(n.AGENT_ID), "stream": stream, "data": _text(body)}

    return encode, decode


def _log(level: str) -> tuple[Encoder, Decoder]:
    def encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        out: dict[str, Any] = {n.AGENT_ID: scalar(payload.get("agentId"))}
        if "context" in payload:
            out[n.AGENT_LOG_CONTEXT] = json_text(payload["context"])
        return out, payload.get("message")

    def decode(attributes: Mapping[str, Any], body: Any, _: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"agentId": attributes.get(n.AGENT_ID), "level": level,
                                   "message": _text(body)}
        if n.AGENT_LOG_CONTEXT in attributes:
            payload["context"] = from_json_text(attributes[n.AGENT_LOG_CONTEXT])
        return payload

    return encode, decode


def _token_encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    return llm.token_attributes(payload, {}), None


def _token_decode(attributes: Mapping[str, Any], body: Any, request_id: str
                  ) -> dict[str, Any]:
    return llm.token_payload(attributes, request_id)


def _tool_call_encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    return llm.tool_call_attributes(payload, {}), None


def _tool_call_decode(attributes: Mapping[str, Any], body: Any, request_id: str
                      ) -> dict[str, Any]:
    return llm.tool_call_payload(attributes, request_id)


def _usage_encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    out = llm.base_attributes(payload, {})
    usage = payload.get("usage")
    if isinstance(usage, Mapping):
        llm.usage_attributes(usage, out)
    return out, None


def _usage_decode(attributes: Mapping[str, Any], body: Any, request_id: str
                  ) -> dict[str, Any]:
    payload = llm.base_payload(attributes, request_id)
    payload["usage"] = llm.usage_payload(attributes, complete=False) or {}
    return payload


def _error_encode(payload: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    return llm.error_attributes(payload, llm.base_attributes(payload, {})), \
        llm.error_message(payload)


def _error_decode(attributes: Mapping[str, Any], body: Any, request_id: str
                  ) -> dict[str, Any]:
    return llm.error_payload(attributes, request_id, body)


# One entry per name in ``names.RECORD_EVENT_TYPES`` (a test checks they agree).
_CODECS: dict[str, tuple[Encoder, Decoder]] = {
    **{t: (_task_encode, _task_decode) for t in
       ("task:queued", "task:assigned", "task:started", "task:progress", "task:metrics")},
    "task:intermediate": (_intermediate_encode, _intermediate_decode),
    **{t: (_agent_encode, _agent_decode) for t in
       ("agent:stopped", "agent:paused", "agent:error", "agent:metrics", "agent:health")},
    **{f"agent:output:{s}": _output(s) for s in ("stdout", "stderr")},
    **{f"agent:log:{lvl}": _log(lvl) for lvl in ("debug", "info", "warn", "error", "fatal")},
    "llm:token": (_token_encode, _token_decode),
    "llm:tool:call": (_tool_call_encode, _tool_call_decode),
    "llm:usage": (_usage_encode, _usage_decode),
    "llm:request:error": (_error_encode, _error_decode),
}

def record_fields(event_type: str, payload: Mapping[str, Any]
                  ) -> tuple[str, dict[str, Any], Any]:
    """(event name, attributes, body) of one of our record events. Leave content the
    exported record must not carry out of ``payload``. Raises KeyError for a type
    that is not a record event."""
    encode = _CODECS[event_type][0]
    attributes, body = encode(payload)
    return n.EVENT_NAMES[event_type], attributes, body


def record_payload(event_type: str, attributes: Mapping[str, Any], body: Any,
                   request_id: str) -> dict[str, Any]:
    """The payload of one of our record events (``request_id``: the id an ``llm:*``
    record falls back on when it names none, its span's id)."""
    return _CODECS[event_type][1](attributes, body, request_id)
