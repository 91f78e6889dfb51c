"""Real OTLP receivers for tests: gRPC (grpcio) and HTTP/protobuf (stdlib), both on 127.0.0.1.

Both run in background threads, so they serve sync tests and async tests alike
(an ``async`` test can await :meth:`OtlpReceiverBase.async_wait_for`).

    with OtlpGrpcReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=2)
        ...
        spans = receiver.wait_for(lambda r: r.spans(name="work"))

    with OtlpHttpReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.traces_url)   # .../v1/traces
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "OtlpGrpcReceiver",
    "OtlpHttpReceiver",
    "OtlpReceiverBase",
    "Signal",
    "decode_any_value",
    "decode_attributes",
]

Signal = Literal["traces", "logs", "metrics"]
T = TypeVar("T")

_SPAN_KINDS: dict[int, str] = {
    trace_pb2.Span.SPAN_KIND_UNSPECIFIED: "unspecified",
    trace_pb2.Span.SPAN_KIND_INTERNAL: "internal",
    trace_pb2.Span.SPAN_KIND_SERVER: "server",
    trace_pb2.Span.SPAN_KIND_CLIENT: "client",
    trace_pb2.Span.SPAN_KIND_PRODUCER: "producer",
    trace_pb2.Span.SPAN_KIND_CONSUMER: "consumer",
}
_STATUS_CODES: dict[int, str] = {
    trace_pb2.Status.STATUS_CODE_UNSET: "unset",
    trace_pb2.Status.STATUS_CODE_OK: "ok",
    trace_pb2.Status.STATUS_CODE_ERROR: "error",
}
_TEMPORALITY: dict[int, str] = {0: "unspecified", 1: "delta", 2: "cumulative"}


# --------------------------------------------------------------------------- decoding


def decode_any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (``None`` when empty)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [decode_any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, which)  # string/bool/int/double/bytes


def decode_attributes(attributes: Any) -> dict[str, Any]:
    """A repeated ``KeyValue`` field as a dict."""
    result: dict[str, Any] = {}
    item: KeyValue
    for item in attributes:
        result[item.key] = decode_any_value(item.value)
    return result


def _hex_or_none(raw: bytes) -> str | None:
    if not raw or not any(raw):
        return None
    return raw.hex()


def _number_value(point: Any) -> int | float | None:
    which = point.WhichOneof("value")
    if which is None:
        return None
    return getattr(point, which)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- base


class OtlpReceiverBase:
    """Thread-safe storage of received export requests and flattened accessors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._log_requests: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self._metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._paused = False
        self._retry_after: float | None = None
        self._rejected = 0
        self._port: int | None = None

    # --- lifecycle (subclasses implement start/stop) ---------------------------------

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, grace: float = 0) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("receiver was never started")
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- outage simulation -----------------------------------------------------------

    def pause(self, retry_after: float | None = None) -> None:
        """Answer every export with UNAVAILABLE (gRPC) / 503 (HTTP) until :meth:`resume`.

        ``retry_after`` (seconds) is sent as a ``google.rpc.RetryInfo`` trailer (gRPC)
        or a ``Retry-After`` header (HTTP, rounded up to whole seconds), which the SDK
        exporters use instead of their own exponential backoff.
        """
        with self._lock:
            self._paused = True
            self._retry_after = retry_after

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._retry_after = None

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused

    @property
    def rejected_count(self) -> int:
        """How many export requests were refused while paused."""
        with self._lock:
            return self._rejected

    def _check_paused(self) -> tuple[bool, float | None]:
        with self._lock:
            if self._paused:
                self._rejected += 1
                return True, self._retry_after
            return False, None

    # --- storage ---------------------------------------------------------------------

    def _store(self, signal: Signal, request: Message) -> None:
        with self._lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self._trace_requests.append(request)
            elif isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
                self._log_requests.append(request)
            elif isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
                self._metric_requests.append(request)
            else:
                raise TypeError(f"not an OTLP {signal} request: {type(request).__name__}")

    def clear(self) -> None:
        with self._lock:
            self._trace_requests.clear()
            self._log_requests.clear()
            self._metric_requests.clear()
            self._rejected = 0

    @property
    def trace_requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        with self._lock:
            return list(self._trace_requests)

    @property
    def log_requests(self) -> list[logs_service_pb2.ExportLogsServiceRequest]:
        with self._lock:
            return list(self._log_requests)

    @property
    def metric_requests(self) -> list[metrics_service_pb2.ExportMetricsServiceRequest]:
        with self._lock:
            return list(self._metric_requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._trace_requests) + len(self._log_requests) + len(self._metric_requests)

    # --- flattened accessors ---------------------------------------------------------

    def spans(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every received span, in arrival order (optionally only those called ``name``).

        Keys: trace_id, span_id, parent_span_id, name, kind ("internal", "server", ...),
        kind_value (int), start_ns, end_ns, attributes, status_code ("unset"/"ok"/"error"),
        status_message, events [{name, time_ns, attributes}], links [{trace_id, span_id,
        attributes}], trace_state, resource, scope, scope_version.
        """
        result: list[dict[str, Any]] = []
        for request in self.trace_requests:
            for resource_spans in request.resource_spans:
                resource = decode_attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        if name is not None and span.name != name:
                            continue
                        result.append(
                            {
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": _hex_or_none(span.parent_span_id),
                                "name": span.name,
                                "kind": _SPAN_KINDS.get(span.kind, str(span.kind)),
                                "kind_value": int(span.kind),
                                "start_ns": span.start_time_unix_nano,
                                "end_ns": span.end_time_unix_nano,
                                "attributes": decode_attributes(span.attributes),
                                "status_code": _STATUS_CODES.get(span.status.code, "unset"),
                                "status_message": span.status.message,
                                "events": [
                                    {
                                        "name": event.name,
                                        "time_ns": event.time_unix_nano,
                                        "attributes": decode_attributes(event.attributes),
                                    }
                                    for event in span.events
                                ],
                                "links": [
                                    {
                                        "trace_id": link.trace_id.hex(),
                                        "span_id": link.span_id.hex(),
                                        "attributes": decode_attributes(link.attributes),
                                    }
                                    for link in span.links
                                ],
                                "trace_state": span.trace_state,
                                "resource": dict(resource),
                                "scope": scope_spans.scope.name,
                                "scope_version": scope_spans.scope.version,
                            }
                        )
        return result

    def logs(self, event_name: str | None = None) -> list[dict[str, Any]]:
        """Every received log record (optionally only those with ``event_name``).

        Keys: trace_id / span_id (hex, None when empty), event_name, severity_number
        (int), severity_text, body (decoded AnyValue), attributes, time_ns,
        observed_time_ns, flags, resource, scope.
        """
        result: list[dict[str, Any]] = []
        for request in self.log_requests:
            for resource_logs in request.resource_logs:
                resource = decode_attributes(resource_logs.resource.attributes)
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        if event_name is not None and record.event_name != event_name:
                            continue
                        result.append(
                            {
                                "trace_id": _hex_or_none(record.trace_id),
                                "span_id": _hex_or_none(record.span_id),
                                "event_name": record.event_name,
                                "severity_number": int(record.severity_number),
                                "severity_text": record.severity_text,
                                "body": decode_any_value(record.body),
                                "attributes": decode_attributes(record.attributes),
                                "time_ns": record.time_unix_nano,
                                "observed_time_ns": record.observed_time_unix_nano,
                                "flags": record.flags,
                                "resource": dict(resource),
                                "scope": scope_logs.scope.name,
                            }
                        )
        return result

    def metrics(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every received metric, one dict per metric per export (optionally by ``name``).

        Keys: name, unit, description, kind ("histogram", "sum", "gauge",
        "exponential_histogram", "summary"), resource, scope, data_points. Sums also
        carry is_monotonic and temporality; histograms temporality.
        Data point keys: attributes, start_ns, time_ns, and
        - sum/gauge: value;
        - histogram: count, sum, min, max, explicit_bounds, bucket_counts;
        - exponential_histogram: count, sum, min, max, scale, zero_count;
        - summary: count, sum.
        """
        result: list[dict[str, Any]] = []
        for request in self.metric_requests:
            for resource_metrics in request.resource_metrics:
                resource = decode_attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if name is not None and metric.name != name:
                            continue
                        result.append(
                            _flatten_metric(metric, dict(resource), scope_metrics.scope.name)
                        )
        return result

    # --- waiting ---------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[Self], T],
        timeout: float = 5.0,
        interval: float = 0.02,
    ) -> T:
        """Poll ``predicate(self)`` until it returns something truthy, and return that.

        Raises AssertionError (with a summary of what was received) after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s; {self._summary()}")
            time.sleep(interval)

    async def async_wait_for(
        self,
        predicate: Callable[[Self], T],
        timeout: float = 5.0,
        interval: float = 0.02,
    ) -> T:
        """:meth:`wait_for` for async tests (does not block the event loop)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s; {self._summary()}")
            await asyncio.sleep(interval)

    def _summary(self) -> str:
        spans = [span["name"] for span in self.spans()]
        logs = [record["event_name"] or record["body"] for record in self.logs()]
        metrics = sorted({metric["name"] for metric in self.metrics()})
        return (
            f"received spans={spans!r} logs={logs!r} metrics={metrics!r} "
            f"rejected={self.rejected_count}"
        )


