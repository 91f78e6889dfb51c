"""A requests session for the OTLP/HTTP exporters whose ``close()`` aborts requests in flight.

The OTLP/HTTP exporter's ``shutdown()`` stops its retry backoff and closes its
session, but a plain session only drops idle pooled connections: an export
waiting on a collector that accepted the connection and never answers keeps
its thread until the export timeout, after the deadline of any shutdown. This
session tracks the sockets of its connections; closing it shuts them down
(a blocked read returns at once) and refuses new requests, including the
exporter's immediate retry of a broken connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from typing import Any, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool


class _Tracker:
    """The live sockets of one session, and whether it is closed."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.closed = False

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not self.closed:
                self._sockets.add(sock)
                return
        _abort(sock)  # connected after close(): end it too

    def abort_all(self) -> None:
        with self._lock:
            self.closed = True
            sockets = list(self._sockets)
        for sock in sockets:
            _abort(sock)


def _abort(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for a TLS socket: it acts on the file
    # descriptor and wakes a read blocked on it without touching the TLS state.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _TrackedHTTPConnection(HTTPConnection):
    tracker: _Tracker

    def connect(self) -> None:
        super().connect()
        self.tracker.track(self.sock)


class _TrackedHTTPSConnection(HTTPSConnection):
    tracker: _Tracker

    def connect(self) -> None:
        super().connect()
        self.tracker.track(self.sock)


def _track(manager: PoolManager, tracker: _Tracker) -> None:
    """Make ``manager`` open connections that report their sockets to ``tracker``."""
    pools: dict[str, type[HTTPConnectionPool]] = {}
    for scheme, found in manager.pool_classes_by_scheme.items():
        pool = cast(type[HTTPConnectionPool], found)
        base = _TrackedHTTPSConnection if scheme == "https" else _TrackedHTTPConnection
        connection = type(f"Tracked{pool.ConnectionCls.__name__}", (base, pool.ConnectionCls),
                          {"tracker": tracker})
        pools[scheme] = cast(type[HTTPConnectionPool], type(
            f"Tracked{pool.__name__}", (pool,), {"ConnectionCls": connection}))
    manager.pool_classes_by_scheme = pools


class _TrackingAdapter(HTTPAdapter):
    def __init__(self, tracker: _Tracker) -> None:
        self._tracker = tracker  # before super().__init__, which builds the pool manager
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        _track(self.poolmanager, self._tracker)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        known = proxy in self.proxy_manager
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not known:
            _track(manager, self._tracker)
        return manager


class AbortableSession(requests.Session):
    """A session whose ``close()`` also ends its requests in flight and refuses new ones."""

    def __init__(self) -> None:
        super().__init__()
        self._tracker = _Tracker()
        adapter = _TrackingAdapter(self._tracker)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self._tracker.closed:
            raise requests.ConnectionError("the OTLP exporter is shut down")
        return super().send(request, **kwargs)

    def close(self) -> None:
        self._tracker.abort_all()
        super().close()
