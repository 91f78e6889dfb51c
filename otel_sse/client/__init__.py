"""Subscribe to an event stream: ``SSEClient``, its events and states."""

from otel_sse.client.backoff import compute_reconnect_delay, parse_retry_after
from otel_sse.client.client import SSEClient
from otel_sse.client.events import ConnectionState, SSEEvent

__all__ = [
    "ConnectionState",
    "SSEClient",
    "SSEEvent",
    "compute_reconnect_delay",
    "parse_retry_after",
]
