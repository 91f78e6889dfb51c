"""A real SSE server, a real OTLP receiver and ``configure()`` wiring both, for tests
that run instrumented code and compare the live stream with the exported spans."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from otel_sse.server import SSEServer
from otel_sse.telemetry import Telemetry, configure
from tests.otlp_receiver import OtlpGrpcReceiver
from tests.test_bridge_support import StreamCollector, check_event

Frames = list[tuple[str, dict[str, Any]]]
# Events the server derives from the open work, not from one span or record.
DERIVED = ("trace:completed", "span:heartbeat", "span:stale")


class Rig:
    """What a test runs its code against; :meth:`run` returns the stream's events."""

    def __init__(self, server: SSEServer, tel: Telemetry, receiver: OtlpGrpcReceiver) -> None:
        self.server, self.tel, self.receiver = server, tel, receiver

    async def run(self, body: Callable[[], Awaitable[Any]], *, filters: str | None = None
                  ) -> Frames:
        """Run ``body`` with a subscriber connected; every event it saw, each checked
        against the contract's schema, after the telemetry was flushed."""
        url = f"{self.server.url}/events"
        if filters:
            url += f"?filters={filters},test:done"
        async with StreamCollector(url) as collector:
            await body()
            assert await self.tel.aforce_flush(10)
            self.server.publish("test:done", {})
            frames = await collector.finish()
        for event_type, data in frames:
            check_event(event_type, data)
        return frames

    async def span(self, span_id: str) -> dict[str, Any]:
        """The exported span ``span_id`` (16 hex), once it arrived."""
        found: list[dict[str, Any]] = await self.receiver.async_wait_for(
            lambda r: [s for s in r.spans() if s["span_id"] == span_id], timeout=10)
        return found[0]

    async def spans(self, count: int) -> dict[str, dict[str, Any]]:
        """The exported spans by span id, once at least ``count`` arrived."""
        await self.receiver.async_wait_for(lambda r: len(r.spans()) >= count, timeout=10)
        return {span["span_id"]: span for span in self.receiver.spans()}


@asynccontextmanager
async def rig(**options: Any) -> AsyncIterator[Rig]:
    """A server on a free port and telemetry exporting to a receiver (``options`` go
    to ``configure()``); everything is stopped afterwards."""
    with OtlpGrpcReceiver() as receiver:
        server = SSEServer(port=0, host="127.0.0.1")
        await server.start()
        options.setdefault("service_name", "instrumented")
        tel = configure(server=server, otlp_endpoint=receiver.endpoint, otlp_protocol="grpc",
                        otlp_timeout=5, export_schedule_delay=0.05, metrics_exporter="none",
                        set_global=False, **options)
        try:
            yield Rig(server, tel, receiver)
        finally:
            await tel.ashutdown()
            await server.stop()


def seeds(frames: Frames) -> Frames:
    """The contract's task/agent/LLM events only (no span:*, log or derived events)."""
    return [(t, d) for t, d in frames
            if not t.startswith("span:") and t != "log" and t not in DERIVED]


def types(frames: Frames) -> list[str]:
    return [t for t, _ in frames]


def of(frames: Frames, event_type: str) -> list[dict[str, Any]]:
    return [d for t, d in frames if t == event_type]


async def settle_loop() -> None:
    """Give other coroutines a turn (a started asyncio task reaches its first await)."""
    for _ in range(3):
        await asyncio.sleep(0)
