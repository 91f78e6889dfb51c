"""Live-only data as what another process can receive over OTLP.

In-process, tokens travel as :class:`LiveEvent` values and content kept out of
exported telemetry rides on the record as typed ``live`` fields. A forwarder
that sends the live stream to another process (a gateway) turns them into
OTLP with these functions, and the receiving side's conversion gives the same
events: :func:`live_event_record` makes a log record of a live event,
:func:`live_attributes` makes attributes of live fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import otel_sse.convert.llm as llm
import otel_sse.convert.messages as msg
import otel_sse.convert.names as n
from otel_sse.convert.model import LiveEvent, LogRecordData
from otel_sse.convert.records import record_fields
from otel_sse.wire.encoder import dumps


def live_event_record(item: LiveEvent, service_name: str = "unknown_service",
                      severity_number: int = 9) -> LogRecordData:
    """The log record (event name, named attributes, ids) that the conversion turns
    into the same event as ``item``. Raises KeyError for an event type that has no
    record form."""
    event_name, attributes, body = record_fields(item.event_type, item.data)
    return LogRecordData(
        trace_id=item.trace_id, span_id=item.span_id, parent_span_id=item.parent_span_id,
        service_name=service_name, severity_text=None, severity_number=severity_number,
        event_name=event_name, body=body, attributes=attributes, time_ns=item.time_ns)


def live_attributes(live: Mapping[str, Any]) -> dict[str, Any]:
    """Live-only contract fields (``messages``, ``systemPrompt``, ``tools``,
    ``response``, ``toolCalls``, ``arguments``, ``result``, ``token``) as the
    attributes that carry them when content is exported."""
    out: dict[str, Any] = {}
    if "messages" in live:
        out[n.GEN_AI_INPUT_MESSAGES] = dumps(msg.to_genai(live["messages"]))
    if "systemPrompt" in live:
        out[n.GEN_AI_SYSTEM_INSTRUCTIONS] = dumps(msg.system_instructions(live["systemPrompt"]))
    if "tools" in live:
        out[n.GEN_AI_TOOL_DEFINITIONS] = dumps(live["tools"])
    if "response" in live or "toolCalls" in live:
        out[n.GEN_AI_OUTPUT_MESSAGES] = dumps(
            msg.output_messages(live.get("response"), live.get("toolCalls")))
    if "arguments" in live:
        out[n.GEN_AI_TOOL_CALL_ARGUMENTS] = llm.arguments_text(live["arguments"])
    if "result" in live:
        out[n.GEN_AI_TOOL_CALL_RESULT] = dumps(live["result"])
    if live.get("token") is not None:
        out[n.LLM_TOKEN_TEXT] = str(live["token"])
    return out
