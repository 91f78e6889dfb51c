"""``otel-sse tail`` options: flags, then ``OTEL_SSE_*`` variables, then defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from otel_sse.client.transport import HTTP2Mode
from otel_sse.env import http_url, positive_seconds
from otel_sse.errors import ConfigError

__all__ = ["DEFAULT_JAEGER_URL", "TailConfig", "add_tail_arguments"]

DEFAULT_JAEGER_URL = "http://localhost:16686"
_DEFAULT_PORT = 3000


def add_tail_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tail`` command's flags."""
    parser.add_argument(
        "url", nargs="*",
        help="the stream, or several replicas of it to fail over between "
             f"(default: http://localhost:$OTEL_SSE_PORT/events, port {_DEFAULT_PORT})")
    parser.add_argument("--filters", default=None, help="only these event types, e.g. task:*,llm:*")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line ({id, event, data}), for piping")
    parser.add_argument("--token", default=None,
                        help="send 'Authorization: Bearer TOKEN' (default: $OTEL_SSE_TOKEN)")
    parser.add_argument("--http2", action="store_true",
                        help="HTTP/2: ALPN h2 on https:// URLs, h2c on http:// ones")
    parser.add_argument("--cacert", default=None, help="trust this CA bundle (PEM) for https://")
    parser.add_argument("--jaeger-url", default=None,
                        help="where trace links point (default: $OTEL_SSE_JAEGER_URL or "
                             f"{DEFAULT_JAEGER_URL})")
    parser.add_argument("--count", type=int, default=0,
                        help="stop after this many events (default 0: no limit)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")


@dataclasses.dataclass(frozen=True, slots=True)
class TailConfig:
    """Everything ``tail`` was asked to do. The token is kept out of ``repr``."""

    urls: tuple[str, ...]
    filters: tuple[str, ...] = ()
    json: bool = False
    count: int = 0
    duration: float | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    http2: bool = False
    cacert: str | None = None
    jaeger_url: str = DEFAULT_JAEGER_URL

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError("tail needs at least one URL")
        for url in self.urls:
            http_url(url, "url")
        http_url(self.jaeger_url, "--jaeger-url")
        if self.count < 0:
            raise ConfigError(f"--count must be >= 0, got {self.count!r}")
        if self.duration is not None:
            positive_seconds(self.duration, "--duration")
        if self.token is not None and (not self.token or any(c in self.token for c in "\r\n\0")):
            # The value itself is never echoed: it is a secret.
            raise ConfigError("--token / OTEL_SSE_TOKEN must be one non-empty line")
        if self.cacert is not None and not os.path.isfile(self.cacert):
            raise ConfigError(f"--cacert file not found: {self.cacert!r}")

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> TailConfig:
        """Flags first, then ``OTEL_SSE_TOKEN``, ``OTEL_SSE_JAEGER_URL`` and
        ``OTEL_SSE_PORT`` (for the default URL), then defaults."""
        env = os.environ if environ is None else environ
        urls = tuple(args.url or ())
        if not urls:
            port = env.get("OTEL_SSE_PORT") or str(_DEFAULT_PORT)
            if not port.isdigit():
                raise ConfigError(f"OTEL_SSE_PORT must be a port number, got {port!r}")
            urls = (f"http://localhost:{port}/events",)
        filters = tuple(f.strip() for f in (args.filters or "").split(",") if f.strip())
        return cls(
            urls=urls,
            filters=filters,
            json=bool(args.json),
            count=args.count,
            duration=args.duration,
            token=args.token if args.token is not None else env.get("OTEL_SSE_TOKEN") or None,
            http2=bool(args.http2),
            cacert=args.cacert,
            jaeger_url=args.jaeger_url or env.get("OTEL_SSE_JAEGER_URL") or DEFAULT_JAEGER_URL,
        )

    @property
    def http2_mode(self) -> HTTP2Mode:
        """HTTP/2 as the client names it: h2c needs prior knowledge when no URL is https."""
        if not self.http2:
            return False
        if all(urlsplit(url).scheme == "http" for url in self.urls):
            return "prior-knowledge"
        return True

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``SSEClient``."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        return {
            "url": list(self.urls),
            "filters": list(self.filters) or None,
            "headers": headers,
            "http2": self.http2_mode,
            "ca_file": self.cacert,
        }
