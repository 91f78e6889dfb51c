"""Accepting connections on a listening socket, within the process's file descriptors.

The event loop's own accept path logs a traceback for every ``accept()`` that
fails for lack of file descriptors; a server at its limit would write that many
times a second. This one accepts in a reader callback, and when the process is
out of descriptors it says so once per episode, stops accepting for a moment
(0.1 s, doubling to 2 s while it lasts) and says so again when it accepts.
Connections waiting meanwhile stay in the kernel's backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
from collections.abc import Callable

logger = logging.getLogger("otel_sse.server")

_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPTS_PER_CALL = 64
_MIN_PAUSE, _MAX_PAUSE = 0.1, 2.0


class Listener:
    """One listening socket and the connections it accepts."""

    def __init__(self, sock: socket.socket, protocol: Callable[[], asyncio.Protocol],
                 ssl_context: ssl.SSLContext | None, handshake_timeout: float,
                 send_buffer: int | None = None) -> None:
        self.sock = sock
        # The kernel's send buffer per connection: without a size it grows (to 4 MiB on
        # Linux) for a client that does not read, memory no cap of ours would count.
        self.send_buffer = send_buffer
        self.protocol = protocol
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.opening: set[asyncio.Task[None]] = set()
        self.exhausted = False
        self.episodes = 0
        self._pause = _MIN_PAUSE
        self._retry: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting and close the socket; connections being opened are cancelled."""
        loop = self.loop
        if loop is not None and self.sock.fileno() != -1:
            loop.remove_reader(self.sock.fileno())
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self.sock.close()
        for task in list(self.opening):
            task.cancel()

    def _accept(self) -> None:
        loop = self.loop
        assert loop is not None
        for _ in range(_ACCEPTS_PER_CALL):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._out_of_descriptors(exc)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # the peer gave up before we accepted
                logger.warning("accept() on %s failed: %s", self.sock.getsockname(), exc)
                return
            if self.exhausted:
                self.exhausted = False
                self._pause = _MIN_PAUSE
                logger.warning("accepting connections again on %s", self.sock.getsockname())
            conn.setblocking(False)
            if self.send_buffer:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            task = loop.create_task(self._open(conn))
            self.opening.add(task)
            task.add_done_callback(self.opening.discard)

    async def _open(self, conn: socket.socket) -> None:
        loop = self.loop
        assert loop is not None
        try:
            transport, _ = await loop.connect_accepted_socket(
                self.protocol, conn, ssl=self.ssl_context,
                ssl_handshake_timeout=self.handshake_timeout if self.ssl_context else None)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            # A failed TLS handshake or a peer already gone: nothing to serve.
            logger.debug("connection not opened: %r", exc)
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        wrapped = transport.get_extra_info("socket")
        if wrapped is not None and wrapped.fileno() != conn.fileno():
            conn.close()  # the loop (uvloop) serves a duplicate of the descriptor

    def _out_of_descriptors(self, exc: OSError) -> None:
        loop = self.loop
        assert loop is not None
        if not self.exhausted:
            self.exhausted = True
            self.episodes += 1
            logger.warning(
                "out of file descriptors (%s): not accepting connections on %s for now; "
                "raise the limit (ulimit -n) or lower max_connections", exc.strerror,
                self.sock.getsockname())
        loop.remove_reader(self.sock.fileno())
        self._retry = loop.call_later(self._pause, self._resume)
        self._pause = min(_MAX_PAUSE, self._pause * 2)

    def _resume(self) -> None:
        self._retry = None
        if self.loop is not None and self.sock.fileno() != -1:
            self.loop.add_reader(self.sock.fileno(), self._accept)
            self._accept()
