"""How one contract value becomes one attribute value, and back.

Attribute values are primitives and homogeneous arrays of primitives. A
structured value of a field the contract leaves open (a task's ``result``, an
intermediate ``data``, a log ``context``) is JSON text under its named key, as
the GenAI conventions record ``gen_ai.tool.call.result``. Reading back never
fails on a foreign producer's value: text that is not JSON stays text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from otel_sse.wire.encoder import dumps, iso_ms

try:
    import orjson

    _loads: Any = orjson.loads
    _DecodeError: Any = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads
    _DecodeError = ValueError

_PRIMITIVES = (str, bool, int, float)


def scalar(value: Any) -> Any:
    """A primitive as itself; a datetime as ISO 8601 UTC with milliseconds (as on
    the wire); a list of one primitive type as an array; anything else as JSON text."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, Enum):
        return scalar(value.value)
    if isinstance(value, datetime):
        return iso_ms(value)
    if isinstance(value, (list, tuple)) and value:
        first = type(value[0])
        if first in _PRIMITIVES and all(type(v) is first for v in value):
            return list(value)
    return dumps(value)


def strings(value: Any) -> list[str]:
    """A string array (dependencies, issues, stop sequences)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, str) else str(v) for v in value]
    return [str(value)]


def json_text(value: Any) -> str:
    """JSON text of an open-typed value (strings are quoted: the type survives)."""
    return dumps(value)


def _parse(value: Any, fallback: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return _loads(value)
    except (_DecodeError, ValueError):
        return fallback(value)


def from_json_text(value: Any) -> Any:
    """The value JSON text stands for; text that is not JSON (a foreign producer
    that set a plain string), or a value that is not text, is returned as it is."""
    return _parse(value, lambda text: text)


def loads_or_none(value: Any) -> Any:
    """Parsed JSON text, a non-text value as it is, None for text that is not JSON."""
    return _parse(value, lambda text: None)


def error_text(error: Any) -> str:
    """An error as one attribute: its message, or JSON text of an error object
    (``{message, name?, code?, stack?}``)."""
    if isinstance(error, str):
        return error
    if isinstance(error, Mapping):
        return dumps(error)
    return str(error)


def error_value(text: Any) -> Any:
    """The inverse of :func:`error_text`: an error object when the text is one."""
    if isinstance(text, str) and text.startswith("{"):
        value = loads_or_none(text)
        if isinstance(value, dict) and "message" in value:
            return value
    return text


def ms_between(start_ns: int, end_ns: int | None) -> int:
    """Whole milliseconds from ``start_ns`` to ``end_ns`` (the contract's duration unit)."""
    if end_ns is None or end_ns < start_ns:
        return 0
    return round((end_ns - start_ns) / 1e6)


def hex_span(span_id: int | None) -> str | None:
    """A span id as the contract writes it (16 hex digits), None for none."""
    return f"{span_id:016x}" if span_id else None


def hex_trace(trace_id: int | None) -> str | None:
    """A trace id as the contract writes it (32 hex digits), None for none."""
    return f"{trace_id:032x}" if trace_id else None
