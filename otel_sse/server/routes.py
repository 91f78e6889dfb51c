"""Routes, and the one place where every request is checked before it reaches one.

:meth:`Router.admit` sees each request head first (whatever the protocol:
HTTP/1.1, HTTP/2, or the ASGI adapter): the host name, CORS preflights, the
route and method, and credentials (:mod:`~otel_sse.server.auth`). It answers
at once or names the route and how large a body it may send;
:meth:`Router.handle` runs the route, and :meth:`Router.finish` adds the
headers every answer carries (CORS, the configured ones).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from otel_sse.server.auth import Access, Gate
from otel_sse.server.config import ServerConfig
from otel_sse.server.request import Headers, Request, Response, json_response, text_response
from otel_sse.server.stream import EventStream, StreamRoute, is_stream_request

logger = logging.getLogger("otel_sse.server")

Result = Response | EventStream
_R = TypeVar("_R", Response, EventStream, Response | EventStream)


class Route(Protocol):
    """A handler: ``max_body`` bytes of request body at most (0: none). It may
    answer at once or return an awaitable of its answer (work that yields)."""

    max_body: int

    def __call__(self, request: Request) -> Result | Awaitable[Result]: ...


@dataclass(frozen=True, slots=True)
class Entry:
    methods: frozenset[str]
    access: Access
    route: Route


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


class Answer:
    """A route whose answer does not depend on a body."""

    max_body = 0

    def __init__(self, answer: Callable[[Request], Result]) -> None:
        self.answer = answer

    def __call__(self, request: Request) -> Result:
        return self.answer(request)


class Router:
    """The server's routes behind one admission check."""

    def __init__(self, config: ServerConfig, stream: StreamRoute,
                 health: Callable[[], dict[str, object]], gate: Gate | None = None) -> None:
        self.config = config
        self.gate = gate or Gate(config)
        self.cors = Cors(config.cors_origins)
        self.extra_headers: Headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in config.headers
        ]
        self.stream = stream
        self.routes: dict[str, Entry] = {}
        self.prefixes: dict[str, Entry] = {}
        self._page: Entry | None = None
        self.errors = 0
        get = frozenset({"GET", "HEAD"})
        self.add("/healthz", get, Access.SUBSCRIBE, Answer(lambda r: json_response(200, health())))
        self.add("/", get, Access.SUBSCRIBE, Answer(lambda r: text_response(
            200, "otel-sse: the event stream is at GET /events (Accept: text/event-stream); "
            "health at GET /healthz")))
        if self.gate.auth_required:
            self.add("/v1/session", frozenset({"POST", "DELETE"}), Access.SUBSCRIBE,
                     Answer(self._session))
        self._stream = Entry(get, Access.SUBSCRIBE, stream)
        self._liveness = Answer(lambda r: json_response(200, {"status": health()["status"]}))

    def add(self, path: str, methods: Iterable[str], access: Access, route: Route,
            prefix: bool = False) -> None:
        """Serve ``route`` at ``path`` (every path under it, with ``prefix``)."""
        entry = Entry(frozenset(methods), access, route)
        (self.prefixes if prefix else self.routes)[path] = entry

    def set_page(self, methods: Iterable[str], access: Access, route: Route) -> None:
        """What ``GET /`` answers a browser (``Accept: text/html``): the dashboard."""
        self._page = Entry(frozenset(methods), access, route)

    def _lookup(self, request: Request) -> Entry | None:
        if is_stream_request(request):
            return self._stream
        path = request.path
        if path == "/" and self._page is not None and \
                "text/html" in (request.header(b"accept") or ""):
            return self._page
        entry = self.routes.get(path)
        if entry is not None:
            return entry
        for prefix, candidate in self.prefixes.items():
            if path.startswith(prefix):
                return candidate
        return None

    def admit(self, request: Request) -> Response | Route:
        """Answer now (an error, a preflight) or name the route for this request."""
        refused = self.gate.host_refused(request)
        if refused is not None:
            return refused
        method, path = request.method, request.path
        if method == "OPTIONS":
            return Response(204, self.cors.preflight(request))
        entry = self._lookup(request)
        if entry is None:
            return text_response(404, f"no such path {path[:100]!r}; the stream is at /events")
        if method not in entry.methods:
            allow = ", ".join(sorted(entry.methods | {"OPTIONS"}))
            return text_response(405, f"method {method[:20]} not allowed here",
                                 [(b"allow", allow.encode())])
        denied = self.gate.refused(request, entry.access)
        if denied is not None:
            if path == "/healthz" and request.header(b"authorization") is None:
                return self._liveness  # liveness needs no token; the stats do
            return denied
        return entry.route

    def _session(self, request: Request) -> Response:
        if request.method == "DELETE":
            return Response(204, [(b"set-cookie", self.gate.clear_cookie())])
        return Response(204, [(b"set-cookie", self.gate.session_cookie()),
                              (b"cache-control", b"no-store")])

    def handle(self, route: Route, request: Request) -> Result | Awaitable[Result]:
        """Run ``route``; an exception in it is a 500 (logged), never a dropped connection."""
        try:
            result = route(request)
        except Exception:
            return self._failed(request)
        if inspect.isawaitable(result):
            return self._awaited(result, request)
        return result

    async def _awaited(self, result: Awaitable[Result], request: Request) -> Result:
        try:
            return await result
        except Exception:
            return self._failed(request)

    def _failed(self, request: Request) -> Response:
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
