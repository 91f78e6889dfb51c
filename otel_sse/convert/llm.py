"""LLM requests and tool calls: contract payloads <-> attributes.

The encoders write what our emitters put on a GenAI inference span
(``chat {model}``), on an ``execute_tool`` span and on their log records. The
decoders read the GenAI conventions (current and deprecated names), plus
OpenInference and OpenLLMetry where those say the same thing another way, so
a request made by any instrumentation yields the same payload keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import otel_sse.convert.messages as msg
import otel_sse.convert.names as n
import otel_sse.convert.traceloop as traceloop
from otel_sse.convert.values import (
    error_text,
    error_value,
    from_json_text,
    loads_or_none,
    scalar,
    strings,
)
from otel_sse.wire.encoder import dumps

BASE_KEYS = ("requestId", "provider", "model", "agentId", "taskId")
_BASE_ATTRIBUTES = {"requestId": n.LLM_REQUEST_ID, "provider": n.GEN_AI_PROVIDER_NAME,
                    "model": n.GEN_AI_REQUEST_MODEL, "agentId": n.AGENT_ID,
                    "taskId": n.TASK_ID}
_PARAMETERS = {"temperature": n.GEN_AI_REQUEST_TEMPERATURE,
               "maxTokens": n.GEN_AI_REQUEST_MAX_TOKENS, "topP": n.GEN_AI_REQUEST_TOP_P,
               "topK": n.GEN_AI_REQUEST_TOP_K,
               "stopSequences": n.GEN_AI_REQUEST_STOP_SEQUENCES}
# OpenInference's llm.invocation_parameters JSON uses the providers' own keys.
_OI_PARAMETERS = {"temperature": ("temperature",),
                  "maxTokens": ("max_tokens", "max_completion_tokens", "max_output_tokens"),
                  "topP": ("top_p",), "topK": ("top_k",), "stopSequences": ("stop",)}
_USAGE = (("promptTokens", (n.GEN_AI_USAGE_INPUT_TOKENS, n.GEN_AI_USAGE_PROMPT_TOKENS,
                            n.OI_TOKEN_COUNT_PROMPT)),
          ("completionTokens", (n.GEN_AI_USAGE_OUTPUT_TOKENS, n.GEN_AI_USAGE_COMPLETION_TOKENS,
                                n.OI_TOKEN_COUNT_COMPLETION)),
          ("totalTokens", (n.LLM_USAGE_TOTAL_TOKENS, n.OI_TOKEN_COUNT_TOTAL,
                           n.TL_LLM_USAGE_TOTAL_TOKENS)),
          ("cost", (n.LLM_USAGE_COST, n.OI_COST_TOTAL)))
_COST_BREAKDOWN = (("promptCost", (n.LLM_USAGE_PROMPT_COST, n.OI_COST_PROMPT)),
                   ("completionCost", (n.LLM_USAGE_COMPLETION_COST, n.OI_COST_COMPLETION)))
# Token counts a provider may report beyond the contract's usage object: they
# go to attributes and metrics only, never into a payload.
USAGE_EXTRAS = {"cacheReadInputTokens": n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
                "cacheWriteInputTokens": n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
                "reasoningOutputTokens": n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS}


def first(attributes: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present (not None) in ``attributes``."""
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


