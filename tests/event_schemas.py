"""JSON Schemas (draft 2020-12) of every event payload in CONTRACT.md sections 3-5.

Strict on key names (``additionalProperties: false`` everywhere the contract lists
the keys), permissive on values where the contract is silent.

    from tests.event_schemas import validate_event
    validate_event("task:created", event.data)   # AssertionError naming type and key

Conventions checked:
- every payload carries ``timestamp``: ISO 8601 UTC with milliseconds;
- task:*, agent:*, llm:*, span:* carry ``traceId`` (32 hex), ``spanId`` (16 hex),
  ``parentSpanId`` (16 hex or null); ``log`` carries traceId?/spanId? only;
- span times (startTime, endTime, span event times) are ISO 8601 UTC with microseconds;
- an ``error`` is a string or ``{message, name?, code?, stack?}``.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

__all__ = ["SCHEMAS", "event_types", "validate_event"]

Schema = dict[str, Any]

ISO_MS_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
ISO_US_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"
SPAN_ID_PATTERN = r"^[0-9a-f]{16}$"

TIMESTAMP: Schema = {"type": "string", "pattern": ISO_MS_PATTERN}
TIME_US: Schema = {"type": "string", "pattern": ISO_US_PATTERN}
TRACE_ID: Schema = {"type": "string", "pattern": TRACE_ID_PATTERN}
SPAN_ID: Schema = {"type": "string", "pattern": SPAN_ID_PATTERN}
PARENT_SPAN_ID: Schema = {"anyOf": [SPAN_ID, {"type": "null"}]}

STRING: Schema = {"type": "string"}
NON_EMPTY: Schema = {"type": "string", "minLength": 1}
NUMBER: Schema = {"type": "number"}
NON_NEG: Schema = {"type": "number", "minimum": 0}
COUNT: Schema = {"type": "integer", "minimum": 0}
BOOL: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
ANY: Schema = {}

ERROR: Schema = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {
                "message": STRING,
                "name": STRING,
                "code": {"type": ["string", "integer"]},
                "stack": {"type": ["string", "null"]},
            },
            "required": ["message"],
            "additionalProperties": False,
        },
    ]
}

TASK_STATUSES = ["pending", "queued", "assigned", "running", "completed", "failed", "cancelled"]
AGENT_STATUSES = ["idle", "busy", "paused", "stopped", "error"]
LOG_LEVELS = ["debug", "info", "warn", "error", "fatal"]


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A closed object: ``required`` keys must be present, ``optional`` may be."""
    properties = {key: copy.deepcopy(value) for key, value in required.items()}
    for key, value in (optional or {}).items():
        properties[key] = copy.deepcopy(value)
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(required),
        "additionalProperties": False,
    }


def _event(
    required: dict[str, Schema],
    optional: dict[str, Schema] | None = None,
    *,
    telemetry: bool = True,
) -> Schema:
    """A top-level payload: adds ``timestamp`` and, for telemetry events, the span ids."""
    base: dict[str, Schema] = {"timestamp": TIMESTAMP}
    if telemetry:
        base.update(traceId=TRACE_ID, spanId=SPAN_ID, parentSpanId=PARENT_SPAN_ID)
    schema = _obj({**base, **required}, optional)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _const(value: str) -> Schema:
    return {"type": "string", "const": value}


# --------------------------------------------------------------------------- tasks

TASK_PROGRESS: Schema = _obj(
    {
        "taskId": STRING,
        "percentage": {"type": "number", "minimum": 0, "maximum": 100},
        "currentStep": STRING,
        "timestamp": TIMESTAMP,
    },
    {"totalSteps": COUNT, "currentStepNumber": COUNT, "estimatedTimeRemaining": NON_NEG},
)
TASK_METRICS: Schema = _obj(
    {},
    {
        "executionTime": NON_NEG,
        "cpuUsage": NON_NEG,
        "memoryUsage": NON_NEG,
        "tokenCount": COUNT,
        "costEstimate": NON_NEG,
    },
)
TASK_STATUS: Schema = {"type": "string", "enum": TASK_STATUSES}

