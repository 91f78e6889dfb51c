"""The SSE wire format as pure functions and state machines (no sockets)."""

from otel_sse.wire.decoder import RawEvent, SSEDecoder
from otel_sse.wire.encoder import check_field, dumps, encode_comment, encode_event, iso_ms
from otel_sse.wire.filters import EventFilter, FilterError, matches, parse_filters

__all__ = [
    "EventFilter",
    "FilterError",
    "RawEvent",
    "SSEDecoder",
    "check_field",
    "dumps",
    "encode_comment",
    "encode_event",
    "iso_ms",
    "matches",
    "parse_filters",
]
