"""Collectors that are down, for shutdown tests: all real sockets on 127.0.0.1.

- :func:`refused_endpoint`: nothing listens (connections are refused).
- :class:`SilentListener`: accepts connections and reads, never writes a byte. For
  OTLP/HTTP it is a collector that never answers; for gRPC one that never
  completes the HTTP/2 handshake.
- :class:`HangingGrpcCollector`: a real gRPC server that completes the handshake
  and takes every OTLP export call, then never answers it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from concurrent import futures
from types import TracebackType
from typing import Any, Self

import grpc


def refused_endpoint() -> str:
    """An http:// endpoint on a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class _Collector:
    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class SilentListener(_Collector):
    """Accepts, reads and discards; never answers."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.received = 0  # bytes read, to show the exporter really reached us

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._conns)

    def start(self) -> Self:
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(65536):
                with self._lock:
                    self.received += len(data)

    def stop(self) -> None:
        self._stopped.set()
        self._server.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


_SERVICES = ("opentelemetry.proto.collector.trace.v1.TraceService",
             "opentelemetry.proto.collector.logs.v1.LogsService",
             "opentelemetry.proto.collector.metrics.v1.MetricsService")


class HangingGrpcCollector(_Collector):
    """An OTLP/gRPC server whose Export calls never return (until it stops)."""

    def __init__(self) -> None:
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.calls = 0
        self.port = 0
        self._server: grpc.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _hang(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            self.calls += 1
        self._release.wait()
        context.abort(grpc.StatusCode.UNAVAILABLE, "collector stopped")
        return b""

    def start(self) -> Self:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                             options=[("grpc.so_reuseport", 0)])
        handler = grpc.unary_unary_rpc_method_handler(self._hang)
        server.add_generic_rpc_handlers(tuple(
            grpc.method_handlers_generic_handler(service, {"Export": handler})
            for service in _SERVICES))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        self._release.set()
        server, self._server = self._server, None
        if server is not None:
            server.stop(0).wait()
