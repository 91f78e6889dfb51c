"""Requests and responses as plain values: what the protocols parse and the routes answer.

Nothing here touches a socket: HTTP/1.1 (h11), HTTP/2 (h2) and the ASGI adapter
all build a :class:`Request` and write a :class:`Response`, so every route is
written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[bytes, bytes]]
Address = tuple[str, int]


@dataclass(slots=True)
class Request:
    """One request; header names are lower case, ``path`` is percent-decoded."""

    method: str
    path: str
    query: str
    headers: Headers
    http_version: str  # "1.0", "1.1" or "2"
    scheme: str = "http"
    client: Address | None = None
    server: Address | None = None
    body: bytes = b""

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None

    @property
    def has_body(self) -> bool:
        """Whether the request announced a body (a length > 0, or chunked)."""
        for key, value in self.headers:
            if key == b"content-length":
                return value.strip() not in (b"", b"0")
            if key == b"transfer-encoding":
                return True
        return False


@dataclass(slots=True)
class Response:
    """A whole response. ``close``: end the connection after it (HTTP/1.1)."""

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    close: bool = False


def text_response(status: int, reason: str, headers: Headers | None = None,
                  close: bool = False) -> Response:
    """A one-line plain-text answer, used for every 4xx/5xx."""
    line = (" ".join(reason.split()) + "\n").encode("utf-8")
    return Response(status, [(b"content-type", b"text/plain; charset=utf-8"),
                             *(headers or [])], line, close)


def json_response(status: int, payload: Any, headers: Headers | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, [(b"content-type", b"application/json"), *(headers or [])], body)
