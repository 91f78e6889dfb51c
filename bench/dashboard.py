#!/usr/bin/env python
"""Dashboard under load: a real page in headless Chromium, fed N events/min.

An SSEServer and an agent workload on the real emitters (agents taking tasks,
each with an LLM request streaming tokens, a tool call, progress; one task in
eight fails) publish at a paced rate (default 10,000 events/min) for D seconds
(default 60) into the dashboard, opened before the load starts. Through the
DevTools protocol it samples the page's JS heap and DOM size every second, and
in the page it records every requestAnimationFrame interval and every long task
(main-thread work over 50 ms).

    .venv/bin/python bench/dashboard.py                       # 10,000/min for 60 s
    .venv/bin/python bench/dashboard.py --duration 600        # the 10-minute soak
    .venv/bin/python bench/dashboard.py --write               # into bench/RESULTS.md

Definitions:

* events: what the server published (the page subscribes to everything), and
  what the page's EventSource had received when the load ended;
* heap: ``JSHeapUsedSize`` (Performance.getMetrics); *after GC* follows a
  ``HeapProfiler.collectGarbage`` (before the load, and at its end); *growth*
  compares the largest sample of the last quarter of the run with that of the
  second quarter (once the page's lists are full, a bounded page stops growing);
* frames: intervals between requestAnimationFrame callbacks in the page; a
  headless page draws at 60 Hz when it keeps up, so 16.7 ms is the floor;
* main thread busy: the growth of ``TaskDuration``, ``ScriptDuration``,
  ``LayoutDuration`` and ``RecalcStyleDuration`` over the load, per second.
  ``TaskDuration`` is wall time of every main-thread task (painting and
  compositing included, with ``--disable-gpu`` in software), and on a shared
  machine also the time its thread waited for a CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from _results import RESULTS, machine, percentile, write_section  # noqa: E402

from otel_sse.emitters import AgentStream, LLMStream, TaskStream  # noqa: E402
from otel_sse.server import SSEServer  # noqa: E402
from otel_sse.telemetry import configure  # noqa: E402
from tests.browser import chromium, chromium_path  # noqa: E402

SECTION = "## Dashboard"
MIB = 1024 * 1024
# Targets: the page's heap stays bounded and it keeps drawing.
HEAP_AFTER_GC_MIB = 24
HEAP_GROWTH_MIB = 4
FRAME_P95_MS = 50
FRAME_P99_MS = 100

BUSY = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
RECORDER = """() => {
  const frames = [];
  let last = performance.now();
  const tick = (now) => { frames.push(now - last); last = now;
                          if (frames.length < 500000) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const long = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) long.push(e.duration); })
    .observe({ type: "longtask" });
  window.__bench = { frames, long };
}"""


class Load:
    """Agents working through tasks, one emitter call per step."""

    def __init__(self, server: SSEServer, agents: int = 4, tokens: int = 20) -> None:
        self.telemetry = configure(service_name="dashboard-bench", server=server,
                                   set_global=False)
        tel = self.telemetry
        self.tasks = TaskStream(server, telemetry=tel, progress_update_interval=0.1)
        self.agents = AgentStream(server, telemetry=tel, metrics_update_interval=0.5)
        self.llm = LLMStream(server, telemetry=tel)
        self.tokens = tokens
        self.count = 0
        self.workers = [self._worker(f"agent-{i}") for i in range(agents)]
        self.turn = 0

    def step(self) -> None:
        """One emitter call, the agents taking turns."""
        worker = self.workers[self.turn % len(self.workers)]
        self.turn += 1
        next(worker)()

    def _worker(self, agent_id: str) -> Iterator[Callable[[], Any]]:
        yield lambda: self.agents.emit_agent_spawned(agent_id, name=agent_id, type="coder")
        while True:
            self.count += 1
            yield from self._task(agent_id, self.count)

    def _task(self, agent_id: str, n: int) -> Iterator[Callable[[], Any]]:
        task_id, request_id = f"task-{n}", f"req-{n}"
        tasks, agents, llm = self.tasks, self.agents, self.llm
        yield lambda: agents.emit_agent_started(agent_id, task_id)
        yield lambda: tasks.emit_task_created(task_id, name=f"job {n}", type="code",
                                              agent_id=agent_id)
        yield lambda: tasks.emit_task_started(task_id)
        yield lambda: llm.emit_request_started(
            request_id, provider="anthropic", model="claude-sonnet-4", task_id=task_id,
            agent_id=agent_id, messages=[{"role": "user", "content": f"task {n}"}])
        for i in range(self.tokens):
            yield partial(llm.emit_token, request_id, f"word{i} ", i)
            if i % 5 == 4:
                yield partial(tasks.emit_progress, task_id,
                              percentage=round(100 * (i + 1) / self.tokens),
                              current_step="thinking")
        yield lambda: llm.emit_tool_call(request_id, tool_call_id=f"call-{n}",
                                         tool_name="search", arguments='{"q": 1}',
                                         is_complete=True)
        yield lambda: llm.emit_tool_result(request_id, tool_call_id=f"call-{n}",
                                           tool_name="search", result={"hits": n},
                                           execution_time=12)
        if n % 8 == 0:
            yield lambda: llm.emit_request_error(request_id, "overloaded")
            yield lambda: tasks.emit_task_failed(task_id, "the model was overloaded")
        else:
            yield lambda: llm.emit_request_completed(
                request_id, response="done", duration=900,
                usage={"prompt_tokens": 50, "completion_tokens": self.tokens, "cost": 0.001})
            yield lambda: tasks.emit_task_completed(task_id, result={"n": n})
        yield lambda: agents.emit_metrics(agent_id, tasks_completed=n, cpu_usage=10)
        yield lambda: agents.emit_log(agent_id, "info", f"{task_id} done")


@dataclass
class Sample:
    at: float
    heap: float
    nodes: int


@dataclass
class Result:
    duration: float
    published: int = 0
    received: int = 0
    heap_start: float = 0.0
    heap_end: float = 0.0
    # Renderer main-thread seconds spent during the load, by kind (Performance.getMetrics).
    busy: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    frames: list[float] = field(default_factory=list)
    long_tasks: list[float] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def heap_max(self) -> float:
        return max(s.heap for s in self.samples)

    def growth(self) -> float:
        """Largest heap of the last quarter minus that of the second quarter."""
        end = self.samples[-1].at

        def peak(low: float, high: float) -> float:
            inside = [s.heap for s in self.samples if low * end <= s.at <= high * end]
            return max(inside) if inside else 0.0

        return peak(0.75, 1.0) - peak(0.25, 0.5)


async def metrics(cdp: Any) -> dict[str, float]:
    answer = await cdp.send("Performance.getMetrics")
    return {m["name"]: m["value"] for m in answer["metrics"]}


async def run(rate_per_min: float, duration: float, agents: int) -> Result:
    result = Result(duration)
    server = SSEServer(port=0, host="127.0.0.1")
    await server.start()
    load = Load(server, agents=agents)
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{server.url}/dashboard")
            await page.wait_for_function("() => window.otelSseDashboard.stats().state === 'live'")
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Performance.enable")
            await cdp.send("HeapProfiler.collectGarbage")
            result.heap_start = (await metrics(cdp))["JSHeapUsedSize"] / MIB
            await page.evaluate(RECORDER)
            before = await metrics(cdp)

            hub = server.hub
            rate = rate_per_min / 60
            base = hub.published
            loop = asyncio.get_running_loop()
            started = loop.time()
            next_sample = 0.0
            while (elapsed := loop.time() - started) < duration:
                # Steps until the server has published what is due (the telemetry is
                # converted on this loop, so it is counted a turn later).
                due = rate * elapsed - (hub.published - base)
                for _ in range(max(0, min(400, int(due / 2)))):
                    load.step()
                if elapsed >= next_sample:
                    values = await metrics(cdp)
                    result.samples.append(Sample(elapsed, values["JSHeapUsedSize"] / MIB,
                                                 int(values["Nodes"])))
                    next_sample += 1.0
                await asyncio.sleep(0.02)
            result.published = hub.published - base
            after = await metrics(cdp)
            result.busy = {kind: after[kind] - before[kind] for kind in BUSY}
            result.stats = await page.evaluate("() => window.otelSseDashboard.stats()")
            result.received = result.stats["received"]
            recorded = await page.evaluate("() => window.__bench")
            result.frames = recorded["frames"][1:]
            result.long_tasks = recorded["long"]
            await cdp.send("HeapProfiler.collectGarbage")
            result.heap_end = (await metrics(cdp))["JSHeapUsedSize"] / MIB
            if errors:
                raise SystemExit(f"the page raised: {errors[:3]}")
    finally:
        await load.telemetry.ashutdown()
        await server.stop()
    return result


def report(result: Result, rate_per_min: float) -> tuple[list[str], list[str]]:
    frames = sorted(result.frames)
    over50 = sum(1 for f in frames if f > 50)
    table = [
        "| measure | value |",
        "| --- | ---: |",
        f"| events published (rate) | {result.published:,} "
        f"({result.published / result.duration * 60:,.0f}/min, offered {rate_per_min:,.0f}/min) |",
        f"| events the page received (its `connected` included) | {result.received:,} |",
        f"| JS heap before the load, after GC | {result.heap_start:.1f} MiB |",
        f"| JS heap, largest sample during the load | {result.heap_max():.1f} MiB |",
        f"| JS heap at the end, after GC | {result.heap_end:.1f} MiB |",
        f"| heap growth, last quarter vs second quarter | {result.growth():+.1f} MiB |",
        f"| DOM nodes, largest sample | {max(s.nodes for s in result.samples):,} |",
        f"| frames (rAF callbacks) | {len(frames):,} ({len(frames) / result.duration:.1f}/s) |",
        f"| frame interval p50 / p95 / p99 / max | {percentile(frames, .5):.1f} / "
        f"{percentile(frames, .95):.1f} / {percentile(frames, .99):.1f} / "
        f"{max(frames, default=float('nan')):.1f} ms |",
        f"| frames over 50 ms | {over50:,} ({100 * over50 / max(1, len(frames)):.2f} %) |",
        f"| long tasks (> 50 ms) | {len(result.long_tasks):,}, longest "
        f"{max(result.long_tasks, default=0):.0f} ms |",
        "| renderer main thread busy: all / script / layout / style, ms per s | "
        + " / ".join(f"{1000 * result.busy.get(kind, 0) / result.duration:.0f}" for kind in BUSY)
        + " |",
        f"| on the page at the end | {result.stats.get('tasks')} tasks, "
        f"{result.stats.get('requests')} LLM requests, {result.stats.get('traces')} traces "
        f"drawn, {result.stats.get('folded')} folded |",
    ]
    checks = [
        (f"JS heap after GC at the end <= {HEAP_AFTER_GC_MIB} MiB",
         result.heap_end <= HEAP_AFTER_GC_MIB, f"{result.heap_end:.1f} MiB"),
        (f"heap growth over the second half <= {HEAP_GROWTH_MIB} MiB",
         result.growth() <= HEAP_GROWTH_MIB, f"{result.growth():+.1f} MiB"),
        (f"frame interval p95 <= {FRAME_P95_MS} ms", percentile(frames, .95) <= FRAME_P95_MS,
         f"{percentile(frames, .95):.1f} ms"),
        (f"frame interval p99 <= {FRAME_P99_MS} ms", percentile(frames, .99) <= FRAME_P99_MS,
         f"{percentile(frames, .99):.1f} ms"),
    ]
    lines = [f"- {'PASS' if ok else 'FAIL'} {name} ({value})" for name, ok, value in checks]
    return table, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10_000, help="events per minute")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--agents", type=int, default=4, help="agents working at once")
    parser.add_argument("--write", action="store_true", help=f"write '{SECTION}' in RESULTS.md")
    args = parser.parse_args(argv)
    command = "python bench/dashboard.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    began = datetime.now(UTC)
    wall = time.monotonic()
    result = asyncio.run(run(args.rate, args.duration, args.agents))
    table, checks = report(result, args.rate)
    print("\n".join(table))
    print()
    print("\n".join(checks))
    print(f"\n({time.monotonic() - wall:.0f} s in all)")
    if args.write:
        version = _chromium_version()
        section = [
            SECTION, "",
            f"{began:%Y-%m-%d %H:%M} UTC; {machine()}; {version}, headless.",
            f"Command: `{command}`.",
            f"{args.duration:g} s of load from {args.agents} agents on the real emitters into "
            "one dashboard page (server, workload and the Playwright driver in one process, "
            "Chromium in its own). Definitions in the docstring of `bench/dashboard.py`.",
            "", *table, "", "Targets:", "", *checks,
        ]
        write_section(SECTION, "\n".join(section))
        print(f"wrote '{SECTION}' in {RESULTS}")
    return 0 if all(line.startswith("- PASS") for line in checks) else 1


def _chromium_version() -> str:
    import subprocess

    try:
        out = subprocess.run([chromium_path(), "--version"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except OSError:
        return "Chromium"
    return " ".join(out.split()[:2]) or "Chromium"


if __name__ == "__main__":
    sys.exit(main())
