"""LLMStream: a request is a GenAI inference span (``chat {model}``, kind CLIENT).

Tool calls are ``execute_tool {name}`` child spans. Tokens stream live but are
not exported one by one unless ``export_tokens`` asks for it: the span carries
the totals (usage, finish reasons, time to first chunk) and the usage feeds
the GenAI client histograms. Message content (prompts, responses, tool
arguments and results) reaches exported telemetry only when content capture
is on; the live stream carries it unless ``redact_content``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Unpack

from opentelemetry.trace import SpanKind

from otel_sse.emitters._core import (
    REDACTED,
    REGISTRY,
    Emitter,
    EmitterOptions,
    SpanEntry,
    Spec,
    normalize,
    now,
    one_dict_or_kwargs,
    plain,
)
from otel_sse.telemetry import attrs
from otel_sse.wire.encoder import dumps

PARAMETERS_SPEC: Spec = {"temperature": None, "maxTokens": None, "topP": None, "topK": None,
                         "stopSequences": None}
USAGE_SPEC: Spec = {"promptTokens": None, "completionTokens": None, "totalTokens": None,
                    "cost": None, "costBreakdown": {"promptCost": None, "completionCost": None}}
STARTED_SPEC: Spec = {"provider": None, "model": None, "agentId": None, "taskId": None,
                      "systemPrompt": None, "messages": None, "parameters": PARAMETERS_SPEC,
                      "tools": None}
TOKEN_SPEC: Spec = {"token": None, "index": None, "isFinal": None, "finishReason": None}
TOOL_CALL_SPEC: Spec = {"toolCallId": None, "toolName": None, "arguments": None,
                        "isComplete": None}
TOOL_RESULT_SPEC: Spec = {"toolCallId": None, "toolName": None, "result": None,
                          "executionTime": None, "error": None}
_TOOL_CALL_ITEM: Spec = TOOL_CALL_SPEC | {"requestId": None, "provider": None, "model": None,
                                         "agentId": None, "taskId": None, "timestamp": None}
COMPLETED_SPEC: Spec = {"response": None, "usage": USAGE_SPEC, "duration": None,
                        "toolCalls": ("list", _TOOL_CALL_ITEM)}
ERROR_SPEC: Spec = {"error": None, "errorCode": None, "errorType": None, "willRetry": None,
                    "retryAttempt": None}
_BASE_KEYS = ("requestId", "provider", "model", "agentId", "taskId")
_PARAM_ATTRS = {"temperature": attrs.GEN_AI_REQUEST_TEMPERATURE,
                "maxTokens": attrs.GEN_AI_REQUEST_MAX_TOKENS, "topP": attrs.GEN_AI_REQUEST_TOP_P,
                "topK": attrs.GEN_AI_REQUEST_TOP_K,
                "stopSequences": attrs.GEN_AI_REQUEST_STOP_SEQUENCES}


class _Request:
    """Per-request bookkeeping beyond the seed's state."""

    __slots__ = ("base", "finish_reasons", "first_chunk", "started", "state", "tokens", "usage")

    def __init__(self, base: dict[str, Any], state: dict[str, Any]) -> None:
        self.base = base
        self.state = state
        self.started = time.monotonic()
        self.first_chunk: float | None = None
        self.finish_reasons: list[str] = []
        self.tokens = 0
        self.usage: dict[str, Any] | None = None


def _redact_messages(messages: Any) -> Any:
    if not isinstance(messages, list):
        return REDACTED
    return [{**m, "content": REDACTED} if isinstance(m, Mapping) else REDACTED for m in messages]


