"""Trailing-edge coalescing for progress and metrics updates.

The first update after a quiet interval goes out at once; later ones inside
the interval replace each other and the last one is delivered when the
interval ends, so the final value (a 100 % progress) is never lost. One
shared timer thread serves every coalescer: a ``threading.Timer`` per pending
key would cost a thread per task.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

_log = logging.getLogger(__name__)


class _TimerThread:
    """A heap of deadlines served by one daemon thread, started on first use."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._counter), callback))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="otel-sse-throttle",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, callback = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                _log.exception("otel-sse: a throttled update failed")


_TIMERS = _TimerThread()


class _Slot:
    __slots__ = ("generation", "last", "pending", "value")

    def __init__(self) -> None:
        self.last = float("-inf")
        self.pending = False
        self.value: Any = None
        self.generation = 0


class Coalescer:
    """Deliver ``deliver(key, value)`` at most once per ``interval`` seconds per key."""

    def __init__(self, interval: float, deliver: Callable[[Hashable, Any], None]) -> None:
        self.interval = max(0.0, float(interval))
        self._deliver = deliver
        self._slots: dict[Hashable, _Slot] = {}
        self._lock = threading.Lock()

    def submit(self, key: Hashable, value: Any) -> None:
        """Deliver ``value`` now if the key was quiet for an interval, else keep it as
        the key's pending value, delivered when the interval ends."""
        now = time.monotonic()
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            if not slot.pending and now - slot.last >= self.interval:
                slot.last = now
                send = True
            else:
                send = False
                slot.value = value
                if not slot.pending:
                    slot.pending = True
                    generation = slot.generation
                    _TIMERS.call_at(slot.last + self.interval,
                                    lambda: self._fire(key, generation))
        if send:
            self._deliver(key, value)

    def _fire(self, key: Hashable, generation: int) -> None:
        self._release(key, generation)

    def flush(self, key: Hashable) -> None:
        """Deliver a pending value now (before a task's completion, say)."""
        self._release(key, None)

    def _release(self, key: Hashable, generation: int | None) -> None:
        """Deliver the key's pending value, if any; a timer passes its ``generation`` and
        delivers nothing once a flush (or an earlier timer) has taken the value."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None or not slot.pending:
                return
            if generation is not None and slot.generation != generation:
                return
            slot.pending = False
            slot.generation += 1
            slot.last = time.monotonic()
            value, slot.value = slot.value, None
        self._deliver(key, value)

    def discard(self, key: Hashable) -> None:
        """Forget the key and its pending value (a timer due for it delivers nothing)."""
        with self._lock:
            self._slots.pop(key, None)

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._slots.clear()
