"""Shared helpers for the bridge tests: a list sink, payload key checks, a stream collector.

Payload keys follow CONTRACT.md sections 4 and 5; ``check_event`` also validates
against the shared JSON schemas of ``tests/event_schemas.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from tests.event_schemas import validate_event

IDS = {"timestamp", "traceId", "spanId", "parentSpanId"}
_TASK_OPT = {"name", "description", "priority", "type", "agentId", "result", "error", "progress",
             "dependencies", "metrics"}
_AGENT_OPT = {"name", "type", "currentTaskId", "health", "metrics", "error"}
_LLM = {"requestId", "provider", "model"}
_LLM_OPT = {"agentId", "taskId"}
_SPAN = {"traceId", "spanId", "parentSpanId", "name", "kind", "serviceName", "attributes",
         "startTime", "timestamp"}

# event type -> (required keys, optional keys)
KEYS: dict[str, tuple[set[str], set[str]]] = {
    **{f"task:{t}": ({"taskId", "status"} | IDS, _TASK_OPT) for t in
       ("created", "queued", "assigned", "started", "completed", "failed", "cancelled")},
    "task:progress": ({"taskId", "status", "progress"} | IDS, set()),
    "task:intermediate": ({"taskId", "data", "type", "sequence"} | IDS, {"isFinal"}),
    "task:metrics": ({"taskId", "status", "metrics"} | IDS, set()),
    **{f"agent:{t}": ({"agentId", "status"} | IDS, _AGENT_OPT) for t in
       ("spawned", "started", "stopped", "paused", "error")},
    "agent:output:stdout": ({"agentId", "stream", "data"} | IDS, set()),
    "agent:output:stderr": ({"agentId", "stream", "data"} | IDS, set()),
    **{f"agent:log:{lvl}": ({"agentId", "level", "message"} | IDS, {"context"}) for lvl in
       ("debug", "info", "warn", "error", "fatal")},
    "agent:metrics": ({"agentId", "status", "metrics"} | IDS, set()),
    "agent:health": ({"agentId", "status", "health"} | IDS, set()),
    "llm:request:started": (_LLM | {"messages"} | IDS,
                            _LLM_OPT | {"systemPrompt", "parameters", "tools"}),
    "llm:token": (_LLM | {"token", "index"} | IDS, _LLM_OPT | {"isFinal", "finishReason"}),
    "llm:tool:call": (_LLM | {"toolCallId", "toolName", "arguments", "isComplete"} | IDS,
                      _LLM_OPT),
    "llm:tool:result": (_LLM | {"toolCallId", "toolName", "result", "executionTime"} | IDS,
                        _LLM_OPT | {"error"}),
    "llm:usage": (_LLM | {"usage"} | IDS, _LLM_OPT),
    "llm:request:completed": (_LLM | {"response", "usage", "duration"} | IDS,
                              _LLM_OPT | {"toolCalls"}),
    "llm:request:error": (_LLM | {"error"} | IDS,
                          _LLM_OPT | {"errorCode", "errorType", "willRetry", "retryAttempt"}),
    "span:started": (_SPAN, set()),
    "span:ended": (_SPAN | {"endTime", "durationMs", "status", "events"}, {"statusMessage"}),
    "log": ({"serviceName", "severity", "body", "attributes", "timestamp"},
            {"traceId", "spanId", "eventName"}),
}
SEED_TYPES = {t for t in KEYS if t not in ("span:started", "span:ended", "log")}
# What the server derives from the open work (not made by an emitter).
DERIVED_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "trace:completed": ({"traceId", "rootSpanId", "name", "durationMs", "spanCount",
                         "errorCount", "timestamp"}, {"serviceName", "status"}),
    "span:heartbeat": ({"spans", "count", "timestamp"}, set()),
    "span:stale": ({"traceId", "spanId", "name", "reason", "timestamp"}, {"serviceName"}),
}


def check_event(event_type: str, data: Mapping[str, Any]) -> None:
    """Exact payload keys (required present, nothing unknown), valid ids."""
    known = KEYS.get(event_type) or DERIVED_KEYS.get(event_type)
    assert known is not None, f"unknown event type {event_type!r}"
    required, optional = known
    keys = set(data)
    assert required <= keys, f"{event_type}: missing {sorted(required - keys)} in {data}"
    unexpected = sorted(keys - required - optional)
    assert not unexpected, f"{event_type}: unexpected {unexpected}"
    if "traceId" in data:
        assert isinstance(data["traceId"], str) and len(data["traceId"]) == 32
        assert int(data["traceId"], 16) != 0
    if "spanId" in data:
        assert isinstance(data["spanId"], str) and len(data["spanId"]) == 16
        assert int(data["spanId"], 16) != 0
        parent = data.get("parentSpanId")
        assert parent is None or (isinstance(parent, str) and len(parent) == 16)
    validate_event(event_type, dict(data))


class ListSink:
    """An EventSink that collects what it is given, on the test's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, event_type: str, data: Mapping[str, Any]) -> int:
        self.events.append((event_type, dict(data)))
        return 1

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == event_type]

    def types(self) -> list[str]:
        return [t for t, _ in self.events]


async def settle(seconds: float = 0.05) -> None:
    """Let the bridge drain on this loop."""
    await asyncio.sleep(seconds)


class StreamCollector:
    """Reads a real SSE stream in the background until an end marker arrives."""

    def __init__(self, url: str, marker: str = "test:done") -> None:
        self.url = url
        self.marker = marker
        self.frames: list[tuple[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> StreamCollector:
        from tests.sse_helpers import stream

        async def run() -> None:
            async with stream(self.url) as (_resp, reader):
                while True:
                    frame = await reader.next(timeout=60)
                    if frame.event == "connected":
                        self._ready.set()
                        continue
                    if frame.event == self.marker:
                        return
                    self.frames.append((frame.event, frame.data))

        self._task = asyncio.create_task(run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def finish(self, timeout: float = 30.0) -> list[tuple[str, Any]]:
        assert self._task is not None
        await asyncio.wait_for(self._task, timeout)
        return self.frames

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