class LLMStream(Emitter):
    """Request lifecycle, token streaming, tool calls and usage for LLM calls."""

    def __init__(
        self,
        server: Any,
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
        ``system_prompt``, ``parameters`` (temperature, max_tokens, ...), ``tools``."""
        fields = normalize(data, STARTED_SPEC, "emit_request_started")
        provider = str(fields.get("provider", "unknown"))
        model = str(fields.get("model", "unknown"))
        base: dict[str, Any] = {"requestId": request_id, "provider": provider, "model": model}
        for key in ("agentId", "taskId"):
            if key in fields:
                base[key] = fields[key]
        fields.setdefault("messages", [])
        content: dict[str, Any] = {
            k: fields[k] for k in ("systemPrompt", "messages") if k in fields}
        redacted: dict[str, Any] = {k: (_redact_messages(v) if k == "messages" else REDACTED)
                    for k, v in content.items()}
        exported, live = self._split_content(content, self.content_on_spans, redacted)
        payload = {**base, **{k: v for k, v in fields.items() if k not in base and
                              k not in content}, **exported}

        span_attrs: dict[str, Any] = {
            attrs.KIND: "llm",
            attrs.EVENT: "llm:request:started",
            attrs.PAYLOAD: dumps(payload),
            attrs.LLM_REQUEST_ID: request_id,
            attrs.GEN_AI_OPERATION_NAME: self.operation,
            attrs.GEN_AI_PROVIDER_NAME: provider,
            attrs.GEN_AI_REQUEST_MODEL: model,
        }
        for key, attr in _PARAM_ATTRS.items():
            value = fields.get("parameters", {}).get(key)
            if value is not None:
                span_attrs[attr] = list(value) if isinstance(value, (list, tuple)) else value
        if "agentId" in base:
            span_attrs[attrs.GEN_AI_AGENT_ID] = str(base["agentId"])
        if "taskId" in base:
            span_attrs[attrs.TASK_ID] = str(base["taskId"])
        if self.content_on_spans:
            span_attrs[attrs.GEN_AI_INPUT_MESSAGES] = dumps(fields.get("messages", []))
            if "systemPrompt" in fields:
                span_attrs[attrs.GEN_AI_SYSTEM_INSTRUCTIONS] = dumps(
                    [{"type": "text", "content": fields["systemPrompt"]}])
            if "tools" in fields:
                span_attrs[attrs.GEN_AI_TOOL_DEFINITIONS] = dumps(fields["tools"])

        parent = self._parent(REGISTRY.get("task", base.get("taskId")),
                              REGISTRY.get("agent", base.get("agentId")))
        old = REGISTRY.pop("llm", request_id)
        if old is not None:
            self._end_span(old, None, None, None)
        entry = self._start_span(f"{self.operation} {model}", SpanKind.CLIENT, span_attrs,
                                 parent, live)
        REGISTRY.put("llm", request_id, entry)
        state = {**base, "timestamp": now()}
        self._requests[request_id] = _Request(base, state)
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
        entry = REGISTRY.get("llm", request_id)
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
        """``tool_call_id``, ``tool_name``, ``arguments`` (a string, maybe partial),
        ``is_complete``. The first call for an id opens its ``execute_tool`` span."""
        if not self.include_tool_calls:
            return
        request = self._requests.get(request_id)
        if request is None:
            return
        fields = normalize(data, TOOL_CALL_SPEC, "emit_tool_call")
        fields.setdefault("isComplete", True)
        fields.setdefault("arguments", "")
        call_id = str(fields.get("toolCallId", ""))
        tool = str(fields.get("toolName", "tool"))
        exported_content, live = self._split_content(
            {"arguments": fields["arguments"]}, self.content_on_spans,
            {"arguments": REDACTED})
        payload = {**request.base, **{k: v for k, v in fields.items() if k != "arguments"},
                   **exported_content}
        key = f"{request_id}\x00{call_id}"
        open_tool = REGISTRY.get("tool", key)
        if open_tool is None:
            call_attrs: dict[str, Any] = {attrs.EVENT: "llm:tool:call",
                                          attrs.PAYLOAD: dumps(payload)}
            if self.content_on_spans:
                call_attrs[attrs.GEN_AI_TOOL_CALL_ARGUMENTS] = str(fields["arguments"])
            REGISTRY.put("tool", key,
                         self._start_tool_span(request_id, tool, call_id, call_attrs, live))
        else:
            exported_ev, live_ev = self._split_content(
                {"arguments": fields["arguments"]}, self.content_on_events,
                {"arguments": REDACTED})
            self._emit_record(open_tool, "llm:tool:call",
                              {**{k: v for k, v in payload.items() if k != "arguments"},
                               **exported_ev}, live_ev)
            if self.content_on_spans:
                open_tool.span.set_attribute(attrs.GEN_AI_TOOL_CALL_ARGUMENTS,
                                             str(fields["arguments"]))
        self._fire("tool_call", {**request.base, **fields, "timestamp": now()})

    def emit_tool_result(self, request_id: str, **data: Any) -> None:
        """``tool_call_id``, ``tool_name``, ``result``, ``execution_time`` (ms), ``error``."""
        if not self.include_tool_calls:
            return
        request = self._requests.get(request_id)
        if request is None:
            return
        fields = normalize(data, TOOL_RESULT_SPEC, "emit_tool_result")
        fields.setdefault("result", None)
        fields.setdefault("executionTime", 0)
        call_id = str(fields.get("toolCallId", ""))
        tool = str(fields.get("toolName", "tool"))
        exported_content, live = self._split_content(
            {"result": fields["result"]}, self.content_on_spans, {"result": REDACTED})
        payload = {**request.base, **{k: v for k, v in fields.items() if k != "result"},
                   **exported_content}
        entry = REGISTRY.pop("tool", f"{request_id}\x00{call_id}")
        if entry is None:  # a result without a call: still one span, with real ids
            entry = self._start_tool_span(request_id, tool, call_id, {}, None)
        end_attrs: dict[str, Any] = {}
        if self.content_on_spans:
            end_attrs[attrs.GEN_AI_TOOL_CALL_RESULT] = dumps(fields["result"])
        error = fields.get("error")
        self._end_span(entry, "llm:tool:result", payload, live,
                       error=str(error) if error is not None else None,
                       error_type="ToolError" if error is not None else None,
                       attributes=end_attrs)
        self._fire("tool_result", {**request.base, **fields, "timestamp": now()})

    def emit_usage(self, request_id: str, usage: Mapping[str, Any] | None = None,
                   **fields: Any) -> None:
        if not self.include_usage:
            return
        request = self._requests.get(request_id)
        if request is None:
            return
        values = normalize(one_dict_or_kwargs(usage, fields, "emit_usage"), USAGE_SPEC,
                           "emit_usage")
        self._record_usage(request, values)
        entry = REGISTRY.get("llm", request_id)
        if entry is not None:
            self._emit_record(entry, "llm:usage", {**request.base, "usage": values})
        self._fire("usage", {"requestId": request_id, "usage": values})

    def emit_request_completed(self, request_id: str, **data: Any) -> None:
        """``response``, ``usage``, ``duration`` (ms), optional ``tool_calls``."""
        request = self._requests.get(request_id)
        if request is None:
            return
        fields = normalize(data, COMPLETED_SPEC, "emit_request_completed")
        fields.setdefault("response", "")
        fields.setdefault("duration", round((time.monotonic() - request.started) * 1000))
        fields.setdefault("usage", request.usage or {"promptTokens": 0, "completionTokens": 0,
                                                     "totalTokens": 0})
        if "usage" in data and data["usage"] is not None:
            self.emit_usage(request_id, fields["usage"])
        content = {"response": fields["response"]}
        redacted: dict[str, Any] = {"response": REDACTED}
        if "toolCalls" in fields:
            content["toolCalls"] = fields["toolCalls"]
            redacted["toolCalls"] = [{**c, "arguments": REDACTED} if isinstance(c, Mapping)
                                     else c for c in fields["toolCalls"]]
        exported, live = self._split_content(content, self.content_on_spans, redacted)
        payload = {**request.base,
                   **{k: v for k, v in fields.items() if k not in content}, **exported}
        end_attrs = self._usage_attributes(request)
        if self.content_on_spans:
            end_attrs[attrs.GEN_AI_OUTPUT_MESSAGES] = dumps(
                [{"role": "assistant", "parts": [{"type": "text",
                                                  "content": fields["response"]}],
                  "finish_reason": (request.finish_reasons or ["stop"])[0]}])
        entry = REGISTRY.pop("llm", request_id)
        self._close_tools(request_id)
        if entry is not None:
            self._end_span(entry, "llm:request:completed", payload, live, attributes=end_attrs)
        self._record_metrics(request, None)
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
        error_type = str(fields.get("errorType") or fields.get("errorCode") or "_OTHER")
        if fields.get("willRetry"):
            entry = REGISTRY.get("llm", request_id)
            if entry is not None:
                self._emit_record(entry, "llm:request:error", payload, level="warn")
        else:
            entry = REGISTRY.pop("llm", request_id)
            self._close_tools(request_id)
            if entry is not None:
                self._end_span(entry, "llm:request:error", payload, None,
                               error=str(fields["error"]), error_type=error_type,
                               attributes=self._usage_attributes(request))
            self._record_metrics(request, error_type)
            self._requests.pop(request_id, None)
            self._buffers.pop(request_id, None)
        self._fire("request_error", {**payload, "timestamp": now()})

    # -- state API ----------------------------------------------------------------------
    def get_request_state(self, request_id: str) -> dict[str, Any] | None:
        request = self._requests.get(request_id)
        return dict(request.state) if request is not None else None

    def get_token_buffer(self, request_id: str) -> list[str]:
        return list(self._buffers.get(request_id, ()))

    def get_full_response(self, request_id: str) -> str:
        return "".join(self._buffers.get(request_id, ()))

    def clear_request_state(self, request_id: str) -> None:
        self._requests.pop(request_id, None)
        self._buffers.pop(request_id, None)

    def stop(self) -> None:
        for request_id in list(self._requests):
            entry = REGISTRY.pop("llm", request_id)
            self._close_tools(request_id)
            if entry is not None:
                self._end_span(entry, None, None, None)
        self._requests.clear()
        self._buffers.clear()
        self._stopped()

    # -- internals ----------------------------------------------------------------------------
    def _start_tool_span(self, request_id: str, tool: str, call_id: str,
                         extra: Mapping[str, Any], live: Mapping[str, Any] | None) -> SpanEntry:
        """An ``execute_tool {tool}`` span under the request's span (if still open)."""
        span_attrs: dict[str, Any] = {
            attrs.KIND: "tool", attrs.LLM_REQUEST_ID: request_id,
            attrs.GEN_AI_OPERATION_NAME: "execute_tool", attrs.GEN_AI_TOOL_NAME: tool,
            attrs.GEN_AI_TOOL_CALL_ID: call_id, attrs.GEN_AI_TOOL_TYPE: "function", **extra,
        }
        parent_entry = REGISTRY.get("llm", request_id)
        return self._start_span(f"execute_tool {tool}", SpanKind.INTERNAL, span_attrs,
                                parent_entry.context if parent_entry else None, live)

    def _close_tools(self, request_id: str) -> None:
        prefix = f"{request_id}\x00"
        for key in REGISTRY.keys("tool"):
            if key.startswith(prefix):
                entry = REGISTRY.pop("tool", key)
                if entry is not None:
                    self._end_span(entry, None, None, None)

    @staticmethod
    def _record_usage(request: _Request, values: dict[str, Any]) -> None:
        request.usage = {**(request.usage or {}), **values}
        request.state["usage"] = request.usage

    @staticmethod
    def _usage_attributes(request: _Request) -> dict[str, Any]:
        out: dict[str, Any] = {}
        usage = request.usage or {}
        if isinstance(usage.get("promptTokens"), int):
            out[attrs.GEN_AI_USAGE_INPUT_TOKENS] = usage["promptTokens"]
        if isinstance(usage.get("completionTokens"), int):
            out[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] = usage["completionTokens"]
        if request.finish_reasons:
            out[attrs.GEN_AI_RESPONSE_FINISH_REASONS] = list(request.finish_reasons)
        if request.first_chunk is not None:
            out[attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = request.first_chunk - request.started
            out[attrs.GEN_AI_REQUEST_STREAM] = True
        return out

    def _record_metrics(self, request: _Request, error_type: str | None) -> None:
        labels: dict[str, Any] = {attrs.GEN_AI_OPERATION_NAME: self.operation,
                                  attrs.GEN_AI_PROVIDER_NAME: request.base["provider"],
                                  attrs.GEN_AI_REQUEST_MODEL: request.base["model"]}
        instruments = self._instruments
        if error_type is not None:
            instruments.operation_duration.record(time.monotonic() - request.started,
                                                  {**labels, attrs.ERROR_TYPE: error_type})
        else:
            instruments.operation_duration.record(time.monotonic() - request.started, labels)
        if request.first_chunk is not None:
            instruments.time_to_first_chunk.record(request.first_chunk - request.started, labels)
        usage = request.usage or {}
        for key, kind in (("promptTokens", "input"), ("completionTokens", "output")):
            value = usage.get(key)
            if isinstance(value, (int, float)):
                instruments.token_usage.record(value, {**labels, attrs.GEN_AI_TOKEN_TYPE: kind})
