"""The event buffer behind ``async for``: backpressure towards the reader, drops without one."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from otel_sse.client.events import SSEEvent
from otel_sse.client.options import _Options

__all__: list[str] = []


class _EventIterator:
    """One ``async for`` over a client; events are shared, each delivered once."""

    __slots__ = ("_client", "_detached")

    def __init__(self, client: _EventBuffer) -> None:
        self._client = client
        self._detached = False
        client._consumers += 1
        client._nobody_iterates = False
        client._space.set()

    def _detach(self) -> None:
        if not self._detached:
            self._detached = True
            self._client._consumers -= 1
            self._client._space.set()

    def __del__(self) -> None:
        # A ``break`` out of ``async for`` drops the iterator without telling
        # it; the reader must then stop waiting for a consumer that is gone.
        with contextlib.suppress(Exception):
            self._detach()

    def __aiter__(self) -> _EventIterator:
        return self

    async def __anext__(self) -> SSEEvent:
        client = self._client
        buffer = client._buffer
        while not buffer:
            if client._finished:
                self._detach()
                error = client._final_error
                if error is not None:
                    raise error
                raise StopAsyncIteration
            client._ready.clear()
            await client._ready.wait()
        event = buffer.popleft()
        if client._space_wanted and len(buffer) <= client._low_water:
            client._space.set()
        return event


class _EventBuffer:
    """The buffer half of ``SSEClient``; its state is set up by ``SSEClient.__init__``."""

    _buffer: deque[SSEEvent]
    _ready: asyncio.Event
    _space: asyncio.Event
    _space_wanted: bool
    _low_water: int
    _consumers: int
    _finished: bool
    _final_error: BaseException | None
    _closing: bool
    _options: _Options
    _stats: dict[str, int]

    _nobody_iterates = False
    #: Seconds a full buffer waits for an ``async for`` to start before dropping.
    _consumer_grace = 1.0

    async def _push(self, batch: list[SSEEvent]) -> None:
        buffer = self._buffer
        buffer.extend(batch)
        self._ready.set()
        limit = self._options.max_buffered_events
        if len(buffer) <= limit:
            return
        if not self._consumers and not self._nobody_iterates:
            # An ``async for`` may be about to start (the first read often
            # lands between connect() returning and the loop's first
            # __anext__): give it a moment before deciding nobody iterates.
            try:
                async with asyncio.timeout(self._consumer_grace):
                    while not self._consumers and not self._closing:
                        self._space.clear()
                        await self._space.wait()
            except TimeoutError:
                self._nobody_iterates = True
        if self._consumers:
            # Someone iterates: wait for them rather than lose events (the
            # server sees TCP backpressure and decides what to drop).
            while len(buffer) > limit and self._consumers and not self._closing:
                self._space_wanted = True
                self._space.clear()
                await self._space.wait()
            self._space_wanted = False
        excess = len(buffer) - limit
        if excess > 0:
            # Nobody iterates (handlers only): keep the newest for a later ``async for``.
            for _ in range(excess):
                buffer.popleft()
            self._stats["events_dropped"] += excess
