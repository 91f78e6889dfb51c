"""Two agents doing tasks with LLM requests, streamed live and exported over OTLP:
the emitters and an SSE server in the application's own process.

    python examples/agent_run.py                       # live stream only
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python examples/agent_run.py

Watch it with the printed curl command or ``python examples/subscribe.py URL``; with
Jaeger running (OTLP on 4317, UI on 16686) open the printed trace URLs. Bob's second
task fails, so that a failure is there to see.

Options: ``--port`` (default ``$PORT`` or 3000; 0 picks a free one), ``--wait``
(seconds to wait for a subscriber before starting; it starts at once when one
connects), ``--token-delay`` (seconds per token).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import otel_sse
from otel_sse import AgentStream, LLMStream, LogLevel, SSEServer, TaskStream


async def agent_work(agent_id: str, name: str, agents: AgentStream, tasks: TaskStream,
                     llm: LLMStream, token_delay: float) -> None:
    agents.emit_agent_spawned(agent_id, name=name, type="coder")
    for n in range(3):
        task_id = f"{agent_id}-task-{n}"
        agents.emit_agent_started(agent_id, task_id)
        tasks.emit_task_created(task_id, name=f"{name} job {n}", agent_id=agent_id,
                                priority="normal")
        tasks.emit_task_started(task_id)
        request_id = f"{task_id}-llm"
        llm.emit_request_started(request_id, provider="anthropic", model="claude-sonnet",
                                 agent_id=agent_id, task_id=task_id,
                                 messages=[{"role": "user", "content": f"Write step {n}"}],
                                 parameters={"temperature": 0.3, "max_tokens": 200})
        words = ["Here", "is", "a", "small", "function", "that", "does", "the", "job", "."]
        for i, word in enumerate(words):
            llm.emit_token(request_id, word + " ", i, is_final=i == len(words) - 1,
                           finish_reason="stop" if i == len(words) - 1 else None)
            tasks.emit_progress(task_id, percentage=round(100 * (i + 1) / len(words)),
                                current_step="generating")
            await asyncio.sleep(token_delay)
        llm.emit_tool_call(request_id, tool_call_id=f"call-{n}", tool_name="write_file",
                           arguments='{"path": "main.py"}', is_complete=True)
        llm.emit_tool_result(request_id, tool_call_id=f"call-{n}", tool_name="write_file",
                             result={"success": True}, execution_time=12)
        llm.emit_request_completed(request_id, response=" ".join(words),
                                   usage={"prompt_tokens": 40, "completion_tokens": len(words),
                                          "total_tokens": 40 + len(words)}, duration=500)
        agents.emit_log(agent_id, LogLevel.INFO, f"finished {task_id}")
        if name == "bob" and n == 1:
            tasks.emit_task_failed(task_id, "tests failed")
        else:
            tasks.emit_task_completed(task_id, result={"files": 1})
    agents.emit_agent_stopped(agent_id)


class TraceIds(SpanProcessor):
    """Remembers the trace of every agent invocation, to print Jaeger links."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        if span.name.startswith("invoke_agent") and span.context is not None:
            trace_id = f"{span.context.trace_id:032x}"
            if trace_id not in self.ids:
                self.ids.append(trace_id)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--wait", type=float, default=5.0)
    parser.add_argument("--token-delay", type=float, default=0.05)
    return parser.parse_args(argv)


async def wait_for_subscriber(server: SSEServer, seconds: float) -> None:
    # The server announces no connections, so look for one now and then.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not server.get_clients():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    server = SSEServer(port=args.port, host="127.0.0.1")
    await server.start()
    telemetry = otel_sse.configure(service_name="otel-sse-example", server=server)
    traces = TraceIds()
    telemetry.tracer_provider.add_span_processor(traces)
    print(f"watch:  curl -N '{server.url}/events?filters=task:*,agent:*,llm:*'", flush=True)
    agents, tasks, llm = AgentStream(server), TaskStream(server), LLMStream(server)
    await wait_for_subscriber(server, args.wait)
    await asyncio.gather(agent_work("agent-1", "alice", agents, tasks, llm, args.token_delay),
                         agent_work("agent-2", "bob", agents, tasks, llm, args.token_delay))
    await asyncio.to_thread(telemetry.force_flush)
    for trace_id in traces.ids:
        print(f"trace:  http://localhost:16686/trace/{trace_id}", flush=True)
    await telemetry.ashutdown()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
