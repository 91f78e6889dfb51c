"""LLMStream: a request is a GenAI inference span (``chat {model}``, kind CLIENT).

Tool calls are ``execute_tool {name}`` child spans. Tokens stream live but are
not exported one by one unless ``export_tokens`` asks for it: the span carries
the totals (usage, finish reasons, time to first chunk) and the usage feeds
the GenAI client metrics. Message content (prompts, responses, tool
definitions, arguments and results) reaches exported telemetry only when
content capture is on, in the conventions' attributes (``gen_ai.input.messages``,
...); the live stream carries it unless ``redact_content``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Unpack

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

import otel_sse.convert.llm as codec
import otel_sse.convert.names as n
from otel_sse.emitters._core import (
    REDACTED,
    Emitter,
    EmitterOptions,
    SpanEntry,
    Spec,
    error_parts,
    normalize,
    now,
    one_dict_or_kwargs,
    plain,
)

PARAMETERS_SPEC: Spec = {"temperature": None, "maxTokens": None, "topP": None, "topK": None,
                         "stopSequences": None}
# Token counts beyond the contract's usage object go to attributes and metrics only.
_USAGE_EXTRA_KEYS = tuple(codec.USAGE_EXTRAS)
USAGE_SPEC: Spec = {"promptTokens": None, "completionTokens": None, "totalTokens": None,
                    "cost": None, "costBreakdown": {"promptCost": None, "completionCost": None},
                    **dict.fromkeys(_USAGE_EXTRA_KEYS)}
STARTED_SPEC: Spec = {"provider": None, "model": None, "agentId": None, "taskId": None,
                      "systemPrompt": None, "messages": None, "parameters": PARAMETERS_SPEC,
                      "tools": None, "stream": None, "conversationId": None}
TOKEN_SPEC: Spec = {"token": None, "index": None, "isFinal": None, "finishReason": None}
# Where a tool run that answers no open request comes from (see emit_tool_call).
ORIGIN_SPEC: Spec = {"provider": None, "model": None, "agentId": None, "taskId": None}
TOOL_CALL_SPEC: Spec = {"toolCallId": None, "toolName": None, "arguments": None,
                        "isComplete": None, **ORIGIN_SPEC}
TOOL_RESULT_SPEC: Spec = {"toolCallId": None, "toolName": None, "result": None,
                          "executionTime": None, "error": None, **ORIGIN_SPEC}
_TOOL_CALL_ITEM: Spec = TOOL_CALL_SPEC | {"requestId": None, "provider": None, "model": None,
                                         "agentId": None, "taskId": None, "timestamp": None}
COMPLETED_SPEC: Spec = {"response": None, "usage": USAGE_SPEC, "duration": None,
                        "toolCalls": ("list", _TOOL_CALL_ITEM), "responseId": None,
                        "responseModel": None}
ERROR_SPEC: Spec = {"error": None, "errorCode": None, "errorType": None, "willRetry": None,
                    "retryAttempt": None}


class _Request:
    """Per-request bookkeeping beyond the seed's state."""

    __slots__ = ("base", "extras", "finish_reasons", "first_chunk", "started", "state",
                 "stream", "tokens", "usage")

    def __init__(self, base: dict[str, Any], state: dict[str, Any], stream: bool | None) -> None:
        self.base = base
        self.state = state
        self.stream = stream
        self.started = time.monotonic()
        self.first_chunk: float | None = None
        self.finish_reasons: list[str] = []
        self.tokens = 0
        self.usage: dict[str, Any] | None = None
        self.extras: dict[str, Any] = {}


def _redact_messages(messages: Any) -> Any:
    if not isinstance(messages, list):
        return REDACTED
    return [{**m, "content": REDACTED} if isinstance(m, Mapping) else REDACTED for m in messages]


