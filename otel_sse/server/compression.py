"""Per-stream compression that flushes after every write.

A stream compressor must emit everything it was given at once (sync flush):
an event that waits in a compressor's buffer is an event the user does not see.
"""

from __future__ import annotations

import zlib
from typing import Protocol

try:  # brotli is optional: offered only when importable.
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None


class StreamCompressor(Protocol):
    encoding: str

    def compress(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Zlib:
    def __init__(self, encoding: str, level: int) -> None:
        self.encoding = encoding
        # wbits 31 = gzip container; 15 = zlib container, which is what HTTP calls deflate.
        self._obj = zlib.compressobj(level, zlib.DEFLATED, 31 if encoding == "gzip" else 15)

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data) + self._obj.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._obj.flush(zlib.Z_FINISH)


class _Brotli:
    encoding = "br"

    def __init__(self, level: int) -> None:
        assert _brotli is not None
        # Brotli quality runs 0-11; the 0-9 level maps onto it directly.
        self._obj = _brotli.Compressor(quality=level, lgwin=18)

    def compress(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data)) + bytes(self._obj.flush())

    def finish(self) -> bytes:
        return bytes(self._obj.finish())


def supported_encodings() -> tuple[str, ...]:
    return ("br", "gzip", "deflate") if _brotli is not None else ("gzip", "deflate")


def negotiate(accept_encoding: str) -> str | None:
    """Pick br > gzip > deflate from an Accept-Encoding value, honouring q=0."""
    offered: dict[str, float] = {}
    for item in accept_encoding.split(","):
        token, _, params = item.strip().partition(";")
        token = token.strip().lower()
        if not token:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        offered[token] = quality
    best: tuple[float, str] | None = None
    for encoding in supported_encodings():
        quality = offered.get(encoding, offered.get("*", 0.0) if encoding != "br" else 0.0)
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, encoding)
    return best[1] if best else None


def make_compressor(encoding: str, level: int) -> StreamCompressor:
    if encoding == "br":
        return _Brotli(level)
    return _Zlib(encoding, level)
