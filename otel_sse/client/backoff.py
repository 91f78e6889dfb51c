"""Reconnection timing: exponential backoff with jitter, and ``Retry-After``."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["compute_reconnect_delay", "parse_retry_after"]

# A Retry-After far in the future is more likely a misconfigured server than a
# real request to wait a day; a client that sleeps that long looks dead.
MAX_RETRY_AFTER = 3600.0


def compute_reconnect_delay(
    attempt: int,
    base: float,
    backoff: float,
    maximum: float,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before reconnection attempt number ``attempt`` (1-based).

    ``base * backoff ** (attempt - 1)``, capped at ``maximum``, then spread by
    ``jitter``: multiplied by a uniform factor in ``[1 - jitter, 1 + jitter]``
    and capped at ``maximum`` again. The spread keeps many clients dropped by
    the same server restart from reconnecting in lockstep; at the cap the
    spread is one-sided, so clients still do not synchronise there.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt!r}")
    # Exponent clamped so that float pow cannot overflow on long outages.
    exponent = min(attempt - 1, 1024)
    try:
        delay = base * backoff**exponent
    except OverflowError:
        delay = maximum
    delay = min(delay, maximum)
    if jitter > 0.0 and delay > 0.0:
        factor = (rng or random).uniform(1.0 - jitter, 1.0 + jitter)
        delay = min(delay * factor, maximum)
    return max(delay, 0.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
