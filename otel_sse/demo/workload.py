"""The demo's workload: an agent team, run as an application of its own would run it.

Three agents (a planner, a coder, a reviewer) work through a backlog. Their
code is plain Python decorated with ``@otel_sse.agent`` / ``@otel_sse.task`` /
``@otel_sse.tool``; their LLM calls go over HTTP to a local stub model that
streams its answers token by token (OpenAI's chat completions protocol), read
through ``otel_sse.llm_request``. Nothing here knows about the gateway but
``configure(gateway=...)``: the telemetry reaches it live, over OTLP, the way it
would from any application, while the normal OTLP export goes to a collector or
Jaeger when one listens.

    python -m otel_sse.demo.workload --gateway http://127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

import otel_sse
from otel_sse.demo.script import Reply, Rule, Script, ToolCall
from otel_sse.demo.stub_model import StubModelServer
from otel_sse.errors import OtelSSEError
from otel_sse.instrumentation import Instrumentation, current_frame
from otel_sse.wire.decoder import SSEDecoder

MODEL = "stub-model"
_TESTS = {"name": "run_tests", "description": "Run the test suite",
          "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}
_SEARCH = {"name": "search_docs", "description": "Search the project's documentation",
           "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}

SCRIPT = Script(rules=(
    Rule(Reply(text="The tests pass; the change is ready for review."), after_tool=True,
         contains="implement"),
    Rule(Reply(text="Let me run the tests first.",
               tool_calls=(ToolCall("run_tests", {"path": "tests/"}),)),
         with_tools=True, contains="implement"),
    Rule(Reply(text="Found it: the decoder must treat a CR at the end of one read and an LF "
               "at the start of the next as one line end. Plan: patch the decoder, add a "
               "test that splits CRLF across reads, run the suite."), after_tool=True),
    Rule(Reply(text="I will look the rule up first.",
               tool_calls=(ToolCall("search_docs", {"query": "CRLF split across reads"}),)),
         with_tools=True, contains="plan"),
    Rule(Reply(text="Reviewed: the patch is small, the new test covers the split, naming is "
               "consistent. Approved."), contains="review"),
), default=Reply(text="Done."))


class StubModelClient:
    """Chat completions against the stub model, streamed and read with otel_sse's SSE
    decoder; each call is one ``otel_sse.llm_request``."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.session = session

    async def chat(self, system: str, prompt: str, tools: Sequence[dict[str, Any]] = (),
                   history: Sequence[dict[str, Any]] = ()) -> tuple[str, list[dict[str, Any]]]:
        """The streamed answer's text and its tool calls."""
        messages = [{"role": "user", "content": prompt}, *history]
        body: dict[str, Any] = {
            "model": MODEL, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": system}, *messages],
            "temperature": 0.2, "max_tokens": 512}
        if tools:
            body["tools"] = [{"type": "function", "function": t} for t in tools]
        async with otel_sse.llm_request(
                provider="openai", model=MODEL, messages=messages, system_prompt=system,
                parameters={"temperature": 0.2, "max_tokens": 512},
                tools=list(tools) or None, stream=True) as request:
            async for _ in request.wrap(self._chunks(body)):
                pass
        return request.response, request.tool_calls

    async def _chunks(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        decoder: SSEDecoder[Any] = SSEDecoder()
        async with self.session.post(self.url, json=body) as response:
            response.raise_for_status()
            async for data in response.content.iter_any():
                for event in decoder.feed(data):
                    if event.data == "[DONE]":
                        return
                    yield json.loads(event.data)


@otel_sse.tool
async def search_docs(query: str) -> list[str]:
    """Look something up in the documentation."""
    await asyncio.sleep(0.15)
    return [f"docs/events.md#{query.split()[0].lower()}", "WHATWG: interpreting an event stream"]


@otel_sse.tool
async def run_tests(path: str, *, fail: bool = False) -> dict[str, Any]:
    """Run the test suite (it takes a while, and prints as it goes)."""
    frame = current_frame()
    instr = Instrumentation.current()
    for done in range(1, 4):
        await asyncio.sleep(0.2)
        if frame.agent_id is not None:
            instr.agents.emit_output(frame.agent_id, "stdout", f"{path}: {done * 14} passed")
    if fail:
        if frame.agent_id is not None:
            instr.agents.emit_output(frame.agent_id, "stderr", "FAILED test_split_crlf")
        raise AssertionError("1 test failed: test_split_crlf")
    return {"passed": 42, "failed": 0}


def _progress(percentage: int, step: str, number: int, total: int) -> None:
    task_id = current_frame().task_id
    if task_id is not None:
        Instrumentation.current().tasks.emit_progress(
            task_id, percentage=percentage, current_step=step, total_steps=total,
            current_step_number=number)


class Team:
    """The agents and their work; ``rate`` speeds the pauses up."""

    def __init__(self, model: StubModelClient, rate: float, seed: int = 7) -> None:
        self.model = model
        self.rate = rate
        self.rng = random.Random(seed)
        self.round = 0

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.rate)

    async def run_round(self) -> None:
        self.round += 1
        await self.issue(self.round)

    @otel_sse.task("fix an issue", type="issue", priority="high", capture_content=False)
    async def issue(self, n: int) -> None:
        plan = await self.planner(f"plan issue #{n}")
        # Both coders finish before the issue does, whatever happens to either.
        results = await asyncio.gather(
            self.coder_a(f"implement part A of #{n}", plan, fail=n % 4 == 0),
            self.coder_b(f"implement part B of #{n}", plan), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        await self.reviewer(f"review #{n}")

    @otel_sse.agent("planner", type="planner", agent_id="planner", capture_content=False)
    async def planner(self, goal: str) -> str:
        return await self.plan(goal)

    @otel_sse.task("plan", type="planning", priority="high", capture_content=False)
    async def plan(self, goal: str) -> str:
        _progress(10, "reading the issue", 1, 3)
        await self.pause(0.3)
        text, calls = await self.model.chat("You are a careful planner.", goal, [_SEARCH])
        _progress(50, "looking things up", 2, 3)
        results = [await search_docs(**json.loads(c["arguments"])) for c in calls]
        history = [{"role": "assistant", "content": text},
                   *({"role": "tool", "tool_call_id": c["tool_call_id"], "content": json.dumps(r)}
                     for c, r in zip(calls, results, strict=True))]
        answer, _ = await self.model.chat("You are a careful planner.", goal, [_SEARCH],
                                          history)
        _progress(100, "plan written", 3, 3)
        return answer

    # Two coders work at once: each is one agent across issues (an agent id runs one
    # invocation at a time).
    @otel_sse.agent("coder", type="coder", agent_id="coder-a", capture_content=False)
    async def coder_a(self, what: str, plan: str, fail: bool = False) -> None:
        await self.implement(what, plan, fail)

    @otel_sse.agent("coder", type="coder", agent_id="coder-b", capture_content=False)
    async def coder_b(self, what: str, plan: str, fail: bool = False) -> None:
        await self.implement(what, plan, fail)

    @otel_sse.task("implement", type="code", priority="normal", capture_content=False)
    async def implement(self, what: str, plan: str, fail: bool) -> None:
        for step, (percent, name) in enumerate(((20, "editing"), (40, "writing a test")), 1):
            _progress(percent, name, step, 4)
            await self.pause(0.4)
        text, calls = await self.model.chat("You write small, tested patches.",
                                            f"{what}: {plan[:60]}", [_TESTS])
        _progress(70, "running the tests", 3, 4)
        for call in calls:
            await run_tests(**json.loads(call["arguments"]), fail=fail)
        history = [{"role": "assistant", "content": text},
                   *({"role": "tool", "tool_call_id": c["tool_call_id"],
                      "content": '{"passed": 42}'} for c in calls)]
        await self.model.chat("You write small, tested patches.", f"{what}: {plan[:60]}",
                              [_TESTS], history)
        _progress(100, "done", 4, 4)

    @otel_sse.agent("reviewer", type="reviewer", agent_id="reviewer", capture_content=False)
    async def reviewer(self, what: str) -> None:
        await self.review(what)

    @otel_sse.task("review", type="review", priority="low", capture_content=False)
    async def review(self, what: str) -> None:
        _progress(30, "reading the diff", 1, 2)
        await self.pause(0.3)
        await self.model.chat("You review code.", what)
        _progress(100, "approved", 2, 2)


def otlp_endpoint(env: dict[str, str]) -> str | None:
    """The OTLP endpoint to export to when something listens there, else None."""
    endpoint = (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4317")
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 4317),
                                      timeout=0.5):
            return endpoint
    except OSError:
        print(f"otel-sse demo: nothing listens at {endpoint}: the traces are streamed live "
              "only (start Jaeger or a collector there to keep them)", flush=True)
        return None


