"""The decorators and the request context manager users call.

``@task``, ``@agent`` and ``@tool`` work on functions of every kind: sync,
``async``, generators and async generators (see :mod:`~otel_sse.instrumentation.wrap`),
bare (``@task``) or with options (``@task("plan", priority="high")``). The name
defaults to the function's qualified name. What each records is in
:mod:`~otel_sse.instrumentation.scopes`, how nesting follows the code in
:mod:`~otel_sse.instrumentation.context`.

Every option is checked when the decorator is applied; the emitters are looked
up when a call starts (``instrumentation=`` pins them), so decorating at import
time and calling ``otel_sse.configure()`` later works.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

from otel_sse.errors import ConfigError
from otel_sse.instrumentation.content import Arguments
from otel_sse.instrumentation.llm import LLMRequest
from otel_sse.instrumentation.runtime import Instrumentation
from otel_sse.instrumentation.scopes import AgentScope, Scope, TaskScope, ToolScope
from otel_sse.instrumentation.wrap import decorate
from otel_sse.telemetry.config import parse_capture

F = TypeVar("F", bound=Callable[..., Any])


def _name(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: name={value!r} must be a non-empty string")
    return value


def _capture(value: bool | str | None) -> bool | None:
    mode = parse_capture(value)  # ConfigError names a bad value
    return None if mode is None else mode != "none"


class _Decorator:
    """What a decorator was given; :meth:`apply` wraps one function with it."""

    def __init__(self, name: str | None, capture: bool | None,
                 instrumentation: Instrumentation | None) -> None:
        self.name = name
        self.capture = capture
        self.instrumentation = instrumentation

    def apply(self, fn: F) -> F:
        if not callable(fn):
            raise ConfigError(f"{type(self).__name__.strip('_').lower()} decorates a "
                              f"function, not {fn!r}")
        name = self.name or getattr(fn, "__qualname__", None) or repr(fn)
        binder = Arguments(fn)

        def opener(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Scope:
            instr = self.instrumentation or Instrumentation.current()
            capture = instr.capture if self.capture is None else self.capture
            return self.open(instr, capture, name, lambda: binder.bind(args, kwargs))

        return decorate(fn, opener)

    def open(self, instr: Instrumentation, capture: bool, name: str,
             arguments: Callable[[], dict[str, Any]]) -> Scope:
        raise NotImplementedError


class _Task(_Decorator):
    def __init__(self, name: str | None, capture: bool | None,
                 instrumentation: Instrumentation | None, fields: Mapping[str, Any]) -> None:
        super().__init__(name, capture, instrumentation)
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def open(self, instr: Instrumentation, capture: bool, name: str,
             arguments: Callable[[], dict[str, Any]]) -> Scope:
        return TaskScope(instr, capture, name, self.fields, arguments)


class _Agent(_Decorator):
    def __init__(self, name: str | None, capture: bool | None,
                 instrumentation: Instrumentation | None, agent_id: str | None,
                 agent_type: str | None) -> None:
        super().__init__(name, capture, instrumentation)
        self.agent_id, self.agent_type = agent_id, agent_type

    def open(self, instr: Instrumentation, capture: bool, name: str,
             arguments: Callable[[], dict[str, Any]]) -> Scope:
        return AgentScope(instr, capture, name, self.agent_id, self.agent_type, arguments)


class _Tool(_Decorator):
    def open(self, instr: Instrumentation, capture: bool, name: str,
             arguments: Callable[[], dict[str, Any]]) -> Scope:
        return ToolScope(instr, capture, name, arguments)


def _apply(decorator: _Decorator, fn: Callable[..., Any] | None) -> Any:
    return decorator.apply(fn) if fn is not None else decorator.apply


@overload
def task(name: F, /) -> F: ...


@overload
def task(name: str | None = None, /, *, type: str | None = None,
         priority: str | int | None = None, description: str | None = None,
         dependencies: Sequence[str] | None = None, capture_content: bool | str | None = None,
         instrumentation: Instrumentation | None = None) -> Callable[[F], F]: ...


def task(name: Any = None, /, *, type: str | None = None,
         priority: str | int | None = None, description: str | None = None,
         dependencies: Sequence[str] | None = None, capture_content: bool | str | None = None,
         instrumentation: Instrumentation | None = None) -> Any:
    """Each call of the decorated function is a task (``task:created`` ...
    ``task:completed``/``failed``/``cancelled``): a ``task {name}`` span, a child
    of the agent or task it runs in, and the ``agentId`` of that agent.

    ``type``, ``priority``, ``description`` and
    ``dependencies`` are the task's fields; ``capture_content`` overrides the
    telemetry's content capture for this function.
    """
    fn = name if callable(name) else None
    decorator = _Task(_name(None if fn else name, "task"), _capture(capture_content),
                      instrumentation,
                      {"type": type, "priority": priority, "description": description,
                       "dependencies": list(dependencies) if dependencies else None})
    return _apply(decorator, fn)


@overload
def agent(name: F, /) -> F: ...


@overload
def agent(name: str | None = None, /, *, type: str | None = None,
          agent_id: str | None = None, capture_content: bool | str | None = None,
          instrumentation: Instrumentation | None = None) -> Callable[[F], F]: ...


def agent(name: Any = None, /, *, type: str | None = None,
          agent_id: str | None = None, capture_content: bool | str | None = None,
          instrumentation: Instrumentation | None = None) -> Any:
    """Each call of the decorated function is an agent at work (``agent:spawned``,
    ``agent:started`` ... ``agent:stopped``/``agent:error``): an ``invoke_agent
    {name}`` span, a child of the task it runs in; tasks, requests and tools
    called inside carry its ``agentId``.

    By default each call is an agent of its own id (``{name}-{12 hex}``), so calls
    may run concurrently. ``agent_id`` names one agent across calls instead
    (spawned once); give it only to an agent that runs one call at a time, since
    a new invocation of an agent ends the one still open.
    """
    fn = name if callable(name) else None
    decorator = _Agent(_name(None if fn else name, "agent"), _capture(capture_content),
                       instrumentation, _name(agent_id, "agent (agent_id)"), type)
    return _apply(decorator, fn)


@overload
def tool(name: F, /) -> F: ...


@overload
def tool(name: str | None = None, /, *, capture_content: bool | str | None = None,
         instrumentation: Instrumentation | None = None) -> Callable[[F], F]: ...


def tool(name: Any = None, /, *, capture_content: bool | str | None = None,
         instrumentation: Instrumentation | None = None) -> Any:
    """Each call of the decorated function is a tool call (``llm:tool:call``,
    ``llm:tool:result``): an ``execute_tool {name}`` span. It answers the last
    LLM request made in the same task or agent (its ``requestId``, and the
    model's tool-call id when that request asked for this tool); outside any
    request it belongs to the enclosing span (provider and model ``unknown``).
    """
    fn = name if callable(name) else None
    decorator = _Tool(_name(None if fn else name, "tool"), _capture(capture_content),
                      instrumentation)
    return _apply(decorator, fn)


def llm_request(provider: str, model: str, *, messages: Sequence[Any] | None = None,
                system_prompt: str | None = None, parameters: Mapping[str, Any] | None = None,
                tools: Sequence[Any] | None = None, stream: bool | None = None,
                conversation_id: str | None = None, request_id: str | None = None,
                instrumentation: Instrumentation | None = None) -> LLMRequest:
    """An LLM request, as a context manager (``with`` or ``async with``) whose
    handle reads the streamed response (see :mod:`otel_sse.instrumentation.llm`).

    ``messages``, ``system_prompt``, ``parameters`` (temperature, max_tokens,
    top_p, top_k, stop_sequences) and ``tools`` are the request's; ``stream``
    and ``conversation_id`` go to the span only. ``request_id`` defaults to a
    fresh ``req-{12 hex}``.
    """
    for label, value in (("provider", provider), ("model", model)):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"llm_request: {label}={value!r} must be a non-empty string")
    fields: dict[str, Any] = {"messages": list(messages) if messages is not None else [],
                              "system_prompt": system_prompt,
                              "parameters": dict(parameters) if parameters else None,
                              "tools": list(tools) if tools is not None else None,
                              "stream": stream, "conversation_id": conversation_id}
    return LLMRequest(instrumentation or Instrumentation.current(), provider, model,
                      request_id=request_id,
                      fields={k: v for k, v in fields.items() if v is not None})
