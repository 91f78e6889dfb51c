"""``otel-sse demo``: the gateway, and an agent team that streams to it from another process.

The workload (:mod:`otel_sse.demo.workload`) runs as a separate process and
reaches the gateway the way any application would: ``configure(gateway=...)``,
OTLP over HTTP. Its LLM calls go to a local stub model that streams tokens.
With ``--gateway URL`` only the workload runs, against a gateway elsewhere
(compose/docker-compose.yml runs it that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from otel_sse.cli.runner import stop_event
from otel_sse.server import ServerConfig, SSEServer

_WORKLOAD = "otel_sse.demo.workload"


def banner(server: SSEServer) -> str:
    """Where to look, with commands that work wherever the package is installed."""
    url = f"{server.url}/events"
    token = server.config.token
    auth = " -H \"Authorization: Bearer $OTEL_SSE_TOKEN\"" if token else ""
    lines = [
        f"otel-sse demo: an agent team streaming live through the gateway at {server.url}",
        "",
        f"  dashboard:  {server.url}/dashboard" + ("#token=$OTEL_SSE_TOKEN" if token else ""),
        f"  tail:       {sys.executable} -m otel_sse tail {url}"
        + (" --token $OTEL_SSE_TOKEN" if token else ""),
        f"  curl:       curl -N{auth} '{url}?filters=task:*,agent:*'",
        f"              curl -N{auth} --http2-prior-knowledge '{url}?filters=llm:token'",
        f"  Jaeger:     {server.config.jaeger_url} (when it runs: the workload exports there)",
        f"  health:     curl {server.url}/healthz",
        "",
        "Stop: Ctrl-C",
    ]
    return "\n".join(lines)


async def run_demo(config: ServerConfig, duration: float | None = None, rate: float = 1.0,
                   gateway: str | None = None) -> int:
    """Serve (unless ``gateway`` is given) and run the workload until Ctrl-C or ``duration``."""
    stop = stop_event()
    if gateway is not None:
        from otel_sse.demo.workload import run

        token = (os.environ.get("OTEL_SSE_GATEWAY_TOKEN")
                 or os.environ.get("OTEL_SSE_PRODUCER_TOKEN") or os.environ.get("OTEL_SSE_TOKEN"))
        work = asyncio.ensure_future(run(gateway, token, rate, None, stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(work), duration)
        stop.set()
        await work
        return 0
    server = SSEServer(config=config)
    await server.start()
    env = dict(os.environ)
    if config.ingest_token:
        env["OTEL_SSE_GATEWAY_TOKEN"] = config.ingest_token
    workload = await asyncio.create_subprocess_exec(
        sys.executable, "-m", _WORKLOAD, "--gateway", server.url, "--rate", str(rate), env=env)
    print(banner(server), flush=True)
    try:
        stopped = asyncio.ensure_future(stop.wait())
        ended = asyncio.ensure_future(workload.wait())
        await asyncio.wait({stopped, ended}, timeout=duration,
                           return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
    finally:
        if workload.returncode is None:
            workload.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(workload.wait(), 10)
            except TimeoutError:
                workload.kill()
                await workload.wait()
        await server.stop()
    return 0 if workload.returncode in (0, -signal.SIGTERM) else 1
