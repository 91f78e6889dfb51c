"""OTLP/HTTP ingest: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``.

Answers as the OTLP specification says: 200 with an ``Export*ServiceResponse``
(a partial success counts what was rejected), 400 with a ``google.rpc.Status``
for a body that does not decode, 415 for another content type, 413 for a body
too large (compressed, or once decompressed), 429 with ``Retry-After`` when the
server sheds load. Protobuf and JSON; identity and gzip.
"""

from __future__ import annotations

from otel_sse.ingest.core import Ingest
from otel_sse.ingest.decode import (
    JSON,
    PROTOBUF,
    MalformedRequest,
    Signal,
    encode_response,
    encode_status,
    parse,
)
from otel_sse.server.bodies import BodyError, decoded_body, media_type
from otel_sse.server.request import Request, Response, text_response

RETRY_AFTER = b"1"


class OtlpHttpRoute:
    """The route of one signal."""

    def __init__(self, ingest: Ingest, signal: Signal, max_body: int,
                 max_decompressed: int) -> None:
        self.ingest = ingest
        self.signal = signal
        self.max_body = max_body
        self.max_decompressed = max_decompressed

    async def __call__(self, request: Request) -> Response:
        media = media_type(request)
        if media not in (PROTOBUF, JSON):
            return text_response(415, f"OTLP/HTTP takes {PROTOBUF} or {JSON}, "
                                 f"not {media[:60] or 'no content type'!r}")
        try:
            body = decoded_body(request, self.max_decompressed)
        except BodyError as exc:
            return exc.response
        if not self.ingest.admit(len(body)):
            return Response(429, [(b"content-type", media.encode()),
                                  (b"retry-after", RETRY_AFTER)],
                            encode_status(8, "the server is busy; retry", media))
        try:
            message = parse(self.signal, body, media)
            rejected, reason = await self.ingest.export(self.signal, message)
        except MalformedRequest as exc:
            return Response(400, [(b"content-type", media.encode())],
                            encode_status(3, str(exc), media))
        finally:
            self.ingest.release(len(body))
        return Response(200, [(b"content-type", media.encode())],
                        encode_response(self.signal, media, rejected, reason))
