"""The demo's agent team, recorded as real telemetry through the emitters.

Every event on the stream comes from a span or log record, so the ids match
what goes to Jaeger when an OTLP endpoint is configured.
"""

from __future__ import annotations

import asyncio
import random

from otel_sse.emitters import AgentStream, LLMStream, LogLevel, TaskStream
from otel_sse.server import SSEServer
from otel_sse.telemetry import configure

_TEXT = ("Here is the plan: read the failing test, patch the parser so that a CRLF split "
         "across two reads is one line end, then run the suite again.")
_ANSWER = _TEXT.split(" ")
_TEAM = (("agent-1", "coder-1", "coder"), ("agent-2", "reviewer-1", "reviewer"),
         ("agent-3", "tester-1", "tester"))


async def _one_task(n: int, agent: tuple[str, str, str], agents: AgentStream, tasks: TaskStream,
                    llm: LLMStream, rng: random.Random, rate: float) -> str:
    agent_id, name, kind = agent
    task_id, request_id = f"task-{n}", f"req-{n}"
    agents.emit_agent_started(agent_id, task_id)
    tasks.emit_task_created(task_id, name=f"{kind} job {n}", type=kind, priority="normal",
                            agent_id=agent_id)
    tasks.emit_task_assigned(task_id, agent_id)
    tasks.emit_task_started(task_id)
    llm.emit_request_started(
        request_id, provider="anthropic", model="claude-sonnet-4", agent_id=agent_id,
        task_id=task_id, system_prompt=f"You are {name}.",
        messages=[{"role": "user", "content": f"Fix issue #{n}"}],
        parameters={"temperature": 0.2, "max_tokens": 512})
    for index, word in enumerate(_ANSWER):
        last = index == len(_ANSWER) - 1
        llm.emit_token(request_id, word + ("" if last else " "), index, is_final=last,
                       finish_reason="stop" if last else None)
        tasks.emit_progress(task_id, percentage=round(100 * (index + 1) / len(_ANSWER)),
                            current_step="thinking", total_steps=3, current_step_number=1)
        await asyncio.sleep(0.04 / rate)
    llm.emit_tool_call(request_id, tool_call_id=f"call-{n}", tool_name="run_tests",
                       arguments='{"path": "tests/"}', is_complete=True)
    await asyncio.sleep(0.2 / rate)
    failed = rng.random() < 0.2
    llm.emit_tool_result(request_id, tool_call_id=f"call-{n}", tool_name="run_tests",
                         result={"passed": not failed}, execution_time=200)
    llm.emit_request_completed(
        request_id, response=" ".join(_ANSWER), duration=round(1000 * len(_ANSWER) * 0.04),
        usage={"prompt_tokens": 120, "completion_tokens": len(_ANSWER),
               "total_tokens": 120 + len(_ANSWER), "cost": 0.0021})
    agents.emit_output(agent_id, "stdout", f"{'1 failed' if failed else '42 passed'} in 0.8s")
    agents.emit_log(agent_id, LogLevel.WARN if failed else LogLevel.INFO,
                    f"{task_id} {'failed' if failed else 'done'}", {"taskId": task_id})
    if failed:
        tasks.emit_task_failed(task_id, "1 test failed")
    else:
        tasks.emit_task_completed(task_id, result={"files_changed": 1},
                                  metrics={"execution_time": 1500, "token_count": 140})
    return task_id


async def run_team(server: SSEServer, rate: float = 1.0, otlp_endpoint: str | None = None) -> None:
    telemetry = configure(service_name="otel-sse-demo", server=server,
                                   otlp_endpoint=otlp_endpoint, set_global=False)
    agents = AgentStream(server, telemetry=telemetry)
    tasks = TaskStream(server, telemetry=telemetry, progress_update_interval=0.25)
    llm = LLMStream(server, telemetry=telemetry)
    rng = random.Random(7)
    try:
        for agent_id, name, kind in _TEAM:
            agents.emit_agent_spawned(agent_id, name=name, type=kind)
        n = 0
        while True:
            batch = []
            for agent in _TEAM:
                n += 1
                batch.append(_one_task(n, agent, agents, tasks, llm, rng, rate))
            await asyncio.gather(*batch)
            for agent_id, *_ in _TEAM:
                agents.emit_metrics(agent_id, tasks_completed=n // 3, tasks_failed=0,
                                    avg_execution_time=1500, cpu_usage=12.5,
                                    memory_usage=64_000_000, total_tokens=140 * n // 3,
                                    total_cost=0.002 * n / 3, uptime=1000 * n)
            await asyncio.sleep(0.5 / rate)
    finally:
        await asyncio.to_thread(telemetry.shutdown)
