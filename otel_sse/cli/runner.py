"""Running a command's coroutine: uvloop when installed, signals, durations."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections.abc import Callable, Coroutine
from typing import Any


def _raise_fd_limit() -> None:
    # Each client is a socket; the default soft limit (often 1024) caps the server early.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run on uvloop when it is installed (it is the embedding code's choice)."""
    _raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def stop_event() -> asyncio.Event:
    """Set on SIGINT/SIGTERM; installed before anything is announced, so no signal is missed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_until(stop: asyncio.Event, duration: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
