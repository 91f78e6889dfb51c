"""The retained history: a ring of encoded events addressed by sequence number."""

from __future__ import annotations

from array import array
from typing import NamedTuple, TypeVar

from otel_sse.errors import ConfigError, EventFormatError

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

    The ring holds only strings, bytes and a machine-integer array, never an
    object per event: the cyclic garbage collector does not track them, so
    thousands of retained events cost the application's collections nothing.
    (One tracked object per event made every young-generation collection in the
    process, on the application's threads too, walk the recent history.)

    Each event's end offset in the stream of all bytes ever appended is kept too,
    so how many bytes a reader at any position is behind is one subtraction: the
    slow-client rule bounds what a client is due in bytes, not only in events.
    """

    __slots__ = ("_ends", "_first_start", "_frames", "_ids", "_total", "_types", "capacity",
                 "first_seq", "last_seq", "max_bytes")

    def __init__(self, capacity: int, max_bytes: int) -> None:
        if capacity < 1:
            raise ConfigError(f"history_size must be >= 1, got {capacity!r}")
        if max_bytes < 1:
            raise ConfigError(f"history_bytes must be >= 1, got {max_bytes!r}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._ids: list[str] = [""] * capacity
        self._types: list[str] = [""] * capacity
        self._frames: list[bytes] = [b""] * capacity
        self._ends = array("q", bytes(8 * capacity))
        # Bytes ever appended, and the offset where the oldest retained event starts.
        self._total = 0
        self._first_start = 0
        # Sequence numbers start at 1; an empty history has first = last + 1.
        self.first_seq = 1
        self.last_seq = 0

    def __len__(self) -> int:
        return self.last_seq - self.first_seq + 1

    @property
    def nbytes(self) -> int:
        return self._total - self._first_start

    def append(self, event: StoredEvent) -> None:
        seq, event_id, event_type, frame = event
        if seq != self.last_seq + 1:
            raise EventFormatError(f"history expects seq {self.last_seq + 1}, got {seq}")
        capacity = self.capacity
        if seq - self.first_seq == capacity:  # full: len(self) is seq - first_seq
            self._evict()
        index = seq % capacity
        self._ids[index] = event_id
        self._types[index] = event_type
        self._frames[index] = frame
        total = self._total = self._total + len(frame)
        self._ends[index] = total
        self.last_seq = seq
        if total - self._first_start > self.max_bytes:  # over the byte cap: the rare case
            while self.nbytes > self.max_bytes and len(self) > 1:
                self._evict()

    def _evict(self) -> None:
        index = self.first_seq % self.capacity
        self._first_start = self._ends[index]
        self._ids[index] = self._types[index] = ""
        self._frames[index] = b""
        self.first_seq += 1

    def offset(self, seq: int) -> int:
        """Where event ``seq`` ends in the stream of all bytes appended (``first_seq - 1``
        and older: where the oldest retained event starts)."""
        if seq < self.first_seq:
            return self._first_start
        return self._ends[min(seq, self.last_seq) % self.capacity]

    def bytes_after(self, seq: int) -> int:
        """Bytes of the retained events after ``seq`` (all retained ones when ``seq``
        is older than the history)."""
        return self._total - self.offset(seq) if seq < self.last_seq else 0

    def seq_within(self, budget: int) -> int:
        """The oldest position a reader can take so that what it is then due, the
        newest events, fits in ``budget`` bytes (at least the last event is due)."""
        lo, hi = self.first_seq - 1, self.last_seq - 1
        while lo < hi:  # the smallest seq in [lo, hi] with bytes_after(seq) <= budget
            mid = (lo + hi) // 2
            if self.bytes_after(mid) <= budget:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def last_within(self, first: int, last: int, budget: int) -> int:
        """The largest ``stop`` in ``first..last`` whose events ``first..stop`` fit in
        ``budget`` bytes; ``first`` when even that one does not."""
        base = self.offset(first - 1)
        if self.offset(last) - base <= budget:
            return last
        lo, hi = first, last
        while lo < hi:  # the largest seq in [lo, hi] that fits (``first`` at least)
            mid = (lo + hi + 1) // 2
            if self.offset(mid) - base <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo

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
