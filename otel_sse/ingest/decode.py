"""OTLP request bodies -> protobuf messages (binary protobuf, or OTLP/JSON).

OTLP/JSON is the protobuf JSON mapping with one difference: trace and span ids
are hex strings, not base64. They are turned into base64 before the standard
parser reads the message, so both encodings give the same message.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal, TypeAlias

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otel_sse.errors import OtelSSEError

Signal = Literal["traces", "logs", "metrics"]
Request: TypeAlias = ExportTraceServiceRequest | ExportLogsServiceRequest \
    | ExportMetricsServiceRequest
Response: TypeAlias = ExportTraceServiceResponse | ExportLogsServiceResponse \
    | ExportMetricsServiceResponse

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                      "parent_span_id"})
REQUESTS: dict[Signal, type[Request]] = {
    "traces": ExportTraceServiceRequest, "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
RESPONSES: dict[Signal, type[Response]] = {
    "traces": ExportTraceServiceResponse, "logs": ExportLogsServiceResponse,
    "metrics": ExportMetricsServiceResponse,
}


class MalformedRequest(OtelSSEError, ValueError):
    """An OTLP body that does not decode; the message says where."""


def _hex_ids_to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _ID_KEYS and isinstance(item, str) and item:
                try:
                    item = base64.b64encode(bytes.fromhex(item)).decode("ascii")
                except ValueError:
                    raise MalformedRequest(f"{key} {item[:40]!r} is not hex") from None
            out[key] = _hex_ids_to_base64(item)
        return out
    if isinstance(value, list):
        return [_hex_ids_to_base64(item) for item in value]
    return value


def parse(signal: Signal, body: bytes, media_type: str) -> Request:
    """The ``Export<Signal>ServiceRequest`` in ``body`` (``media_type``: protobuf or JSON)."""
    message = REQUESTS[signal]()
    if media_type == PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise MalformedRequest(f"not an OTLP {signal} protobuf message: {exc}") from None
        return message
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedRequest(f"an OTLP/JSON {signal} request is an object")
    try:
        json_format.ParseDict(_hex_ids_to_base64(document), message,
                              ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error) as exc:
        raise MalformedRequest(f"not an OTLP/JSON {signal} request: {exc}") from None
    return message


def encode_response(signal: Signal, media_type: str, rejected: int = 0,
                    error_message: str = "") -> bytes:
    """The ``Export<Signal>ServiceResponse``, with a partial success when items were
    rejected, in the request's encoding."""
    response = RESPONSES[signal]()
    if rejected or error_message:
        partial = response.partial_success
        field = {"traces": "rejected_spans", "logs": "rejected_log_records",
                 "metrics": "rejected_data_points"}[signal]
        setattr(partial, field, rejected)
        partial.error_message = error_message
    if media_type == PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()


def encode_status(code: int, message: str, media_type: str) -> bytes:
    """A ``google.rpc.Status`` (what OTLP/HTTP errors carry) in the request's encoding."""
    from google.rpc.status_pb2 import Status

    status = Status(code=code, message=message)
    if media_type == PROTOBUF:
        encoded: bytes = status.SerializeToString()
        return encoded
    return json_format.MessageToJson(status, indent=None).encode()
