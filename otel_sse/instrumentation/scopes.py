"""One decorated call's life, told to the emitters.

A scope opens when the call starts (a generator's at its first step), runs
each step under its :class:`~otel_sse.instrumentation.context.Activation`, and
closes once: succeeded, failed or cancelled. What each kind records:

=========  ======================================  =====================================
kind       start                                   end
=========  ======================================  =====================================
task       ``task:created`` (agent from context),  ``task:completed`` (``result``) |
           ``task:started``                        ``task:failed`` | ``task:cancelled``
agent      ``agent:spawned`` (a new id),           ``agent:stopped`` | ``agent:error``
           ``agent:started`` (task from context)
tool       ``llm:tool:call`` (the request it       ``llm:tool:result`` (``result`` or
           answers, from context)                  ``error``, ``executionTime``)
=========  ======================================  =====================================

With content capture on: a task's arguments are a ``task:intermediate``
checkpoint (sequence 0) and each value it yields a ``partial`` one; an agent's
arguments and return value are ``agent:log:debug`` records (``context``) and
each value it yields an ``agent:output:stdout`` line; a tool's arguments are
the call's ``arguments`` (JSON text) and its return value (or the list of what
it yielded) the ``result``. With capture off none of these is looked at.

An exception is recorded with its type and message (``{message, name}``, the
type also as the span's ``error.type``); ``asyncio.CancelledError`` and a
generator closed before its end are a cancellation (``task:cancelled``, an
agent's stop, a tool error ``CancelledError``). Recording never raises into
the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from otel_sse.instrumentation.content import MAX_ITEMS, plain
from otel_sse.instrumentation.context import (
    Activation,
    Frame,
    Origin,
    RequestLog,
    current_frame,
    current_span_hex,
)
from otel_sse.instrumentation.runtime import Instrumentation, guarded
from otel_sse.wire.encoder import dumps

Arguments = Callable[[], dict[str, Any]]


def error_object(error: BaseException) -> dict[str, Any]:
    """The contract's error object for an exception: its message and its type."""
    name = type(error).__name__
    return {"message": str(error) or name, "name": name}


def is_cancellation(error: BaseException) -> bool:
    """A call that was stopped rather than one that failed."""
    return isinstance(error, (asyncio.CancelledError, GeneratorExit))


class Scope(Protocol):
    """What the wrappers of :mod:`otel_sse.instrumentation.wrap` drive."""

    activation: Activation

    def yielded(self, item: Any) -> None: ...

    def succeeded(self, result: Any) -> None: ...

    def failed(self, error: BaseException) -> None: ...


class TaskScope:
    """A decorated task: a task span from call to return."""

    def __init__(self, instr: Instrumentation, capture: bool, name: str,
                 fields: Mapping[str, Any], arguments: Arguments) -> None:
        self.instr, self.capture = instr, capture
        outer = current_frame()
        self.task_id = instr.new_id(name)
        tasks = instr.tasks
        guarded("task:created", tasks.emit_task_created, self.task_id, name=name,
                agent_id=outer.agent_id, **fields)
        guarded("task:started", tasks.emit_task_started, self.task_id)
        self.activation = Activation(
            Frame(self.task_id, outer.agent_id, RequestLog()), tasks.task_context(self.task_id))
        self._sequence = 0
        if capture:
            self._intermediate({"arguments": arguments()}, "checkpoint")

    def _intermediate(self, data: Any, kind: str) -> None:
        guarded("task:intermediate", self.instr.tasks.emit_intermediate_result, self.task_id,
                data=data, type=kind, sequence=self._sequence)
        self._sequence += 1

    def yielded(self, item: Any) -> None:
        if self.capture:
            self._intermediate(plain(item), "partial")

    def succeeded(self, result: Any) -> None:
        tasks = self.instr.tasks
        guarded("task:completed", tasks.emit_task_completed, self.task_id,
                result=plain(result) if self.capture else None)
        tasks.clear_task_state(self.task_id)

    def failed(self, error: BaseException) -> None:
        tasks = self.instr.tasks
        if is_cancellation(error):
            guarded("task:cancelled", tasks.emit_task_cancelled, self.task_id)
        else:
            guarded("task:failed", tasks.emit_task_failed, self.task_id, error_object(error))
        tasks.clear_task_state(self.task_id)


