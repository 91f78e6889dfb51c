"""Two agents doing tasks with LLM requests, streamed live and exported over OTLP.

    python examples/agent_run.py                       # live stream only
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python examples/agent_run.py

Watch it with the printed curl command; with Jaeger running (OTLP on 4317, UI on
16686) open the printed trace URL.
"""

from __future__ import annotations

import asyncio
import os
import random

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import otel_sse
from otel_sse import AgentStream, LLMStream, LogLevel, SSEServer, TaskStream


async def agent_work(agent_id: str, name: str, agents: AgentStream, tasks: TaskStream,
                     llm: LLMStream) -> None:
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
            await asyncio.sleep(0.05)
        llm.emit_tool_call(request_id, tool_call_id=f"call-{n}", tool_name="write_file",
                           arguments='{"path": "main.py"}', is_complete=True)
        llm.emit_tool_result(request_id, tool_call_id=f"call-{n}", tool_name="write_file",
                             result={"success": True}, execution_time=12)
        llm.emit_request_completed(request_id, response=" ".join(words),
                                   usage={"prompt_tokens": 40, "completion_tokens": len(words),
                                          "total_tokens": 40 + len(words)}, duration=500)
        agents.emit_log(agent_id, LogLevel.INFO, f"finished {task_id}")
        if random.random() < 0.2:
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


async def main() -> None:
    server = SSEServer(port=int(os.environ.get("PORT", "3000")), host="127.0.0.1")
    await server.start()
    telemetry = otel_sse.configure(service_name="otel-sse-example", server=server)
    traces = TraceIds()
    telemetry.tracer_provider.add_span_processor(traces)
    print(f"watch:  curl -N '{server.url}/events?filters=task:*,agent:*,llm:*'")
    agents, tasks, llm = AgentStream(server), TaskStream(server), LLMStream(server)
    await asyncio.sleep(2)  # time to start curl
    await asyncio.gather(agent_work("agent-1", "alice", agents, tasks, llm),
                         agent_work("agent-2", "bob", agents, tasks, llm))
    await asyncio.to_thread(telemetry.force_flush)
    for trace_id in traces.ids:
        print(f"trace:  http://localhost:16686/trace/{trace_id}")
    await telemetry.ashutdown()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
