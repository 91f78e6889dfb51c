"""Server-sent events parsing, without I/O: bytes in, events out.

Implements "Interpreting an event stream" of the WHATWG HTML standard
(https://html.spec.whatwg.org/multipage/server-sent-events.html), including
the details most parsers get wrong: one leading BOM, CR / LF / CRLF line ends
(a CRLF split across two reads is one line end), the single optional space
after the colon, ``id`` values holding NUL, ``retry`` values that are not all
ASCII digits, and the last event id that outlives events and connections.

Speed matters because a client may parse hundreds of thousands of events per
second: work is done per chunk with ``str`` methods (C code), never per
character, and events in the canonical ``id/event/data`` shape are recognised
by one regular expression match each.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar, overload

from otel_sse.errors import EventFormatError

__all__ = ["RawEvent", "SSEDecoder"]

DEFAULT_EVENT_TYPE = "message"


class RawEvent(NamedTuple):
    """One dispatched event, exactly as the standard defines it (immutable).

    ``id`` is the stream's last event id at dispatch time (it carries over
    from earlier events when this one has no ``id`` field); ``retry`` is the
    reconnection time in milliseconds if this event's block set one.
    """

    event: str
    data: str
    id: str = ""
    retry: int | None = None


# ``findall`` with this pattern tiles a run of whole lines, so the per-event
# work happens in C: a match is either a whole event block in the canonical
# shape every common server writes (``id``, ``event``, ``data``, blank line:
# groups 1-5) or any single line (group 6, LF included so that it is never
# empty and tells the two apart). Presence flags (groups 1 and 3) are needed
# because findall reports an absent group and an empty value both as "".
# An ``id`` holding NUL does not fit the canonical shape and so goes through
# the general line path, which ignores it as the standard says.
_TOKENS = re.compile(
    r"(?:(id): ?([^\n\0]*)\n)?(?:(event): ?(.*)\n)?data: ?(.*)\n\n|(.*\n)"
)
_new_raw = tuple.__new__

# Invalid UTF-8 is replaced by U+FFFD as the standard requires; counting the
# replacements lets the client report a ``parse_error`` at no cost to valid
# streams (the handler only runs on errors). Per thread, because decoding is
# synchronous: no other decoder in the same thread can run in between.
_invalid = threading.local()
_ERRORS = "otel_sse.replace_and_count"


def _replace_and_count(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _invalid.count = getattr(_invalid, "count", 0) + 1
    return "\ufffd", exc.end


codecs.register_error(_ERRORS, _replace_and_count)
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


def _invalid_count() -> int:
    count: int = getattr(_invalid, "count", 0)
    return count


def _check_last_event_id(value: str) -> None:
    if "\0" in value or "\n" in value or "\r" in value:
        raise EventFormatError(f"last_event_id {value!r} contains NUL, CR or LF")


E = TypeVar("E")
#: Builds an event from (type, data, last event id, retry).
EventFactory = Callable[[str, str, str, "int | None"], E]


class SSEDecoder(Generic[E]):
    """Incremental event-stream parser.

    ``feed(bytes)`` returns the events completed by those bytes; ``end()``
    marks the end of a stream (an unfinished block is dropped, as the standard
    says); ``reset()`` prepares for the next connection's stream while keeping
    ``last_event_id`` and ``retry``, which is what a reconnecting client sends
    and waits.

    ``factory`` builds each event from ``(type, data, id, retry)`` instead of
    a :class:`RawEvent`, saving a copy when a client wants its own objects.
    """

    __slots__ = (
        "_block_retry",
        "_bom_pending",
        "_data",
        "_event",
        "_factory",
        "_id_buffer",
        "_in_block",
        "_skip_lf",
        "_tail",
        "_utf8",
        "invalid_sequences",
        "last_event_id",
        "retry",
    )

    @overload
    def __init__(self: SSEDecoder[RawEvent], last_event_id: str = "") -> None: ...

    @overload
    def __init__(self, last_event_id: str = "", *, factory: EventFactory[E]) -> None: ...

    def __init__(self, last_event_id: str = "", *, factory: EventFactory[E] | None = None) -> None:
        self._factory = factory
        _check_last_event_id(last_event_id)
        #: The stream's last event id, updated when an event block is dispatched.
        self.last_event_id = last_event_id
        #: The reconnection time (ms) the server last asked for, or None.
        self.retry: int | None = None
        #: How many invalid UTF-8 sequences were replaced by U+FFFD so far.
        self.invalid_sequences = 0
        self._start_stream()

    def _start_stream(self) -> None:
        self._utf8 = _Utf8Decoder(_ERRORS)
        self._bom_pending = True
        self._skip_lf = False
        self._tail: list[str] = []
        self._data: list[str] = []
        self._event = ""
        self._block_retry: int | None = None
        self._in_block = False
        # An id seen in a block that never completed was not committed.
        self._id_buffer = self.last_event_id

    def set_last_event_id(self, value: str) -> None:
        """Replace the resume point, mid-stream or between streams.

        Only the id changes: a partly received line or block, the UTF-8 and
        BOM state and ``retry`` are kept. An ``id`` field already seen in the
        unfinished block is overridden, so the next dispatch commits ``value``
        unless the block sets another id after this call.
        """
        _check_last_event_id(value)
        self.last_event_id = value
        self._id_buffer = value

    def reset(self) -> None:
        """Start a new stream (a reconnection); keeps ``last_event_id`` and ``retry``."""
        self._start_stream()

    def feed(self, data: bytes) -> list[E]:
        """Parse the next bytes of the stream; return the events they complete."""
        before = _invalid_count()
        text = self._utf8.decode(data)
        if _invalid_count() != before:
            self.invalid_sequences += _invalid_count() - before
        if not text:
            return []
        return self.feed_text(text)

    def feed_text(self, text: str) -> list[E]:
        """Parse already decoded text (the BOM and line-end rules still apply)."""
        if not text:
            return []
        if self._bom_pending:
            self._bom_pending = False
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._skip_lf:
            # The previous piece ended with CR, already counted as a line end:
            # an LF right after it belongs to the same CRLF.
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            # CR cannot occur inside a field, so turning every line end into
            # LF loses nothing and leaves one fast path to run.
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        last_lf = text.rfind("\n")
        if last_lf < 0:
            self._tail.append(text)
            return []
        if self._tail:
            self._tail.append(text)
            text = "".join(self._tail)
            last_lf = text.rfind("\n")
            self._tail = []
        if last_lf != len(text) - 1:
            self._tail.append(text[last_lf + 1 :])
            text = text[: last_lf + 1]
        return self._parse_lines(text)

    def end(self) -> list[E]:
        """The stream ended: drop the unfinished line and block (never dispatched)."""
        self._start_stream()
        return []

    def _parse_lines(self, text: str) -> list[E]:
        # ``text`` is whole lines, each ending with LF.
        # list[Any]: RawEvent or what the factory makes, which is E either way.
        out: list[Any] = []
        append = out.append
        make = self._factory
        id_buffer = self._id_buffer
        committed = self.last_event_id
        in_block = self._in_block
        for has_id, event_id, has_event, event_type, data, line in _TOKENS.findall(text):
            if not line and not in_block:
                if has_id:
                    id_buffer = event_id
                committed = id_buffer
                event_type = event_type or DEFAULT_EVENT_TYPE
                if make is None:
                    append(_new_raw(RawEvent, (event_type, data, id_buffer, None)))
                else:
                    append(make(event_type, data, id_buffer, None))
                continue
            if not line:
                # A canonical block completing a block begun by other lines:
                # apply its fields on top, as the line path would.
                if has_id:
                    id_buffer = event_id
                if has_event:
                    self._event = event_type
                self._data.append(data)
                line = "\n"
            if line == "\n":
                # A blank line: dispatch. The id is committed even when there
                # is no data to dispatch.
                if self._data:
                    fields = (
                        self._event or DEFAULT_EVENT_TYPE,
                        "\n".join(self._data),
                        id_buffer,
                        self._block_retry,
                    )
                    append(_new_raw(RawEvent, fields) if make is None else make(*fields))
                    self._data = []
                committed = id_buffer
                self._event = ""
                self._block_retry = None
                in_block = False
                continue
            if line[0] == ":":
                continue
            in_block = True
            colon = line.find(":")
            if colon < 0:
                name = line[:-1]
                value = ""
            else:
                name = line[:colon]
                value = line[colon + 1 : -1]
                if value and value[0] == " ":
                    value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    id_buffer = value
            # isdigit() alone would accept other scripts' digits.
            elif name == "retry" and value and value.isascii() and value.isdigit():
                self.retry = self._block_retry = int(value)
        self.last_event_id = committed
        self._id_buffer = id_buffer
        self._in_block = in_block
        return out