# TaskEventData minus taskId/status
_TASK_OPTIONAL: dict[str, Schema] = {
    "name": STRING,
    "description": STRING,
    "priority": {"type": ["string", "integer"]},
    "type": STRING,
    "agentId": STRING,
    "result": ANY,
    "error": ERROR,
    "progress": {"anyOf": [TASK_PROGRESS, {"type": "number", "minimum": 0, "maximum": 100}]},
    "dependencies": {"type": "array", "items": STRING},
    "metrics": TASK_METRICS,
}


def _task_event(status: str, *required_extra: str) -> Schema:
    required: dict[str, Schema] = {"taskId": NON_EMPTY, "status": _const(status)}
    optional = dict(_TASK_OPTIONAL)
    for key in required_extra:
        required[key] = optional.pop(key)
    return _event(required, optional)


_TASK_SCHEMAS: dict[str, Schema] = {
    "task:created": _task_event("pending"),
    "task:queued": _task_event("queued"),
    "task:assigned": _task_event("assigned", "agentId"),
    "task:started": _task_event("running"),
    "task:completed": _task_event("completed"),
    "task:failed": _task_event("failed", "error"),
    "task:cancelled": _task_event("cancelled"),
    "task:progress": _event(
        {"taskId": NON_EMPTY, "status": TASK_STATUS, "progress": TASK_PROGRESS}
    ),
    "task:intermediate": _event(
        {
            "taskId": NON_EMPTY,
            "data": ANY,
            "type": {"type": "string", "enum": ["partial", "checkpoint", "artifact"]},
            "sequence": COUNT,
        },
        {"isFinal": BOOL},
    ),
    "task:metrics": _event({"taskId": NON_EMPTY, "status": TASK_STATUS, "metrics": TASK_METRICS}),
}

# --------------------------------------------------------------------------- agents

AGENT_METRICS: Schema = _obj(
    {
        "tasksCompleted": COUNT,
        "tasksFailed": COUNT,
        "avgExecutionTime": NON_NEG,
        "cpuUsage": NON_NEG,
        "memoryUsage": NON_NEG,
        "totalTokens": COUNT,
        "totalCost": NON_NEG,
        "uptime": NON_NEG,
    }
)
AGENT_HEALTH: Schema = _obj(
    {"healthy": BOOL, "score": NUMBER, "lastCheck": TIMESTAMP},
    {"issues": {"type": "array", "items": STRING}},
)
AGENT_STATUS: Schema = {"type": "string", "enum": AGENT_STATUSES}

_AGENT_OPTIONAL: dict[str, Schema] = {
    "name": STRING,
    "type": STRING,
    "currentTaskId": {"type": ["string", "null"]},
    "health": AGENT_HEALTH,
    "metrics": AGENT_METRICS,
    "error": ERROR,
}


def _agent_event(status: str, *required_extra: str) -> Schema:
    required: dict[str, Schema] = {"agentId": NON_EMPTY, "status": _const(status)}
    optional = dict(_AGENT_OPTIONAL)
    for key in required_extra:
        required[key] = optional.pop(key)
    if "currentTaskId" in required:
        required["currentTaskId"] = NON_EMPTY
    return _event(required, optional)


_AGENT_SCHEMAS: dict[str, Schema] = {
    "agent:spawned": _agent_event("idle"),
    "agent:started": _agent_event("busy", "currentTaskId"),
    "agent:stopped": _agent_event("stopped"),
    "agent:paused": _agent_event("paused"),
    "agent:error": _agent_event("error", "error"),
    "agent:metrics": _event(
        {"agentId": NON_EMPTY, "status": AGENT_STATUS, "metrics": AGENT_METRICS}
    ),
    "agent:health": _event({"agentId": NON_EMPTY, "status": AGENT_STATUS, "health": AGENT_HEALTH}),
}
for _stream in ("stdout", "stderr"):
    _AGENT_SCHEMAS[f"agent:output:{_stream}"] = _event(
        {"agentId": NON_EMPTY, "stream": _const(_stream), "data": STRING}
    )
