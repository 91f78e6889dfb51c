"""The lines ``serve`` prints at start: where to look, for one process or several."""

from __future__ import annotations

import sys

from otel_sse.server.config import ServerConfig


def banner(url: str, config: ServerConfig, grpc_port: int | None) -> str:
    """Where to look: the stream, the dashboard, ingest, and how to tail it."""
    token = " --token $OTEL_SSE_TOKEN" if config.token else ""
    page = f"{url}/dashboard" + ("#token=<your token>" if config.token else "")
    lines = [f"otel-sse serving {url}/events",
             f"  dashboard:  {page}",
             f"  tail:       {sys.executable} -m otel_sse tail {url}/events{token}",
             f"  OTLP/HTTP:  {url}/v1/traces, /v1/logs, /v1/metrics"]
    if grpc_port is not None:
        lines.append(f"  OTLP/gRPC:  {url.rsplit(':', 1)[0]}:{grpc_port}")
    lines.append(f"  traces:     {config.jaeger_url}")
    return "\n".join(lines)
