"""Incremental ``Content-Encoding`` decoders, for the HTTP/2 transport.

(aiohttp decodes by itself on HTTP/1.1.) A streaming server flushes its
compressor after every event, so every chunk decodes to whole events at once:
the decoders here never wait for more input than they were given.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Callable

from otel_sse.errors import StreamError

__all__ = ["ACCEPT_ENCODING", "HAVE_BROTLI", "make_decompressor"]

HAVE_BROTLI = importlib.util.find_spec("brotli") is not None
ACCEPT_ENCODING = "gzip, deflate, br" if HAVE_BROTLI else "gzip, deflate"


class DecompressionError(StreamError):
    """The compressed stream is corrupt."""


class _Deflate:
    """``deflate`` is meant to be zlib-wrapped, but servers send raw deflate too."""

    __slots__ = ("_first", "_obj")

    def __init__(self) -> None:
        self._obj = zlib.decompressobj()
        self._first = True

    def __call__(self, data: bytes) -> bytes:
        if self._first and data:
            self._first = False
            try:
                return self._obj.decompress(data)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            return self._obj.decompress(data)
        except zlib.error as exc:
            raise DecompressionError(f"corrupt deflate stream: {exc}") from exc


class _Gzip:
    __slots__ = ("_obj",)

    def __init__(self) -> None:
        self._obj = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def __call__(self, data: bytes) -> bytes:
        try:
            return self._obj.decompress(data)
        except zlib.error as exc:
            raise DecompressionError(f"corrupt gzip stream: {exc}") from exc


class _Brotli:
    __slots__ = ("_obj",)

    def __init__(self) -> None:
        import brotli

        self._obj = brotli.Decompressor()

    def __call__(self, data: bytes) -> bytes:
        try:
            out: bytes = self._obj.process(data)
        except Exception as exc:  # brotli.error is not exported under one name everywhere
            raise DecompressionError(f"corrupt brotli stream: {exc}") from exc
        return out


def make_decompressor(content_encoding: str | None) -> Callable[[bytes], bytes] | None:
    """A chunk decoder for the response's ``Content-Encoding``; None for identity."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return _Gzip()
    if encoding == "deflate":
        return _Deflate()
    if encoding == "br" and HAVE_BROTLI:
        return _Brotli()
    raise DecompressionError(f"unsupported Content-Encoding {content_encoding!r}")
