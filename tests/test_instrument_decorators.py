"""``@otel_sse.task``, ``@otel_sse.agent`` and ``@otel_sse.tool`` on every kind of
function (sync, async, generator, async generator), succeeding and raising: the
events on a real SSE subscription, the spans at a real OTLP receiver, the same
ids in both, and the exception re-raised unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest

import otel_sse
from otel_sse.errors import ConfigError
from otel_sse.instrumentation import current_frame
from tests.instrument_rig import Frames, Rig, of, rig, seeds, types

KINDS = ("sync", "async", "generator", "async generator")


class Boom(ValueError):
    """The exception the failing functions raise."""


def make(kind: str, fail: Boom | None) -> Callable[..., Any]:
    """A function of ``kind`` taking ``x``: returns ``x + 1`` (generators yield ``x``
    and ``x + 1``), or raises ``fail`` after its first step."""
    if kind == "sync":
        def sync(x: int) -> int:
            if fail is not None:
                raise fail
            return x + 1
        return sync
    if kind == "async":
        async def coroutine(x: int) -> int:
            await asyncio.sleep(0)
            if fail is not None:
                raise fail
            return x + 1
        return coroutine
    if kind == "generator":
        def generator(x: int) -> Iterator[int]:
            yield x
            if fail is not None:
                raise fail
            yield x + 1
        return generator

    async def async_generator(x: int) -> AsyncIterator[int]:
        yield x
        await asyncio.sleep(0)
        if fail is not None:
            raise fail
        yield x + 1
    return async_generator


async def call(kind: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call a decorated function of ``kind`` to its end (generators: their items)."""
    if kind == "sync":
        return fn(*args)
    if kind == "async":
        return await fn(*args)
    if kind == "generator":
        return list(fn(*args))
    return [item async for item in fn(*args)]


def expected_result(kind: str) -> Any:
    return 2 if kind in ("sync", "async") else [1, 2]


def _decorate(which: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    decorator: Any = {"task": otel_sse.task, "agent": otel_sse.agent,
                      "tool": otel_sse.tool}[which]
    return decorator(f"work-{which}")(fn)  # type: ignore[no-any-return]


async def _run(r: Rig, which: str, kind: str, fail: Boom | None) -> tuple[Frames, Any]:
    fn = _decorate(which, make(kind, fail))
    outcome: dict[str, Any] = {}

    async def body() -> None:
        try:
            outcome["result"] = await call(kind, fn, 1)
        except Boom as error:
            outcome["error"] = error

    frames = await r.run(body)
    return frames, outcome


async def _succeeding(which: str, kind: str, span_count: int
                      ) -> tuple[Frames, dict[str, dict[str, Any]]]:
    """A succeeding call of a decorated function of ``kind``, with content capture on:
    its events and the exported spans."""
    async with rig(capture_content=True) as r:
        frames, outcome = await _run(r, which, kind, None)
        spans = await r.spans(span_count)
    assert outcome["result"] == expected_result(kind)
    return seeds(frames), spans


@pytest.mark.parametrize("kind", KINDS)
async def test_task_of_every_kind(kind: str) -> None:
    fn = _decorate("task", make(kind, None))
    assert fn.__name__ == make(kind, None).__name__  # the wrapper keeps the function's face
    events, spans = await _succeeding("task", kind, 1)
    generator = kind.endswith("generator")
    assert types(events) == ["task:created", "task:started", "task:intermediate",
                             *(["task:intermediate"] * 2 if generator else []),
                             "task:completed"]
    created = of(events, "task:created")[0]
    assert created["name"] == "work-task" and created["status"] == "pending"
    intermediate = of(events, "task:intermediate")
    assert intermediate[0]["type"] == "checkpoint"
    assert intermediate[0]["data"] == {"arguments": {"x": 1}}
    if generator:
        assert [(i["type"], i["data"], i["sequence"]) for i in intermediate[1:]] == [
            ("partial", 1, 1), ("partial", 2, 2)]
    completed = of(events, "task:completed")[0]
    if generator:
        assert "result" not in completed
    else:
        assert completed["result"] == 2
    assert {d["taskId"] for _, d in events} == {created["taskId"]}
    # The live events carry the ids of the span the receiver got.
    span = spans[created["spanId"]]
    assert span["name"] == "task work-task" and span["trace_id"] == created["traceId"]
    assert span["attributes"]["otel_sse.task.id"] == created["taskId"]
    assert span["attributes"]["otel_sse.task.status"] == "completed"
    assert span["status_code"] == "unset"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("which", "event_type", "span_name"), [
    ("task", "task:failed", "task work-task"),
    ("agent", "agent:error", "invoke_agent work-agent"),
    ("tool", "llm:tool:result", "execute_tool work-tool")])