def _split_usage(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the contract's usage object, the token counts beyond it). The contract's counts
    are all there: a count not given is 0, and the total the sum when not given."""
    extras = {key: values.pop(key) for key in _USAGE_EXTRA_KEYS if key in values}
    values.setdefault("promptTokens", 0)
    values.setdefault("completionTokens", 0)
    values.setdefault("totalTokens", values["promptTokens"] + values["completionTokens"])
    return values, extras


class LLMStream(Emitter):
    """Request lifecycle, token streaming, tool calls and usage for LLM calls."""

    def __init__(
        self,
        server: Any = None,
        include_tokens: bool = True,
        include_tool_calls: bool = True,
        include_usage: bool = True,
        token_buffer_size: int = 1000,
        *,
        export_tokens: bool | None = None,
        operation: str = "chat",
        **options: Unpack[EmitterOptions],
    ) -> None:
        super().__init__(server, **options)
        self.include_tokens = include_tokens
        self.include_tool_calls = include_tool_calls
        self.include_usage = include_usage
        self.token_buffer_size = token_buffer_size
        self.export_tokens = (self.telemetry.config.export_tokens if export_tokens is None
                              else export_tokens)
        self.operation = operation
        self._requests: dict[str, _Request] = {}
        self._buffers: dict[str, deque[str]] = {}

    # -- request lifecycle ----------------------------------------------------------
    def emit_request_started(self, request_id: str, **data: Any) -> None:
        """``provider``, ``model``, ``messages``, and optionally ``agent_id``, ``task_id``,
        ``system_prompt``, ``parameters`` (temperature, max_tokens, ...), ``tools``.
        Telemetry only (not in the event): ``stream`` (the request streams its
        response) and ``conversation_id`` (``gen_ai.conversation.id``)."""
        fields = normalize(data, STARTED_SPEC, "emit_request_started")
        stream = fields.pop("stream", None)
        conversation = fields.pop("conversationId", None)
        provider = str(fields.get("provider", "unknown"))
        model = str(fields.get("model", "unknown"))
        base: dict[str, Any] = {"requestId": request_id, "provider": provider, "model": model}
        for key in ("agentId", "taskId"):
            if key in fields:
                base[key] = fields[key]
        fields.setdefault("messages", [])
        content: dict[str, Any] = {
            k: fields[k] for k in ("systemPrompt", "messages", "tools") if k in fields}
        redacted: dict[str, Any] = {
            k: (_redact_messages(v) if k == "messages" else v if k == "tools" else REDACTED)
            for k, v in content.items()}
        exported, live = self._split_content(content, self.content_on_spans, redacted)
        payload = {**base, **{k: v for k, v in fields.items() if k not in base and
                              k not in content}, **exported}

        span_attrs = codec.request_attributes(payload, self.operation)
        if conversation is not None:
            span_attrs[n.GEN_AI_CONVERSATION_ID] = str(conversation)
        if stream is not None:
            span_attrs[n.GEN_AI_REQUEST_STREAM] = bool(stream)
        parent = self._parent(self._spans.get("task", base.get("taskId")),
                              self._spans.get("agent", base.get("agentId")))
        old = self._spans.pop("llm", request_id)
        if old is not None:
            self._abandon(old)
        entry = self._start_span(f"{self.operation} {model}", SpanKind.CLIENT, span_attrs,
                                 parent, live)
        self._spans.put("llm", request_id, entry)
        state = {**base, "timestamp": now()}
        self._requests[request_id] = _Request(base, state, None if stream is None
                                              else bool(stream))
        self._fire("request_started", {**payload, **content, "timestamp": state["timestamp"]})

    def emit_token(self, request_id: str, token: str | None = None, index: int | None = None,
                   **data: Any) -> None:
        """``token``, ``index``, optional ``is_final``, ``finish_reason``."""
        if not self.include_tokens:
            return
        request = self._requests.get(request_id)
        if request is None:
            return
        if data:
            fields = normalize({"token": token, "index": index, **data}, TOKEN_SPEC,
                               "emit_token")
            reason = fields.get("finishReason")
            if reason is not None and reason not in request.finish_reasons:
                request.finish_reasons.append(str(reason))
        else:  # the common call, emit_token(id, token, index): what normalize would give
            fields = {}
            if token is not None:
                fields["token"] = token if type(token) is str else plain(token)
            if index is not None:
                fields["index"] = index if type(index) is int else plain(index)
        if request.first_chunk is None:
            request.first_chunk = time.monotonic()
        request.tokens += 1
        buffer = self._buffers.get(request_id)
        if buffer is None:
            buffer = self._buffers[request_id] = deque(maxlen=max(1, self.token_buffer_size))
        text = fields.get("token", "")
        buffer.append(text)
        entry = self._spans.get("llm", request_id)
        payload = {**request.base, **fields}
        if entry is not None:
            if self.export_tokens:
                exported, live = self._split_content(
                    {"token": text}, self.content_on_events, {"token": REDACTED})
                self._emit_record(entry, "llm:token",
                                  {**payload, "token": exported.get("token")} if exported else
                                  {k: v for k, v in payload.items() if k != "token"}, live)
            else:
                # The loop thread completes the live payload in place: it gets its own
                # dict, shared with nothing this thread reads afterwards.
                live_payload = dict(payload) if self._listeners else payload
                if self.redact_content:
                    live_payload["token"] = REDACTED
                self._emit_live(entry, "llm:token", live_payload)
        if self._listeners:
            self._fire("token", {**payload, "timestamp": now()})

    def emit_tool_call(self, request_id: str, **data: Any) -> None:
        """``tool_call_id``, ``tool_name``, ``arguments`` (JSON text, maybe partial, or an
        object), ``is_complete``. The first call for an id opens its ``execute_tool``
        span; later ones (the arguments streaming in) are records in it.

        A tool usually runs after the request that asked for it has completed, or
        outside any request: then ``provider`` and ``model`` (and ``agent_id``,
        ``task_id``) say where the call comes from, and its span is a child of the
        current span. Without them a call for a request that is not open is ignored."""
        if not self.include_tool_calls:
            return
        fields = normalize(data, TOOL_CALL_SPEC, "emit_tool_call")
        base = self._tool_origin(request_id, fields)
        if base is None:
            return
        fields.setdefault("isComplete", True)
        fields.setdefault("arguments", "")
        call_id = str(fields.get("toolCallId", ""))
        tool = str(fields.get("toolName", "tool"))
        payload = {**base, **{k: v for k, v in fields.items() if k != "arguments"}}
        key = f"{request_id}\x00{call_id}"
        open_tool = self._spans.get("tool", key)
        if open_tool is None:
            exported, live = self._split_content(
                {"arguments": fields["arguments"]}, self.content_on_spans,
                {"arguments": REDACTED})
            self._spans.put("tool", key, self._start_tool_span(
                request_id, tool, call_id, {**payload, **exported}, live, implicit=False))
        else:
            exported, live = self._split_content(
                {"arguments": fields["arguments"]}, self.content_on_events,
                {"arguments": REDACTED})
            self._emit_record(open_tool, "llm:tool:call", {**payload, **exported}, live)
            if self.content_on_spans:  # the span shows the call as finally known
                open_tool.span.set_attributes({
                    n.GEN_AI_TOOL_CALL_ARGUMENTS: codec.arguments_text(fields["arguments"]),
                    n.TOOL_COMPLETE: bool(fields["isComplete"])})
        self._fire("tool_call", {**base, **fields, "timestamp": now()})

    def emit_tool_result(self, request_id: str, **data: Any) -> None:
        """``tool_call_id``, ``tool_name``, ``result``, ``execution_time`` (ms), ``error``
        (a message or ``{message, name?}``: the name becomes ``error.type``);
        ``provider``, ``model``, ``agent_id``, ``task_id`` as in :meth:`emit_tool_call`."""
        if not self.include_tool_calls:
            return
        fields = normalize(data, TOOL_RESULT_SPEC, "emit_tool_result")
        base = self._tool_origin(request_id, fields)
        if base is None:
            return
        fields.setdefault("result", None)
        fields.setdefault("executionTime", 0)
        call_id = str(fields.get("toolCallId", ""))
        tool = str(fields.get("toolName", "tool"))
        exported_content, live = self._split_content(
            {"result": fields["result"]}, self.content_on_spans, {"result": REDACTED})
        payload = {**base, **{k: v for k, v in fields.items() if k != "result"},
                   **exported_content}
        entry = self._spans.pop("tool", f"{request_id}\x00{call_id}")
        if entry is None:  # a result without a call: still one span, with real ids
            entry = self._start_tool_span(request_id, tool, call_id,
                                          {**base, "toolName": tool,
                                           "toolCallId": call_id}, None, implicit=True)
        error = fields.get("error")
        message, error_type = (error_parts(error, "ToolError") if error is not None
                               else (None, None))
        self._end_span(entry, live, error=message, error_type=error_type,
                       attributes=codec.tool_result_attributes(payload, {}))
        self._instruments.record_tool(time.monotonic() - entry.start, tool, error_type)
        self._fire("tool_result", {**base, **fields, "timestamp": now()})

    def emit_usage(self, request_id: str, usage: Mapping[str, Any] | None = None,
                   **fields: Any) -> None:
        """``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``cost``,
        ``cost_breakdown``; and, for telemetry only (not in the event),
        ``cache_read_input_tokens``, ``cache_write_input_tokens``,
        ``reasoning_output_tokens`` when the provider reports them."""
        if not self.include_usage:
            return
        request = self._requests.get(request_id)
        if request is None:
            return
        values, extras = _split_usage(normalize(
            one_dict_or_kwargs(usage, fields, "emit_usage"), USAGE_SPEC, "emit_usage"))
        self._record_usage(request, values, extras)
        entry = self._spans.get("llm", request_id)
        if entry is not None:
            self._emit_record(entry, "llm:usage", {**request.base, "usage": values})
        self._fire("usage", {"requestId": request_id, "usage": values})

    def emit_request_completed(self, request_id: str, **data: Any) -> None:
        """``response``, ``usage``, ``duration`` (ms), optional ``tool_calls``; for
        telemetry only, ``response_id`` and ``response_model`` as the provider gave them."""
        request = self._requests.get(request_id)
        if request is None:
            return
        fields = normalize(data, COMPLETED_SPEC, "emit_request_completed")
        response_id = fields.pop("responseId", None)
        response_model = fields.pop("responseModel", None)
        fields.setdefault("response", "")
        fields.setdefault("duration", round((time.monotonic() - request.started) * 1000))
        if "usage" in fields:
            self.emit_usage(request_id, fields["usage"])
            fields["usage"] = _split_usage(dict(fields["usage"]))[0]
        else:
            fields["usage"] = request.usage or {"promptTokens": 0, "completionTokens": 0,
                                                "totalTokens": 0}
        content = {"response": fields["response"]}
        redacted: dict[str, Any] = {"response": REDACTED}
        if "toolCalls" in fields:
            content["toolCalls"] = fields["toolCalls"]
            redacted["toolCalls"] = [{**c, "arguments": REDACTED} if isinstance(c, Mapping)
                                     else c for c in fields["toolCalls"]]
        exported, live = self._split_content(content, self.content_on_spans, redacted)
        payload = {**request.base,
                   **{k: v for k, v in fields.items() if k not in content}, **exported}
        end_attrs = codec.completion_attributes(payload, self._outcome_attributes(request))
        if response_id is not None:
            end_attrs[n.GEN_AI_RESPONSE_ID] = str(response_id)
        if response_model is not None:
            end_attrs[n.GEN_AI_RESPONSE_MODEL] = str(response_model)
        entry = self._spans.pop("llm", request_id)
        self._close_tools(request_id)
        if entry is not None:
            self._end_span(entry, live, attributes=end_attrs)
        self._record_metrics(request, None, response_model)
        self._requests.pop(request_id, None)
        self._buffers.pop(request_id, None)
        self._fire("request_completed", {**request.base, **fields, "timestamp": now()})

    def emit_request_error(self, request_id: str, error: str | None = None,
                           **data: Any) -> None:
        """``error``, optional ``error_code``, ``error_type``, ``will_retry``,
        ``retry_attempt``. Without ``will_retry`` the request's span ends in error."""
        request = self._requests.get(request_id)
        if request is None:
            return
        fields = normalize({"error": error, **data}, ERROR_SPEC, "emit_request_error")
        fields.setdefault("error", "unknown error")
        payload = {**request.base, **fields}
        error_type = codec.error_type_of(payload)
        if fields.get("willRetry"):
            entry = self._spans.get("llm", request_id)
            if entry is not None:
                self._emit_record(entry, "llm:request:error", payload, level="warn")
        else:
            if "error" not in request.finish_reasons:
                request.finish_reasons.append("error")
            end_attrs = codec.error_attributes(payload, self._outcome_attributes(request))
            if request.usage:
                codec.usage_attributes(request.usage, end_attrs)
            entry = self._spans.pop("llm", request_id)
            self._close_tools(request_id)
            if entry is not None:
                self._end_span(entry, error=codec.error_message(payload),
                               error_type=error_type, attributes=end_attrs)
            self._record_metrics(request, error_type, None)
            self._requests.pop(request_id, None)
            self._buffers.pop(request_id, None)
        self._fire("request_error", {**payload, "timestamp": now()})

    # -- state API ----------------------------------------------------------------------
    def request_context(self, request_id: str) -> Context | None:
        """An OpenTelemetry context with the open request's span current (None when
        the request is not open): spans started under it nest in the request."""
        return self._context_of("llm", request_id)

    def tool_context(self, request_id: str, tool_call_id: str) -> Context | None:
        """An OpenTelemetry context with the open tool call's span current (None when
        it is not open)."""
        return self._context_of("tool", f"{request_id}\x00{tool_call_id}")

    def get_request_state(self, request_id: str) -> dict[str, Any] | None:
        """A copy of the request's state (None when unknown or finished)."""
        request = self._requests.get(request_id)
        return dict(request.state) if request is not None else None

    def get_token_buffer(self, request_id: str) -> list[str]:
        """The request's last ``token_buffer_size`` tokens."""
        return list(self._buffers.get(request_id, ()))

    def get_full_response(self, request_id: str) -> str:
        """The buffered tokens joined."""
        return "".join(self._buffers.get(request_id, ()))

    def clear_request_state(self, request_id: str) -> None:
        """Forget the request's state and tokens."""
        self._requests.pop(request_id, None)
        self._buffers.pop(request_id, None)

    def stop(self) -> None:
        """Forget all requests; spans still open end without a seed event."""
        for request_id in list(self._requests):
            entry = self._spans.pop("llm", request_id)
            self._close_tools(request_id)
            if entry is not None:
                self._abandon(entry)
        self._requests.clear()
        self._buffers.clear()
        self._stopped()

    # -- internals ----------------------------------------------------------------------------
    def _tool_origin(self, request_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """The base of a tool event's payload: the open request's, else the origin the
        call names (its keys leave ``fields``), else None (the event is ignored)."""
        origin = {key: fields.pop(key) for key in ORIGIN_SPEC if key in fields}
        request = self._requests.get(request_id)
        if request is not None:
            return request.base
        if "provider" not in origin and "model" not in origin:
            return None
        base: dict[str, Any] = {"requestId": request_id,
                                "provider": str(origin.pop("provider", "unknown")),
                                "model": str(origin.pop("model", "unknown"))}
        base.update(origin)
        return base

    def _start_tool_span(self, request_id: str, tool: str, call_id: str,
                         payload: Mapping[str, Any], live: Mapping[str, Any] | None, *,
                         implicit: bool) -> SpanEntry:
        """An ``execute_tool {tool}`` span under the request's span (if still open)."""
        span_attrs: dict[str, Any] = {
            n.GEN_AI_OPERATION_NAME: "execute_tool", n.GEN_AI_TOOL_NAME: tool,
            n.GEN_AI_TOOL_CALL_ID: call_id, n.GEN_AI_TOOL_TYPE: "function"}
        codec.tool_call_attributes(payload, span_attrs)
        if implicit:
            span_attrs[n.IMPLICIT] = True
        parent_entry = self._spans.get("llm", request_id)
        return self._start_span(f"execute_tool {tool}", SpanKind.INTERNAL, span_attrs,
                                parent_entry.context if parent_entry else None, live)

    def _close_tools(self, request_id: str) -> None:
        prefix = f"{request_id}\x00"
        for key in self._spans.keys("tool"):
            if key.startswith(prefix):
                entry = self._spans.pop("tool", key)
                if entry is not None:
                    self._abandon(entry)

    @staticmethod
    def _record_usage(request: _Request, values: dict[str, Any],
                      extras: dict[str, Any]) -> None:
        request.usage = {**(request.usage or {}), **values}
        request.state["usage"] = request.usage
        request.extras.update(extras)

    @staticmethod
    def _outcome_attributes(request: _Request) -> dict[str, Any]:
        """What the request's end adds besides the payload: finish reasons, time to
        first chunk, streaming, and token counts beyond the usage object."""
        out: dict[str, Any] = {}
        if request.finish_reasons:
            out[n.GEN_AI_RESPONSE_FINISH_REASONS] = list(request.finish_reasons)
        if request.first_chunk is not None:
            out[n.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = request.first_chunk - request.started
            if request.stream is None:  # not said at the start: the tokens tell
                out[n.GEN_AI_REQUEST_STREAM] = True
        for key, value in request.extras.items():
            out[codec.USAGE_EXTRAS[key]] = value
        return out

    def _record_metrics(self, request: _Request, error_type: str | None,
                        response_model: Any) -> None:
        labels: dict[str, Any] = {n.GEN_AI_OPERATION_NAME: self.operation,
                                  n.GEN_AI_PROVIDER_NAME: request.base["provider"],
                                  n.GEN_AI_REQUEST_MODEL: request.base["model"]}
        if response_model is not None:
            labels[n.GEN_AI_RESPONSE_MODEL] = str(response_model)
        ttfc = (request.first_chunk - request.started
                if request.first_chunk is not None else None)
        self._instruments.record_inference(labels, time.monotonic() - request.started, ttfc,
                                           request.usage or {}, request.extras, error_type)