async def run(gateway: str, token: str | None, rate: float, rounds: int | None,
              stop: asyncio.Event) -> None:
    """Run the team until ``stop`` (or for ``rounds``), streaming through ``gateway``."""
    endpoint = otlp_endpoint(dict(os.environ))
    telemetry = otel_sse.configure(
        service_name=os.environ.get("OTEL_SERVICE_NAME", "agent-team"), gateway=gateway,
        token=token, otlp_endpoint=endpoint,
        traces_exporter="otlp" if endpoint else "none", logs_exporter="none",
        metrics_exporter="none", capture_content=True)
    model = StubModelServer(SCRIPT, token_delay=0.05 / rate)
    await model.start()
    try:
        async with aiohttp.ClientSession() as session:
            team = Team(StubModelClient(model.url, session), rate)
            while not stop.is_set() and (rounds is None or team.round < rounds):
                with contextlib.suppress(AssertionError, OtelSSEError):
                    await team.run_round()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0 / rate)
    finally:
        await model.stop()
        await telemetry.ashutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otel_sse.demo.workload",
                                     description="The demo's agent team, streaming through "
                                                 "an otel-sse gateway.")
    parser.add_argument("--gateway", default=os.environ.get("OTEL_SSE_GATEWAY"),
                        help="the gateway's URL (default: OTEL_SSE_GATEWAY)")
    parser.add_argument("--rate", type=float, default=1.0, help="speed factor")
    parser.add_argument("--rounds", type=int, default=None, help="stop after N rounds")
    args = parser.parse_args(argv)
    if not args.gateway:
        parser.error("--gateway (or OTEL_SSE_GATEWAY) is required")
    token = (os.environ.get("OTEL_SSE_GATEWAY_TOKEN") or os.environ.get("OTEL_SSE_PRODUCER_TOKEN")
             or os.environ.get("OTEL_SSE_TOKEN"))

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(args.gateway, token, args.rate, args.rounds, stop)

    try:
        asyncio.run(go())
    except OtelSSEError as exc:
        print(f"otel-sse demo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