# -- the request's identity ------------------------------------------------------------------
def base_attributes(payload: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """``requestId, provider, model, agentId?, taskId?`` as attributes."""
    for key, attribute in _BASE_ATTRIBUTES.items():
        value = payload.get(key)
        if value is not None:
            out[attribute] = scalar(value)
    return out


def provider_of(attributes: Mapping[str, Any]) -> str:
    """The GenAI provider, by its current name or an older or foreign one."""
    value = first(attributes, n.GEN_AI_PROVIDER_NAME, n.GEN_AI_SYSTEM, n.OI_LLM_PROVIDER,
                  n.OI_LLM_SYSTEM)
    return str(value) if value is not None else "unknown"


def model_of(attributes: Mapping[str, Any]) -> str:
    """The requested model (else the one that answered)."""
    value = first(attributes, n.GEN_AI_REQUEST_MODEL, n.OI_LLM_REQUEST_MODEL_NAME,
                  n.OI_LLM_MODEL_NAME, n.GEN_AI_RESPONSE_MODEL, n.OI_EMBEDDING_MODEL_NAME)
    return str(value) if value is not None else "unknown"


def base_payload(attributes: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The base of every ``llm:*`` payload; ``request_id`` serves when the producer
    has no request id of its own (a foreign span: its span id)."""
    base: dict[str, Any] = {
        "requestId": first(attributes, n.LLM_REQUEST_ID) or request_id,
        "provider": provider_of(attributes),
        "model": model_of(attributes),
    }
    agent = attributes.get(n.AGENT_ID)
    if agent is not None:
        base["agentId"] = agent
    task = attributes.get(n.TASK_ID)
    if task is not None:
        base["taskId"] = task
    return base


# -- llm:request:started -------------------------------------------------------------------------
def _parameter(key: str, value: Any) -> Any:
    if key == "topK" and isinstance(value, float) and value.is_integer():
        return int(value)  # gen_ai.request.top_k is an int
    if key == "stopSequences":
        return strings(value)
    return scalar(value)


def request_attributes(payload: Mapping[str, Any], operation: str) -> dict[str, Any]:
    """An ``llm:request:started`` payload as the attributes of an inference span.
    Content fields (messages, systemPrompt, tools) are encoded when present:
    leave them out of ``payload`` when content capture is off."""
    out: dict[str, Any] = {n.GEN_AI_OPERATION_NAME: operation}
    base_attributes(payload, out)
    parameters = payload.get("parameters")
    if isinstance(parameters, Mapping):
        for key, value in parameters.items():
            attribute = _PARAMETERS.get(key)
            if attribute is not None and value is not None:
                out[attribute] = _parameter(key, value)
    if "messages" in payload:
        out[n.GEN_AI_INPUT_MESSAGES] = dumps(msg.to_genai(payload["messages"]))
    if "systemPrompt" in payload:
        out[n.GEN_AI_SYSTEM_INSTRUCTIONS] = dumps(
            msg.system_instructions(payload["systemPrompt"]))
    if "tools" in payload:
        out[n.GEN_AI_TOOL_DEFINITIONS] = dumps(payload["tools"])
    return out


def _parameters_of(attributes: Mapping[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for key, attribute in _PARAMETERS.items():
        value = attributes.get(attribute)
        if value is not None:
            parameters[key] = value
    if "topK" not in parameters and attributes.get(n.TL_LLM_TOP_K) is not None:
        parameters["topK"] = attributes[n.TL_LLM_TOP_K]
    if "stopSequences" not in parameters and attributes.get(n.TL_LLM_STOP_SEQUENCES):
        parameters["stopSequences"] = strings(attributes[n.TL_LLM_STOP_SEQUENCES])
    invocation = loads_or_none(attributes.get(n.OI_LLM_INVOCATION_PARAMETERS))
    if isinstance(invocation, Mapping):
        for key, candidates in _OI_PARAMETERS.items():
            if key in parameters:
                continue
            value = first(invocation, *candidates)
            if value is not None:
                parameters[key] = strings(value) if key == "stopSequences" else value
    return parameters


def _tools_of(attributes: Mapping[str, Any]) -> list[Any] | None:
    definitions = attributes.get(n.GEN_AI_TOOL_DEFINITIONS)
    if definitions is not None:
        tools = loads_or_none(definitions)
        return tools if isinstance(tools, list) else None
    schemas = [from_json_text(item.get("tool.json_schema"))
               for item in msg.indexed(attributes, n.OI_LLM_TOOLS)
               if item.get("tool.json_schema") is not None]
    if schemas:
        return schemas
    functions = msg.indexed(attributes, n.TL_LLM_REQUEST_FUNCTIONS)
    if functions:
        return [{k: from_json_text(v) if k == "parameters" else v for k, v in f.items()}
                for f in functions]
    return None


def _input_messages(attributes: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    value = attributes.get(n.GEN_AI_INPUT_MESSAGES)
    if value is not None:
        return msg.from_genai(value)
    return (msg.openinference_messages(attributes, n.OI_LLM_INPUT_MESSAGES)
            or msg.openllmetry_messages(attributes, n.TL_PROMPT))


def request_payload(attributes: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The ``llm:request:started`` payload of an inference span (``messages`` is
    always there, empty when the producer recorded none)."""
    payload = base_payload(attributes, request_id)
    parameters = _parameters_of(attributes)
    if parameters:
        payload["parameters"] = parameters
    tools = _tools_of(attributes)
    if tools is not None:
        payload["tools"] = tools
    instructions = attributes.get(n.GEN_AI_SYSTEM_INSTRUCTIONS)
    if instructions is not None:
        text = msg.instructions_text(instructions)
        if text is not None:
            payload["systemPrompt"] = text
    payload["messages"] = _input_messages(attributes) or []
    return payload


# -- usage -------------------------------------------------------------------------------------
def usage_attributes(usage: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """A contract usage object (``promptTokens``, ..., ``costBreakdown``) as attributes."""
    for key, attributes in _USAGE:
        value = usage.get(key)
        if value is not None:
            out[attributes[0]] = scalar(value)
    breakdown = usage.get("costBreakdown")
    if isinstance(breakdown, Mapping):
        for key, attributes in _COST_BREAKDOWN:
            value = breakdown.get(key)
            if value is not None:
                out[attributes[0]] = scalar(value)
    return out


def usage_payload(attributes: Mapping[str, Any], *, complete: bool) -> dict[str, Any] | None:
    """The usage object in ``attributes`` (None when there is none). ``complete``
    fills what a foreign producer left out (counts 0, total the sum), so that
    the object has the contract's three counts."""
    usage: dict[str, Any] = {}
    for key, candidates in _USAGE:
        value = first(attributes, *candidates)
        if value is not None:
            usage[key] = value
    breakdown: dict[str, Any] = {}
    for key, candidates in _COST_BREAKDOWN:
        value = first(attributes, *candidates)
        if value is not None:
            breakdown[key] = value
    if breakdown:
        usage["costBreakdown"] = breakdown
    if not usage:
        return None
    if complete:
        usage.setdefault("promptTokens", 0)
        usage.setdefault("completionTokens", 0)
        usage.setdefault("totalTokens", usage["promptTokens"] + usage["completionTokens"])
    return usage


def usage_extras(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Cache-read, cache-write and reasoning token counts in ``attributes``."""
    extras = {key: attributes[a] for key, a in USAGE_EXTRAS.items()
              if attributes.get(a) is not None}
    if "cacheWriteInputTokens" not in extras:
        legacy = attributes.get(n.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
        if legacy is not None:
            extras["cacheWriteInputTokens"] = legacy
    return extras


# -- llm:request:completed -----------------------------------------------------------------------
def completion_attributes(payload: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """An ``llm:request:completed`` payload's non-base fields as attributes
    (``response``/``toolCalls`` when present: leave them out without content capture)."""
    usage = payload.get("usage")
    if isinstance(usage, Mapping):
        usage_attributes(usage, out)
    duration = payload.get("duration")
    if duration is not None:
        out[n.LLM_DURATION_MS] = scalar(duration)
    if "response" in payload or "toolCalls" in payload:
        out[n.GEN_AI_OUTPUT_MESSAGES] = dumps(
            msg.output_messages(payload.get("response"), payload.get("toolCalls")))
    return out


def _output(attributes: Mapping[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    value = attributes.get(n.GEN_AI_OUTPUT_MESSAGES)
    if value is not None:
        return msg.output_text_and_calls(value)
    flat = (msg.openinference_messages(attributes, n.OI_LLM_OUTPUT_MESSAGES)
            or msg.openllmetry_messages(attributes, n.TL_COMPLETION))
    if flat:
        return msg.response_of(flat)
    return None, []


def completion_payload(attributes: Mapping[str, Any], request_id: str, duration_ms: int,
                       *, ours: bool) -> dict[str, Any]:
    """The ``llm:request:completed`` payload of an ended inference span."""
    payload = base_payload(attributes, request_id)
    response, calls = _output(attributes)
    payload["response"] = response if response is not None else ""
    usage = usage_payload(attributes, complete=not ours)
    if usage is not None:
        payload["usage"] = usage
    elif ours:  # what our emitter reports when the application gave no usage
        payload["usage"] = {"promptTokens": 0, "completionTokens": 0, "totalTokens": 0}
    payload["duration"] = first(attributes, n.LLM_DURATION_MS)
    if payload["duration"] is None:
        payload["duration"] = duration_ms
    if calls:
        payload["toolCalls"] = calls
    return payload


# -- llm:request:error ---------------------------------------------------------------------------
def error_type_of(payload: Mapping[str, Any]) -> str:
    """``error.type``: the error's type, else its code, else ``_OTHER``."""
    return str(payload.get("errorType") or payload.get("errorCode") or "_OTHER")


def error_attributes(payload: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """``errorCode``, ``errorType``, ``willRetry``, ``retryAttempt`` as attributes
    (the message goes to the span status or the record's body)."""
    out[n.ERROR_TYPE] = error_type_of(payload)
    if payload.get("errorCode") is not None:
        out[n.LLM_ERROR_CODE] = scalar(payload["errorCode"])
    if payload.get("willRetry") is not None:
        out[n.LLM_ERROR_WILL_RETRY] = bool(payload["willRetry"])
    if payload.get("retryAttempt") is not None:
        out[n.LLM_ERROR_RETRY_ATTEMPT] = scalar(payload["retryAttempt"])
    return out


def error_payload(attributes: Mapping[str, Any], request_id: str, message: Any
                  ) -> dict[str, Any]:
    """The ``llm:request:error`` payload (``message`` from the span status or record body)."""
    payload = base_payload(attributes, request_id)
    error_type = attributes.get(n.ERROR_TYPE)
    payload["error"] = (error_value(message) if message not in (None, "")
                        else str(error_type or "error"))
    code = attributes.get(n.LLM_ERROR_CODE)
    if code is not None:
        payload["errorCode"] = code
    if error_type is not None and error_type != "_OTHER" and error_type != code:
        payload["errorType"] = error_type
    for key, attribute in (("willRetry", n.LLM_ERROR_WILL_RETRY),
                           ("retryAttempt", n.LLM_ERROR_RETRY_ATTEMPT)):
        value = attributes.get(attribute)
        if value is not None:
            payload[key] = value
    return payload


def error_message(payload: Mapping[str, Any]) -> str:
    """The text a request error puts in the span status or the record body."""
    return error_text(payload.get("error", "unknown error"))


# -- llm:token -------------------------------------------------------------------------------------
def token_attributes(payload: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """An ``llm:token`` payload as a record's attributes (the text only when present)."""
    base_attributes(payload, out)
    if payload.get("token") is not None:
        out[n.LLM_TOKEN_TEXT] = scalar(payload["token"])
    for key, attribute in (("index", n.LLM_TOKEN_INDEX), ("isFinal", n.LLM_TOKEN_IS_FINAL),
                           ("finishReason", n.LLM_TOKEN_FINISH_REASON)):
        value = payload.get(key)
        if value is not None:
            out[attribute] = scalar(value)
    return out


def token_payload(attributes: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The ``llm:token`` payload of a token record (text ``""`` when not exported)."""
    payload = base_payload(attributes, request_id)
    text = attributes.get(n.LLM_TOKEN_TEXT)
    payload["token"] = text if text is not None else ""
    for key, attribute in (("index", n.LLM_TOKEN_INDEX), ("isFinal", n.LLM_TOKEN_IS_FINAL),
                           ("finishReason", n.LLM_TOKEN_FINISH_REASON)):
        value = attributes.get(attribute)
        if value is not None:
            payload[key] = value
    return payload


# -- tool calls -------------------------------------------------------------------------------
def arguments_text(arguments: Any) -> str:
    """Tool-call arguments as the JSON text the model produced (objects encoded)."""
    return arguments if isinstance(arguments, str) else dumps(arguments)


def tool_call_attributes(payload: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """An ``llm:tool:call`` payload as attributes (``arguments`` only when present)."""
    base_attributes(payload, out)
    if payload.get("toolName") is not None:
        out[n.GEN_AI_TOOL_NAME] = str(payload["toolName"])
    if payload.get("toolCallId") is not None:
        out[n.GEN_AI_TOOL_CALL_ID] = str(payload["toolCallId"])
    if payload.get("isComplete") is not None:
        out[n.TOOL_COMPLETE] = bool(payload["isComplete"])
    if "arguments" in payload:
        out[n.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments_text(payload["arguments"])
    return out


def _tool_base(attributes: Mapping[str, Any], request_id: str, span_hex: str | None,
               span_name: str | None) -> dict[str, Any]:
    """The base of a tool payload, with ``toolCallId`` and ``toolName``."""
    payload = base_payload(attributes, request_id)
    call_id = (first(attributes, n.GEN_AI_TOOL_CALL_ID, n.OI_TOOL_CALL_ID, n.OI_TOOL_ID)
               or traceloop.tool_call_id(attributes))
    name = first(attributes, n.GEN_AI_TOOL_NAME, n.OI_TOOL_NAME, n.TL_ENTITY_NAME)
    payload["toolCallId"] = call_id if call_id is not None else span_hex
    payload["toolName"] = name if name is not None else (span_name or "tool")
    return payload


def tool_call_payload(attributes: Mapping[str, Any], request_id: str,
                      span_hex: str | None = None, span_name: str | None = None
                      ) -> dict[str, Any]:
    """The ``llm:tool:call`` payload of a tool span's start, or of a record."""
    payload = _tool_base(attributes, request_id, span_hex, span_name)
    arguments = traceloop.tool_arguments(attributes, first(
        attributes, n.GEN_AI_TOOL_CALL_ARGUMENTS, n.OI_INPUT_VALUE, n.TL_ENTITY_INPUT))
    payload["arguments"] = arguments_text(arguments) if arguments is not None else ""
    complete = attributes.get(n.TOOL_COMPLETE)
    payload["isComplete"] = complete if complete is not None else True
    return payload


def tool_result_attributes(payload: Mapping[str, Any], out: dict[str, Any]
                           ) -> dict[str, Any]:
    """An ``llm:tool:result`` payload's outcome as attributes (``result`` when present;
    the error goes to the span status)."""
    if "result" in payload:
        out[n.GEN_AI_TOOL_CALL_RESULT] = dumps(payload["result"])
    if payload.get("executionTime") is not None:
        out[n.TOOL_EXECUTION_TIME_MS] = scalar(payload["executionTime"])
    return out


def tool_result_payload(attributes: Mapping[str, Any], request_id: str, span_hex: str | None,
                        span_name: str | None, duration_ms: int, error: Any
                        ) -> dict[str, Any]:
    """The ``llm:tool:result`` payload of an ended tool span."""
    payload = _tool_base(attributes, request_id, span_hex, span_name)
    result = traceloop.tool_result(attributes, first(
        attributes, n.GEN_AI_TOOL_CALL_RESULT, n.OI_OUTPUT_VALUE, n.TL_ENTITY_OUTPUT))
    payload["result"] = from_json_text(result)
    execution = attributes.get(n.TOOL_EXECUTION_TIME_MS)
    payload["executionTime"] = execution if execution is not None else duration_ms
    if error is not None:
        payload["error"] = _tool_error(error_value(error), attributes.get(n.ERROR_TYPE))
    return payload


# ``error.type`` values that name no particular error.
_GENERIC_ERROR_TYPES = frozenset({"_OTHER", "ToolError"})


def _tool_error(error: Any, error_type: Any) -> Any:
    """A failed tool's error: with the span's ``error.type`` (an exception's class,
    say), the contract's error object ``{message, name}``, else the message."""
    if (isinstance(error, str) and isinstance(error_type, str) and error_type
            and error_type not in _GENERIC_ERROR_TYPES):
        return {"message": error, "name": error_type}
    return error
