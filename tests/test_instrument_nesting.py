"""Nesting without ids: decorated calls inside decorated calls become child spans and
carry ``agentId``/``taskId`` links, across asyncio tasks and across threads where
the context goes along (``copy_context().run``, ``asyncio.to_thread``, a
``ThreadPoolExecutor`` given the context), and not where it does not (a bare thread)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import otel_sse
from tests.instrument_rig import Frames, of, rig, seeds


@otel_sse.tool("lookup")
def lookup(label: str) -> str:
    return label.upper()


@otel_sse.task("step")
async def step(label: str) -> str:
    await asyncio.sleep(0)
    with otel_sse.llm_request(provider="openai", model="gpt-test",
                              messages=[{"role": "user", "content": label}]) as request:
        for _ in request.wrap([
                {"choices": [{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "id": f"call-{label}", "type": "function",
                     "function": {"name": "lookup", "arguments": "{}"}}]}}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]):
            await asyncio.sleep(0)
    return lookup(label)


@otel_sse.task("sync step")
def sync_step(label: str) -> str:
    return lookup(label)


def _by_task(frames: Frames) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for event_type, data in seeds(frames):
        if "taskId" in data:
            out.setdefault(data["taskId"], []).append((event_type, data))
    return out


async def test_nesting_across_asyncio_tasks() -> None:
    @otel_sse.agent("lead")
    async def lead() -> list[str]:
        return list(await asyncio.gather(step("a"), step("b"), asyncio.create_task(step("c"))))

    async with rig(capture_content=True) as r:
        results: list[list[str]] = []

        async def body() -> None:
            results.append(await lead())

        frames = await r.run(body)
        spans = await r.spans(1 + 1 + 3 * 3)  # create_agent, invoke_agent, 3 x task/chat/tool
    assert results == [["A", "B", "C"]]
    events = seeds(frames)
    agent = of(events, "agent:started")[0]
    agent_span = spans[agent["spanId"]]
    tasks = of(events, "task:created")
    assert len(tasks) == 3
    for task in tasks:
        assert task["agentId"] == agent["agentId"]
        task_span = spans[task["spanId"]]
        assert task_span["parent_span_id"] == agent_span["span_id"]
        assert task_span["trace_id"] == agent_span["trace_id"]
    for task_id, task_events in _by_task(frames).items():
        task = next(d for t, d in task_events if t == "task:created")
        started = next(d for t, d in task_events if t == "llm:request:started")
        assert started["agentId"] == agent["agentId"] and started["taskId"] == task_id
        assert spans[started["spanId"]]["parent_span_id"] == task["spanId"]
        call = next(d for t, d in task_events if t == "llm:tool:call")
        result = next(d for t, d in task_events if t == "llm:tool:result")
        # The tool answers the request of its own task, with the model's call id.
        assert call["requestId"] == started["requestId"]
        assert call["toolCallId"] == result["toolCallId"] == f"call-{result['result'].lower()}"
        assert spans[call["spanId"]]["parent_span_id"] == task["spanId"]
        assert spans[call["spanId"]]["name"] == "execute_tool lookup"


async def test_nesting_across_threads_where_the_context_goes_along() -> None:
    @otel_sse.agent("dispatcher")
    async def dispatcher() -> dict[str, str]:
        out: dict[str, str] = {}

        def in_thread(label: str) -> None:
            out[label] = sync_step(label)

        # A thread started with a copy of this context.
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(in_thread, "copied"))
        thread.start()
        # asyncio.to_thread copies the context itself.
        await asyncio.to_thread(in_thread, "to_thread")
        # A pool given the context with each job.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(contextvars.copy_context().run, in_thread, "pool").result()
        # A bare thread starts with an empty context: its task is a root of its own.
        bare = threading.Thread(target=in_thread, args=("bare",))
        bare.start()
        await asyncio.to_thread(thread.join)
        await asyncio.to_thread(bare.join)
        return out

    async with rig(capture_content=True) as r:
        results: list[dict[str, str]] = []

        async def body() -> None:
            results.append(await dispatcher())

        frames = await r.run(body)
        spans = await r.spans(2 + 4 * 2)
    assert results == [{"copied": "COPIED", "to_thread": "TO_THREAD", "pool": "POOL",
                        "bare": "BARE"}]
    events = seeds(frames)
    agent = of(events, "agent:started")[0]
    agent_span = spans[agent["spanId"]]
    by_label = {}
    for task_id, task_events in _by_task(frames).items():
        result = next(d for t, d in task_events if t == "llm:tool:result")
        by_label[result["result"].lower()] = (task_id, task_events)
    assert set(by_label) == {"copied", "to_thread", "pool", "bare"}
    for label in ("copied", "to_thread", "pool"):
        task_id, task_events = by_label[label]
        task = next(d for t, d in task_events if t == "task:created")
        assert task["agentId"] == agent["agentId"], label
        assert spans[task["spanId"]]["parent_span_id"] == agent_span["span_id"], label
        assert spans[task["spanId"]]["trace_id"] == agent_span["trace_id"], label
        tool = next(d for t, d in task_events if t == "llm:tool:call")
        assert tool["agentId"] == agent["agentId"] and tool["taskId"] == task_id
        assert spans[tool["spanId"]]["parent_span_id"] == task["spanId"]
    _, bare_events = by_label["bare"]
    bare_task = next(d for t, d in bare_events if t == "task:created")
    assert "agentId" not in bare_task
    assert spans[bare_task["spanId"]]["parent_span_id"] is None
    assert spans[bare_task["spanId"]]["trace_id"] != agent_span["trace_id"]
    # Within its own thread the bare task still nests its tool.
    bare_tool = next(d for t, d in bare_events if t == "llm:tool:call")
    assert spans[bare_tool["spanId"]]["parent_span_id"] == bare_task["spanId"]


async def test_third_party_spans_nest_under_the_decorated_call() -> None:
    @otel_sse.task("with a foreign span")
    def traced() -> None:
        tracer = r.tel.tracer_provider.get_tracer("someone-else")
        with tracer.start_as_current_span("GET /weather"):
            pass

    async with rig() as r:
        frames = await r.run(lambda: asyncio.to_thread(traced))
        spans = await r.spans(2)
    task = of(frames, "task:created")[0]
    foreign = next(s for s in spans.values() if s["name"] == "GET /weather")
    assert foreign["parent_span_id"] == task["spanId"]
    assert foreign["trace_id"] == task["traceId"]
