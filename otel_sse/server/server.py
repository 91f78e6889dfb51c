"""SSEServer: the embedded server, hypercorn serving :class:`SSEApp` in the caller's loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from otel_sse.bus.fanout import Fanout, control_frame
from otel_sse.bus.log import EventLog, MemoryEventLog
from otel_sse.errors import ServerError
from otel_sse.server.app import SSEApp
from otel_sse.server.config import ServerConfig
from otel_sse.server.front import FrontDoor
from otel_sse.wire.encoder import (
    check_field,
    dumps,
    encode_comment,
    encode_event,
    iso_ms_from_epoch,
    iso_ms_now,
)

logger = logging.getLogger("otel_sse.server")



class _Direct(NamedTuple):
    client_id: str
    event_type: str
    data: str
    retry: int | None


_Pending = tuple[str, str, int | None] | _Direct


def _data_text(data: Any) -> str:
    """An event's data as sent: a mapping as JSON (stamped when it has no timestamp)."""
    if isinstance(data, Mapping):
        if "timestamp" not in data:
            data = {**data, "timestamp": iso_ms_now()}
        return dumps(data)
    if isinstance(data, str):
        return data
    return dumps(data)


class SSEServer:
    """Serves ``/events`` over HTTP/1.1 and HTTP/2 and fans published events out.

    ``broadcast``/``publish``/``send_to_client`` may be called from any thread
    and never block: off the loop they queue the (already encoded) event and
    wake the loop once per batch.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str | None = None,
        http2: bool | None = None,
        cert_path: str | None = None,
        key_path: str | None = None,
        keep_alive_interval: float | None = None,
        compression: bool | None = None,
        compression_level: int | None = None,
        max_clients: int | None = None,
        cors_origins: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        event_log: EventLog | None = None,
        **options: Any,
    ) -> None:
        self.config = ServerConfig.build(
            port=port, host=host, http2=http2, cert_path=cert_path, key_path=key_path,
            keep_alive_interval=keep_alive_interval, compression=compression,
            compression_level=compression_level, max_clients=max_clients,
            cors_origins=cors_origins, headers=headers, **options,
        )
        self.log: EventLog = event_log or MemoryEventLog(
            self.config.history_size, self.config.history_bytes)
        self.fanout = Fanout(self.log, self.config.client_queue_size,
                             self.config.slow_client_policy)
        self.stats: dict[str, int] = {"connections": 0, "rejected_full": 0,
                                      "rejected_bad_request": 0, "published": 0,
                                      "direct": 0}
        self._app = SSEApp(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._front: FrontDoor | None = None
        self._shutdown = asyncio.Event()
        self._pending: deque[_Pending] = deque()
        self._pending_lock = threading.Lock()
        self._drain_scheduled = False
        self._port: int | None = None
        self._started_at: float | None = None
        self.stopping = False

    # -- lifecycle ----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._serve_task is not None and not self._serve_task.done() and not self.stopping

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError("the server has not been started; call `await server.start()`")
        return self._port

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @property
    def url(self) -> str:
        scheme = "https" if self.config.http2 else "http"
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        if self._serve_task is not None:
            raise ServerError("the server is already started")
        config = self.config
        hyper = HypercornConfig()
        if config.http2:
            self._check_tls_files()
            hyper.certfile = config.cert_path
            hyper.keyfile = config.key_path
            hyper.alpn_protocols = ["h2", "http/1.1"]
        sockets = self._bind()
        app: Any = self._app
        front: FrontDoor | None = None
        if config.fast_http1 and not config.http2:
            # The public sockets get the front door; hypercorn listens on loopback behind it.
            internal = self._bind_internal()
            front = FrontDoor(self._app, internal.getsockname()[:2], config.backlog)
            try:
                await front.listen(sockets)
            except BaseException:
                internal.close()
                raise
            app = front.wrap()
            sockets = [internal]
        hyper.bind = [f"fd://{sock.detach()}" for sock in sockets]
        hyper.backlog = config.backlog
        # Every client may be a stream on one HTTP/2 connection.
        hyper.h2_max_concurrent_streams = max(100, config.max_clients + 10)
        hyper.graceful_timeout = max(0.1, config.shutdown_timeout - 0.5)
        hyper.keep_alive_timeout = 5
        hyper.accesslog = None
        hyper.errorlog = logging.getLogger("otel_sse.hypercorn")
        hyper.loglevel = "WARNING"
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.fanout.bind(self._loop)
        self._shutdown = asyncio.Event()
        self.stopping = False
        self._started_at = time.time()
        self._front = front
        self._serve_task = asyncio.create_task(
            serve(app, hyper, shutdown_trigger=self._shutdown.wait),
            name="otel-sse-hypercorn",
        )
        self._maintenance = asyncio.create_task(self._maintain(), name="otel-sse-keepalive")
        # Events published before start (from any thread) are now due.
        self._drain_pending()
        await asyncio.sleep(0)
        if self._serve_task.done():
            exc = self._serve_task.exception()
            if front is not None:
                self._front = None
                await front.shutdown(0)
            raise ServerError(f"the server failed to start: {exc}") from exc

    def _check_tls_files(self) -> None:
        for label, path in (("cert_path", self.config.cert_path),
                            ("key_path", self.config.key_path)):
            if not path or not os.path.isfile(path):
                raise ServerError(f"{label} {path!r} does not exist or is not a file")
            if not os.access(path, os.R_OK):
                raise ServerError(f"{label} {path!r} is not readable")
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.config.cert_path), str(self.config.key_path))
        except (ssl.SSLError, OSError) as exc:
            raise ServerError(
                f"cannot load TLS certificate {self.config.cert_path!r} with key "
                f"{self.config.key_path!r}: {exc}") from exc

    def _bind(self) -> list[socket.socket]:
        config = self.config
        try:
            infos = socket.getaddrinfo(config.host or None, config.port,
                                       type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ServerError(f"cannot resolve host {config.host!r}: {exc}") from exc
        sockets: list[socket.socket] = []
        # A restarted server keeps the port it had, so clients reconnect to the same URL.
        port = self._port or config.port
        seen: set[tuple[int, str]] = set()
        try:
            for family, type_, proto, _, address in infos:
                key = (family, str(address[0]))
                if key in seen:
                    continue
                seen.add(key)
                sock = socket.socket(family, type_, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], port, *address[2:]))
                sock.listen(config.backlog)
                sock.setblocking(False)
                # port=0: the first socket picks it, the others (IPv6 localhost) follow.
                port = sock.getsockname()[1]
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise ServerError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
        self._port = port
        return sockets

    def _bind_internal(self) -> socket.socket:
        """Hypercorn's listener behind the front door: loopback, any free port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(self.config.backlog)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ServerError(f"cannot open the internal listener: {exc}") from exc
        return sock

    async def stop(self) -> None:
        """Send ``shutdown`` to every client, end their streams, stop within ~2 s."""
        task = self._serve_task
        if task is None:
            return
        self.stopping = True
        self._drain_pending()
        started = time.monotonic()
        # Hypercorn stops accepting and marks itself terminated first, so that each
        # connection closes itself (GOAWAY on HTTP/2) as soon as its stream ends.
        self._shutdown.set()
        front = self._front
        if front is not None:
            front.close_listeners()
        frame = control_frame("shutdown", {"reason": "server stopping",
                                           "timestamp": iso_ms_now()})
        for sub in list(self.fanout.subscribers.values()):
            self.fanout.send_direct(sub, frame)
            self.fanout.close(sub)
        # Readers that can still read get the shutdown event; stuck ones are cut.
        deadline = started + min(0.5, self.config.shutdown_timeout / 3)
        while self.fanout.subscribers and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for sub in list(self.fanout.subscribers.values()):
            self.fanout.kill(sub, "stopped")
        remaining = max(0.05, self.config.shutdown_timeout - (time.monotonic() - started))
        front_done = (asyncio.ensure_future(front.shutdown(remaining))
                      if front is not None else None)
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        elif not task.cancelled() and task.exception() is not None:
            logger.warning("hypercorn ended with an error: %r", task.exception())
        if front_done is not None:
            await front_done
        self._front = None
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        self._serve_task = None
        self._maintenance = None

    async def _maintain(self) -> None:
        interval = self.config.keep_alive_interval
        tick = min(0.25, interval)
        next_keep_alive = time.monotonic() + interval
        while True:
            await asyncio.sleep(tick)
            self.fanout.sweep()
            now = time.monotonic()
            if now >= next_keep_alive:
                next_keep_alive = now + interval
                frame = encode_comment(f"keep-alive {int(time.time() * 1000)}")
                for sub in list(self.fanout.subscribers.values()):
                    if now - sub.last_write >= interval * 0.5:
                        self.fanout.send_direct(sub, frame)

    # -- publishing ---------------------------------------------------------

    def broadcast(self, message: Mapping[str, Any]) -> int:
        """Publish ``{"event": type, "data": {...}}`` to every matching client.

        Returns how many connected clients it is queued for. Raises ValueError
        when the event name contains CR, LF or NUL.
        """
        event_type, data, retry = self._prepare(message)
        return self._submit(event_type, data, retry)

    def publish(self, event_type: str, data: Mapping[str, Any] | Any) -> int:
        """Same as ``broadcast({"event": event_type, "data": data})``."""
        if type(data) is dict and type(event_type) is str and event_type:
            # The telemetry path: what broadcast would do, without building a message.
            check_field("event name", event_type)
            return self._submit(event_type, _data_text(data), None)
        return self.broadcast({"event": event_type, "data": data})

    def send_to_client(self, client_id: str, message: Mapping[str, Any]) -> bool:
        """Send one event to one client. False when no such client is connected."""
        event_type, data, retry = self._prepare(message)
        if client_id not in self.fanout.subscribers:
            return False
        if self._on_loop():
            return self._direct_now(_Direct(client_id, event_type, data, retry))
        self._enqueue(_Direct(client_id, event_type, data, retry))
        return True

    def _prepare(self, message: Mapping[str, Any]) -> tuple[str, str, int | None]:
        event_type = message.get("event") or message.get("type") or "message"
        if not isinstance(event_type, str):
            raise ValueError(f"event name must be a string, got {event_type!r}")
        check_field("event name", event_type)
        if "id" in message and message["id"] is not None:
            # Ids are the server's (they drive resume); a given one is only checked.
            check_field("id", str(message["id"]))
        retry = message.get("retry")
        if retry is not None and (not isinstance(retry, int) or retry < 0):
            raise ValueError(f"retry must be a non-negative int of milliseconds, got {retry!r}")
        return event_type, _data_text(message.get("data", {})), retry

    def _on_loop(self) -> bool:
        return self._loop is not None and threading.get_ident() == self._loop_thread

    def _submit(self, event_type: str, data: str, retry: int | None) -> int:
        if self._on_loop():
            self.fanout.publish(event_type, data, retry)
            self.stats["published"] += 1
        else:
            self._enqueue((event_type, data, retry))
        return self.fanout.recipients(event_type)

    def _enqueue(self, item: _Pending) -> None:
        with self._pending_lock:
            self._pending.append(item)
            if self._drain_scheduled or self._loop is None:
                return
            self._drain_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain_pending)
        except RuntimeError:  # the loop is closed; keep the events for a restart
            with self._pending_lock:
                self._drain_scheduled = False

    def _drain_pending(self) -> None:
        with self._pending_lock:
            items = list(self._pending)
            self._pending.clear()
            self._drain_scheduled = False
        for item in items:
            if isinstance(item, _Direct):
                self._direct_now(item)
            else:
                self.fanout.publish(*item)
                self.stats["published"] += 1

    def _direct_now(self, item: _Direct) -> bool:
        sub = self.fanout.subscribers.get(item.client_id)
        if sub is None:
            return False
        frame = encode_event(item.data, item.event_type, self.fanout.next_direct_id(sub),
                             item.retry)
        self.fanout.send_direct(sub, frame)
        self.stats["direct"] += 1
        return True

    # -- introspection ------------------------------------------------------

    def get_clients(self) -> list[dict[str, object]]:
        return [sub.snapshot() for sub in list(self.fanout.subscribers.values())]

    def get_client(self, client_id: str) -> dict[str, object] | None:
        sub = self.fanout.subscribers.get(client_id)
        return sub.snapshot() if sub is not None else None

    def get_stats(self) -> dict[str, object]:
        history = self.log.history
        last = history.get(history.last_seq)
        return {
            "running": self.running,
            "clients": len(self.fanout.subscribers),
            "maxClients": self.config.max_clients,
            "eventsPublished": self.stats["published"],
            "directMessages": self.stats["direct"],
            "totalConnections": self.stats["connections"],
            "rejectedFull": self.stats["rejected_full"],
            "rejectedBadRequest": self.stats["rejected_bad_request"],
            "slowDisconnects": self.fanout.slow_disconnects,
            "gapsSent": self.fanout.gaps_sent,
            "historyEvents": len(history),
            "historyBytes": history.nbytes,
            "lastEventId": last.id if last is not None else None,
            "runId": self.log.run_id,
            "uptime": (time.time() - self._started_at) if self._started_at else 0.0,
            "startedAt": iso_ms_from_epoch(self._started_at) if self._started_at else None,
        }

    def health(self) -> dict[str, object]:
        stats = self.get_stats()
        return {"status": "ok" if self.running else "stopping", **stats}