class AgentScope:
    """A decorated agent: an ``invoke_agent`` span from call to return."""

    def __init__(self, instr: Instrumentation, capture: bool, name: str,
                 agent_id: str | None, agent_type: str | None, arguments: Arguments) -> None:
        self.instr, self.capture = instr, capture
        outer = current_frame()
        # A fixed id names one agent across calls; by default each call is an agent
        # of its own, so that concurrent calls do not end each other's invocation.
        self.owned = agent_id is None
        self.agent_id = agent_id or instr.new_id(name)
        agents = instr.agents
        if agents.get_agent_state(self.agent_id) is None:
            guarded("agent:spawned", agents.emit_agent_spawned, self.agent_id, name=name,
                    type=agent_type)
        # Outside any task the agent works on the enclosing span's work (the id the
        # conversion gives a foreign agent), else on a run of its own.
        task_id = outer.task_id or current_span_hex() or instr.new_id("run")
        guarded("agent:started", agents.emit_agent_started, self.agent_id, task_id,
                name=name, type=agent_type)
        self.activation = Activation(Frame(outer.task_id, self.agent_id, RequestLog()),
                                     agents.agent_context(self.agent_id))
        if capture:
            guarded("agent:log:debug", agents.emit_log, self.agent_id, "debug", "arguments",
                    {"arguments": arguments()})

    def yielded(self, item: Any) -> None:
        if self.capture:
            value = plain(item)
            guarded("agent:output:stdout", self.instr.agents.emit_output, self.agent_id,
                    "stdout", value if isinstance(value, str) else dumps(value))

    def succeeded(self, result: Any) -> None:
        agents = self.instr.agents
        if self.capture:
            guarded("agent:log:debug", agents.emit_log, self.agent_id, "debug", "result",
                    {"result": plain(result)})
        guarded("agent:stopped", agents.emit_agent_stopped, self.agent_id)
        self._forget()

    def failed(self, error: BaseException) -> None:
        agents = self.instr.agents
        if is_cancellation(error):
            guarded("agent:stopped", agents.emit_agent_stopped, self.agent_id)
        else:
            guarded("agent:error", agents.emit_agent_error, self.agent_id,
                    error_object(error))
        self._forget()

    def _forget(self) -> None:
        if self.owned:  # an id nobody will use again
            self.instr.agents.clear_agent_state(self.agent_id)


class ToolScope:
    """A decorated tool: an ``execute_tool`` span from call to return."""

    def __init__(self, instr: Instrumentation, capture: bool, name: str,
                 arguments: Arguments) -> None:
        self.instr, self.capture = instr, capture
        outer = current_frame()
        origin, call_id = (outer.requests.claim(name) if outer.requests is not None
                           else (None, None))
        self.name = name
        self.call_id = call_id or instr.new_id("call")
        if origin is None:  # a tool run outside any request: it belongs to the enclosing span
            origin = Origin(current_span_hex() or self.call_id, "unknown", "unknown")
        self.origin = origin
        self.ids = {"agent_id": outer.agent_id, "task_id": outer.task_id}
        self.started = instr.clock()
        self._items: list[Any] | None = [] if capture else None
        llm = instr.llm
        guarded("llm:tool:call", llm.emit_tool_call, origin.request_id,
                tool_call_id=self.call_id, tool_name=name,
                arguments=dumps(arguments()) if capture else "", is_complete=True,
                provider=origin.provider, model=origin.model, **self.ids)
        self.activation = Activation(Frame(outer.task_id, outer.agent_id, RequestLog()),
                                     llm.tool_context(origin.request_id, self.call_id))

    def yielded(self, item: Any) -> None:
        if self._items is not None and len(self._items) < MAX_ITEMS:
            self._items.append(plain(item))

    def succeeded(self, result: Any) -> None:
        if self._items:  # a generator tool's result is what it yielded
            result = self._items
        self._result(result=plain(result) if self.capture else None)

    def failed(self, error: BaseException) -> None:
        if is_cancellation(error):
            self._result(error={"message": "cancelled", "name": "CancelledError"})
        else:
            self._result(error=error_object(error))

    def _result(self, **outcome: Any) -> None:
        origin = self.origin
        elapsed = max(0.0, self.instr.clock() - self.started)
        guarded("llm:tool:result", self.instr.llm.emit_tool_result, origin.request_id,
                tool_call_id=self.call_id, tool_name=self.name,
                execution_time=round(elapsed * 1000, 3), provider=origin.provider,
                model=origin.model, **self.ids, **outcome)
