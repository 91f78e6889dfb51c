"""``examples/openai_agent.py`` run as a user runs it, in a subprocess: what it prints,
the events a subscriber sees, and the spans a real OTLP receiver gets (configured
by the standard environment variables), all in the trace it names."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.otlp_receiver import OtlpGrpcReceiver
from tests.test_bridge_support import StreamCollector, check_event

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "openai_agent.py"


async def _line(stream: asyncio.StreamReader, prefix: str, seen: list[str]) -> str:
    while True:
        raw = await asyncio.wait_for(stream.readline(), 60)
        if not raw:
            raise AssertionError(f"the example ended before printing {prefix!r}: {seen}")
        line = raw.decode().rstrip("\n")
        seen.append(line)
        if line.startswith(prefix):
            return line


async def test_the_example_runs_an_agent_live_and_exports_it() -> None:
    with OtlpGrpcReceiver() as receiver:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("OTEL_")}
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                   OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_BSP_SCHEDULE_DELAY="50",
                   OTEL_METRICS_EXPORTER="none")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLE), "--port", "0", "--wait", "30",
            "--token-delay", "0", "--linger", "0", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        printed: list[str] = []
        try:
            watch = await _line(proc.stdout, "watch:", printed)
            url = re.search(r"'(http://127\.0\.0\.1:\d+/events[^']*)'", watch)
            assert url is not None, watch
            # The example waits for this subscriber; the server's shutdown ends it.
            async with StreamCollector(url.group(1), marker="shutdown") as collector:
                trace_line = await _line(proc.stdout, "trace:", printed)
                answer = await _line(proc.stdout, "answer:", printed)
                frames = await collector.finish(60)
            printed += (await asyncio.wait_for(proc.stdout.read(), 60)).decode().splitlines()
            assert await asyncio.wait_for(proc.wait(), 60) == 0, printed
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        trace_id = trace_line.rsplit("/", 1)[1]
        spans = await receiver.async_wait_for(
            lambda r: [s for s in r.spans() if s["trace_id"] == trace_id
                       and s["name"] == "task weather report"] and r.spans(), timeout=20)

    assert answer == "answer: In short: sunny, 21 degrees, a light breeze. Enjoy Paris!"
    for event_type, data in frames:
        check_event(event_type, data)
    types = [t for t, _ in frames]
    assert types[0] == "task:created" and types[-1] == "task:completed"
    # One trace: the decorated task, the agent run inside it, the summary request.
    assert {d["traceId"] for _, d in frames} == {trace_id}
    agent = types.index("agent:started")
    tool_call = types.index("llm:tool:call")
    tool_result = types.index("llm:tool:result")
    stopped = len(types) - 1 - types[::-1].index("agent:stopped")
    first_token = types.index("llm:token")
    assert agent < tool_call < tool_result < stopped < first_token
    assert frames[tool_call][1]["toolName"] == "get_weather"
    tokens = [d["token"] for t, d in frames if t == "llm:token"]
    assert "".join(tokens) == answer.removeprefix("answer: ")
    completed = [d for t, d in frames if t == "llm:request:completed"]
    assert completed[-1]["response"] == "".join(tokens) and completed[-1]["usage"]["totalTokens"]
    # What the receiver got is what the stream named.
    exported = {s["span_id"]: s for s in spans if s["trace_id"] == trace_id}
    for event_type, data in frames:
        assert data["spanId"] in exported, (event_type, data)
    names = {s["name"] for s in exported.values()}
    assert {"task weather report", "chat stub-model", "Weather agent", "get_weather"} <= names
