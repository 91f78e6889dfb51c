"""TaskStream: a task is a span from ``emit_task_created`` to its end.

The span starts with what the task was created with and ends with its final
state, as ``otel_sse.task.*`` attributes (:mod:`otel_sse.convert.state`).
Queued / assigned / started / progress / intermediate results / metrics are
log records in the task span's context (span events would reach no processor
before the span ends). Numbers also go to metric instruments.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any, Unpack

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

import otel_sse.convert.names as n
from otel_sse.convert.state import task_attributes
from otel_sse.emitters._core import (
    Emitter,
    EmitterOptions,
    SpanEntry,
    Spec,
    error_parts,
    normalize,
    now,
    one_dict_or_kwargs,
)
from otel_sse.emitters.enums import TaskStatus
from otel_sse.emitters.throttle import Coalescer
from otel_sse.wire.encoder import iso_ms_now

PROGRESS_SPEC: Spec = {"percentage": None, "currentStep": None, "totalSteps": None,
                       "currentStepNumber": None, "estimatedTimeRemaining": None}
METRICS_SPEC: Spec = {"executionTime": None, "cpuUsage": None, "memoryUsage": None,
                      "tokenCount": None, "costEstimate": None}
TASK_SPEC: Spec = {"status": None, "name": None, "description": None, "priority": None,
                   "type": None, "agentId": None, "result": None, "error": None,
                   "progress": PROGRESS_SPEC | {"taskId": None, "timestamp": None},
                   "dependencies": None, "metrics": METRICS_SPEC}
INTERMEDIATE_SPEC: Spec = {"data": None, "type": None, "sequence": None, "isFinal": None}


class TaskStream(Emitter):
    """Task lifecycle, progress, intermediate results and metrics.

    ``progress_update_interval`` (seconds) coalesces progress on the trailing
    edge: the latest value inside an interval is delivered at its end.
    """

    def __init__(
        self,
        server: Any = None,
        include_progress: bool = True,
        include_intermediate_results: bool = True,
        include_metrics: bool = True,
        progress_update_interval: float = 1.0,
        **options: Unpack[EmitterOptions],
    ) -> None:
        super().__init__(server, **options)
        self.include_progress = include_progress
        self.include_intermediate_results = include_intermediate_results
        self.include_metrics = include_metrics
        self.progress_update_interval = progress_update_interval
        self._states: dict[str, dict[str, Any]] = {}
        self._owned: set[str] = set()
        self._progress = Coalescer(progress_update_interval, self._deliver_progress)

    # -- lifecycle -------------------------------------------------------------
    def emit_task_created(self, task_id: str, **data: Any) -> None:
        """Open the task's span (``task:created``); a task of that id still open is
        dropped. ``agent_id`` makes it a child of that agent's invocation."""
        fields = normalize(data, TASK_SPEC, "emit_task_created")
        state: dict[str, Any] = {"taskId": task_id, "status": TaskStatus.PENDING.value,
                                 "timestamp": now(), **fields}
        self._states[task_id] = state
        old = self._spans.pop("task", task_id)
        if old is not None:
            self._abandon(old)
        agent = self._spans.get("agent", state.get("agentId"))
        entry = self._start_span(
            f"task {state['name']}" if state.get("name") else "task",
            SpanKind.INTERNAL,
            task_attributes(state),
            self._parent(agent),
            None,
        )
        self._spans.put("task", task_id, entry)
        self._owned.add(task_id)
        self._fire("task_created", state)

    def emit_task_queued(self, task_id: str, **data: Any) -> None:
        """A ``task:queued`` record in the task's span."""
        self._transition(task_id, "task:queued", "task_queued",
                         {"status": TaskStatus.QUEUED.value,
                          **normalize(data, TASK_SPEC, "emit_task_queued")})

    def emit_task_assigned(self, task_id: str, agent_id: str, **data: Any) -> None:
        """A ``task:assigned`` record in the task's span."""
        self._transition(task_id, "task:assigned", "task_assigned",
                         {"status": TaskStatus.ASSIGNED.value, "agentId": agent_id,
                          **normalize(data, TASK_SPEC, "emit_task_assigned")})

    def emit_task_started(self, task_id: str, **data: Any) -> None:
        """A ``task:started`` record in the task's span."""
        self._transition(task_id, "task:started", "task_started",
                         {"status": TaskStatus.RUNNING.value,
                          **normalize(data, TASK_SPEC, "emit_task_started")})

    def emit_task_completed(self, task_id: str, **data: Any) -> None:
        """End the task's span with its final state (``task:completed``)."""
        self._finish(task_id, "task_completed", TaskStatus.COMPLETED,
                     normalize(data, TASK_SPEC, "emit_task_completed"))

    def emit_task_failed(self, task_id: str, error: str | Mapping[str, Any],
                         **data: Any) -> None:
        """End the task's span in error with its final state (``task:failed``).
        ``error`` is a message or ``{message, name?, code?, stack?}``; an object's
        name (an exception's type) becomes the span's ``error.type``."""
        fields = normalize(data, TASK_SPEC, "emit_task_failed")
        fields["error"] = error
        self._finish(task_id, "task_failed", TaskStatus.FAILED, fields)

    def emit_task_cancelled(self, task_id: str, **data: Any) -> None:
        """End the task's span with its final state (``task:cancelled``)."""
        self._finish(task_id, "task_cancelled", TaskStatus.CANCELLED,
                     normalize(data, TASK_SPEC, "emit_task_cancelled"))

    # -- updates -------------------------------------------------------------------
    def emit_progress(self, task_id: str, progress: Mapping[str, Any] | None = None,
                      **fields: Any) -> None:
        """``percentage``, ``current_step``, ``total_steps``, ``current_step_number``,
        ``estimated_time_remaining`` (ms), as keywords or one dict."""
        if not self.include_progress:
            return
        values = normalize(one_dict_or_kwargs(progress, fields, "emit_progress"),
                           PROGRESS_SPEC, "emit_progress")
        # The contract's progress always names a step: none given is an empty one.
        values.setdefault("currentStep", "")
        data = {"taskId": task_id, **values, "timestamp": iso_ms_now()}
        self._update(task_id, {"progress": data})
        self._progress.submit(task_id, data)

    def _deliver_progress(self, key: Hashable, data: Any) -> None:
        task_id = str(key)
        entry = self._entry(task_id)
        state = self._states.get(task_id, {})
        payload = {"taskId": task_id, "status": state.get("status", TaskStatus.PENDING.value),
                   "progress": data}
        self._emit_record(entry, "task:progress", payload)
        self._fire("task_progress", data)

    def emit_intermediate_result(self, task_id: str, **data: Any) -> None:
        """``data``, ``type`` (partial | checkpoint | artifact), ``sequence``, ``is_final``."""
        if not self.include_intermediate_results:
            return
        fields = normalize(data, INTERMEDIATE_SPEC, "emit_intermediate_result")
        payload = {"taskId": task_id, **fields}
        self._emit_record(self._entry(task_id), "task:intermediate", payload)
        self._fire("intermediate_result", {**payload, "timestamp": now()})

    def emit_metrics(self, task_id: str, metrics: Mapping[str, Any] | None = None,
                     **fields: Any) -> None:
        """A ``task:metrics`` record (``execution_time``, ``cpu_usage``, ``memory_usage``,
        ``token_count``, ``cost_estimate``); tokens also go to a counter."""
        if not self.include_metrics:
            return
        values = normalize(one_dict_or_kwargs(metrics, fields, "emit_metrics"), METRICS_SPEC,
                           "emit_metrics")
        state = self._update(task_id, {"metrics": values})
        self._emit_record(self._entry(task_id), "task:metrics",
                          {"taskId": task_id, "status": state["status"], "metrics": values})
        tokens = values.get("tokenCount")
        if isinstance(tokens, (int, float)) and tokens > 0:
            self._instruments.task_tokens.add(int(tokens), {n.TASK_ID: task_id})
        self._fire("task_metrics", {"taskId": task_id, "metrics": values})

    # -- state API -------------------------------------------------------------------
    def task_context(self, task_id: str) -> Context | None:
        """An OpenTelemetry context with the open task's span current (None when the
        task is not open): code run under it, and spans it starts, nest in the task."""
        return self._context_of("task", task_id)

    def get_task_state(self, task_id: str) -> dict[str, Any] | None:
        """A copy of the task's state (None when unknown)."""
        state = self._states.get(task_id)
        return dict(state) if state is not None else None

    def get_all_task_states(self) -> list[dict[str, Any]]:
        """Copies of every known task's state."""
        return [dict(state) for state in self._states.values()]

    def clear_task_state(self, task_id: str) -> None:
        """Forget the task's state and any pending progress."""
        self._states.pop(task_id, None)
        self._progress.discard(task_id)

    def stop(self) -> None:
        """Forget all state; tasks still open end without a seed event."""
        self._end_open_spans("task", self._owned)
        self._owned.clear()
        self._states.clear()
        self._progress.clear()
        self._stopped()

    # -- internals ------------------------------------------------------------------------
    def _update(self, task_id: str, updates: Mapping[str, Any]) -> dict[str, Any]:
        return self._merge_state(self._states, "taskId", task_id, TaskStatus.PENDING.value,
                                 updates)

    def _entry(self, task_id: str) -> SpanEntry:
        """The task's span; a task never announced gets one (without ``task:created``)
        so that its events still carry real ids."""
        entry = self._spans.get("task", task_id)
        if entry is None:
            state = self._states.get(task_id) or {"taskId": task_id,
                                                  "status": TaskStatus.PENDING.value}
            span_attrs = task_attributes(state)
            span_attrs[n.IMPLICIT] = True
            entry = self._start_span("task", SpanKind.INTERNAL, span_attrs, None, None)
            self._spans.put("task", task_id, entry)
            self._owned.add(task_id)
        return entry

    def _transition(self, task_id: str, event_type: str, listener: str,
                    updates: dict[str, Any]) -> None:
        state = self._update(task_id, updates)
        # The span keeps what the task was created with until it ends: the
        # steps in between are the records' (task:created stays exact even when
        # rebuilt from the ended span).
        self._emit_record(self._entry(task_id), event_type, state)
        self._fire(listener, state)

    def _finish(self, task_id: str, listener: str, status: TaskStatus,
                fields: dict[str, Any]) -> None:
        self._progress.flush(task_id)  # a pending progress (the final 100 %) goes first
        state = self._update(task_id, {"status": status.value, **fields})
        entry = self._entry(task_id)
        self._spans.pop("task", task_id)
        self._owned.discard(task_id)
        outcome = status.value
        error = state.get("error") if status is TaskStatus.FAILED else None
        message, error_type = (error_parts(error, "TaskFailed") if error is not None
                               else (None, None))
        # The final state (its status names the outcome event) on the span's end.
        self._end_span(entry, error=message, error_type=error_type,
                       attributes=task_attributes(state))
        labels = {"otel_sse.task.outcome": outcome}
        if state.get("type"):
            labels[n.TASK_TYPE] = str(state["type"])
        self._instruments.task_duration.record(time.monotonic() - entry.start, labels)
        self._instruments.task_outcomes.add(1, labels)
        self._progress.discard(task_id)
        self._fire(listener, state)