def _flatten_metric(metric: Any, resource: dict[str, Any], scope: str) -> dict[str, Any]:
    kind = metric.WhichOneof("data") or "unknown"
    entry: dict[str, Any] = {
        "name": metric.name,
        "unit": metric.unit,
        "description": metric.description,
        "kind": kind,
        "resource": resource,
        "scope": scope,
        "data_points": [],
    }
    data = getattr(metric, kind, None)
    if data is None:
        return entry
    points: list[dict[str, Any]] = []
    for point in data.data_points:
        item: dict[str, Any] = {
            "attributes": decode_attributes(point.attributes),
            "start_ns": point.start_time_unix_nano,
            "time_ns": point.time_unix_nano,
        }
        if kind in ("sum", "gauge"):
            item["value"] = _number_value(point)
        elif kind == "histogram":
            item.update(
                count=point.count,
                sum=point.sum if point.HasField("sum") else None,
                min=point.min if point.HasField("min") else None,
                max=point.max if point.HasField("max") else None,
                explicit_bounds=list(point.explicit_bounds),
                bucket_counts=list(point.bucket_counts),
            )
        elif kind == "exponential_histogram":
            item.update(
                count=point.count,
                sum=point.sum if point.HasField("sum") else None,
                min=point.min if point.HasField("min") else None,
                max=point.max if point.HasField("max") else None,
                scale=point.scale,
                zero_count=point.zero_count,
            )
        elif kind == "summary":
            item.update(count=point.count, sum=point.sum)
        points.append(item)
    entry["data_points"] = points
    if kind == "sum":
        entry["is_monotonic"] = data.is_monotonic
    if kind in ("sum", "histogram", "exponential_histogram"):
        entry["temporality"] = _TEMPORALITY.get(data.aggregation_temporality, "unspecified")
    return entry


