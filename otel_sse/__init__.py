"""otel-sse: live Server-Sent Events for AI agent systems, in sync with OpenTelemetry.

The path of one event can be read off the package tree:
``emitters`` (task/agent/LLM API) -> OpenTelemetry spans and log records ->
``processors`` (when: bounded hand-off off the application's threads) ->
``convert`` (what: span/log -> contract events; ``ingest`` feeds OTLP from other
processes into it) -> ``hub`` (publishing) -> ``bus`` (event log, ids, history,
fan-out) -> ``server`` (connection layer: h11, h2) -> ``wire`` (bytes).
``client`` reads the same ``wire`` format back; ``dashboard`` shows it in a browser.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from otel_sse._version import __version__
from otel_sse.errors import OtelSSEError

# Lazy exports keep ``import otel_sse`` cheap: a process that only emits
# telemetry never imports hypercorn or aiohttp.
_EXPORTS = {
    "SSEServer": "otel_sse.server",
    "SSEClient": "otel_sse.client",
    "SSEEvent": "otel_sse.client",
    "ConnectionState": "otel_sse.client",
    "TaskStream": "otel_sse.emitters",
    "AgentStream": "otel_sse.emitters",
    "LLMStream": "otel_sse.emitters",
    "LogLevel": "otel_sse.emitters",
    "TaskStatus": "otel_sse.emitters",
    "AgentStatus": "otel_sse.emitters",
    "configure": "otel_sse.telemetry",
    "task": "otel_sse.instrumentation",
    "agent": "otel_sse.instrumentation",
    "tool": "otel_sse.instrumentation",
    "llm_request": "otel_sse.instrumentation",
    "instrument": "otel_sse.instrumentation.distro",
}

__all__ = [
    "AgentStatus",
    "AgentStream",
    "ConnectionState",
    "LLMStream",
    "LogLevel",
    "OtelSSEError",
    "SSEClient",
    "SSEEvent",
    "SSEServer",
    "TaskStatus",
    "TaskStream",
    "__version__",
    "agent",
    "configure",
    "instrument",
    "llm_request",
    "task",
    "tool",
]

if TYPE_CHECKING:
    from otel_sse.client import ConnectionState, SSEClient, SSEEvent
    from otel_sse.emitters import (
        AgentStatus,
        AgentStream,
        LLMStream,
        LogLevel,
        TaskStatus,
        TaskStream,
    )
    from otel_sse.instrumentation import agent, llm_request, task, tool
    from otel_sse.instrumentation.distro import instrument
    from otel_sse.server import SSEServer
    from otel_sse.telemetry import configure


def __dir__() -> list[str]:
    # The lazy exports are part of the API: dir() and help() show them.
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_sse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
