"""The HTTP side: an ASGI app on hypercorn (HTTP/1.1, HTTP/2 over TLS, h2c)."""

from otel_sse.server.config import ServerConfig
from otel_sse.server.server import SSEServer

__all__ = ["SSEServer", "ServerConfig"]
