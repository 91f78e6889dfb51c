"""What waits to be appended to a shared log: bounded in bytes, counted when dropped.

Any thread may put; one writer takes batches from the front, in order, and
removes them only once they are stored (so what was taken while the store was
away is sent again, first, when it is back). Putting never blocks: a full
outbox drops the newest and counts it. The writer is woken (``wake``) only when
it said it was idle and something arrives.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

Fields = dict[bytes, bytes | str | int]
# What an item costs beyond its fields' text: the deque slot, the tuple, the dict.
ITEM_OVERHEAD = 96


class Pending(NamedTuple):
    """One entry to append; ``done`` gets its id once stored (None: not learnt)."""

    fields: Fields
    size: int
    done: Callable[[str | None], None] | None = None


def size_of(fields: Fields) -> int:
    return ITEM_OVERHEAD + sum(len(v) if not isinstance(v, int) else 8 for v in fields.values())


class Outbox:
    """A FIFO of :class:`Pending` entries of at most ``max_bytes``."""

    def __init__(self, max_bytes: int, wake: Callable[[], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self.wake = wake
        self._items: deque[Pending] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._idle = True
        self.dropped = 0
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def put(self, item: Pending) -> bool:
        """Queue ``item``; False (and counted) when it does not fit."""
        return self.put_all((item,))

    def put_all(self, items: Sequence[Pending]) -> bool:
        """Queue every item or none (False, all counted as dropped)."""
        size = sum(item.size for item in items)
        with self._lock:
            if self._bytes + size > self.max_bytes:
                self.dropped += len(items)
                self.dropped_bytes += size
                return False
            self._items.extend(items)
            self._bytes += size
            wake = self._idle
            self._idle = False
        if wake and self.wake is not None:
            self.wake()
        return True

    def peek(self, count: int, max_bytes: int) -> list[Pending]:
        """The oldest items, at most ``count`` of them and about ``max_bytes`` (at
        least one); when there are none the writer is idle until the next put."""
        with self._lock:
            items = self._items
            if not items:
                self._idle = True
                return []
            out: list[Pending] = []
            size = 0
            for item in items:
                if out and (len(out) >= count or size + item.size > max_bytes):
                    break
                out.append(item)
                size += item.size
            return out

    def commit(self, count: int) -> None:
        """The ``count`` oldest items are stored: forget them."""
        with self._lock:
            for _ in range(min(count, len(self._items))):
                self._bytes -= self._items.popleft().size
