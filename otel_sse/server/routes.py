"""Routes, and the one place where every request is checked before it reaches one.

:meth:`Router.admit` sees each request head first (whatever the protocol:
HTTP/1.1, HTTP/2, or the ASGI adapter) and either answers it at once or names
the route and how large a body it may send; :meth:`Router.handle` runs the
route and adds the headers every answer carries (CORS, the configured ones).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from otel_sse.server.config import ServerConfig
from otel_sse.server.request import Headers, Request, Response, json_response, text_response
from otel_sse.server.stream import EventStream, StreamRoute, is_stream_request

logger = logging.getLogger("otel_sse.server")

Result = Response | EventStream
_R = TypeVar("_R", Response, EventStream, Response | EventStream)


class Route(Protocol):
    """A handler: ``max_body`` bytes of request body at most (0: none)."""

    max_body: int

    def __call__(self, request: Request) -> Result: ...


class Cors:
    """CORS answers from a list of allowed origins (``*`` allows any, when listed)."""

    ALLOW_HEADERS = b"Last-Event-ID, Cache-Control, Authorization, Content-Type, Accept"

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)
        self.any = "*" in self.origins

    def headers(self, request: Request) -> Headers:
        if self.any:
            return [(b"access-control-allow-origin", b"*")]
        origin = request.header(b"origin")
        if origin is not None and origin in self.origins:
            return [(b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"vary", b"Origin")]
        return []

    def preflight(self, request: Request) -> Headers:
        allowed = self.headers(request)
        if not allowed:
            return []
        return [*allowed,
                (b"access-control-allow-methods", b"GET, HEAD, POST, OPTIONS"),
                (b"access-control-allow-headers", self.ALLOW_HEADERS),
                (b"access-control-max-age", b"86400")]


class _Fixed:
    """A route whose answer does not depend on a body."""

    max_body = 0

    def __init__(self, answer: Callable[[Request], Result]) -> None:
        self.answer = answer

    def __call__(self, request: Request) -> Result:
        return self.answer(request)


class Router:
    """The server's routes behind one admission check."""

    def __init__(self, config: ServerConfig, stream: StreamRoute,
                 health: Callable[[], dict[str, object]]) -> None:
        self.config = config
        self.cors = Cors(config.cors_origins)
        self.extra_headers: Headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in config.headers
        ]
        self.stream = stream
        self._health = _Fixed(lambda request: json_response(200, health()))
        self._root = _Fixed(lambda request: text_response(
            200, "otel-sse: the event stream is at GET /events (Accept: text/event-stream); "
            "health at GET /healthz"))
        self.errors = 0

    def admit(self, request: Request) -> Response | Route:
        """Answer now (an error, a preflight) or name the route for this request."""
        method, path = request.method, request.path
        if method == "OPTIONS":
            return Response(204, self.cors.preflight(request))
        if path == "/healthz":
            return self._health if method in ("GET", "HEAD") else self._not_allowed(
                request, "GET, HEAD, OPTIONS")
        if is_stream_request(request):
            return self.stream if method in ("GET", "HEAD") else self._not_allowed(
                request, "GET, HEAD, OPTIONS")
        if path == "/":
            return self._root if method in ("GET", "HEAD") else self._not_allowed(
                request, "GET, HEAD, OPTIONS")
        return text_response(404, f"no such path {path[:100]!r}; the stream is at /events")

    @staticmethod
    def _not_allowed(request: Request, allow: str) -> Response:
        return text_response(405, f"method {request.method[:20]} not allowed here",
                             [(b"allow", allow.encode())])

    def handle(self, route: Route, request: Request) -> Result:
        """Run ``route``; an exception in it is a 500 (logged), never a dropped connection."""
        try:
            return route(request)
        except Exception:
            self.errors += 1
            logger.exception("error answering %s %s", request.method, request.path[:100])
            return text_response(500, "internal server error", close=True)

    def finish(self, request: Request | None, result: _R) -> _R:
        """Add the headers every answer carries (CORS once the request is known)."""
        if request is not None and not any(
                name == b"access-control-allow-origin" for name, _ in result.headers):
            result.headers += self.cors.headers(request)
        result.headers += self.extra_headers
        return result
