"""The multi-agent scenario: three agents working through twenty tasks with our
emitters (LLM requests streaming tokens, tool calls, failures), concurrently
from threads and asyncio, or sequentially on one thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from otel_sse.emitters import AgentStream, LLMStream, TaskStream
from otel_sse.telemetry import Telemetry

N_TASKS = 20
AGENTS = ("agent-0", "agent-1", "agent-2")


class Workload:
    """20 tasks across 3 agents; each task makes an LLM request that streams tokens
    and calls a tool; every 5th task fails (its LLM request errors)."""

    def __init__(self, tel: Telemetry, server: Any, interval: float = 0.01) -> None:
        self.tasks = TaskStream(server, telemetry=tel, progress_update_interval=interval)
        self.agents = AgentStream(server, telemetry=tel, metrics_update_interval=interval)
        self.llm = LLMStream(server, telemetry=tel)
        self.tokens: Counter[str] = Counter()
        self.max_call = 0.0
        self._lock = threading.Lock()

    def timed(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        fn(*args, **kwargs)
        elapsed = time.perf_counter() - start
        with self._lock:
            self.max_call = max(self.max_call, elapsed)

    def run_task(self, agent_id: str, n: int) -> None:
        t = self.timed
        task_id, request_id = f"task-{n}", f"req-{n}"
        t(self.agents.emit_agent_started, agent_id, task_id)
        t(self.tasks.emit_task_created, task_id, name=f"job {n}", agent_id=agent_id,
          type="code", priority="normal")
        t(self.tasks.emit_task_started, task_id)
        t(self.agents.emit_output, agent_id, "stdout", f"working on {task_id}")
        for pct in (10, 50, 100):
            t(self.tasks.emit_progress, task_id, percentage=pct, current_step=f"step {pct}")
        t(self.llm.emit_request_started, request_id, provider="anthropic",
          model=f"model-{n % 2}", task_id=task_id, agent_id=agent_id,
          messages=[{"role": "user", "content": f"do {n}"}],
          parameters={"temperature": 0.2, "max_tokens": 64})
        count = 5 + n % 4
        for i in range(count):
            t(self.llm.emit_token, request_id, f"tok{i} ", i, is_final=i == count - 1)
        with self._lock:
            self.tokens[request_id] = count
        t(self.llm.emit_tool_call, request_id, tool_call_id=f"call-{n}", tool_name="search",
          arguments='{"q": "x"}', is_complete=True)
        t(self.llm.emit_tool_result, request_id, tool_call_id=f"call-{n}", tool_name="search",
          result={"hits": n}, execution_time=3)
        if n % 5 == 4:
            t(self.llm.emit_request_error, request_id, "overloaded", error_type="server_error")
            t(self.tasks.emit_task_failed, task_id, "llm failed")
        else:
            t(self.llm.emit_request_completed, request_id, response="done",
              usage={"prompt_tokens": 10 + n, "completion_tokens": count,
                     "total_tokens": 10 + n + count}, duration=12)
            t(self.tasks.emit_task_completed, task_id, result={"n": n},
              metrics={"execution_time": 12})
        t(self.agents.emit_metrics, agent_id, tasks_completed=n, cpu_usage=5)

    def agent_ids(self, index: int) -> list[int]:
        return [n for n in range(N_TASKS) if n % len(AGENTS) == index]

    async def run(self) -> None:
        for index, agent_id in enumerate(AGENTS):
            self.agents.emit_agent_spawned(agent_id, name=f"coder-{index}", type="coder")

        def threaded(index: int) -> None:
            for n in self.agent_ids(index):
                self.run_task(AGENTS[index], n)
            self.agents.emit_agent_stopped(AGENTS[index])

        async def in_asyncio(index: int) -> None:
            for n in self.agent_ids(index):
                self.run_task(AGENTS[index], n)
                await asyncio.sleep(0)
            self.agents.emit_agent_stopped(AGENTS[index])

        threads = [threading.Thread(target=threaded, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        await in_asyncio(2)
        def join() -> None:
            for thread in threads:
                thread.join()

        await asyncio.get_running_loop().run_in_executor(None, join)

    def run_sequential(self) -> None:
        """The same work on this thread, one task after another: its telemetry has
        one order, which a stream and an OTLP export can be compared on."""
        for index, agent_id in enumerate(AGENTS):
            self.agents.emit_agent_spawned(agent_id, name=f"coder-{index}", type="coder")
        for n in range(N_TASKS):
            self.run_task(AGENTS[n % len(AGENTS)], n)
        for agent_id in AGENTS:
            self.agents.emit_agent_stopped(agent_id)