# --------------------------------------------------------------------------- gRPC


def _abort_unavailable(context: grpc.ServicerContext, retry_after: float | None) -> None:
    if retry_after is not None:
        info = RetryInfo()
        info.retry_delay.seconds = int(retry_after)
        info.retry_delay.nanos = round((retry_after - int(retry_after)) * 1e9)
        context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
    context.abort(grpc.StatusCode.UNAVAILABLE, "receiver paused")


class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiverBase) -> None:
        self._receiver = receiver

    def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        paused, retry_after = self._receiver._check_paused()
        if paused:
            _abort_unavailable(context, retry_after)
        self._receiver._store("traces", request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OtlpReceiverBase) -> None:
        self._receiver = receiver

    def Export(
        self,
        request: logs_service_pb2.ExportLogsServiceRequest,
        context: grpc.ServicerContext,
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        paused, retry_after = self._receiver._check_paused()
        if paused:
            _abort_unavailable(context, retry_after)
        self._receiver._store("logs", request)
        return logs_service_pb2.ExportLogsServiceResponse()


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiverBase) -> None:
        self._receiver = receiver

    def Export(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        paused, retry_after = self._receiver._check_paused()
        if paused:
            _abort_unavailable(context, retry_after)
        self._receiver._store("metrics", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpGrpcReceiver(OtlpReceiverBase):
    """OTLP/gRPC collector stand-in on 127.0.0.1.

    ``port=0`` picks a free port on first start; the port is kept, so
    ``stop()`` then ``start()`` listens on the same one again (an outage).
    """

    def __init__(self, port: int = 0, max_workers: int = 4) -> None:
        super().__init__()
        self._requested_port = port
        self._port = port or None
        self._max_workers = max_workers
        self._server: grpc.Server | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers),
            # exclusive bind: another receiver must not share (and steal from) our port
            options=[("grpc.so_reuseport", 0)],
        )
        add_trace: Any = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
        add_logs: Any = logs_service_pb2_grpc.add_LogsServiceServicer_to_server
        add_metrics: Any = metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server
        add_trace(_TraceServicer(self), server)
        add_logs(_LogsServicer(self), server)
        add_metrics(_MetricsServicer(self), server)
        wanted = self._port or 0
        port = server.add_insecure_port(f"127.0.0.1:{wanted}")
        if port == 0 or (wanted and port != wanted):
            server.stop(0)
            raise RuntimeError(f"could not bind 127.0.0.1:{wanted}")
        server.start()
        self._port = port
        self._server = server
        return self

    def stop(self, grace: float = 0) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait()


