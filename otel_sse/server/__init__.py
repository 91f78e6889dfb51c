"""The HTTP side: the server lifecycle, the connection layer (h11, h2), routes."""

from otel_sse.server.config import ServerConfig
from otel_sse.server.server import SSEServer

__all__ = ["SSEServer", "ServerConfig"]
