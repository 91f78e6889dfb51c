"""A budget for the HTTP/2 frames a client sends that carry no request data.

SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE, empty DATA and frames
of unknown types each make the server work (parse, acknowledge, look up a
stream) while costing the client nine bytes. :class:`FrameGate` reads the
frame headers of what a client sends, before ``h2`` parses anything, and
charges each such frame to a token bucket: ``rate`` per second, bursts of
``2 * rate``, plus credit for the data the server sent on the connection (a
client acknowledges what it receives with WINDOW_UPDATE frames). Every
connection's frames are also charged to one bucket the whole server shares
(:class:`TokenBucket`, ``20 * rate``), so that many connections each staying
under their own budget cannot together take the server's CPU. A client over
either budget is told ``ENHANCE_YOUR_CALM`` and disconnected. Header blocks
(HEADERS plus CONTINUATION) are capped in bytes too.

Pure bookkeeping, no I/O: the caller feeds bytes and a clock reading.
"""

from __future__ import annotations

from otel_sse.errors import OtelSSEError

PREFACE_LENGTH = 24
_DATA, _HEADERS, _CONTINUATION = 0, 1, 9
_CHARGED = frozenset({2, 3, 4, 6, 8})  # PRIORITY, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE
_KNOWN = frozenset(range(10))
_END_STREAM, _END_HEADERS = 0x1, 0x4
# Bytes of DATA sent per frame of credit.
CREDIT_BYTES = 8192


class FloodError(OtelSSEError):
    """A client sent more control frames (or header bytes) than its budget allows."""


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("_last", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._last = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def credit(self, tokens: float) -> None:
        self.tokens = min(self.burst, self.tokens + tokens)


def server_budget(rate: int, now: float) -> TokenBucket:
    """The bucket every connection of one server also spends from."""
    return TokenBucket(20 * rate, 40 * rate, now)


class FrameGate:
    """Token-bucket accounting of one connection's incoming frames."""

    __slots__ = ("_block", "_header", "_left", "_own", "_preface", "_shared", "max_header_block",
                 "rate")

    def __init__(self, rate: int, max_header_block: int, now: float,
                 shared: TokenBucket | None = None) -> None:
        self.rate = rate
        self._own = TokenBucket(rate, 2 * rate, now)
        self._shared = shared
        self.max_header_block = max_header_block
        self._preface = PREFACE_LENGTH
        self._header = b""
        self._left = 0  # payload bytes of the current frame still to skip
        self._block = 0  # bytes of the header block being received

    @property
    def tokens(self) -> float:
        return self._own.tokens

    def credit(self, data_bytes: int) -> None:
        """The server sent ``data_bytes`` of DATA: the client may acknowledge them."""
        self._own.credit(data_bytes / CREDIT_BYTES)

    def feed(self, data: bytes, now: float) -> None:
        """Account for ``data``; raises :class:`FloodError` when the budget is spent."""
        own, shared = self._own, self._shared
        own.refill(now)
        if shared is not None:
            shared.refill(now)
        position, size = 0, len(data)
        if self._preface:
            taken = min(self._preface, size)
            self._preface -= taken
            position = taken
        while position < size:
            if self._left:
                taken = min(self._left, size - position)
                self._left -= taken
                position += taken
                continue
            needed = 9 - len(self._header)
            header = self._header + data[position : position + needed]
            position += needed
            if len(header) < 9:
                self._header = header
                return
            self._header = b""
            length = int.from_bytes(header[:3], "big")
            kind, flags = header[3], header[4]
            self._left = length
            if kind == _HEADERS:
                self._block = length
            elif kind == _CONTINUATION:
                self._block += length
            if self._block > self.max_header_block:
                raise FloodError(f"header block larger than {self.max_header_block} bytes")
            if kind in _CHARGED or kind not in _KNOWN or (
                    kind == _DATA and length == 0 and not flags & _END_STREAM):
                own.tokens -= 1
                if own.tokens < 0:
                    raise FloodError(
                        f"more than {self.rate} control frames per second "
                        f"(SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE, empty DATA)")
                if shared is not None:
                    shared.tokens -= 1
                    if shared.tokens < 0:
                        raise FloodError("the server's control-frame budget, shared by all "
                                         "connections, is spent")
