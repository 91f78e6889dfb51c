"""``POST /v1/events``: publishing for producers without OpenTelemetry.

A JSON event in the ``broadcast`` shape (``{"event": type, "data": {...}}``) or
an array of them, validated like ``broadcast`` (all or none), answered 202 with
the ids the events were given. ``curl`` can drive it::

    curl -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \\
         -d '{"event": "deploy:done", "data": {"version": "1.2"}}' localhost:3000/v1/events
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable

from otel_sse.errors import EventFormatError, ServerError
from otel_sse.hub import EventHub
from otel_sse.server.bodies import BodyError, decoded_body, media_type
from otel_sse.server.request import Request, Response, json_response, text_response


class PublishRoute:
    """The route; bodies up to ``max_body`` bytes (``max_decompressed`` once decoded)."""

    def __init__(self, hub: EventHub, max_body: int, max_decompressed: int,
                 wait: float = 10.0) -> None:
        self.hub = hub
        self.wait = wait
        self.max_body = max_body
        self.max_decompressed = max_decompressed
        self.published = 0

    def __call__(self, request: Request) -> Response | Awaitable[Response]:
        if media_type(request) != "application/json":
            return text_response(415, "send the events as application/json")
        try:
            body = decoded_body(request, self.max_decompressed)
            payload = json.loads(body)
        except BodyError as exc:
            return exc.response
        except (ValueError, UnicodeDecodeError) as exc:
            return text_response(400, f"the body is not JSON: {exc}")
        messages = payload if isinstance(payload, list) else [payload]
        try:
            ids = self.hub.publish_batch(messages)
        except EventFormatError as exc:
            return text_response(400, str(exc))
        except ServerError as exc:  # a shared bus that cannot take them now
            return text_response(503, str(exc), [(b"retry-after", b"1")])
        if isinstance(ids, list):
            self.published += len(ids)
            return json_response(202, {"ids": ids})
        return self._appended(ids, len(messages))

    async def _appended(self, ids: Awaitable[list[str | None]], count: int) -> Response:
        """On a shared bus the ids are the store's: known once it appended the events.
        While it is unreachable the events wait in order in the bus's buffer, and the
        answer, after ``wait`` s, says so (``ids`` null)."""
        self.published += count
        try:
            appended = await asyncio.wait_for(asyncio.shield(ids), self.wait)
            return json_response(202, {"ids": appended})
        except TimeoutError:
            return json_response(202, {"ids": None, "queued": count})
