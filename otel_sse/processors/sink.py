"""What the processors publish to: the SSE server, or anything shaped like it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from otel_sse.convert.model import LiveEvent


@runtime_checkable
class EventSink(Protocol):
    """``SSEServer`` satisfies this; tests use a list-collecting sink.

    ``publish`` must be safe to call on the sink's loop and must not block.
    ``loop`` is the asyncio loop conversion work is handed to (None until the
    sink is started: events wait in the bridge's bounded queue until then).
    """

    def publish(self, event_type: str, data: Mapping[str, Any]) -> int: ...


class LiveSink(Protocol):
    """Where an emitter's live events (tokens) go: the in-process stream's bridge,
    the gateway forwarder. ``submit_live`` never blocks or raises."""

    def submit_live(self, event: LiveEvent) -> None: ...


def sink_loop(sink: object) -> asyncio.AbstractEventLoop | None:
    """The sink's loop if it has one (the attribute is optional in the protocol)."""
    loop = getattr(sink, "loop", None)
    # Duck-typed: a wrapped or instrumented loop is fine as long as it schedules.
    return loop if hasattr(loop, "call_soon_threadsafe") else None
