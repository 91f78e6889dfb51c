"""The retained history: a ring of encoded events addressed by sequence number."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class StoredEvent:
    """One published event, encoded once; every client is sent ``frame`` as is."""

    seq: int
    id: str
    type: str
    data: str
    frame: bytes


class History:
    """Bounded by event count and by bytes; the oldest events go first.

    A fixed list indexed by ``seq % capacity`` gives O(1) access to any retained
    sequence number, which the per-client read on every publish depends on.
    """

    __slots__ = ("_bytes", "_ring", "capacity", "first_seq", "last_seq", "max_bytes")

    def __init__(self, capacity: int, max_bytes: int) -> None:
        if capacity < 1:
            raise ValueError(f"history_size must be >= 1, got {capacity!r}")
        if max_bytes < 1:
            raise ValueError(f"history_bytes must be >= 1, got {max_bytes!r}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._ring: list[StoredEvent | None] = [None] * capacity
        self._bytes = 0
        # Sequence numbers start at 1; an empty history has first = last + 1.
        self.first_seq = 1
        self.last_seq = 0

    def __len__(self) -> int:
        return self.last_seq - self.first_seq + 1

    @property
    def nbytes(self) -> int:
        return self._bytes

    def append(self, event: StoredEvent) -> None:
        if event.seq != self.last_seq + 1:
            raise ValueError(f"history expects seq {self.last_seq + 1}, got {event.seq}")
        if len(self) == self.capacity:
            self._evict()
        self._ring[event.seq % self.capacity] = event
        self.last_seq = event.seq
        self._bytes += len(event.frame)
        while self._bytes > self.max_bytes and len(self) > 1:
            self._evict()

    def _evict(self) -> None:
        index = self.first_seq % self.capacity
        old = self._ring[index]
        if old is not None:
            self._bytes -= len(old.frame)
        self._ring[index] = None
        self.first_seq += 1

    def after(self, seq: int, limit: int) -> list[StoredEvent]:
        """Retained events with sequence numbers above ``seq``, oldest first, at most ``limit``."""
        start = max(seq + 1, self.first_seq)
        stop = min(self.last_seq, start + limit - 1)
        if stop < start:
            return []
        cap = self.capacity
        lo, hi = start % cap, stop % cap
        ring = self._ring
        chunk = ring[lo : hi + 1] if lo <= hi else ring[lo:] + ring[: hi + 1]
        return chunk  # type: ignore[return-value]  # every slot in [first, last] is filled

    def get(self, seq: int) -> StoredEvent | None:
        if self.first_seq <= seq <= self.last_seq:
            return self._ring[seq % self.capacity]
        return None
