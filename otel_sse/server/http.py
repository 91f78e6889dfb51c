"""Small ASGI response helpers: plain one-line errors, JSON, CORS headers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

STREAM_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


STREAM_PATHS = frozenset({"/events", "/events/"})


def is_stream_request(path: str, accept: str) -> bool:
    """``/events``, or ``/`` asked for as ``text/event-stream`` (what EventSource sends)."""
    return path in STREAM_PATHS or (path == "/" and "text/event-stream" in accept)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class Cors:
    """CORS answers from a list of allowed origins (``*`` allows any)."""

    ALLOW_HEADERS = b"Last-Event-ID, Cache-Control, Authorization, Content-Type, Accept"

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)
        self.any = "*" in self.origins

    def headers(self, scope: Scope) -> Headers:
        origin = header(scope, b"origin")
        if self.any:
            return [(b"access-control-allow-origin", b"*")]
        if origin is not None and origin in self.origins:
            return [(b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"vary", b"Origin")]
        return []

    def preflight(self, scope: Scope) -> Headers:
        return [
            *self.headers(scope),
            (b"access-control-allow-methods", b"GET, OPTIONS"),
            (b"access-control-allow-headers", self.ALLOW_HEADERS),
            (b"access-control-max-age", b"86400"),
        ]


async def respond(send: Send, status: int, body: bytes, content_type: bytes,
                  headers: Headers) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def respond_text(send: Send, status: int, reason: str, headers: Headers) -> None:
    """A one-line plain-text answer, used for every 4xx/5xx."""
    line = " ".join(reason.split()) + "\n"
    await respond(send, status, line.encode("utf-8"), b"text/plain; charset=utf-8", headers)


async def respond_json(send: Send, status: int, payload: Any, headers: Headers) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    await respond(send, status, body, b"application/json", headers)
