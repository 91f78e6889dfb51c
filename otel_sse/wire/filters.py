"""Event type filters: ``task:*``, ``agent:spawned``, ``*`` ...

``*`` matches any run of characters, ``:`` included, so ``agent:*`` matches
``agent:output:stdout``. Matching is exact otherwise (case-sensitive).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from otel_sse.errors import OtelSSEError

MAX_PATTERN_LENGTH = 200
MAX_PATTERNS = 64
_ALLOWED = re.compile(r"^[A-Za-z0-9_.:*\-/]+$")


class FilterError(OtelSSEError, ValueError):
    """A filter pattern is malformed; the message says which and why."""


def parse_filters(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """Split and validate a comma-separated filter list (or an iterable of patterns)."""
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    patterns: list[str] = []
    for item in items:
        pattern = item.strip()
        if not pattern:
            continue
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise FilterError(
                f"filter {pattern[:40]!r}... is longer than {MAX_PATTERN_LENGTH} characters"
            )
        if not _ALLOWED.match(pattern):
            raise FilterError(
                f"filter {pattern!r} may only hold letters, digits and _ . : * - /"
            )
        patterns.append(pattern)
    if len(patterns) > MAX_PATTERNS:
        raise FilterError(f"at most {MAX_PATTERNS} filters, got {len(patterns)}")
    return tuple(dict.fromkeys(patterns))


class EventFilter:
    """Compiled set of patterns with a per-type memo (event types are few)."""

    __slots__ = ("_memo", "_regex", "patterns")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = parse_filters(patterns)
        if not self.patterns or "*" in self.patterns:
            self._regex: re.Pattern[str] | None = None
        else:
            alternatives = "|".join(
                ".*".join(re.escape(part) for part in p.split("*")) for p in self.patterns
            )
            self._regex = re.compile(f"(?:{alternatives})")
        self._memo: dict[str, bool] = {}

    @property
    def matches_all(self) -> bool:
        return self._regex is None

    def __call__(self, event_type: str) -> bool:
        if self._regex is None:
            return True
        hit = self._memo.get(event_type)
        if hit is None:
            hit = self._regex.fullmatch(event_type) is not None
            if len(self._memo) < 4096:
                self._memo[event_type] = hit
        return hit


def matches(pattern: str, event_type: str) -> bool:
    """Whether one pattern matches one event type."""
    return EventFilter([pattern])(event_type)
