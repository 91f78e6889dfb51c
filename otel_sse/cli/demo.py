"""``otel-sse demo``: a server and a simulated agent team recorded as real telemetry."""

from __future__ import annotations

import asyncio
import os

from otel_sse.cli.demo_team import run_team
from otel_sse.cli.runner import stop_event
from otel_sse.server import ServerConfig, SSEServer


def _banner(server: SSEServer, otlp_endpoint: str | None) -> str:
    url = f"{server.url}/events"
    lines = [
        f"otel-sse demo: streaming a simulated agent team on {url}",
        "",
        f"Open the live dashboard: {server.url}/dashboard"
        + ("#token=<your token>" if server.config.token else ""),
        "",
        "Watch it live:",
        f"  curl -N {url}",
        f"  curl -N --http2-prior-knowledge '{url}?filters=task:*,agent:*'",
        f"  curl -N '{url}?filters=llm:token'",
        f"  .venv/bin/otel-sse tail {url} --filters 'task:*'",
    ]
    if otlp_endpoint:
        lines.append(f"Traces go over OTLP to {otlp_endpoint}; every event's traceId opens in "
                     "Jaeger at http://localhost:16686/trace/<traceId>")
    lines.append(f"Health: curl {server.url}/healthz      Stop: Ctrl-C")
    return "\n".join(lines)


async def run_demo(config: ServerConfig, duration: float | None = None,
                   otlp_endpoint: str | None = None, rate: float = 1.0) -> int:
    stop = stop_event()
    server = SSEServer(config=config)
    await server.start()
    endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    print(_banner(server, endpoint), flush=True)
    team = asyncio.create_task(run_team(server, rate=rate, otlp_endpoint=otlp_endpoint))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({team, stopper}, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        team.cancel()
        results = await asyncio.gather(team, stopper, return_exceptions=True)
        await server.stop()
    error = results[0]
    if isinstance(error, Exception) and not isinstance(error, asyncio.CancelledError):
        raise error
    return 0
