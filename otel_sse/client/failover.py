"""Which URL to try next, and after how long: the client's failover policy, sans I/O.

The URLs are replicas of one stream (gateways sharing a bus), so any of them
can resume from the client's ``Last-Event-ID``. The policy:

- Start with the first URL; after a failure or a dropped stream, try the next
  one in the list at once: a replica that just failed is the one least
  likely to answer, and another one resumes where it stopped.
- Back off (exponentially, by rounds) only after a full round in which every
  URL failed; the next round starts where the rotation stands.
- A permanent failure (404, 401, an untrusted certificate...) takes that URL
  out of the rotation; the client gives up only when every URL is out.
- ``Retry-After`` holds back only the URL that sent it.

With one URL this is exactly the single-server behaviour: a failure is a full
round, so attempt n waits ``backoff(n)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

__all__ = ["Endpoint", "NextAttempt", "Rotation"]


@dataclasses.dataclass(slots=True)
class Endpoint:
    """One URL and what the client learnt about it."""

    url: str
    #: The error that took it out of the rotation, or None while usable.
    permanent: BaseException | None = None
    #: Monotonic time before which it is not tried again (its ``Retry-After``).
    not_before: float = 0.0
    failures: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class NextAttempt:
    """Where and when the next attempt goes."""

    url: str
    delay: float
    #: True when the previous round had failed everywhere (so ``delay`` is a backoff).
    new_round: bool


class Rotation:
    """The failover state of one client: the current URL, the round, the exclusions."""

    def __init__(self, urls: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("at least one URL is needed")
        self._endpoints = [Endpoint(url) for url in urls]
        self._clock = clock
        self._index = 0
        self._tried: set[int] = set()
        self._rounds = 0

    @property
    def url(self) -> str:
        """The URL in use (connected, or being tried next)."""
        return self._endpoints[self._index].url

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every URL with its state, in the configured order."""
        return tuple(self._endpoints)

    @property
    def rounds(self) -> int:
        """Full rounds of failures since the last successful connection."""
        return self._rounds

    def restart(self) -> None:
        """Forget the exclusions and go back to the first URL (a new ``connect()``)."""
        for endpoint in self._endpoints:
            endpoint.permanent = None
            endpoint.not_before = 0.0
            endpoint.failures = 0
        self._index = 0
        self._tried.clear()
        self._rounds = 0

    def succeeded(self) -> None:
        """The current URL answered with a stream: the failure count starts again."""
        self._endpoints[self._index].failures = 0
        self._tried.clear()
        self._rounds = 0

    def failed(
        self, *, permanent: BaseException | None = None, retry_after: float | None = None
    ) -> None:
        """The attempt on the current URL failed (``permanent``: never try it again)."""
        endpoint = self._endpoints[self._index]
        endpoint.failures += 1
        if permanent is not None:
            endpoint.permanent = permanent
        if retry_after is not None:
            endpoint.not_before = self._clock() + retry_after
        self._tried.add(self._index)

    def dropped(self) -> None:
        """The stream on the current URL ended: a new round starts, that URL already in it."""
        self._tried = {self._index}
        self._rounds = 0

    def usable(self) -> bool:
        """Whether some URL is not out of the rotation."""
        return any(e.permanent is None for e in self._endpoints)

    def advance(self, backoff: Callable[[int], float]) -> NextAttempt | None:
        """Move to the URL to try next; None when every URL failed permanently.

        ``backoff(n)`` is the delay after the n-th full round of failures.
        """
        count = len(self._endpoints)
        order = [(self._index + step) % count for step in range(1, count + 1)]
        usable = [i for i in order if self._endpoints[i].permanent is None]
        if not usable:
            return None
        now = self._clock()
        untried = [i for i in usable if i not in self._tried]
        if untried:
            # Untried replicas first, at once; among them the first in order
            # that no Retry-After holds back, else the one free soonest.
            position = {index: n for n, index in enumerate(untried)}
            choice = min(untried, key=lambda i: (self._wait(i, now), position[i]))
            delay, new_round = 0.0, False
        else:
            self._rounds += 1
            self._tried.clear()
            choice = usable[0]
            delay, new_round = backoff(self._rounds), True
        self._index = choice
        return NextAttempt(self.url, max(delay, self._wait(choice, now)), new_round)

    def _wait(self, index: int, now: float) -> float:
        return max(self._endpoints[index].not_before - now, 0.0)
