"""Self-tests of tests/event_schemas.py: a valid sample per event type, and typical mistakes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.event_schemas import SCHEMAS, event_types, validate_event

TS = "2026-11-05T10:20:30.123Z"
US = "2026-11-05T10:20:30.123456Z"
IDS = {
    "traceId": "0af7651916cd43dd8448eb211c80319c",
    "spanId": "b7ad6b7169203331",
    "parentSpanId": None,
}
CHILD_IDS = {**IDS, "parentSpanId": "00f067aa0ba902b7"}
LLM = {"requestId": "req-123", "provider": "anthropic", "model": "claude-3-opus"}
USAGE = {"promptTokens": 100, "completionTokens": 200, "totalTokens": 300, "cost": 0.0045}
PROGRESS = {
    "taskId": "task-123",
    "percentage": 50,
    "currentStep": "Analyzing requirements",
    "totalSteps": 10,
    "currentStepNumber": 5,
    "timestamp": TS,
}
AGENT_METRICS = {
    "tasksCompleted": 10,
    "tasksFailed": 1,
    "avgExecutionTime": 4500,
    "cpuUsage": 45,
    "memoryUsage": 1024000,
    "totalTokens": 15000,
    "totalCost": 0.05,
    "uptime": 3600000,
}


def _task(status: str, **extra: Any) -> dict[str, Any]:
    return {"taskId": "task-123", "status": status, "timestamp": TS, **IDS, **extra}


def _agent(status: str, **extra: Any) -> dict[str, Any]:
    return {"agentId": "agent-1", "status": status, "timestamp": TS, **CHILD_IDS, **extra}


def _llm(**extra: Any) -> dict[str, Any]:
    return {**LLM, "timestamp": TS, **CHILD_IDS, **extra}


SPAN_STARTED = {
    **CHILD_IDS,
    "timestamp": TS,
    "name": "chat claude-3-opus",
    "kind": "client",
    "serviceName": "agents",
    "attributes": {"gen_ai.request.model": "claude-3-opus"},
    "startTime": US,
}

VALID: dict[str, dict[str, Any]] = {
    "task:created": _task("pending", name="Generate code", type="code", priority="high"),
    "task:queued": _task("queued", dependencies=["task-1"]),
    "task:assigned": _task("assigned", agentId="agent-1"),
    "task:started": _task("running", agentId="agent-1"),
    "task:completed": _task(
        "completed",
        result={"output": "Generated successfully"},
        metrics={"executionTime": 5000, "cpuUsage": 45, "memoryUsage": 1024000},
    ),
    "task:failed": _task("failed", error={"message": "boom", "code": "E_FAIL"}),
    "task:cancelled": _task("cancelled", description="no longer needed"),
    "task:progress": _task("running", progress=PROGRESS),
    "task:intermediate": {
        "taskId": "task-123",
        "data": {"partial": "def f("},
        "type": "partial",
        "sequence": 0,
        "isFinal": False,
        "timestamp": TS,
        **IDS,
    },
    "task:metrics": _task("running", metrics={"tokenCount": 12, "costEstimate": 0.01}),
    "agent:spawned": _agent("idle", name="coder-1", type="coder"),
    "agent:started": _agent("busy", currentTaskId="task-123"),
    "agent:stopped": _agent("stopped"),
    "agent:paused": _agent("paused"),
    "agent:error": _agent("error", error="out of memory"),
    "agent:output:stdout": {
        "agentId": "agent-1",
        "stream": "stdout",
        "data": "Processing file: main.ts",
        "timestamp": TS,
        **CHILD_IDS,
    },
    "agent:output:stderr": {
        "agentId": "agent-1",
        "stream": "stderr",
        "data": "Warning: deprecated API",
        "timestamp": TS,
        **CHILD_IDS,
    },
    "agent:log:debug": {
        "agentId": "agent-1",
        "level": "debug",
        "message": "x",
        "timestamp": TS,
        **CHILD_IDS,
    },
    "agent:log:info": {
        "agentId": "agent-1",
        "level": "info",
        "message": "Task completed",
        "context": {"taskId": "task-123", "duration": 5000},
        "timestamp": TS,
        **CHILD_IDS,
    },
    "agent:log:warn": {
        "agentId": "agent-1",
        "level": "warn",
        "message": "w",
        "timestamp": TS,
        **CHILD_IDS,
    },
    "agent:log:error": {
        "agentId": "agent-1",
        "level": "error",
        "message": "e",
        "timestamp": TS,
        **CHILD_IDS,
    },
    "agent:log:fatal": {
        "agentId": "agent-1",
        "level": "fatal",
        "message": "f",
        "timestamp": TS,
        **CHILD_IDS,
    },
    "agent:metrics": _agent("busy", metrics=AGENT_METRICS),
    "agent:health": _agent(
        "idle", health={"healthy": True, "score": 0.97, "issues": [], "lastCheck": TS}
    ),
    "llm:request:started": _llm(
        agentId="agent-1",
        taskId="task-123",
        messages=[{"role": "user", "content": "Write a function"}],
        parameters={"temperature": 0.7, "maxTokens": 2000},
    ),
    "llm:token": _llm(token="Here", index=0),
    "llm:tool:call": _llm(
        toolCallId="tool-1",
        toolName="write_file",
        arguments='{"path": "main.ts", "content": "..."}',
        isComplete=True,
    ),
    "llm:tool:result": _llm(
        toolCallId="tool-1", toolName="write_file", result={"success": True}, executionTime=150
    ),
    "llm:usage": _llm(usage=USAGE),
    "llm:request:completed": _llm(response="Here is the function: ...", usage=USAGE, duration=2500),
    "llm:request:error": _llm(
        error="rate limited",
        errorCode="429",
        errorType="rate_limit",
        willRetry=True,
        retryAttempt=1,
    ),
    "span:started": SPAN_STARTED,
    "span:ended": {
        **SPAN_STARTED,
        "endTime": "2026-11-05T10:20:32.623456Z",
        "durationMs": 2500.0,
        "status": "error",
        "statusMessage": "boom",
        "events": [{"name": "exception", "timestamp": US, "attributes": {"exception.type": "X"}}],
    },
    "log": {
        "traceId": IDS["traceId"],
        "spanId": IDS["spanId"],
        "serviceName": "agents",
        "severity": "WARN",
        "eventName": "gen_ai.client.inference.operation.details",
        "body": {"message": "careful"},
        "attributes": {"k": 1},
        "timestamp": TS,
    },
    "connected": {
        "clientId": "client-abc",
        "serverTime": TS,
        "lastEventId": None,
        "timestamp": TS,
    },
    "stream:gap": {"requestedId": "r1-5", "oldestId": "r2-1", "missed": None, "timestamp": TS},
    "shutdown": {"reason": "server stopping", "timestamp": TS},
    "snapshot": {"openSpans": 1, "events": [{"event": "span:started", "data": {
        "traceId": IDS["traceId"], "spanId": IDS["spanId"], "name": "task fix"}}],
        "timestamp": TS},
    "trace:completed": {"traceId": IDS["traceId"], "rootSpanId": IDS["spanId"],
                        "name": "invoke_agent coder", "serviceName": "agents",
                        "durationMs": 1520.5, "spanCount": 7, "errorCount": 1,
                        "status": "error", "timestamp": TS},
    "span:heartbeat": {"spans": [{"traceId": IDS["traceId"], "spanId": IDS["spanId"],
                                  "name": "task fix", "elapsedMs": 31000}], "count": 1,
                       "timestamp": TS},
    "span:stale": {"traceId": IDS["traceId"], "spanId": IDS["spanId"], "name": "task fix",
                   "serviceName": "agents", "reason": "its source sent nothing for 30 s",
                   "timestamp": TS},
    "metric": {"serviceName": "agents", "scope": "otel_sse", "name": "gen_ai.client.token.usage",
               "description": None, "unit": "{token}", "kind": "histogram",
               "points": [{"attributes": {}, "count": 2, "sum": 30}], "truncated": False,
               "time": "2026-01-01T00:00:00.000000Z", "timestamp": TS},
}


def test_every_type_has_a_schema_and_a_sample() -> None:
    assert event_types() == sorted(VALID)
    assert set(SCHEMAS) == set(VALID)
    assert len(event_types()) == 10 + 14 + 7 + 3 + 3 + 5


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_valid_samples_pass(event_type: str) -> None:
    validate_event(event_type, VALID[event_type])


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_missing_required_key_fails(event_type: str) -> None:
    for key in SCHEMAS[event_type]["required"]:
        data = copy.deepcopy(VALID[event_type])
        del data[key]
        with pytest.raises(AssertionError) as info:
            validate_event(event_type, data)
        assert event_type in str(info.value)
        assert repr(key) in str(info.value)


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_extra_key_fails(event_type: str) -> None:
    data = {**VALID[event_type], "unexpectedKey": 1}
    with pytest.raises(AssertionError, match="unexpectedKey") as info:
        validate_event(event_type, data)
    assert event_type in str(info.value)


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_timestamp_format_enforced(event_type: str) -> None:
    for bad in ("2026-11-05T10:20:30Z", "2026-11-05T10:20:30.123456Z", "2026-11-05 10:20:30.123"):
        with pytest.raises(AssertionError, match=r"data\.timestamp"):
            validate_event(event_type, {**VALID[event_type], "timestamp": bad})


@pytest.mark.parametrize("event_type", [t for t in sorted(VALID) if "traceId" in VALID[t]])
def test_bad_ids_fail(event_type: str) -> None:
    for key, bad in (
        ("traceId", "0AF7651916CD43DD8448EB211C80319C"),
        ("traceId", "0af7651916cd43dd"),
        ("spanId", "b7ad6b71692033"),
        ("spanId", None),
        ("parentSpanId", "xyz"),
    ):
        if key not in SCHEMAS[event_type]["properties"]:
            continue
        if bad is None and event_type == "log":
            continue  # log ids are optional: absent or null
        with pytest.raises(AssertionError, match=rf"data\.{key}"):
            validate_event(event_type, {**VALID[event_type], key: bad})


@pytest.mark.parametrize(
    "event_type", [t for t in sorted(VALID) if t.split(":")[0] in ("task", "agent", "llm", "span")
                   and t not in ("span:heartbeat", "span:stale")]  # about spans, of none
)
def test_telemetry_events_require_span_ids(event_type: str) -> None:
    assert {"traceId", "spanId", "parentSpanId", "timestamp"} <= set(
        SCHEMAS[event_type]["required"]
    )


def test_log_ids_are_optional_and_have_no_parent() -> None:
    data = {k: v for k, v in VALID["log"].items() if k not in ("traceId", "spanId", "eventName")}
    validate_event("log", data)
    with pytest.raises(AssertionError, match="parentSpanId"):
        validate_event("log", {**VALID["log"], "parentSpanId": None})


@pytest.mark.parametrize(
    ("event_type", "change", "needle"),
    [
        ("task:created", {"status": "running"}, "data.status"),
        ("task:assigned", {"agentId": None}, "data.agentId"),
        ("task:progress", {"progress": {**PROGRESS, "percentage": 101}}, "percentage"),
        ("task:progress", {"progress": {**PROGRESS, "currentstep": "x"}}, "currentstep"),
        ("task:intermediate", {"type": "final"}, "data.type"),
        ("task:failed", {"error": {"msg": "boom"}}, "data.error"),
        ("task:completed", {"metrics": {"executionTime": 1, "cpu": 2}}, "data.metrics"),
        ("agent:started", {"status": "idle"}, "data.status"),
        ("agent:output:stdout", {"stream": "stderr"}, "data.stream"),
        ("agent:log:info", {"level": "warn"}, "data.level"),
        ("agent:metrics", {"metrics": {**AGENT_METRICS, "uptime": None}}, "uptime"),
        (
            "agent:metrics",
            {"metrics": {k: v for k, v in AGENT_METRICS.items() if k != "totalCost"}},
            "totalCost",
        ),
        ("agent:health", {"health": {"healthy": True, "score": 1, "lastCheck": US}}, "lastCheck"),
        ("llm:token", {"index": -1}, "data.index"),
        ("llm:usage", {"usage": {**USAGE, "prompt_tokens": 1}}, "prompt_tokens"),
        ("llm:request:completed", {"duration": "2500"}, "data.duration"),
        ("span:ended", {"status": "STATUS_CODE_ERROR"}, "data.status"),
        ("span:ended", {"startTime": TS}, "data.startTime"),
        ("span:ended", {"events": [{"name": "e", "extra": 1}]}, "data.events[0]"),
        ("stream:gap", {"missed": -1}, "data.missed"),
        ("connected", {"serverTime": "yesterday"}, "data.serverTime"),
    ],
)
def test_specific_mistakes_fail(event_type: str, change: dict[str, Any], needle: str) -> None:
    with pytest.raises(AssertionError) as info:
        validate_event(event_type, {**VALID[event_type], **change})
    assert needle in str(info.value)
    assert event_type in str(info.value)


def test_permissive_where_contract_is_silent() -> None:
    validate_event("task:failed", {**VALID["task:failed"], "error": "plain string"})
    validate_event(
        "agent:error",
        {**VALID["agent:error"], "error": {"message": "m", "name": "E", "stack": "..."}},
    )
    validate_event("llm:tool:call", {**VALID["llm:tool:call"], "arguments": {"path": "a"}})
    validate_event("llm:request:completed", {**VALID["llm:request:completed"], "usage": USAGE})
    without_usage = {k: v for k, v in VALID["llm:request:completed"].items() if k != "usage"}
    validate_event("llm:request:completed", without_usage)
    validate_event("span:started", {**SPAN_STARTED, "kind": 3})
    validate_event("shutdown", {"timestamp": TS})
    validate_event("stream:gap", {**VALID["stream:gap"], "missed": 7, "oldestId": None})


def test_unknown_type_fails() -> None:
    with pytest.raises(AssertionError, match="unknown event type 'task:exploded'"):
        validate_event("task:exploded", {})


def test_error_message_lists_every_problem() -> None:
    data = {**VALID["llm:token"], "tokne": "x"}
    del data["index"]
    with pytest.raises(AssertionError) as info:
        validate_event("llm:token", data)
    message = str(info.value)
    assert "'index' is a required property" in message
    assert "'tokne' was unexpected" in message
