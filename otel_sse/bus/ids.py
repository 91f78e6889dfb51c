"""Event ids: ``<run>-<seq>`` for published events, ``<run>-<seq>.<n>`` for direct ones.

The run part names one server run (or one shared log), so an id from before a
restart is recognised as foreign instead of being mistaken for a position in
the new history. Ids increase strictly within a stream: direct messages sent
to one client sort after the published event they follow.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from otel_sse.errors import InvalidEventId

__all__ = ["EventId", "InvalidEventId", "format_id", "new_run_id", "parse_id"]

MAX_ID_LENGTH = 128
_ID = re.compile(r"^([0-9a-z]{1,32})-([0-9]{1,19})(?:\.([0-9]{1,9}))?$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]*$")


@dataclass(frozen=True, slots=True)
class EventId:
    run: str
    seq: int
    sub: int = 0

    def __str__(self) -> str:
        return format_id(self.run, self.seq, self.sub)


def new_run_id() -> str:
    return secrets.token_hex(4)


def format_id(run: str, seq: int, sub: int = 0) -> str:
    return f"{run}-{seq}.{sub}" if sub else f"{run}-{seq}"


def parse_id(text: str) -> EventId | None:
    """Parse a client's last event id.

    Returns None for a well-formed id this scheme did not produce (another
    server's, say); raises :class:`InvalidEventId` for one that is malformed.
    """
    if len(text) > MAX_ID_LENGTH:
        raise InvalidEventId(f"Last-Event-ID is longer than {MAX_ID_LENGTH} characters")
    if not _PRINTABLE.match(text):
        raise InvalidEventId("Last-Event-ID holds control characters, spaces or non-ASCII")
    match = _ID.match(text)
    if match is None:
        return None
    run, seq, sub = match.groups()
    return EventId(run, int(seq), int(sub or 0))