async def test_failure_of_every_kind(kind: str, which: str, event_type: str,
                                     span_name: str) -> None:
    error = Boom("disk on fire")
    async with rig() as r:
        frames, outcome = await _run(r, which, kind, error)
        events = seeds(frames)
        failed = of(events, event_type)[0]
        span = await r.span(failed["spanId"])
    assert outcome["error"] is error  # re-raised unchanged
    assert types(events)[-1] == event_type
    # The contract's error object: the exception's message and its type.
    assert failed["error"] == {"message": "disk on fire", "name": "Boom"}
    assert span["name"] == span_name
    assert span["status_code"] == "error" and span["status_message"] == "disk on fire"
    assert span["attributes"]["error.type"] == "Boom"
    assert [e["attributes"]["exception.type"] for e in span["events"]
            if e["name"] == "exception"] == ["Boom"]


@pytest.mark.parametrize("kind", KINDS)
async def test_agent_of_every_kind(kind: str) -> None:
    events, spans = await _succeeding("agent", kind, 2)
    generator = kind.endswith("generator")
    assert types(events) == ["agent:spawned", "agent:started", "agent:log:debug",
                             *(["agent:output:stdout"] * 2 if generator else []),
                             "agent:log:debug", "agent:stopped"]
    started = of(events, "agent:started")[0]
    assert started["name"] == "work-agent" and started["agentId"].startswith("work-agent-")
    logs = of(events, "agent:log:debug")
    assert logs[0]["context"] == {"arguments": {"x": 1}}
    assert logs[1]["context"] == {"result": None if generator else 2}
    if generator:
        assert [d["data"] for d in of(events, "agent:output:stdout")] == ["1", "2"]
    span = spans[started["spanId"]]
    assert span["name"] == "invoke_agent work-agent"
    assert span["attributes"]["otel_sse.agent.id"] == started["agentId"]
    assert of(events, "agent:stopped")[0]["spanId"] == started["spanId"]


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_of_every_kind(kind: str) -> None:
    events, spans = await _succeeding("tool", kind, 1)
    assert types(events) == ["llm:tool:call", "llm:tool:result"]
    call_event, result = of(events, "llm:tool:call")[0], of(events, "llm:tool:result")[0]
    assert call_event["toolName"] == "work-tool" and json.loads(call_event["arguments"]) == {
        "x": 1}
    assert result["result"] == expected_result(kind)
    assert result["toolCallId"] == call_event["toolCallId"]
    # Outside any request: the tool's own call id names its request, provider unknown.
    assert call_event["requestId"] == call_event["toolCallId"]
    assert call_event["provider"] == "unknown"
    span = spans[result["spanId"]]
    assert span["name"] == "execute_tool work-tool"
    assert span["attributes"]["gen_ai.tool.call.id"] == call_event["toolCallId"]
    assert json.loads(span["attributes"]["gen_ai.tool.call.result"]) == expected_result(kind)


async def test_content_is_recorded_only_when_capture_is_on() -> None:
    @otel_sse.task("secretive")
    def secretive(password: str) -> str:
        return f"{password}-result"

    @otel_sse.tool("vault")
    def vault(password: str) -> str:
        return f"{password}-opened"

    @otel_sse.agent("keeper")
    def keeper(password: str) -> str:
        vault(password)
        return secretive(password)

    async with rig() as r:  # capture off (the default)
        frames = await r.run(lambda: asyncio.to_thread(keeper, "hunter2"))
        spans = await r.spans(4)
        logs = r.receiver.logs()
    assert "hunter2" not in json.dumps(frames)
    assert "hunter2" not in json.dumps([s["attributes"] for s in spans.values()])
    assert "hunter2" not in json.dumps([rec["attributes"] for rec in logs])
    events = seeds(frames)
    assert "task:intermediate" not in types(events) and "agent:log:debug" not in types(events)
    assert of(events, "llm:tool:call")[0]["arguments"] == ""
    assert of(events, "llm:tool:result")[0]["result"] is None
    assert "result" not in of(events, "task:completed")[0]

    # A decorator's own switch wins over the telemetry's.
    @otel_sse.tool("open", capture_content=True)
    def opened(password: str) -> str:
        return password

    async with rig() as r:
        frames = await r.run(lambda: asyncio.to_thread(opened, "hunter2"))
    assert of(seeds(frames), "llm:tool:result")[0]["result"] == "hunter2"


