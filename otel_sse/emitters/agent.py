"""AgentStream: agents traced with the GenAI agent conventions.

``emit_agent_spawned`` records a short ``create_agent {name}`` span;
``emit_agent_started`` opens an ``invoke_agent {name}`` span (the agent's work
on a task; tasks and LLM requests naming the agent become its children) that
``emit_agent_stopped`` or ``emit_agent_error`` ends. Both spans carry the
agent's state as it was when they started (``otel_sse.agent.*`` and
``gen_ai.agent.name``; the application's agent id is ``otel_sse.agent.id``,
not the conventions' ``gen_ai.agent.id``, which names a stable agent
definition). Stop, error, pause, output lines, logs, metrics and health are
log records in the agent's current span, with the severity their level or
stream implies (the agent's state outlives an invocation); numbers also go to
gauges.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any, Unpack

from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

import otel_sse.convert.names as n
from otel_sse.convert.state import agent_attributes
from otel_sse.emitters._core import (
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
from otel_sse.emitters.enums import AgentStatus, LogLevel
from otel_sse.emitters.throttle import Coalescer

HEALTH_SPEC: Spec = {"healthy": None, "score": None, "issues": None, "lastCheck": None}
METRICS_SPEC: Spec = {"tasksCompleted": None, "tasksFailed": None, "avgExecutionTime": None,
                      "cpuUsage": None, "memoryUsage": None, "totalTokens": None,
                      "totalCost": None, "uptime": None}
AGENT_SPEC: Spec = {"status": None, "name": None, "type": None, "currentTaskId": None,
                    "health": HEALTH_SPEC, "metrics": METRICS_SPEC, "error": None}
_METRIC_DEFAULTS = dict.fromkeys(METRICS_SPEC, 0)
_LEVELS = {level.value for level in LogLevel}


class AgentStream(Emitter):
    """Agent lifecycle, stdout/stderr, logs, metrics (throttled) and health."""

    def __init__(
        self,
        server: Any = None,
        include_output: bool = True,
        include_logs: bool = True,
        include_metrics: bool = True,
        metrics_update_interval: float = 2.0,
        output_buffer_size: int = 100,
        **options: Unpack[EmitterOptions],
    ) -> None:
        super().__init__(server, **options)
        self.include_output = include_output
        self.include_logs = include_logs
        self.include_metrics = include_metrics
        self.metrics_update_interval = metrics_update_interval
        self.output_buffer_size = output_buffer_size
        self._states: dict[str, dict[str, Any]] = {}
        self._buffers: dict[str, deque[str]] = {}
        self._homes: dict[str, SpanEntry] = {}
        self._owned: set[str] = set()
        self._metrics = Coalescer(metrics_update_interval, self._deliver_metrics)

    # -- lifecycle -------------------------------------------------------------
    def emit_agent_spawned(self, agent_id: str, **data: Any) -> None:
        """A ``create_agent`` span (``agent:spawned``), the agent's home span."""
        fields = normalize(data, AGENT_SPEC, "emit_agent_spawned")
        state: dict[str, Any] = {"agentId": agent_id, "status": AgentStatus.IDLE.value,
                                 "timestamp": now(), **fields}
        self._states[agent_id] = state
        self._create_home(agent_id, state, implicit=False)
        self._fire("agent_spawned", state)

    def emit_agent_started(self, agent_id: str, task_id: str, **data: Any) -> None:
        """Open an ``invoke_agent`` span for the agent's work on ``task_id``
        (``agent:started``); an invocation still open ends first."""
        fields = normalize(data, AGENT_SPEC, "emit_agent_started")
        state = self._update(agent_id, {"status": AgentStatus.BUSY.value,
                                        "currentTaskId": task_id, **fields})
        previous = self._spans.pop("agent", agent_id)
        if previous is not None:  # a new invocation supersedes the open one
            self._end_invocation(agent_id, previous, None)
        links = [Link(e.span.get_span_context()) for e in
                 (self._homes.get(agent_id), self._spans.get("task", task_id)) if e is not None]
        entry = self._start_span(f"invoke_agent {state.get('name') or agent_id}",
                                 SpanKind.INTERNAL,
                                 agent_attributes(state, {n.GEN_AI_OPERATION_NAME: "invoke_agent"}),
                                 None, None, links=links)
        self._spans.put("agent", agent_id, entry)
        self._owned.add(agent_id)
        self._fire("agent_started", state)

    def emit_agent_stopped(self, agent_id: str, **data: Any) -> None:
        """An ``agent:stopped`` record; the open invocation, if any, ends."""
        fields = normalize(data, AGENT_SPEC, "emit_agent_stopped")
        state = self._update(agent_id, {"status": AgentStatus.STOPPED.value, **fields})
        state.pop("currentTaskId", None)
        self._metrics.flush(agent_id)  # a pending update goes out while its span is open
        open_entry = self._spans.pop("agent", agent_id)
        self._owned.discard(agent_id)
        self._emit_record(open_entry or self._entry(agent_id), "agent:stopped", state)
        if open_entry is not None:
            self._end_invocation(agent_id, open_entry, None)
        self._buffers.pop(agent_id, None)
        self._metrics.discard(agent_id)
        self._fire("agent_stopped", state)

    def emit_agent_paused(self, agent_id: str, **data: Any) -> None:
        """An ``agent:paused`` record."""
        fields = normalize(data, AGENT_SPEC, "emit_agent_paused")
        state = self._update(agent_id, {"status": AgentStatus.PAUSED.value, **fields})
        self._emit_record(self._entry(agent_id), "agent:paused", state)
        self._fire("agent_paused", state)

    def emit_agent_error(self, agent_id: str, error: str | Mapping[str, Any],
                         **data: Any) -> None:
        """An ``agent:error`` record; the open invocation, if any, ends in error.
        ``error`` is a message or ``{message, name?, code?, stack?}``; an object's
        name (an exception's type) becomes the span's ``error.type``."""
        fields = normalize(data, AGENT_SPEC, "emit_agent_error")
        state = self._update(agent_id, {"status": AgentStatus.ERROR.value, "error": error,
                                        **fields})
        open_entry = self._spans.pop("agent", agent_id)
        self._owned.discard(agent_id)
        self._emit_record(open_entry or self._entry(agent_id), "agent:error", state,
                          level="error")
        if open_entry is not None:
            self._end_invocation(agent_id, open_entry, error)
        self._fire("agent_error", state)

    # -- output and logs -------------------------------------------------------------
    def emit_output(self, agent_id: str, stream: str, data: str) -> None:
        """An ``agent:output:stdout|stderr`` record; the line is its body."""
        if not self.include_output:
            return
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        buffer = self._buffers.get(agent_id)
        if buffer is None:
            buffer = self._buffers[agent_id] = deque(maxlen=max(1, self.output_buffer_size))
        buffer.append(data)
        payload = {"agentId": agent_id, "stream": stream, "data": data}
        self._emit_record(self._entry(agent_id), f"agent:output:{stream}", payload,
                          level="info" if stream == "stdout" else "warn")
        self._fire("agent_output", {**payload, "timestamp": now()})

    def emit_log(self, agent_id: str, level: LogLevel | str, message: str,
                 context: Mapping[str, Any] | None = None) -> None:
        """An ``agent:log:{level}`` record with that severity; the message is its body."""
        if not self.include_logs:
            return
        level_value = str(plain(level)).lower()
        if level_value not in _LEVELS:
            raise ValueError(f"level must be one of {sorted(_LEVELS)}, not {level!r}")
        payload: dict[str, Any] = {"agentId": agent_id, "level": level_value, "message": message}
        if context is not None:
            payload["context"] = dict(context)
        self._emit_record(self._entry(agent_id), f"agent:log:{level_value}", payload,
                          level=level_value)
        self._fire("agent_log", {**payload, "timestamp": now()})

    # -- metrics and health ---------------------------------------------------------
    def emit_metrics(self, agent_id: str, metrics: Mapping[str, Any] | None = None,
                     **fields: Any) -> None:
        """Merge into the agent's metrics; ``agent:metrics`` records and gauges follow,
        at most one per ``metrics_update_interval``."""
        if not self.include_metrics:
            return
        values = normalize(one_dict_or_kwargs(metrics, fields, "emit_metrics"), METRICS_SPEC,
                           "emit_metrics")
        current = self._states.get(agent_id, {}).get("metrics") or {}
        merged = {**_METRIC_DEFAULTS, **current, **values}
        self._update(agent_id, {"metrics": merged})
        self._metrics.submit(agent_id, merged)

    def _deliver_metrics(self, key: Hashable, merged: Any) -> None:
        agent_id = str(key)
        state = self._states.get(agent_id, {})
        payload = {"agentId": agent_id, "status": state.get("status", AgentStatus.IDLE.value),
                   "metrics": merged}
        self._emit_record(self._entry(agent_id), "agent:metrics", payload)
        labels = {n.AGENT_ID: agent_id}
        instruments = self._instruments
        instruments.agent_tokens.set(merged.get("totalTokens", 0), labels)
        cpu = merged.get("cpuUsage", 0)
        if isinstance(cpu, (int, float)):  # the contract's percentage, as a ratio
            instruments.agent_cpu.set(cpu / 100, labels)
        instruments.agent_memory.set(merged.get("memoryUsage", 0), labels)
        self._fire("agent_metrics", {"agentId": agent_id, "metrics": merged})

    def emit_health(self, agent_id: str, health: Mapping[str, Any] | None = None,
                    **fields: Any) -> None:
        """An ``agent:health`` record (``last_check`` defaults to now); the score
        also goes to a gauge."""
        values = normalize(one_dict_or_kwargs(health, fields, "emit_health"), HEALTH_SPEC,
                           "emit_health")
        values.setdefault("lastCheck", now())
        state = self._update(agent_id, {"health": values})
        self._emit_record(self._entry(agent_id), "agent:health",
                          {"agentId": agent_id, "health": values, "status": state["status"]},
                          level="info" if values.get("healthy", True) else "warn")
        score = values.get("score")
        if isinstance(score, (int, float)):
            self._instruments.agent_health.set(score, {n.AGENT_ID: agent_id})
        self._fire("agent_health", {"agentId": agent_id, "health": values})

    # -- state API --------------------------------------------------------------------
    def agent_context(self, agent_id: str) -> Context | None:
        """An OpenTelemetry context with the agent's open invocation current (None when
        it has none): code run under it, and spans it starts, nest in the invocation."""
        return self._context_of("agent", agent_id)

    def get_agent_state(self, agent_id: str) -> dict[str, Any] | None:
        """A copy of the agent's state (None when unknown)."""
        state = self._states.get(agent_id)
        return dict(state) if state is not None else None

    def get_all_agent_states(self) -> list[dict[str, Any]]:
        """Copies of every known agent's state."""
        return [dict(state) for state in self._states.values()]

    def get_output_buffer(self, agent_id: str) -> list[str]:
        """The agent's last ``output_buffer_size`` output lines."""
        return list(self._buffers.get(agent_id, ()))

    def clear_agent_state(self, agent_id: str) -> None:
        """Forget the agent's state, output and pending metrics."""
        self._states.pop(agent_id, None)
        self._buffers.pop(agent_id, None)
        self._homes.pop(agent_id, None)
        self._metrics.discard(agent_id)

    def stop(self) -> None:
        """Forget all state; invocations still open end without a seed event."""
        self._end_open_spans("agent", self._owned)
        self._owned.clear()
        self._states.clear()
        self._buffers.clear()
        self._homes.clear()
        self._metrics.clear()
        self._stopped()

    # -- internals ------------------------------------------------------------------------
    def _update(self, agent_id: str, updates: Mapping[str, Any]) -> dict[str, Any]:
        return self._merge_state(self._states, "agentId", agent_id, AgentStatus.IDLE.value,
                                 updates)

    def _entry(self, agent_id: str) -> SpanEntry:
        """The agent's open invocation, else the span that created it; an agent never
        announced gets a ``create_agent`` span (without ``agent:spawned``)."""
        entry = self._spans.get("agent", agent_id) or self._homes.get(agent_id)
        if entry is None:
            state = self._states.get(agent_id) or {"agentId": agent_id,
                                                   "status": AgentStatus.IDLE.value}
            entry = self._create_home(agent_id, state, implicit=True)
        return entry

    def _create_home(self, agent_id: str, state: Mapping[str, Any], *,
                     implicit: bool) -> SpanEntry:
        """Record the short ``create_agent {name}`` span and keep it as the agent's home."""
        span_attrs = agent_attributes(state, {n.GEN_AI_OPERATION_NAME: "create_agent"})
        if implicit:
            span_attrs[n.IMPLICIT] = True
        entry = self._start_span(f"create_agent {state.get('name') or agent_id}",
                                 SpanKind.INTERNAL, span_attrs, None, None)
        self._end_span(entry)
        self._homes[agent_id] = entry
        return entry

    def _end_invocation(self, agent_id: str, entry: SpanEntry, error: Any) -> None:
        """End an ``invoke_agent`` span (its stop or error was a record) and time it."""
        message, error_type = (error_parts(error, "AgentError") if error is not None
                               else (None, None))
        self._end_span(entry, error=message, error_type=error_type)
        name = self._states.get(agent_id, {}).get("name")
        self._instruments.record_invocation(
            time.monotonic() - entry.start, str(name) if name else None,
            entry.parent_id is not None, error_type)
