"""An :class:`SSEServer` on a thread of its own, for programs that run no event loop.

The zero-code setup (:func:`otel_sse.instrumentation`, ``opentelemetry-instrument``)
serves the live stream from inside an application it knows nothing about: the
application may be synchronous, or start its own loop later and close it again.
So the server gets a daemon thread with a loop of its own; ``broadcast`` and the
SSE processors reach it from any thread, as they reach any server. A daemon
thread never holds up the interpreter's exit; :meth:`BackgroundServer.stop`
ends it within a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from typing import Final

from otel_sse.errors import ServerError
from otel_sse.server.config import ServerConfig
from otel_sse.server.server import SSEServer

_START_TIMEOUT: Final = 10.0


class BackgroundServer:
    """Runs an :class:`SSEServer` built from ``config`` on a daemon thread and loop."""

    def __init__(self, config: ServerConfig) -> None:
        self.server = SSEServer(config=config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The server's ``http(s)://host:port`` (after :meth:`start`)."""
        return self.server.url

    @property
    def running(self) -> bool:
        """Started, and its thread still serving."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self.server.running

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the thread and the server on it; return once it listens.

        Raises :class:`~otel_sse.errors.ServerError` when the server cannot
        start (the port is taken, the certificate cannot be read), or did not
        within ``timeout`` seconds.
        """
        with self._lock:
            if self._thread is not None:
                raise ServerError("the background server is already started")
            started: concurrent.futures.Future[None] = concurrent.futures.Future()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._serve, args=(loop, started), daemon=True,
                                      name="otel-sse-server")
            self._loop, self._thread = loop, thread
            thread.start()
        try:
            started.result(timeout)
        except concurrent.futures.TimeoutError:
            self.stop(1.0)
            raise ServerError(f"the server did not start within {timeout} s") from None

    def _serve(self, loop: asyncio.AbstractEventLoop,
               started: concurrent.futures.Future[None]) -> None:
        asyncio.set_event_loop(loop)  # this thread's loop, for whatever asks for it
        try:
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # reported to start(), which raises it
                started.set_exception(exc)
                return
            started.set_result(None)
            loop.run_forever()
            # A stop() that gave up waiting left its task behind: end it here.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _stop_on_loop(self, loop: asyncio.AbstractEventLoop,
                      done: concurrent.futures.Future[None]) -> None:
        # Created on the loop itself: a loop that never runs this leaves no coroutine behind.
        task = loop.create_task(self.server.stop())
        task.add_done_callback(lambda _: done.set_result(None))

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the server (clients get ``shutdown``) and its thread, within ``timeout``
        seconds (default: the server's ``shutdown_timeout`` and a little more).

        Idempotent; True when the thread ended in time. A thread still running
        then is a daemon: it does not hold up the process's exit.
        """
        with self._lock:
            thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return True
        if timeout is None:
            timeout = self.server.config.shutdown_timeout + 0.5
        deadline = time.monotonic() + max(0.0, timeout)
        stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            loop.call_soon_threadsafe(self._stop_on_loop, loop, stopped)
        except RuntimeError:  # the loop is closed already
            return not thread.is_alive()
        with contextlib.suppress(concurrent.futures.TimeoutError):
            stopped.result(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
            loop.call_soon_threadsafe(loop.stop)
        thread.join(max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()
