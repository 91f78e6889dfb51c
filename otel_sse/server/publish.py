"""``POST /v1/events``: publishing for producers without OpenTelemetry.

A JSON event in the ``broadcast`` shape (``{"event": type, "data": {...}}``) or
an array of them, validated like ``broadcast`` (all or none), answered 202 with
the ids the events were given. ``curl`` can drive it::

    curl -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \\
         -d '{"event": "deploy:done", "data": {"version": "1.2"}}' localhost:3000/v1/events
"""

from __future__ import annotations

import json

from otel_sse.errors import EventFormatError
from otel_sse.hub import EventHub
from otel_sse.server.bodies import BodyError, decoded_body, media_type
from otel_sse.server.request import Request, Response, json_response, text_response


class PublishRoute:
    """The route; bodies up to ``max_body`` bytes (``max_decompressed`` once decoded)."""

    def __init__(self, hub: EventHub, max_body: int, max_decompressed: int) -> None:
        self.hub = hub
        self.max_body = max_body
        self.max_decompressed = max_decompressed
        self.published = 0

    def __call__(self, request: Request) -> Response:
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
        self.published += len(ids)
        return json_response(202, {"ids": ids})
