"""Running blocking SDK calls against one deadline.

The SDK's flush and shutdown calls do not all honour a timeout (a batch
processor's ``force_flush`` exports everything it holds, however long that
takes), so each runs on a daemon thread of its own and the caller waits for
them together, up to one deadline. A call still running then is left behind:
being a daemon thread, it never holds up the process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

_log = logging.getLogger("otel_sse.telemetry")
_T = TypeVar("_T")

Clock = Callable[[], float]


class Deadline:
    """A point in time ``seconds`` from now on ``clock`` (monotonic seconds)."""

    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.at = clock() + seconds

    def remaining(self, reserve: float = 0.0) -> float:
        """Seconds left before the deadline less ``reserve``, never negative."""
        return max(0.0, self.at - reserve - self.clock())


class Job:
    """One blocking call on a daemon thread; ``ok`` is False if it raised or returned False."""

    def __init__(self, name: str, call: Callable[[], object]) -> None:
        self.name = name
        self.ok = False
        self._call = call
        self._done = threading.Event()
        thread = threading.Thread(target=self._run, name=f"otel-sse-telemetry-{name}", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # No new threads this late in the interpreter's exit (Python 3.12.0-1
            # refused them in atexit hooks): run here instead.
            self._run()

    def _run(self) -> None:
        try:
            self.ok = self._call() is not False
        except Exception:
            _log.debug("otel-sse: %s failed", self.name, exc_info=True)
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the call to end; True if it has."""
        return self._done.wait(max(0.0, seconds))


def wait_all(jobs: Iterable[Job], deadline: Deadline, reserve: float = 0.0) -> bool:
    """Wait for every job until ``reserve`` seconds before the deadline; True if all ended."""
    pending = list(jobs)
    for job in pending:
        job.wait(deadline.remaining(reserve))
    return all(job.done for job in pending)


async def run_in_thread(name: str, call: Callable[[], _T]) -> _T:
    """Await ``call()`` run on a daemon thread of its own, so the loop keeps running.

    A thread of its own rather than the loop's default executor: an application
    may keep that executor busy, and shutdown should not queue behind it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=f"otel-sse-telemetry-{name}", daemon=True).start()
    return await future
