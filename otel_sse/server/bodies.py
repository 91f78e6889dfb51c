"""Request bodies: content types and encodings, decompressed within a bound."""

from __future__ import annotations

import zlib

from otel_sse.server.request import Request, Response, text_response


class BodyError(Exception):
    """A body that cannot be used; ``response`` says why (4xx, one line)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters ("" when absent)."""
    return (request.header(b"content-type") or "").split(";", 1)[0].strip().lower()


def decoded_body(request: Request, limit: int) -> bytes:
    """The body with its ``Content-Encoding`` undone (identity, gzip, deflate), at most
    ``limit`` bytes once decompressed; a larger one is a 413, however well it compressed."""
    encoding = (request.header(b"content-encoding") or "identity").strip().lower()
    body = request.body
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise BodyError(text_response(
            415, f"Content-Encoding {encoding[:40]!r} is not supported; use gzip or identity"))
    # wbits 47 reads gzip or zlib headers; raw deflate is what some clients call deflate.
    decompressor = zlib.decompressobj(47 if encoding != "deflate" or body[:1] == b"\x78"
                                      else -15)
    try:
        out = decompressor.decompress(body, limit + 1)
        if len(out) > limit or decompressor.unconsumed_tail:
            raise BodyError(text_response(
                413, f"request body decompresses to more than {limit} bytes"))
        if not decompressor.eof:
            raise BodyError(text_response(400, f"truncated {encoding} body"))
    except zlib.error as exc:
        raise BodyError(text_response(400, f"corrupt {encoding} body: {exc}")) from None
    return out
