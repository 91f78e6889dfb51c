"""Server-sent events framing, without I/O.

Every event is encoded exactly once into the bytes that go on the wire; the
server shares those bytes among all the clients that receive the event.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from otel_sse.errors import EventFormatError

try:  # orjson encodes several times faster; the stdlib encoder is the fallback.
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

# A field value containing CR, LF or NUL would end the line early and let a
# payload inject a second field or event (see check_field).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def iso_ms(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, as JavaScript's ``Date.toISOString``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# Both formatters run for every streamed event; ``strftime`` is most of their
# cost, and the date-and-second part changes once a second: it is cached (one
# entry, swapped as a tuple so any thread may call these).
_iso_second: tuple[int, str] = (-1, "")


def _second_prefix(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` for a whole Unix second, cached."""
    global _iso_second
    cached = _iso_second
    if cached[0] == seconds:
        return cached[1]
    prefix = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _iso_second = (seconds, prefix)
    return prefix


def iso_us(time_ns: int | None) -> str | None:
    """ISO 8601 UTC with microseconds (generic events, section 5), truncated from
    nanoseconds as Jaeger truncates them, so both show the same instant."""
    if time_ns is None:
        return None
    seconds, rest = divmod(time_ns, 1_000_000_000)
    return f"{_second_prefix(seconds)}.{rest // 1000:06d}Z"


def iso_ms_ns(time_ns: int) -> str:
    """ISO 8601 UTC with milliseconds (the seed's ``timestamp``)."""
    seconds, rest = divmod(time_ns, 1_000_000_000)
    return f"{_second_prefix(seconds)}.{rest // 1_000_000:03d}Z"


def iso_ms_from_epoch(seconds: float) -> str:
    """``iso_ms`` for a Unix time in seconds."""
    return iso_ms(datetime.fromtimestamp(seconds, UTC))


def iso_ms_now() -> str:
    """``iso_ms(datetime.now(UTC))`` without ``strftime`` on every call (both floor
    the system clock to milliseconds)."""
    return iso_ms_ns(time.time_ns())


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    # Payloads come from user code; an odd object must not break the stream.
    return repr(value)


_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
).encode


_ORJSON_OPTIONS = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
                   if orjson is not None else 0)


def dumps(data: Any) -> str:
    """Compact one-line JSON; datetimes as ISO 8601 UTC with milliseconds; NaN as null.

    Raises :class:`EventFormatError` for data JSON cannot hold (a reference cycle).
    """
    if orjson is not None:
        try:
            return orjson.dumps(data, default=_json_default, option=_ORJSON_OPTIONS).decode()
        except TypeError as exc:
            if "ecursion" in str(exc):
                raise _cycle_error() from None
            # e.g. an integer beyond 64 bits: the stdlib copes
    try:
        return _dumps(data)
    except RecursionError:
        raise _cycle_error() from None
    except ValueError as exc:
        if "ircular" in str(exc):
            raise _cycle_error() from None
        # NaN / Infinity are not JSON; write them as null rather than emit invalid JSON.
        return json.dumps(
            _replace_non_finite(data), ensure_ascii=False, separators=(",", ":"),
            default=_json_default,
        )


def _cycle_error() -> EventFormatError:
    return EventFormatError("event data cannot be encoded as JSON: it refers to itself "
                            "(a reference cycle) or nests too deeply")


def _replace_non_finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, Mapping):
        return {k: _replace_non_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_non_finite(v) for v in value]
    return value


def check_field(name: str, value: str) -> str:
    """Return ``value`` if it can stand on one SSE line, else raise naming the field."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise EventFormatError(
            f"SSE {name} {value!r} contains CR, LF or NUL, which would split the event"
        )
    return value


def encode_event(
    data: str,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event. Multi-line ``data`` becomes several ``data:`` lines."""
    parts: list[str] = []
    if id is not None:
        parts.append(f"id: {check_field('id', id)}\n")
    if event is not None:
        parts.append(f"event: {check_field('event name', event)}\n")
    if retry is not None:
        if retry < 0:
            raise EventFormatError(f"SSE retry must be >= 0 milliseconds, got {retry!r}")
        parts.append(f"retry: {int(retry)}\n")
    if "\n" in data or "\r" in data:
        for line in _LINE_BREAK.split(data):
            parts.append(f"data: {line}\n")
    else:
        parts.append(f"data: {data}\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_checked(event_id: str, event_type: str, data: str) -> bytes:
    """:func:`encode_event` for an id and a type already known to be single-line
    (the server's own ids, types it validated when they were published)."""
    if "\n" in data or "\r" in data:
        return encode_event(data, event_type, event_id)
    return f"id: {event_id}\nevent: {event_type}\ndata: {data}\n\n".encode()


def data_text(data: Any, max_bytes: int) -> str:
    """An event's data as sent: a mapping as JSON (stamped when it has no timestamp)."""
    if isinstance(data, str):
        text = data
    else:
        # type() first: the ABC check of isinstance(..., Mapping) is slow, and the
        # conversion's payloads (every ingested span's) are plain dicts.
        if (type(data) is dict or isinstance(data, Mapping)) and "timestamp" not in data:
            data = {**data, "timestamp": iso_ms_now()}
        text = dumps(data)
    # len(str) <= its UTF-8 size <= 4 * len(str): measure exactly only near the cap.
    if len(text) * 4 > max_bytes and len(text.encode("utf-8")) > max_bytes:
        raise EventFormatError(
            f"event data is {len(text.encode('utf-8'))} bytes, more than max_event_bytes "
            f"({max_bytes})")
    return text


def encode_comment(text: str = "") -> bytes:
    """A comment line (ignored by clients), used for keep-alive."""
    lines = _LINE_BREAK.split(text) if text else [""]
    return ("".join(f": {line}\n" if line else ":\n" for line in lines)).encode("utf-8")


def encode_retry(milliseconds: int) -> bytes:
    """A block that only sets the client's reconnection time."""
    return f"retry: {int(milliseconds)}\n\n".encode("ascii")
