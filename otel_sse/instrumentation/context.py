"""Which task, agent and LLM requests the running code belongs to.

A decorated call runs with a :class:`Frame` in a context variable and its
span as OpenTelemetry's current span (also a context variable), so whatever
it calls, decorated or instrumented by someone else, nests under it without
ids being passed. Context variables follow the code:

- ``await`` and ``asyncio.create_task`` / ``gather`` / ``TaskGroup``: a new
  asyncio task starts with a copy of its creator's context;
- ``asyncio.to_thread`` and ``loop.run_in_executor`` from a coroutine: to_thread
  copies the context, run_in_executor does not (wrap the function with
  ``contextvars.copy_context().run``);
- threads: a ``threading.Thread`` or a ``ThreadPoolExecutor`` job starts with an
  empty context: submit ``contextvars.copy_context().run`` with the function
  (``pool.submit(copy_context().run, fn, *args)``) to keep the links; without
  it the call is a root of its own (a new trace, no task or agent).

Generators hold their frame only while they run: it is set before each step
and reset before the value goes back to the consumer, so the consumer's own
context is never changed by a generator it iterates.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context


@dataclass(frozen=True, slots=True)
class Origin:
    """The LLM request a tool call answers: what ``llm:tool:*`` events name."""

    request_id: str
    provider: str
    model: str


Calls = list[tuple[str, str]]  # (tool name, tool call id), in the response's order


class RequestLog:
    """The LLM requests made within one decorated call, for the tools it runs.

    A tool run while a request is open answers that request; one run after it
    answers the last request that ended. Either way it claims the first call of
    its name the response asked for and no tool claimed yet, so that its events
    carry the request's id and the model's tool-call id.
    """

    __slots__ = ("_claimed", "_last", "_lock", "_open", "_pending")

    def __init__(self) -> None:
        self._open: tuple[Origin, Callable[[], Calls]] | None = None
        self._last: Origin | None = None
        self._pending: deque[tuple[str, str]] = deque()
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def begin(self, origin: Origin, calls: Callable[[], Calls]) -> None:
        """A request opened; ``calls()`` tells the tool calls read from it so far."""
        with self._lock:
            self._open = (origin, calls)
            self._claimed = set()

    def record(self, origin: Origin, calls: Calls) -> None:
        """A request ended; ``calls`` are the tool calls it asked for."""
        with self._lock:
            self._open = None
            self._last = origin
            self._pending = deque(call for call in calls if call[1] not in self._claimed)
            self._claimed = set()

    def claim(self, tool_name: str) -> tuple[Origin | None, str | None]:
        """The request a tool run answers and the id of the call it takes, if any."""
        with self._lock:
            if self._open is not None:
                origin, source = self._open
                for name, call_id in source():
                    if name == tool_name and call_id not in self._claimed:
                        self._claimed.add(call_id)
                        return origin, call_id
                return origin, None
            for index, (name, call_id) in enumerate(self._pending):
                if name == tool_name:
                    del self._pending[index]
                    return self._last, call_id
            return self._last, None


@dataclass(frozen=True, slots=True)
class Frame:
    """The task and agent the running code works for, and its request log."""

    task_id: str | None = None
    agent_id: str | None = None
    requests: RequestLog | None = None


_NO_FRAME = Frame()
_FRAME: ContextVar[Frame | None] = ContextVar("otel_sse_frame", default=None)


def current_frame() -> Frame:
    """The innermost decorated call's frame (an empty one outside any)."""
    return _FRAME.get() or _NO_FRAME


def current_span_hex() -> str | None:
    """The id (16 hex) of OpenTelemetry's current span, if there is a valid one."""
    span_context = trace.get_current_span().get_span_context()
    return f"{span_context.span_id:016x}" if span_context.is_valid else None


class Activation:
    """Makes a frame and a span current for one step of a decorated call.

    ``with activation:`` sets both and restores what was there before on exit, in
    the same context (one call, or one step of a generator).
    """

    __slots__ = ("_context", "_frame", "_tokens")

    def __init__(self, frame: Frame, span_context: Context | None) -> None:
        self._frame = frame
        self._context = span_context
        self._tokens: list[tuple[Token[Frame | None], Any]] = []

    def __enter__(self) -> None:
        frame_token = _FRAME.set(self._frame)
        span_token = (otel_context.attach(self._context) if self._context is not None
                      else None)
        self._tokens.append((frame_token, span_token))

    def __exit__(self, *exc: object) -> None:
        frame_token, span_token = self._tokens.pop()
        if span_token is not None:
            otel_context.detach(span_token)
        _FRAME.reset(frame_token)
