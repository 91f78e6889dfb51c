"""Events as Redis stream entries, and stream entry ids as event ids (no I/O).

An event is one entry with the fields ``t`` (its type), ``d`` (its data as
sent), and when set ``r`` (retry, ms) and ``s`` (the process the telemetry
came from, for the open-work state). A producer's keepalive is an entry with
the one field ``k`` (its source): every replica learns that the source is alive,
and no subscriber sees it.

The entry id (``<ms>-<n>``) is the event id on the wire, the same on every
replica. A direct message sent to one subscriber after event ``<ms>-<n>`` is
``<ms>-<n>.<k>``: it sorts after that event and before the next.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from otel_sse.bus.ids import EventId
from otel_sse.wire.encoder import encode_event

StreamId = tuple[int, int]
ZERO: StreamId = (0, 0)
_STREAM_ID = re.compile(rb"^([0-9]{1,20})-([0-9]{1,20})$")
_UNSAFE = (b"\n", b"\r", b"\0")

TYPE, DATA, RETRY, SOURCE, KEEPALIVE = b"t", b"d", b"r", b"s", b"k"


class Entry(NamedTuple):
    """An event read from the stream."""

    type: str
    raw_type: bytes
    data: bytes
    retry: int | None
    source: str


def parse_stream_id(raw: bytes | str) -> StreamId | None:
    """``(ms, n)`` of a stream entry id, or None when it is not one."""
    match = _STREAM_ID.match(raw.encode("ascii", "replace") if isinstance(raw, str) else raw)
    return (int(match.group(1)), int(match.group(2))) if match else None


def format_stream_id(key: StreamId) -> str:
    return f"{key[0]}-{key[1]}"


def stream_id_of(event_id: EventId) -> StreamId | None:
    """The stream position a client's ``Last-Event-ID`` names (a direct message's id
    names the event it followed), or None for an id of another scheme."""
    if not event_id.run.isdigit():
        return None
    return int(event_id.run), event_id.seq


def fields_of(event_type: str, data: str, retry: int | None,
              source: str) -> dict[bytes, bytes | str | int]:
    """The fields ``XADD`` writes for one event."""
    fields: dict[bytes, bytes | str | int] = {TYPE: event_type, DATA: data}
    if retry is not None:
        fields[RETRY] = retry
    if source:
        fields[SOURCE] = source
    return fields


class Decoder:
    """Entries to events, with the type strings decoded and checked once each."""

    def __init__(self, max_types: int = 4096) -> None:
        self._types: dict[bytes, str | None] = {}
        self._max_types = max_types
        self.invalid = 0

    def event_type(self, raw: bytes) -> str | None:
        """The type as a string, or None when it cannot stand on an SSE line."""
        known = self._types.get(raw, False)
        if known is not False:
            return known  # type: ignore[return-value]
        value: str | None
        try:
            value = raw.decode("utf-8") if raw and not any(c in raw for c in _UNSAFE) else None
        except UnicodeDecodeError:
            value = None
        if len(self._types) < self._max_types:
            self._types[raw] = value
        return value

    def decode(self, fields: dict[bytes, bytes]) -> Entry | str | None:
        """An :class:`Entry`; a keepalive's source (a str); None for an entry that is
        not an event of ours (counted in ``invalid``)."""
        raw_type = fields.get(TYPE)
        data = fields.get(DATA)
        if raw_type is None or data is None:
            keepalive = fields.get(KEEPALIVE)
            if keepalive is not None:
                return keepalive.decode("utf-8", "replace")
            self.invalid += 1
            return None
        event_type = self.event_type(raw_type)
        if event_type is None:
            self.invalid += 1
            return None
        raw_retry = fields.get(RETRY)
        retry = int(raw_retry) if raw_retry is not None and raw_retry.isdigit() else None
        raw_source = fields.get(SOURCE)
        source = raw_source.decode("utf-8", "replace") if raw_source else ""
        return Entry(event_type, raw_type, data, retry, source)


def frame_of(entry_id: str, entry: Entry) -> bytes:
    """The event as sent: ``id`` (the entry id), ``event``, ``data`` lines."""
    data = entry.data
    if entry.retry is None and b"\n" not in data and b"\r" not in data:
        return b"".join((b"id: ", entry_id.encode(), b"\nevent: ", entry.raw_type,
                         b"\ndata: ", data, b"\n\n"))
    return encode_event(data.decode("utf-8", "replace"), entry.type, entry_id, entry.retry)
