"""Blocking iteration over an ``SSEClient`` running in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Generator
from typing import Any, Protocol

from otel_sse.client.events import SSEEvent

__all__ = ["EventSource", "iter_client"]

_END = object()
# Batches, not events: a burst crosses the thread boundary in one lock round.
_QUEUE_BATCHES = 256


class EventSource(Protocol):
    """What :func:`iter_client` drives (an ``SSEClient``)."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> Any: ...

    def __aiter__(self) -> AsyncIterator[SSEEvent]: ...

    @property
    def url(self) -> str: ...

    @property
    def buffered(self) -> int:
        """Events received and not yet yielded."""
        ...


def iter_client(client: EventSource) -> Generator[SSEEvent, None, None]:
    """Iterate ``client`` from a background thread with its own loop; see
    ``SSEClient.iter_sync``. The client must not be bound to a loop yet."""

    handoff: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BATCHES)
    stop = threading.Event()
    started = threading.Event()
    control: dict[str, Any] = {}

    async def pump() -> None:
        control["loop"] = asyncio.get_running_loop()
        control["task"] = asyncio.current_task()
        started.set()
        outcome: object = _END
        try:
            async with client:
                batch: list[SSEEvent] = []
                async for event in client:
                    batch.append(event)
                    if client.buffered:
                        continue
                    await _hand_over(batch)
                    batch = []
                if batch:
                    await _hand_over(batch)
        except asyncio.CancelledError:
            return
        except Exception as exc:
            outcome = exc
        await _hand_over(outcome)

    async def _hand_over(item: object) -> None:
        while not stop.is_set():
            try:
                handoff.put_nowait(item)
                return
            except queue.Full:
                # The reader is slower than the stream: wait without blocking
                # the loop, so that a close from the other thread gets through.
                await asyncio.sleep(0.005)

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(pump())
        finally:
            started.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name=f"otel-sse sync client {client.url}", daemon=True)
    thread.start()
    started.wait()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, list)
            yield from item
    finally:
        stop.set()
        loop = control.get("loop")
        task = control.get("task")
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=10.0)
