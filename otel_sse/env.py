"""The one place configuration is read from the environment (``OTEL_*``, ``OTEL_SSE_*``).

Each reader takes the raw value and the name it came from (a variable or an
argument), and raises :class:`~otel_sse.errors.ConfigError` naming both when the
value is bad. The specification asks for a warning and the default instead;
otel-sse refuses bad values at configure time, so that a typo does not quietly
send telemetry somewhere else or nowhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from otel_sse.errors import ConfigError

# The specification lets an implementation read a zero timeout as "no limit" and
# substitute a very long one: the largest 32-bit number of milliseconds.
INDEFINITE_SECONDS = (2**31 - 1) / 1000.0


class Env:
    """An environment to read from: blank values count as unset, as the spec says."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values: Mapping[str, str] = os.environ if values is None else values

    def get(self, name: str) -> str | None:
        """The stripped value of ``name``, or None when unset or blank."""
        value = self.values.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def first(self, names: Iterable[str]) -> tuple[str, str] | None:
        """``(name, value)`` of the first of ``names`` that is set."""
        for name in names:
            value = self.get(name)
            if value is not None:
                return name, value
        return None


def pairs(raw: str | None, source: str) -> list[tuple[str, str]]:
    """``k=v,k2=v2`` with percent-encoding, as the spec defines for headers and resources."""
    if raw is None:
        return []
    found = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source} entry {item.strip()!r} is not of the form key=value")
        found.append((unquote(key.strip()), unquote(value.strip())))
    return found


def duration_millis(raw: str, source: str) -> float:
    """A spec *Duration*: a positive number of milliseconds, returned in seconds."""
    value = _number(raw, source)
    if not value > 0:
        raise ConfigError(f"{source}={raw!r} must be a positive number of milliseconds")
    return value / 1000.0


def timeout_millis(raw: str, source: str) -> float:
    """A spec *Timeout*: milliseconds, 0 meaning no limit; returned in seconds."""
    value = _number(raw, source)
    if value < 0:
        raise ConfigError(f"{source}={raw!r} must be 0 (no limit) or a positive number of "
                          "milliseconds")
    return INDEFINITE_SECONDS if value == 0 else value / 1000.0


def int_at_least(value: object, source: str, least: int) -> int:
    """An integer option (an ``int``, not a ``bool``) of at least ``least``."""
    if type(value) is not int or value < least:
        raise ConfigError(f"{source} must be an int >= {least}, got {value!r}")
    return value


def positive_seconds(value: float, source: str) -> float:
    """A duration given in seconds (an argument, or an ``OTEL_SSE_*`` variable)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            value > 0 and math.isfinite(value)):
        raise ConfigError(f"{source}={value!r} must be a positive number of seconds")
    return float(value)


def seconds(raw: str, source: str) -> float:
    """A positive number of seconds from text (``OTEL_SSE_*`` durations are seconds)."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{source}={raw!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{source}={raw!r} must be a positive number of seconds")
    return value


def integer(raw: str, source: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{source}={raw!r} is not an integer") from None


def spec_bool(raw: str, source: str) -> bool:
    """A spec *Boolean*: only ``true`` and ``false``, in any case."""
    lowered = raw.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ConfigError(f"{source}={raw!r} is not a boolean: use true or false")


def loose_bool(raw: str, source: str) -> bool:
    """An ``OTEL_SSE_*`` switch: true/false, 1/0, yes/no, on/off."""
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{source}={raw!r} is not a boolean (true/false)")


def choice(raw: str, source: str, allowed: tuple[str, ...]) -> str:
    """A spec *Enum* value, compared without case."""
    lowered = raw.strip().lower()
    if lowered not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{source}={raw!r} is not supported; use one of {options}")
    return lowered


def http_url(raw: str, source: str) -> str:
    """An absolute ``http://`` or ``https://`` URL (a page builds links from it: no
    ``javascript:`` or relative values)."""
    parts = urlsplit(raw) if isinstance(raw, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{source} must be an absolute http:// or https:// URL, got {raw!r}")
    return raw


def _number(raw: str, source: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{source}={raw!r} is not a number of milliseconds") from None
    if not math.isfinite(value):
        raise ConfigError(f"{source}={raw!r} is not a number of milliseconds")
    return value