# --------------------------------------------------------------------------- HTTP

_HTTP_PATHS: dict[str, tuple[Signal, type[Message], type[Message]]] = {
    "/v1/traces": (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/logs": (
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
    "/v1/metrics": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    receiver: OtlpHttpReceiver

    def __init__(self, address: tuple[str, int], receiver: OtlpHttpReceiver) -> None:
        self.receiver = receiver
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _OtlpHttpHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut kept-alive client connections, so a stopped receiver really is gone."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _OtlpHttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = _HTTP_PATHS.get(self.path.split("?", 1)[0])
        if route is None:
            self._reply(404, b"unknown path")
            return
        signal, request_type, response_type = route
        receiver = self.server.receiver
        paused, retry_after = receiver._check_paused()
        if paused:
            headers = {}
            if retry_after is not None:
                headers["Retry-After"] = str(max(0, int(-(-retry_after // 1))))
            self._reply(503, b"receiver paused", headers=headers)
            return
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip()
        if content_type != "application/x-protobuf":
            self._reply(415, b"only application/x-protobuf is supported")
            return
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            elif encoding not in ("", "identity"):
                self._reply(415, f"unsupported Content-Encoding {encoding}".encode())
                return
            request = request_type()
            request.ParseFromString(raw)
        except (OSError, zlib.error, EOFError, DecodeError) as error:
            self._reply(400, f"bad body: {error}".encode())
            return
        receiver._store(signal, request)
        self._reply(200, response_type().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        self._reply(405, b"POST only", headers={"Allow": "POST"})


class OtlpHttpReceiver(OtlpReceiverBase):
    """OTLP/HTTP (protobuf, optionally gzip/deflate) collector stand-in on 127.0.0.1.

    Runs a threaded stdlib HTTP server. Point the SDK's HTTP exporters at
    ``traces_url`` / ``logs_url`` / ``metrics_url`` (they want the full path when
    the endpoint is passed as an argument). Same port across stop/start.
    """

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self._port = port or None
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    @property
    def logs_url(self) -> str:
        return f"{self.endpoint}/v1/logs"

    @property
    def metrics_url(self) -> str:
        return f"{self.endpoint}/v1/metrics"

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _HttpServer(("127.0.0.1", self._port or 0), self)
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otlp-http-receiver-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, grace: float = 0) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        if grace > 0:
            time.sleep(grace)
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
