"""What a client hands to its users: events and connection states."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from otel_sse.wire.encoder import dumps

__all__ = ["ConnectionState", "SSEEvent"]


class ConnectionState(StrEnum):
    """Where a client is in its life.

    ``DISCONNECTED``: not started, or the stream ended and ``auto_reconnect``
    is off. ``CONNECTING``: first connection attempt. ``CONNECTED``: the stream
    is open. ``RECONNECTING``: waiting for or making another attempt after a
    failure. ``FAILED``: gave up (permanent error, or
    ``max_reconnect_attempts`` used up). ``CLOSED``: stopped on purpose, by
    ``disconnect()`` or because the server answered 204 No Content.
    """

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    CLOSED = "closed"


_UNPARSED: Any = object()
_loads = json.loads


def parse_data(raw: str) -> Any:
    """The data as JSON when it is JSON, else the string itself."""
    try:
        return _loads(raw)
    except ValueError:
        return raw


class SSEEvent:
    """One event, immutable.

    ``type`` is the event name (``"message"`` when the server gave none);
    ``raw`` the data string exactly as received; ``data`` that string parsed
    as JSON when it is JSON, else the string itself; ``id`` the stream's last
    event id when the event was dispatched (it carries over from earlier
    events, as in the WHATWG standard); ``retry`` the reconnection time in
    milliseconds if the event's block set one.

    ``data`` is parsed on first access and kept, so an application that
    routes on ``type`` does not pay for JSON it never reads.
    """

    # Read-only properties over private slots rather than a frozen
    # ``__setattr__``: construction is then plain slot stores, three times
    # cheaper, and a client may build hundreds of thousands per second.
    __slots__ = ("_data", "_id", "_raw", "_retry", "_type")

    def __init__(
        self,
        type: str,
        data: Any = _UNPARSED,
        *,
        raw: str | None = None,
        id: str = "",
        retry: int | None = None,
    ) -> None:
        if raw is None:
            if data is _UNPARSED:
                raw = ""
            elif isinstance(data, str):
                raw = data
            else:
                raw = dumps(data)
        self._type = type
        self._raw = raw
        self._id = id
        self._retry = retry
        self._data = data

    @property
    def type(self) -> str:
        return self._type

    @property
    def raw(self) -> str:
        return self._raw

    @property
    def id(self) -> str:
        return self._id

    @property
    def retry(self) -> int | None:
        return self._retry

    @property
    def data(self) -> Any:
        value = self._data
        if value is _UNPARSED:
            value = self._data = parse_data(self._raw)
        return value

    def json(self) -> Any:
        """The data parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return _loads(self._raw)

    def _key(self) -> tuple[str, str, str, int | None]:
        return (self._type, self._raw, self._id, self._retry)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"SSEEvent(type={self._type!r}, data={self.data!r}, id={self._id!r}, "
            f"retry={self._retry!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (make_event, self._key())


_new = object.__new__


def make_event(type_: str, raw: str, id_: str, retry: int | None) -> SSEEvent:
    """Build an event from the wire without ``__init__``'s checks (hot path)."""
    event: SSEEvent = _new(SSEEvent)
    event._type = type_
    event._raw = raw
    event._id = id_
    event._retry = retry
    event._data = _UNPARSED
    return event
