"""The retained history: a ring of encoded events addressed by sequence number."""

from __future__ import annotations

from typing import NamedTuple, TypeVar

_T = TypeVar("_T")


class StoredEvent(NamedTuple):
    """One published event, encoded once; every client is sent ``frame`` as is."""

    seq: int
    id: str
    type: str
    frame: bytes


class History:
    """Bounded by event count and by bytes; the oldest events go first.

    Fixed lists indexed by ``seq % capacity`` give O(1) access to any retained
    sequence number, which the per-client read on every publish depends on.

    The ring holds only strings and bytes, in parallel lists, never an object per
    event: the cyclic garbage collector does not track str and bytes, so thousands
    of retained events cost the application's collections nothing. (One tracked
    object per event made every young-generation collection in the process, on
    the application's threads too, walk the recent history: that alone was +8 %
    on the cost of a span with the server in the same process.)
    """

    __slots__ = ("_bytes", "_frames", "_ids", "_types", "capacity", "first_seq", "last_seq",
                 "max_bytes")

    def __init__(self, capacity: int, max_bytes: int) -> None:
        if capacity < 1:
            raise ValueError(f"history_size must be >= 1, got {capacity!r}")
        if max_bytes < 1:
            raise ValueError(f"history_bytes must be >= 1, got {max_bytes!r}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._ids: list[str] = [""] * capacity
        self._types: list[str] = [""] * capacity
        self._frames: list[bytes] = [b""] * capacity
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
        index = event.seq % self.capacity
        self._ids[index] = event.id
        self._types[index] = event.type
        self._frames[index] = event.frame
        self.last_seq = event.seq
        self._bytes += len(event.frame)
        while self._bytes > self.max_bytes and len(self) > 1:
            self._evict()

    def _evict(self) -> None:
        index = self.first_seq % self.capacity
        self._bytes -= len(self._frames[index])
        self._ids[index] = self._types[index] = ""
        self._frames[index] = b""
        self.first_seq += 1

    def window(self, seq: int, limit: int) -> tuple[int, int]:
        """The first and last retained sequence numbers above ``seq``, at most ``limit``
        of them; ``last < first`` when there are none."""
        first = max(seq + 1, self.first_seq)
        return first, min(self.last_seq, first + limit - 1)

    def frames(self, first: int, last: int) -> list[bytes]:
        """The encoded events ``first..last`` (a :meth:`window`), oldest first."""
        return self._slice(self._frames, first, last)

    def types(self, first: int, last: int) -> list[str]:
        """The event types of ``first..last`` (a :meth:`window`), oldest first."""
        return self._slice(self._types, first, last)

    def _slice(self, ring: list[_T], first: int, last: int) -> list[_T]:
        if last < first:
            return []
        cap = self.capacity
        lo, hi = first % cap, last % cap
        return ring[lo : hi + 1] if lo <= hi else ring[lo:] + ring[: hi + 1]

    def get(self, seq: int) -> StoredEvent | None:
        if self.first_seq <= seq <= self.last_seq:
            index = seq % self.capacity
            return StoredEvent(seq, self._ids[index], self._types[index], self._frames[index])
        return None
