"""The emitters the decorators record with, and which ones a call uses.

An :class:`Instrumentation` holds one :class:`~otel_sse.TaskStream`,
:class:`~otel_sse.AgentStream` and :class:`~otel_sse.LLMStream` for a
telemetry handle and a server: every decorated call records through them, so
its events and spans are exactly the emitters'. Decorators given none use the
one of the current telemetry handle (the last ``configure()``; without one,
the application's own SDK providers or a private provider), built once and
kept on that handle: a new ``configure()`` starts with fresh emitters.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, Final

from otel_sse.emitters import AgentStream, LLMStream, TaskStream
from otel_sse.telemetry.setup import Telemetry, current, resolve

_log = logging.getLogger("otel_sse.instrumentation")
_SHARED_KEY: Final = "otel_sse.instrumentation"


class Instrumentation:
    """The emitters decorated calls record with, and whether they capture content.

    ``server`` is where the live events go (default: the first server the
    telemetry handle streams to); ``telemetry`` the handle (default: the
    current one); ``capture_content`` overrides the handle's content capture
    (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``) for these
    decorators: arguments, yielded values and return values are recorded only
    when it is on. ``clock`` (seconds, monotonic) times tool calls.
    """

    def __init__(self, server: Any = None, telemetry: Telemetry | None = None, *,
                 capture_content: bool | str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        handle = resolve(server, telemetry) if telemetry is None else telemetry
        if server is None:
            server = first_server(handle)
        self.telemetry = handle
        self.server = server
        self.clock = clock
        options: dict[str, Any] = {"telemetry": handle, "capture_content": capture_content}
        self.tasks = TaskStream(server, progress_update_interval=0, **options)
        self.agents = AgentStream(server, metrics_update_interval=0, **options)
        self.llm = LLMStream(server, **options)
        self.capture = self.tasks.content_on_spans or self.tasks.content_on_events

    def new_id(self, prefix: str) -> str:
        """A fresh id for a task, agent, request or tool call: ``{prefix}-{12 hex}``."""
        return f"{prefix}-{os.urandom(6).hex()}"

    @classmethod
    def current(cls) -> Instrumentation:
        """The instrumentation of the current telemetry handle (see the module docstring)."""
        handle = current()
        if handle is None:
            handle = resolve(None)
        return handle.shared(_SHARED_KEY, lambda: cls(telemetry=handle))


def first_server(handle: Telemetry) -> Any:
    """The first server ``handle`` streams to (None when it streams nowhere)."""
    bridges = handle.bridges
    return bridges[0].sink if bridges else None


def guarded(what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a telemetry call; a failure is logged, never raised into the user's code."""
    try:
        return call(*args, **kwargs)
    except Exception:
        _log.warning("otel-sse: could not record %s", what, exc_info=True)
        return None
