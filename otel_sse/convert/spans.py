"""Which contract events a span's start and end stand for.

A span is classified by the first vocabulary that names its operation:
``gen_ai.operation.name`` (GenAI, when it is one of the operations below),
``openinference.span.kind`` (OpenInference), ``traceloop.span.kind`` /
``llm.request.type`` (OpenLLMetry); a span with none of these but an
``otel_sse.task.id`` is one of our tasks.

=============================  ================================  ============================
operation                      start                             end
=============================  ================================  ============================
chat, text_completion,         llm:request:started               llm:request:completed (and
generate_content, embeddings;                                    llm:usage first, for a
OI LLM/EMBEDDING; OpenLLMetry                                    foreign span with usage),
llm.request.type                                                 or llm:request:error
execute_tool; OI TOOL; TL tool llm:tool:call                     llm:tool:result
invoke_agent; OI AGENT; TL     agent:started                     agent:stopped or agent:error
agent                                                            (ours: none, see below)
create_agent                   agent:spawned                     -
invoke_workflow,               task:created, task:started        task:completed or
handle_conversation_turn;                                        task:failed
OI CHAIN; TL workflow/task
our task (otel_sse.task.id)    task:created                      task:completed / failed /
                                                                 cancelled, by its status
=============================  ================================  ============================

Our emitters report an agent's stop and error as log records (the agent's
state outlives its invocation), so the end of our ``invoke_agent`` span
stands for no further event. A span our emitters ended without an outcome
(``otel_sse.abandoned``), or opened for an entity never announced
(``otel_sse.implicit``), stands for no seed event either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import otel_sse.convert.llm as llm
import otel_sse.convert.messages as msg
import otel_sse.convert.names as n
from otel_sse.convert.model import SpanRecord
from otel_sse.convert.state import agent_state, task_created, task_state
from otel_sse.convert.values import error_value, from_json_text, hex_span, ms_between

Seed = tuple[str, dict[str, Any]]

INFERENCE, TOOL, AGENT, CREATE_AGENT, WORKFLOW, TASK = (
    "inference", "tool", "agent", "create_agent", "workflow", "task")
_BY_OPERATION = {**dict.fromkeys(n.INFERENCE_OPERATIONS, INFERENCE),
                 "execute_tool": TOOL, "invoke_agent": AGENT, "create_agent": CREATE_AGENT,
                 "invoke_workflow": WORKFLOW, "handle_conversation_turn": WORKFLOW}
_BY_OPENINFERENCE = {"LLM": INFERENCE, "EMBEDDING": INFERENCE, "TOOL": TOOL, "AGENT": AGENT,
                     "CHAIN": WORKFLOW}
_BY_TRACELOOP = {"workflow": WORKFLOW, "task": WORKFLOW, "agent": AGENT, "tool": TOOL}
_TASK_OUTCOMES = frozenset({"completed", "failed", "cancelled"})
# Every attribute classify() looks at: a span with none of them (most spans) is
# told apart with one C-level pass over its keys.
MARKERS = frozenset({n.GEN_AI_OPERATION_NAME, n.OI_SPAN_KIND, n.TL_SPAN_KIND,
                      n.TL_LLM_REQUEST_TYPE, n.TASK_ID})


def classify(attributes: Mapping[str, Any]) -> str | None:
    """The kind of work a span describes (None: a span like any other)."""
    if MARKERS.isdisjoint(attributes):
        return None
    operation = attributes.get(n.GEN_AI_OPERATION_NAME)
    if operation is not None:
        found = _BY_OPERATION.get(operation)
        if found is not None:
            return found
        # An operation the conventions do not name (OpenLLMetry's ``execute_task``):
        # another vocabulary on the span may.
    kind = attributes.get(n.OI_SPAN_KIND)
    if isinstance(kind, str):
        return _BY_OPENINFERENCE.get(kind.upper())
    kind = attributes.get(n.TL_SPAN_KIND)
    if isinstance(kind, str):
        return _BY_TRACELOOP.get(kind.lower())
    if attributes.get(n.TL_LLM_REQUEST_TYPE) is not None:
        return INFERENCE
    if attributes.get(n.TASK_ID) is not None:
        return TASK
    return None


def _error_of(span: SpanRecord) -> Any:
    """The message of a failed span (None when it did not fail)."""
    if span.status != "error":
        return None
    return (span.status_message or span.attributes.get(n.ERROR_TYPE) or "error")


def _agent_identity(span: SpanRecord) -> dict[str, Any]:
    a = span.attributes
    name = llm.first(a, n.GEN_AI_AGENT_NAME, n.OI_AGENT_NAME, n.TL_ENTITY_NAME)
    agent_id = llm.first(a, n.AGENT_ID, n.GEN_AI_AGENT_ID) or name or span.name
    payload: dict[str, Any] = {"agentId": agent_id}
    payload["name"] = name if name is not None else span.name
    return payload


def _workflow_identity(span: SpanRecord) -> dict[str, Any]:
    a = span.attributes
    name = llm.first(a, n.GEN_AI_WORKFLOW_NAME, n.TL_ENTITY_NAME, n.TL_WORKFLOW_NAME)
    return {"taskId": hex_span(span.span_id), "name": name if name is not None else span.name}


def _workflow_result(attributes: Mapping[str, Any]) -> Any:
    output = attributes.get(n.GEN_AI_OUTPUT_MESSAGES)
    if output is not None:
        return msg.output_text_and_calls(output)[0]
    return from_json_text(llm.first(attributes, n.OI_OUTPUT_VALUE, n.TL_ENTITY_OUTPUT))


def _request_fallback(span: SpanRecord) -> str:
    """The ``requestId`` of a foreign request: its span id."""
    return hex_span(span.span_id) or ""


def _tool_fallback(span: SpanRecord) -> str:
    """The ``requestId`` of a foreign tool call: the span it ran under."""
    return hex_span(span.parent_span_id) or hex_span(span.span_id) or ""


def started_seeds(span: SpanRecord, kind: str | None) -> list[Seed]:
    """The contract events the start of a span of ``kind`` (:func:`classify`) stands for."""
    a = span.attributes
    if kind is None:
        return []
    if kind == INFERENCE:
        return [("llm:request:started", llm.request_payload(a, _request_fallback(span)))]
    if kind == TOOL:
        if a.get(n.IMPLICIT):
            return []
        return [("llm:tool:call", llm.tool_call_payload(
            a, _tool_fallback(span), hex_span(span.span_id), span.name))]
    if kind == TASK:
        return [] if a.get(n.IMPLICIT) else [("task:created", task_created(a))]
    if kind == AGENT:
        if n.AGENT_ID in a:
            return [("agent:started", agent_state(a))]
        payload = {**_agent_identity(span), "status": "busy"}
        payload["currentTaskId"] = (a.get(n.TASK_ID) or hex_span(span.parent_span_id)
                                    or hex_span(span.span_id))
        return [("agent:started", payload)]
    if kind == CREATE_AGENT:
        if n.AGENT_ID in a:
            return [] if a.get(n.IMPLICIT) else [("agent:spawned", agent_state(a))]
        return [("agent:spawned", {**_agent_identity(span), "status": "idle"})]
    identity = _workflow_identity(span)  # a foreign workflow starts running at once
    return [("task:created", {**identity, "status": "pending"}),
            ("task:started", {**identity, "status": "running"})]


def ended_seeds(span: SpanRecord, kind: str | None) -> list[Seed]:
    """The contract events the end of a span of ``kind`` (:func:`classify`) stands for."""
    a = span.attributes
    if kind is None or a.get(n.ABANDONED):
        return []
    error = _error_of(span)
    duration = ms_between(span.start_time_ns, span.end_time_ns)
    if kind == INFERENCE:
        ours = n.LLM_REQUEST_ID in a
        request_id = _request_fallback(span)
        if error is not None:
            return [("llm:request:error", llm.error_payload(a, request_id, error))]
        completed = llm.completion_payload(a, request_id, duration, ours=ours)
        if not ours and "usage" in completed:
            usage = {**llm.base_payload(a, request_id), "usage": completed["usage"]}
            return [("llm:usage", usage), ("llm:request:completed", completed)]
        return [("llm:request:completed", completed)]
    if kind == TOOL:
        return [("llm:tool:result", llm.tool_result_payload(
            a, _tool_fallback(span), hex_span(span.span_id), span.name, duration, error))]
    if kind == TASK:
        status = a.get(n.TASK_STATUS)
        return [(f"task:{status}", task_state(a))] if status in _TASK_OUTCOMES else []
    if kind == AGENT:
        if n.AGENT_ID in a:
            return []
        if error is not None:
            return [("agent:error", {**_agent_identity(span), "status": "error",
                                     "error": error_value(error)})]
        return [("agent:stopped", {**_agent_identity(span), "status": "stopped"})]
    if kind == CREATE_AGENT:
        return []
    identity = _workflow_identity(span)
    if error is not None:
        return [("task:failed", {**identity, "status": "failed", "error": error_value(error)})]
    payload = {**identity, "status": "completed"}
    result = _workflow_result(a)
    if result is not None:
        payload["result"] = result
    return [("task:completed", payload)]