for _level in LOG_LEVELS:
    _AGENT_SCHEMAS[f"agent:log:{_level}"] = _event(
        {"agentId": NON_EMPTY, "level": _const(_level), "message": STRING},
        {"context": {"type": ["object", "null"]}},
    )

# --------------------------------------------------------------------------- LLM

LLM_USAGE: Schema = _obj(
    {"promptTokens": COUNT, "completionTokens": COUNT, "totalTokens": COUNT},
    {"cost": NON_NEG, "costBreakdown": {"type": "object", "additionalProperties": NUMBER}},
)
_LLM_REQUIRED: dict[str, Schema] = {"requestId": NON_EMPTY, "provider": STRING, "model": STRING}
_LLM_OPTIONAL: dict[str, Schema] = {"agentId": STRING, "taskId": STRING}


def _llm_event(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return _event({**_LLM_REQUIRED, **required}, {**_LLM_OPTIONAL, **(optional or {})})


_LLM_SCHEMAS: dict[str, Schema] = {
    "llm:request:started": _llm_event(
        {"messages": {"type": "array", "items": OBJECT}},
        {"systemPrompt": STRING, "parameters": OBJECT, "tools": {"type": "array"}},
    ),
    "llm:token": _llm_event(
        {"token": STRING, "index": COUNT},
        {"isFinal": BOOL, "finishReason": {"type": ["string", "null"]}},
    ),
    "llm:tool:call": _llm_event(
        {
            "toolCallId": NON_EMPTY,
            "toolName": STRING,
            "arguments": {"type": ["string", "object"]},
            "isComplete": BOOL,
        }
    ),
    "llm:tool:result": _llm_event(
        {"toolCallId": NON_EMPTY, "toolName": STRING, "result": ANY, "executionTime": NON_NEG},
        {"error": ERROR},
    ),
    "llm:usage": _llm_event({"usage": LLM_USAGE}),
    "llm:request:completed": _llm_event(
        {"response": ANY, "duration": NON_NEG},
        {"usage": LLM_USAGE, "toolCalls": {"type": "array"}},
    ),
    "llm:request:error": _llm_event(
        {"error": ERROR},
        {
            "errorCode": {"type": ["string", "integer"]},
            "errorType": STRING,
            "willRetry": BOOL,
            "retryAttempt": COUNT,
        },
    ),
}

# --------------------------------------------------------------------------- generic telemetry

SPAN_KIND: Schema = {
    "anyOf": [
        {
            "type": "string",
            "enum": [
                "internal",
                "server",
                "client",
                "producer",
                "consumer",
                "INTERNAL",
                "SERVER",
                "CLIENT",
                "PRODUCER",
                "CONSUMER",
            ],
        },
        {"type": "integer", "minimum": 0, "maximum": 5},
    ]
}
SPAN_EVENT: Schema = _obj(
    {"name": STRING},
    {"timestamp": TIME_US, "time": TIME_US, "attributes": OBJECT},
)
_SPAN_STARTED: dict[str, Schema] = {
    "name": STRING,
    "kind": SPAN_KIND,
    "serviceName": STRING,
    "attributes": OBJECT,
    "startTime": TIME_US,
}
_TELEMETRY_SCHEMAS: dict[str, Schema] = {
    "span:started": _event(_SPAN_STARTED),
    "span:ended": _event(
        {
            **_SPAN_STARTED,
            "endTime": TIME_US,
            "durationMs": NON_NEG,
            "status": {"type": "string", "enum": ["unset", "ok", "error"]},
            "events": {"type": "array", "items": SPAN_EVENT},
        },
        {"statusMessage": {"type": ["string", "null"]}},
    ),
    "log": _event(
        {
            "serviceName": STRING,
            "severity": {"type": ["string", "integer"]},
            "body": ANY,
            "attributes": OBJECT,
        },
        {
            "traceId": {"anyOf": [TRACE_ID, {"type": "null"}]},
            "spanId": {"anyOf": [SPAN_ID, {"type": "null"}]},
            "eventName": {"type": ["string", "null"]},
        },
        telemetry=False,
    ),
}

# --------------------------------------------------------------------------- server

_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
_SERVER_SCHEMAS: dict[str, Schema] = {
    "connected": _event(
        {"clientId": NON_EMPTY, "serverTime": TIMESTAMP, "lastEventId": _NULLABLE_STRING},
        telemetry=False,
    ),
    "stream:gap": _event(
        {
            "requestedId": _NULLABLE_STRING,
            "oldestId": _NULLABLE_STRING,
            "missed": {"type": ["integer", "null"], "minimum": 0},
        },
        telemetry=False,
    ),
    "shutdown": _event({}, {"reason": STRING}, telemetry=False),
}

# --------------------------------------------------------------------------- open work

_OPEN_SPAN: Schema = _obj({"traceId": TRACE_ID, "spanId": SPAN_ID, "name": STRING,
                           "elapsedMs": NON_NEG})
_LIVE_STATE_SCHEMAS: dict[str, Schema] = {
    "snapshot": _event(
        {"openSpans": {"type": "integer", "minimum": 0},
         "events": {"type": "array", "items": _obj({"event": NON_EMPTY, "data": OBJECT})}},
        telemetry=False),
    "trace:completed": _event(
        {"traceId": TRACE_ID, "rootSpanId": SPAN_ID, "name": STRING, "durationMs": NON_NEG,
         "spanCount": {"type": "integer", "minimum": 1},
         "errorCount": {"type": "integer", "minimum": 0}},
        {"serviceName": _NULLABLE_STRING,
         "status": {"type": "string", "enum": ["unset", "ok", "error"]}},
        telemetry=False),
    "span:heartbeat": _event(
        {"spans": {"type": "array", "items": _OPEN_SPAN},
         "count": {"type": "integer", "minimum": 1}}, telemetry=False),
    "span:stale": _event(
        {"traceId": TRACE_ID, "spanId": SPAN_ID, "name": STRING, "reason": STRING},
        {"serviceName": _NULLABLE_STRING}, telemetry=False),
    "metric": _event(
        {"serviceName": STRING, "name": NON_EMPTY, "kind": STRING,
         "points": {"type": "array", "items": OBJECT}, "truncated": {"type": "boolean"}},
        {"scope": _NULLABLE_STRING, "description": _NULLABLE_STRING, "unit": _NULLABLE_STRING,
         "time": {"anyOf": [TIME_US, {"type": "null"}]}}, telemetry=False),
}

SCHEMAS: dict[str, Schema] = {
    **_TASK_SCHEMAS,
    **_AGENT_SCHEMAS,
    **_LLM_SCHEMAS,
    **_TELEMETRY_SCHEMAS,
    **_SERVER_SCHEMAS,
    **_LIVE_STATE_SCHEMAS,
}

_VALIDATORS: dict[str, Draft202012Validator] = {}
for _type, _schema in SCHEMAS.items():
    Draft202012Validator.check_schema(_schema)
    _VALIDATORS[_type] = Draft202012Validator(_schema)


def event_types() -> list[str]:
    """Every event type with a schema, sorted."""
    return sorted(SCHEMAS)


def _describe(error: ValidationError) -> str:
    path = "data" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    return f"{path}: {error.message}"


def validate_event(event_type: str, data: dict[str, Any]) -> None:
    """Raise AssertionError naming ``event_type`` and every offending key, if ``data`` is wrong."""
    validator = _VALIDATORS.get(event_type)
    if validator is None:
        raise AssertionError(
            f"unknown event type {event_type!r} (known: {', '.join(event_types())})"
        )
    errors = sorted(
        validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    )
    if errors:
        details = "\n  ".join(_describe(error) for error in errors)
        raise AssertionError(f"invalid {event_type!r} payload:\n  {details}\npayload: {data!r}")
