"""SSEServer: a hub served over HTTP/1.1 and HTTP/2 in the caller's event loop.

The server owns the listener lifecycle (sockets, TLS, the connection layer and
its deadlines, keep-alives, stopping); what is published goes through its
:class:`~otel_sse.hub.EventHub`, which is also what emitters and processors see.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from otel_sse.bus.fanout import Fanout, control_frame
from otel_sse.bus.log import EventLog
from otel_sse.dashboard import DashboardRoute
from otel_sse.errors import ConfigError, ServerError
from otel_sse.hub import EventHub
from otel_sse.ingest.core import Ingest
from otel_sse.ingest.decode import Signal
from otel_sse.ingest.http import OtlpHttpRoute
from otel_sse.server.auth import Access
from otel_sse.server.config import ServerConfig
from otel_sse.server.connection import Connection
from otel_sse.server.layer import ConnectionLayer
from otel_sse.server.listener import Listener
from otel_sse.server.publish import PublishRoute
from otel_sse.server.routes import Router
from otel_sse.server.stream import StreamRoute
from otel_sse.wire.encoder import encode_comment, iso_ms_now

if TYPE_CHECKING:
    from otel_sse.ingest.grpc import GrpcIngest


class SSEServer:
    """Serves ``/events`` over HTTP/1.1 and HTTP/2 and fans published events out.

    ``broadcast``/``publish``/``send_to_client`` may be called from any thread
    and never block (see :class:`~otel_sse.hub.EventHub`). Options are those of
    :class:`~otel_sse.server.ServerConfig`, or pass a built ``config=``.
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
        config: ServerConfig | None = None,
        hub: EventHub | None = None,
        event_log: EventLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        given = {k: v for k, v in dict(
            port=port, host=host, http2=http2, cert_path=cert_path, key_path=key_path,
            keep_alive_interval=keep_alive_interval, compression=compression,
            compression_level=compression_level, max_clients=max_clients,
            cors_origins=cors_origins, headers=headers, **options).items() if v is not None}
        if config is None:
            config = ServerConfig.build(**given)
        elif given:
            raise ConfigError(f"pass either config= or options, not both: {', '.join(given)}")
        self.config = config
        if hub is not None and event_log is not None:
            raise ConfigError("pass either hub= or event_log=, not both")
        if hub is None and event_log is None:
            event_log = config.event_log()
        self.hub = hub or EventHub(config.hub_limits(), event_log=event_log)
        self.clock = clock
        self.stream_route = StreamRoute(self.hub, config, accepting=lambda: not self.stopping)
        self.router = Router(config, self.stream_route, self.health)
        self.ingest = Ingest(self.hub, config.ingest_inflight_bytes)
        self._routes(config)
        self.layer = ConnectionLayer(config, self.router, clock)
        self._listeners: list[Listener] = []
        self._grpc: GrpcIngest | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._port: int | None = None
        self.stopping = False

    def _routes(self, config: ServerConfig) -> None:
        router = self.router
        signals: tuple[Signal, ...] = ("traces", "logs", "metrics")
        for signal in signals:
            router.add(f"/v1/{signal}", ("POST",), Access.PRODUCE, OtlpHttpRoute(
                self.ingest, signal, config.max_body_bytes, config.max_decompressed_bytes))
        router.add("/v1/events", ("POST",), Access.PRODUCE, PublishRoute(
            self.hub, config.max_body_bytes, config.max_decompressed_bytes,
            config.request_timeout))
        if config.dashboard:
            page = DashboardRoute(config.jaeger_url)
            router.add("/dashboard", ("GET", "HEAD"), Access.PUBLIC, page)
            router.add("/dashboard/", ("GET", "HEAD"), Access.PUBLIC, page, prefix=True)
            router.set_page(("GET", "HEAD"), Access.PUBLIC, page)

    # -- what the hub does (the contract's API) ---------------------------------

    def broadcast(self, message: Mapping[str, Any]) -> int:
        """Publish ``{"event": type, "data": {...}}``; see :meth:`EventHub.broadcast`."""
        return self.hub.broadcast(message)

    def publish(self, event_type: str, data: Mapping[str, Any] | Any) -> int:
        """Same as ``broadcast({"event": event_type, "data": data})``."""
        return self.hub.publish(event_type, data)

    def send_to_client(self, client_id: str, message: Mapping[str, Any]) -> bool:
        """One event to one client (if its filters take it); see :meth:`EventHub.send_to_client`."""
        return self.hub.send_to_client(client_id, message)

    def get_clients(self) -> list[dict[str, object]]:
        """Every connected subscriber: ``clientId``, ``connectedAt``, ``filters``,
        ``eventsSent``, ``bytesSent``, ``missed``, ``remote``, ``protocol``, ``userAgent``."""
        return self.hub.get_clients()

    def get_client(self, client_id: str) -> dict[str, object] | None:
        """One subscriber as :meth:`get_clients` shows it (None when not connected)."""
        return self.hub.get_client(client_id)

    @property
    def log(self) -> EventLog:
        """The hub's event log (ids, history)."""
        return self.hub.log

    @property
    def fanout(self) -> Fanout:
        """The hub's fan-out (subscribers and their write rounds)."""
        return self.hub.fanout

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the server runs on (None until started)."""
        return self.hub.loop

    def on_bind(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop each time the server starts (see
        :meth:`EventHub.on_bind`): telemetry queued while it was stopped is due."""
        self.hub.on_bind(callback)

    # -- lifecycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Started and not stopping."""
        return bool(self._listeners) and not self.stopping

    @property
    def port(self) -> int:
        """The bound HTTP port (``port=0`` picks one); ServerError before :meth:`start`."""
        if self._port is None:
            raise ServerError("the server has not been started; call `await server.start()`")
        return self._port

    @property
    def tls(self) -> bool:
        """Whether the port speaks TLS (``cert_path`` and ``key_path`` are set)."""
        return self.config.tls

    @property
    def url(self) -> str:
        """``http(s)://host:port`` of the running server (a wildcard bind shows 127.0.0.1)."""
        scheme = "https" if self.tls else "http"
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        """Listen and serve; ``port=0`` picks a free port (see :attr:`port`)."""
        if self._listeners:
            raise ServerError("the server is already started")
        context = self._tls_context() if self.tls else None
        # A shared log connects first: a bus that does not answer is an error now.
        await self.hub.open()
        try:
            sockets = self._bind()
        except ServerError:
            await self.hub.close(0)
            raise
        loop = asyncio.get_running_loop()
        self.stopping = False
        self.layer.accepting = True
        self.hub.bind(loop)
        layer = self.layer
        self._listeners = [
            Listener(sock, lambda: Connection(layer), context, self.config.request_timeout,
                     send_buffer=self.config.client_buffer_bytes)
            for sock in sockets
        ]
        for listener in self._listeners:
            listener.start()
        if self.config.grpc_port is not None:
            await self._start_grpc(loop)
        self._maintenance = asyncio.create_task(self._maintain(), name="otel-sse-maintenance")

    @property
    def grpc_port(self) -> int | None:
        """The OTLP/gRPC port (None when off or not started)."""
        return self._grpc.port if self._grpc is not None else None

    async def _start_grpc(self, loop: asyncio.AbstractEventLoop) -> None:
        from otel_sse.ingest.grpc import GrpcIngest, server_credentials

        config = self.config
        credentials = (server_credentials(str(config.cert_path), str(config.key_path))
                       if config.tls else None)
        grpc = GrpcIngest(self.ingest, loop, config.ingest_token, config.max_body_bytes,
                          credentials)
        host = config.host or "0.0.0.0"
        try:
            grpc.start(host, config.grpc_port or 0, config.reuse_port)
        except ServerError:
            for listener in self._listeners:
                listener.close()
            self._listeners = []
            self.hub.unbind()
            await self.hub.close(0)
            raise
        self._grpc = grpc

    def _tls_context(self) -> ssl.SSLContext:
        for label, path in (("cert_path", self.config.cert_path),
                            ("key_path", self.config.key_path)):
            if not path or not os.path.isfile(path):
                raise ServerError(f"{label} {path!r} does not exist or is not a file")
            if not os.access(path, os.R_OK):
                raise ServerError(f"{label} {path!r} is not readable")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.config.cert_path), str(self.config.key_path))
        except (ssl.SSLError, OSError) as exc:
            raise ServerError(
                f"cannot load TLS certificate {self.config.cert_path!r} with key "
                f"{self.config.key_path!r}: {exc}") from exc
        context.set_alpn_protocols(["h2", "http/1.1"] if self.config.http2 else ["http/1.1"])
        return context

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
                if config.reuse_port:
                    # Worker processes share the port; the kernel spreads connections.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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

    async def stop(self) -> None:
        """Send ``shutdown`` to every client, end their streams, and return within
        ``shutdown_timeout`` even when clients do not read."""
        if not self._listeners:
            return
        started = time.monotonic()
        timeout = self.config.shutdown_timeout
        self.stopping = True
        self.hub.drain_pending(everything=True)
        for listener in self._listeners:
            listener.close()
        self.layer.stop_accepting()
        fanout = self.hub.fanout
        frame = control_frame("shutdown", {"reason": "server stopping",
                                           "timestamp": iso_ms_now()})
        for sub in list(fanout.subscribers.values()):
            fanout.send_direct(sub, frame)
            fanout.close(sub)
        # Clients that read get the shutdown event and a clean end; stuck ones are cut.
        deadline = started + min(0.5, timeout / 3)
        while fanout.subscribers and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for sub in list(fanout.subscribers.values()):
            fanout.kill(sub, "stopped")
        deadline = started + timeout * 0.9
        while self.layer.live and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.layer.abort_all()
        if self._grpc is not None:
            grpc, self._grpc = self._grpc, None
            await asyncio.to_thread(grpc.stop, min(0.5, timeout / 3))
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        self._listeners = []
        self.hub.unbind()
        await self.hub.close(max(0.0, started + timeout - time.monotonic()))

    async def _maintain(self) -> None:
        interval = self.config.keep_alive_interval
        tick = min(0.25, interval)
        next_keep_alive = time.monotonic() + interval
        fanout, layer, hub, config = self.hub.fanout, self.layer, self.hub, self.config
        next_beat = time.monotonic() + config.heartbeat_interval
        while True:
            await asyncio.sleep(tick)
            fanout.sweep()
            layer.sweep()
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + config.heartbeat_interval
                hub.tick(config.heartbeat_interval, config.stale_after)
            if now >= next_keep_alive:
                next_keep_alive = now + interval
                fanout.keep_alive(encode_comment(f"keep-alive {int(time.time() * 1000)}"),
                                  interval * 0.5)

    # -- introspection ----------------------------------------------------------------

    def get_stats(self) -> dict[str, object]:
        """Counters of the hub, the connection layer and the stream route."""
        route = self.stream_route
        return {
            "running": self.running,
            "pid": os.getpid(),
            **self.hub.stats(),
            "maxClients": self.config.max_clients,
            "totalConnections": route.opened,
            "rejectedFull": route.rejected_full,
            "rejectedBadRequest": route.rejected_bad_request + self.layer.stats.bad_requests,
            "connections": len(self.layer.live),
            **self.layer.stats.as_dict(),
            "outOfDescriptors": sum(listener.episodes for listener in self._listeners),
            **self.ingest.stats.as_dict("ingest"),
            "openSpans": len(self.hub.spans.spans),
            "tracesCompleted": self.hub.spans.completed,
        }

    def health(self) -> dict[str, object]:
        """What ``GET /healthz`` answers with credentials: ``status`` and :meth:`get_stats`."""
        status = "stopping" if not self.running else self.hub.log.status()
        return {"status": status, **self.get_stats()}
