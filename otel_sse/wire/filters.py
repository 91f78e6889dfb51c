"""Event type filters: ``task:*``, ``agent:spawned``, ``*`` ...

``*`` matches any run of characters, ``:`` included, so ``agent:*`` matches
``agent:output:stdout``. Matching is exact otherwise (case-sensitive).

Patterns come from clients (the ``filters`` query), so matching must cost the
same whatever they hold: a glob made only of literals and ``*`` is matched in
linear time without backtracking. The literal before the first ``*`` must
start the name and the one after the last must end it; the literals in between
are found left to right, each at its first place after the previous one. Taking
the first place is always right: a later one leaves less room for what follows,
never more. Runs of ``*`` are one ``*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from otel_sse.errors import FilterError

__all__ = ["MAX_PATTERNS", "MAX_PATTERN_LENGTH", "EventFilter", "FilterError", "glob_match",
           "matches", "parse_filters"]

MAX_PATTERN_LENGTH = 200
MAX_PATTERNS = 64
_ALLOWED = re.compile(r"^[A-Za-z0-9_.:*\-/]+$")
_STARS = re.compile(r"\*{2,}")


def parse_filters(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """Split and validate a comma-separated filter list (or an iterable of patterns).

    Runs of ``*`` are collapsed (they mean what one ``*`` means) and duplicates dropped.
    """
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    if len(items) > MAX_PATTERNS * 4:
        raise FilterError(f"at most {MAX_PATTERNS} filters, got {len(items)}")
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
                f"filter {pattern[:60]!r} may only hold letters, digits and _ . : * - /"
            )
        patterns.append(_STARS.sub("*", pattern))
    unique = tuple(dict.fromkeys(patterns))
    if len(unique) > MAX_PATTERNS:
        raise FilterError(f"at most {MAX_PATTERNS} filters, got {len(unique)}")
    return unique


def _compile(pattern: str) -> tuple[str, ...] | str:
    """A literal pattern as itself; a glob as its literal parts around the ``*``."""
    return tuple(pattern.split("*")) if "*" in pattern else pattern


def glob_match(parts: tuple[str, ...], name: str) -> bool:
    """Whether ``name`` matches the glob whose literal parts (split at ``*``) are ``parts``."""
    head, *middle, tail = parts
    if len(name) < len(head) + len(tail) or not name.startswith(head) \
            or not name.endswith(tail):
        return False
    position, end = len(head), len(name) - len(tail)
    for part in middle:
        found = name.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


class EventFilter:
    """A set of patterns with a per-type memo (event types are few)."""

    __slots__ = ("_globs", "_literals", "_memo", "match_all", "patterns")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns = parse_filters(patterns)
        self.match_all = not self.patterns or "*" in self.patterns
        compiled = [_compile(p) for p in self.patterns]
        self._literals = frozenset(p for p in compiled if isinstance(p, str))
        self._globs = tuple(p for p in compiled if isinstance(p, tuple))
        self._memo: dict[str, bool] = {}

    @property
    def matches_all(self) -> bool:
        return self.match_all

    def __call__(self, event_type: str) -> bool:
        if self.match_all:
            return True
        hit = self._memo.get(event_type)
        if hit is None:
            hit = event_type in self._literals or any(
                glob_match(parts, event_type) for parts in self._globs)
            if len(self._memo) < 4096:
                self._memo[event_type] = hit
        return hit


def matches(pattern: str, event_type: str) -> bool:
    """Whether one pattern matches one event type."""
    return EventFilter([pattern])(event_type)
