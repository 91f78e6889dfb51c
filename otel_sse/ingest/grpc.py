"""OTLP/gRPC ingest: the Trace, Logs and Metrics services on a port of their own.

The gRPC server runs its handlers on a small thread pool; each request is
converted on the hub's loop (the same :class:`~otel_sse.ingest.core.Ingest` as
OTLP/HTTP) while the handler thread waits for the outcome. Producers need the
producer token in ``authorization: Bearer ...`` metadata when one is set; a
server shedding load answers UNAVAILABLE, which OTLP exporters retry.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otel_sse.errors import ServerError
from otel_sse.ingest.core import Ingest
from otel_sse.ingest.decode import RESPONSES, Signal

logger = logging.getLogger("otel_sse.ingest")

# A request converted on the loop must be done within this (else DEADLINE_EXCEEDED).
_CONVERT_TIMEOUT = 30.0


def server_credentials(cert_path: str, key_path: str) -> grpc.ServerCredentials:
    """TLS for the gRPC port, from the same files as the HTTP port's."""
    with open(key_path, "rb") as key, open(cert_path, "rb") as cert:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])


class _Service:
    def __init__(self, owner: GrpcIngest, signal: Signal) -> None:
        self.owner = owner
        self.signal = signal

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.owner.export(self.signal, request, context)


class GrpcIngest:
    """A gRPC server for OTLP, started and stopped with the HTTP server."""

    def __init__(self, ingest: Ingest, loop: asyncio.AbstractEventLoop, token: str | None,
                 max_message: int, credentials: grpc.ServerCredentials | None = None) -> None:
        self.ingest = ingest
        self.loop = loop
        self._token = token.encode() if token else None
        self.max_message = max_message
        self.credentials = credentials
        self.server: grpc.Server | None = None
        self.port: int | None = None

    def start(self, host: str, port: int, reuse_port: bool = False) -> int:
        """Listen on ``host:port`` (``reuse_port``: shared with other processes)."""
        server = grpc.server(
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="otel-sse-grpc"),
            maximum_concurrent_rpcs=64,
            options=[("grpc.max_receive_message_length", self.max_message),
                     ("grpc.so_reuseport", int(reuse_port))])
        adders: list[tuple[Callable[[Any, grpc.Server], None], Signal]] = [
            (trace_service_pb2_grpc.add_TraceServiceServicer_to_server, "traces"),
            (logs_service_pb2_grpc.add_LogsServiceServicer_to_server, "logs"),
            (metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server, "metrics"),
        ]
        for add, signal in adders:
            add(_Service(self, signal), server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = (server.add_secure_port(address, self.credentials) if self.credentials
                     else server.add_insecure_port(address))
        except RuntimeError as exc:
            raise ServerError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from exc
        if not bound:
            raise ServerError(f"cannot listen for OTLP/gRPC on {address}: address in use?")
        server.start()
        self.server = server
        self.port = int(bound)
        return self.port

    def stop(self, grace: float) -> None:
        server = self.server
        if server is not None:
            server.stop(grace).wait(grace + 1.0)
            self.server = None

    def export(self, signal: Signal, request: Any, context: grpc.ServicerContext) -> Any:
        if self._token is not None and not self._authorized(context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "this server needs authorization: Bearer <producer token>")
        size = request.ByteSize()
        if not self.ingest.admit(size):
            context.abort(grpc.StatusCode.UNAVAILABLE, "the server is busy; retry")
        try:
            future = asyncio.run_coroutine_threadsafe(self.ingest.export(signal, request),
                                                      self.loop)
            try:
                rejected, reason = future.result(_CONVERT_TIMEOUT)
            except TimeoutError:
                future.cancel()
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "conversion took too long")
        finally:
            self.loop.call_soon_threadsafe(self.ingest.release, size)
        response = RESPONSES[signal]()
        if rejected:
            field = {"traces": "rejected_spans", "logs": "rejected_log_records",
                     "metrics": "rejected_data_points"}[signal]
            setattr(response.partial_success, field, rejected)
            response.partial_success.error_message = reason
        return response

    def _authorized(self, context: grpc.ServicerContext) -> bool:
        assert self._token is not None
        for key, value in context.invocation_metadata():
            if key == "authorization":
                text = value.decode("latin-1") if isinstance(value, bytes) else value
                scheme, _, presented = text.strip().partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(
                    presented.strip().encode("latin-1"), self._token)
        return False
