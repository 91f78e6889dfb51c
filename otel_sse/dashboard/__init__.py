"""The live dashboard: a single page shipped in the package (no build step).

``GET /dashboard`` (and ``GET /`` from a browser) serves ``static/index.html``
with the Jaeger URL it links traces to; ``/dashboard/<file>`` serves the rest of
``static/``. The page holds no data: it subscribes to ``/events`` with the
browser's ``EventSource`` (see :mod:`otel_sse.server.auth` for how a page
authenticates when the server wants a token).
"""

from __future__ import annotations

import html
import mimetypes
from importlib import resources

from otel_sse.server.request import Request, Response, text_response

_CACHE = b"no-cache"  # revalidated each time: the page and its scripts change together
_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8",
          ".html": b"text/html; charset=utf-8", ".svg": b"image/svg+xml",
          ".png": b"image/png", ".ico": b"image/x-icon"}
_SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
                                 b"style-src 'self'; script-src 'self'; connect-src 'self'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
]


class DashboardRoute:
    """Serves the page and its files; ``jaeger_url`` is written into the page."""

    max_body = 0

    def __init__(self, jaeger_url: str) -> None:
        self.files = resources.files(__package__) / "static"
        page = (self.files / "index.html").read_text(encoding="utf-8")
        self.page = page.replace("{{JAEGER_URL}}", html.escape(jaeger_url.rstrip("/"),
                                                               quote=True)).encode()

    def __call__(self, request: Request) -> Response:
        path = request.path
        if path in ("/", "/dashboard", "/dashboard/", "/dashboard/index.html"):
            return Response(200, [(b"content-type", _TYPES[".html"]),
                                  (b"cache-control", _CACHE), *_SECURITY], self.page)
        name = path.removeprefix("/dashboard/")
        if not name or "/" in name or name.startswith(".") or "\\" in name:
            return text_response(404, f"no such dashboard file {name[:60]!r}")
        resource = self.files / name
        if not resource.is_file():
            return text_response(404, f"no such dashboard file {name[:60]!r}")
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        kind = _TYPES.get(suffix) or (mimetypes.guess_type(name)[0] or
                                      "application/octet-stream").encode()
        return Response(200, [(b"content-type", kind), (b"cache-control", _CACHE), *_SECURITY],
                        resource.read_bytes())