async def test_generators_hold_their_frame_only_while_they_run() -> None:
    seen: list[tuple[str, str | None]] = []

    @otel_sse.task("producer")
    def producer() -> Iterator[int]:
        for i in range(2):
            seen.append(("inside", current_frame().task_id))
            yield i

    @otel_sse.task("async producer")
    async def async_producer() -> AsyncIterator[int]:
        for i in range(2):
            seen.append(("inside", current_frame().task_id))
            yield i

    async def body() -> None:
        for _ in producer():
            seen.append(("consumer", current_frame().task_id))
        async for _ in async_producer():
            seen.append(("consumer", current_frame().task_id))

    async with rig() as r:
        frames = await r.run(body)
    task_ids = [d["taskId"] for d in of(frames, "task:created")]
    assert [task_id for where, task_id in seen if where == "inside"] == [
        task_ids[0], task_ids[0], task_ids[1], task_ids[1]]
    assert [task_id for where, task_id in seen if where == "consumer"] == [None] * 4


async def test_closed_generators_and_cancelled_coroutines_are_cancelled() -> None:
    @otel_sse.task("endless")
    def endless() -> Generator[int, None, None]:
        n = 0
        while True:
            yield n
            n += 1

    @otel_sse.task("endless async")
    async def endless_async() -> AsyncGenerator[int, None]:
        while True:
            yield 0
            await asyncio.sleep(0)

    @otel_sse.task("waiter")
    async def waiter(started: asyncio.Event) -> None:
        started.set()
        await asyncio.Event().wait()

    @otel_sse.tool("slow tool")
    async def slow_tool(started: asyncio.Event) -> None:
        started.set()
        await asyncio.Event().wait()

    async def body() -> None:
        gen = endless()
        assert [next(gen), next(gen)] == [0, 1]
        gen.close()
        agen = endless_async()
        assert await agen.__anext__() == 0
        await agen.aclose()
        for fn in (waiter, slow_tool):
            started = asyncio.Event()
            job = asyncio.create_task(fn(started))
            await started.wait()
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job

    async with rig() as r:
        frames = await r.run(body)
    events = seeds(frames)
    assert [d["name"] for d in of(events, "task:cancelled")] == [
        "endless", "endless async", "waiter"]
    assert not of(events, "task:failed")
    assert of(events, "llm:tool:result")[0]["error"] == {"message": "cancelled",
                                                         "name": "CancelledError"}


async def test_a_fixed_agent_id_is_spawned_once() -> None:
    @otel_sse.agent("support", agent_id="support-1", type="helpdesk")
    async def support() -> None:
        await asyncio.sleep(0)

    async with rig() as r:
        frames = await r.run(support)
        frames += await r.run(support)
    events = seeds(frames)
    assert [d["agentId"] for d in of(events, "agent:spawned")] == ["support-1"]
    assert [d["agentId"] for d in of(events, "agent:started")] == ["support-1"] * 2
    assert of(events, "agent:started")[0]["type"] == "helpdesk"
    assert len(of(events, "agent:stopped")) == 2


def test_bad_options_are_refused_when_decorating() -> None:
    with pytest.raises(ConfigError, match="name=''"):
        otel_sse.task("")
    with pytest.raises(ConfigError, match="capture_content='sometimes'"):
        otel_sse.tool(capture_content="sometimes")
    with pytest.raises(ConfigError, match="model=''"):
        otel_sse.llm_request(provider="openai", model="")
    assert otel_sse.task(None) is not None  # bare options are fine


async def test_pinned_instrumentation_and_fresh_emitters_per_configure() -> None:
    from otel_sse.instrumentation import Instrumentation

    async with rig() as first:
        assert Instrumentation.current() is Instrumentation.current()
        pinned = Instrumentation(first.server, first.tel, capture_content=True)

        @otel_sse.task("pinned", instrumentation=pinned)
        def pinned_task(x: int) -> int:
            return x

        async with rig() as second:  # a newer configure(): the default follows it
            assert Instrumentation.current().telemetry is second.tel
            assert Instrumentation.current().server is second.server
            frames = await first.run(lambda: asyncio.to_thread(pinned_task, 7))
    # The pinned instrumentation recorded on its own server, with its own capture.
    assert of(seeds(frames), "task:completed")[0]["result"] == 7


def test_decorators_import_no_framework() -> None:
    import subprocess
    import sys

    code = ("import sys, otel_sse\n"
            "otel_sse.task, otel_sse.agent, otel_sse.tool, otel_sse.llm_request\n"
            "heavy = {'openai', 'agents', 'langchain', 'langgraph', 'aiohttp', 'hypercorn'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
