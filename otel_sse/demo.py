"""``otel-sse demo``: a server and a simulated agent team publishing a realistic mix."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from otel_sse.server import SSEServer

WORDS = ("Here", " is", " the", " plan", ":", " read", " the", " file", ",", " patch",
         " the", " parser", ",", " run", " the", " tests", ".")


def _banner(server: SSEServer) -> str:
    url = f"{server.url}/events"
    lines = [
        f"otel-sse demo: streaming a simulated agent team on {url}",
        "",
        "Watch it live:",
        f"  curl -N {url}",
        f"  curl -N --http2-prior-knowledge '{url}?filters=task:*,agent:*'",
        f"  curl -N '{url}?filters=llm:token'",
        "  .venv/bin/otel-sse tail --filters 'task:*'",
        f"Health: curl {server.url}/healthz      Stop: Ctrl-C",
    ]
    return "\n".join(lines)


async def run_demo(server_options: dict[str, Any], duration: float | None = None,
                   otlp_endpoint: str | None = None, rate: float = 1.0) -> int:
    from otel_sse.cli import stop_event

    stop = stop_event()
    options = {k: v for k, v in server_options.items() if v is not None}
    options.setdefault("host", "127.0.0.1")
    server = SSEServer(**options)
    await server.start()
    print(_banner(server), flush=True)
    try:
        from otel_sse.demo_team import run_team  # the telemetry-backed scenario, when present
    except ImportError:
        run_team = None
    team = asyncio.create_task(
        run_team(server, rate=rate, otlp_endpoint=otlp_endpoint) if run_team is not None
        else _publish_mix(server, rate))
    try:
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({team, stopper}, timeout=duration,
                                     return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if team in done and team.exception() is not None:
            raise team.exception()  # type: ignore[misc]
    except asyncio.CancelledError:
        pass
    finally:
        team.cancel()
        await asyncio.gather(team, return_exceptions=True)
        await server.stop()
    return 0


async def _publish_mix(server: SSEServer, rate: float) -> None:
    """Contract-shaped task/agent/LLM events straight onto the bus."""
    rng = random.Random(7)
    agents = [("agent-1", "coder-1", "coder"), ("agent-2", "reviewer-1", "reviewer")]
    for agent_id, name, kind in agents:
        server.publish("agent:spawned", {"agentId": agent_id, "status": "idle",
                                         "name": name, "type": kind})
    n = 0
    while True:
        n += 1
        agent_id = agents[n % len(agents)][0]
        task_id, request_id = f"task-{n}", f"req-{n}"
        server.publish("task:created", {"taskId": task_id, "status": "pending",
                                        "name": f"Task {n}", "type": "code"})
        server.publish("agent:started", {"agentId": agent_id, "status": "busy",
                                         "currentTaskId": task_id})
        server.publish("task:started", {"taskId": task_id, "status": "running",
                                        "agentId": agent_id})
        server.publish("llm:request:started", {
            "requestId": request_id, "provider": "anthropic", "model": "claude-sonnet",
            "agentId": agent_id, "taskId": task_id,
            "messages": [{"role": "user", "content": f"Work on task {n}"}]})
        for index, word in enumerate(WORDS):
            server.publish("llm:token", {"requestId": request_id, "provider": "anthropic",
                                         "model": "claude-sonnet", "token": word,
                                         "index": index})
            await asyncio.sleep(0.03 / rate)
        usage = {"promptTokens": 40, "completionTokens": len(WORDS),
                 "totalTokens": 40 + len(WORDS)}
        server.publish("llm:request:completed", {
            "requestId": request_id, "provider": "anthropic", "model": "claude-sonnet",
            "response": "".join(WORDS), "usage": usage, "duration": 600})
        for pct in (25, 50, 75, 100):
            server.publish("task:progress", {"taskId": task_id, "status": "running", "progress": {
                "taskId": task_id, "percentage": pct, "currentStep": f"step {pct // 25}"}})
            await asyncio.sleep(0.1 / rate)
        server.publish("agent:output:stdout", {"agentId": agent_id, "stream": "stdout",
                                               "data": f"tests passed for {task_id}"})
        outcome = "task:failed" if rng.random() < 0.2 else "task:completed"
        payload: dict[str, Any] = {"taskId": task_id, "agentId": agent_id,
                                   "status": outcome.split(":")[1]}
        if outcome == "task:failed":
            payload["error"] = "tests failed"
        else:
            payload["result"] = {"output": "patched"}
        server.publish(outcome, payload)
        await asyncio.sleep(0.5 / rate)
