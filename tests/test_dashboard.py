"""The live dashboard in real headless Chromium, against real servers fed by the real
emitters (through OpenTelemetry spans and log records, as in production)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, Route

from otel_sse.emitters import AgentStream, LLMStream, TaskStream
from otel_sse.server import SSEServer
from otel_sse.telemetry import Telemetry, configure
from tests.agent_scenario import N_TASKS, Workload
from tests.browser import (
    REQUESTS,
    STATS,
    TASK_ROWS,
    TRACES,
    PageErrors,
    chromium,
    screenshot,
    wait_for,
)
from tests.demo_team import run_team
from tests.sse_helpers import FrameReader, stream

JAEGER = "http://jaeger.test:16686"
TOKEN = "dashboard-test-token"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as instance:
        yield instance


class Team:
    """Emitters of one telemetry handle bound to ``server``."""

    def __init__(self, server: SSEServer, name: str = "dash") -> None:
        self.telemetry: Telemetry = configure(service_name=name, server=server, set_global=False)
        self.tasks = TaskStream(server, telemetry=self.telemetry, progress_update_interval=0.01)
        self.agents = AgentStream(server, telemetry=self.telemetry)
        self.llm = LLMStream(server, telemetry=self.telemetry)

    def full_task(self, n: int, agent_id: str = "agent-a") -> None:
        """A task from creation to completion, with an LLM request and a tool call."""
        task_id, request_id = f"task-{n}", f"req-{n}"
        self.agents.emit_agent_started(agent_id, task_id)
        self.tasks.emit_task_created(task_id, name=f"job {n}", agent_id=agent_id)
        self.tasks.emit_task_started(task_id)
        self.llm.emit_request_started(request_id, provider="anthropic", model="m",
                                      task_id=task_id, agent_id=agent_id, messages=[])
        for i in range(3):
            self.llm.emit_token(request_id, f"t{i} ", i)
        self.llm.emit_request_completed(request_id, response="t0 t1 t2 ", duration=5,
                                        usage={"prompt_tokens": 3, "completion_tokens": 3})
        self.tasks.emit_task_completed(task_id, result={"n": n})

    async def close(self) -> None:
        await self.telemetry.ashutdown()


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[SSEServer, Team]]:
    options = {"port": 0, "host": "127.0.0.1", "jaeger_url": JAEGER + "/", **options}
    server = SSEServer(**options)
    await server.start()
    team = Team(server)
    try:
        yield server, team
    finally:
        await team.close()
        await server.stop()


async def open_page(browser: Browser, url: str) -> tuple[Page, PageErrors]:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = PageErrors(page)
    await page.goto(url)
    return page, errors


async def live_page(browser: Browser, server: SSEServer) -> tuple[Page, PageErrors]:
    """The dashboard of ``server``, subscribed."""
    page, errors = await open_page(browser, f"{server.url}/dashboard")
    await live(page)
    return page, errors


async def live(page: Page) -> None:
    await wait_for(page, "() => document.getElementById('connection').dataset.state === 'live'")


async def tasks_in(page: Page) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await page.evaluate(TASK_ROWS)
    return rows


async def read_until(reader: FrameReader, event: str, test: Any = None,
                     timeout: float = 15.0) -> dict[str, Any]:
    """The data of the next ``event`` frame (for which ``test(data)`` holds)."""
    while True:
        frame = await reader.until(event, timeout)
        if test is None or test(frame.data):
            data: dict[str, Any] = frame.data
            return data


# -------------------------------------------------------------------- the demo workload


async def test_demo_tasks_complete_and_failures_are_highlighted(browser: Browser,
                                                                 tmp_path: Path) -> None:
    async with serving() as (server, _):
        page, errors = await live_page(browser, server)
        demo = asyncio.create_task(run_team(server, rate=4))
        try:
            # The demo's random failures are seeded: the first six tasks hold two.
            await wait_for(page, """() => {
              const rows = [...document.querySelectorAll('#tasks .task')];
              return rows.filter(r => r.dataset.status === 'completed').length >= 4
                && rows.filter(r => r.dataset.status === 'failed').length >= 1; }""", timeout=60)
            await wait_for(page, "() => document.querySelectorAll('#agents .agent').length === 3")
            # A picture of work in flight: a response half streamed.
            await wait_for(page, """() => [...document.querySelectorAll(
                '#requests .request.status-streaming .request-text')]
                .some(n => n.textContent.length > 40)""", timeout=30)
            await screenshot(page, tmp_path, "dashboard")
        finally:
            demo.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await demo
        rows = await tasks_in(page)
        completed = [r for r in rows if r["status"] == "completed"]
        failed = [r for r in rows if r["status"] == "failed"]
        assert completed and failed
        for row in completed:
            assert not row["failed"] and row["bar"] == "100%"
        transparent = "rgba(0, 0, 0, 0)"
        for row in failed:
            # Highlighted: a class, a background of its own and the error shown.
            assert row["failed"] and row["background"] != transparent
            assert row["error"] == "1 test failed"
        assert all(r["background"] == transparent for r in completed)
        names = await page.eval_on_selector_all("#agents .agent .agent-name",
                                                "nodes => nodes.map(n => n.textContent)")
        assert sorted(names) == ["coder-1", "reviewer-1", "tester-1"]
        errors.check()


async def test_scenario_tasks_reach_completed_and_failed_ones_stand_out(
        browser: Browser, tmp_path: Path) -> None:
    async with serving() as (server, team):
        page, errors = await live_page(browser, server)
        work = Workload(team.telemetry, server)
        await work.run()
        await wait_for(page, """(n) => [...document.querySelectorAll('#tasks .task')]
            .filter(r => ['completed', 'failed'].includes(r.dataset.status)).length === n""",
                       N_TASKS)
        rows = {r["taskId"]: r for r in await tasks_in(page)}
        assert len(rows) == N_TASKS
        for n in range(N_TASKS):
            row = rows[f"task-{n}"]
            fails = n % 5 == 4
            assert row["status"] == ("failed" if fails else "completed"), row
            assert row["failed"] is fails
        # Every LLM request's text is its tokens, in order.
        requests = {r["requestId"]: r for r in await page.evaluate(REQUESTS)}
        for request_id, r in requests.items():
            tokens = work.tokens[request_id]
            assert r["text"] == "".join(f"tok{i} " for i in range(tokens)), r
            assert r["status"] == ("error" if int(request_id[4:]) % 5 == 4 else "completed")
        await screenshot(page, tmp_path, "scenario")
        errors.check()


# ------------------------------------------------------------------------ LLM tokens


async def test_token_text_grows_token_by_token(browser: Browser, tmp_path: Path) -> None:
    words = [f"word{i} " for i in range(12)]
    async with serving() as (server, team):
        page, errors = await live_page(browser, server)
        team.tasks.emit_task_created("task-t", name="stream", agent_id="agent-t")
        team.llm.emit_request_started("req-t", provider="anthropic", model="claude-sonnet-4",
                                      task_id="task-t", agent_id="agent-t", messages=[])
        request = "#requests .request[data-request-id='req-t']"
        samples: list[tuple[str, str]] = []
        for index, word in enumerate(words):
            team.llm.emit_token("req-t", word, index)
            shown = "".join(words[: index + 1])
            # The next token is sent only once this one is on the page.
            await wait_for(page, """([sel, text]) => {
                const n = document.querySelector(sel);
                return n && n.querySelector('.request-text').textContent === text; }""",
                           [request, shown])
            samples.append(await page.eval_on_selector(
                request, "n => [n.dataset.status, n.querySelector('.request-text').textContent]"))
        assert [text for _, text in samples] == ["".join(words[: i + 1]) for i in range(12)]
        assert {status for status, _ in samples} == {"streaming"}
        await screenshot(page, tmp_path, "streaming")
        team.llm.emit_tool_call("req-t", tool_call_id="call-1", tool_name="search",
                                arguments='{"q": "sse"}', is_complete=True)
        team.llm.emit_tool_result("req-t", tool_call_id="call-1", tool_name="search",
                                  result={"hits": 3}, execution_time=42)
        team.llm.emit_request_completed("req-t", response="".join(words), duration=480,
                                        usage={"prompt_tokens": 100, "completion_tokens": 12,
                                               "total_tokens": 112, "cost": 0.25})
        await wait_for(page, "(sel) => document.querySelector(sel).dataset.status === 'completed'",
                       request)
        (card,) = await page.evaluate(REQUESTS)
        assert card["text"] == "".join(words)
        assert card["tools"] == ['search({"q": "sse"}) → {"hits":3} · 42 ms']
        assert card["usage"] == "100 in · 12 out · 112 total · $0.2500"
        assert "TTFT" in card["meta"] and "480 ms" in card["meta"]
        totals = await page.text_content("#llm-totals")
        assert totals == "1 with usage · 100 in · 12 out · 112 tokens · $0.2500"
        errors.check()


# ------------------------------------------------------- waterfall and Jaeger links


async def test_waterfall_nests_spans_and_links_carry_the_stream_ids(browser: Browser,
                                                                     tmp_path: Path) -> None:
    async with serving() as (server, team):
        page, errors = await live_page(browser, server)
        async with stream(f"{server.url}/events?filters=span:*,task:created,"
                          "llm:request:started,trace:completed") as (_, reader):
            await reader.until("connected")
            team.agents.emit_agent_spawned("agent-w", name="planner")
            team.agents.emit_agent_started("agent-w", "task-w")
            team.tasks.emit_task_created("task-w", name="plan", agent_id="agent-w")
            team.tasks.emit_task_started("task-w")
            team.llm.emit_request_started("req-w", provider="openai", model="gpt-4o",
                                          task_id="task-w", agent_id="agent-w", messages=[])
            team.llm.emit_tool_call("req-w", tool_call_id="call-w", tool_name="lookup",
                                    arguments="{}", is_complete=True)
            spans: dict[str, dict[str, Any]] = {}
            while not any(s["name"] == "execute_tool lookup" for s in spans.values()):
                data = await read_until(reader, "span:started")
                spans[data["spanId"]] = data
            # (agent:spawned is a create_agent span of its own trace)
            trace_id = next(s["traceId"] for s in spans.values() if s["name"].startswith("exec"))
            started = {k: s for k, s in spans.items() if s["traceId"] == trace_id}
            assert len(started) == 4

            # While it runs: four spans, each under its parent, every one running.
            await wait_for(page, """(id) => {
                const t = document.querySelector(`#traces .trace[data-trace-id="${id}"]`);
                const spans = t ? [...t.querySelectorAll('.span')] : [];
                return spans.length === 4 && spans.every(s => s.dataset.state === 'running'); }""",
                           trace_id)
            (trace,) = [t for t in await page.evaluate(TRACES) if t["traceId"] == trace_id]
            await screenshot(page, tmp_path, "waterfall-running")
            rows = trace["spans"]
            assert [r["depth"] for r in rows] == [0, 1, 2, 3]
            position = {r["spanId"]: i for i, r in enumerate(rows)}
            for row in rows:
                span = started[row["spanId"]]
                assert row["parentSpanId"] == (span["parentSpanId"] or "")
                assert row["name"] == span["name"]
                assert row["href"] == f"{JAEGER}/trace/{trace_id}?uiFind={row['spanId']}"
                if span["parentSpanId"]:
                    parent = position[span["parentSpanId"]]
                    assert parent < position[row["spanId"]]
                    assert rows[parent]["depth"] == row["depth"] - 1
            root = next(s for s in started.values() if s["parentSpanId"] is None)
            assert trace["rootSpanId"] == root["spanId"] and trace["state"] == "running"
            assert trace["href"] == f"{JAEGER}/trace/{trace_id}?uiFind={root['spanId']}"

            # The task row and the request card link to their own spans.
            task_span = next(s for s in started.values() if s["name"] == "task plan")
            chat_span = next(s for s in started.values() if s["name"].startswith("chat"))
            (task,) = await tasks_in(page)
            assert task["href"] == f"{JAEGER}/trace/{trace_id}?uiFind={task_span['spanId']}"
            (card,) = await page.evaluate(REQUESTS)
            assert card["href"] == f"{JAEGER}/trace/{trace_id}?uiFind={chat_span['spanId']}"

            # It ends: spans close, and trace:completed marks the run finished.
            team.llm.emit_tool_result("req-w", tool_call_id="call-w", tool_name="lookup",
                                      result="ok", execution_time=1)
            team.llm.emit_request_error("req-w", "rate limited", error_type="rate_limit")
            team.tasks.emit_task_failed("task-w", "no plan")
            team.agents.emit_agent_stopped("agent-w")
            done = await read_until(reader, "trace:completed")
            assert done["traceId"] == trace_id
        await wait_for(page, """(id) => {
            const t = document.querySelector(`#traces .trace[data-trace-id="${id}"]`);
            return t && t.dataset.state === 'error' &&
                   ![...t.querySelectorAll('.span')].some(s => s.dataset.state === 'running'); }""",
                       trace_id)
        (trace,) = [t for t in await page.evaluate(TRACES) if t["traceId"] == trace_id]
        states = {r["name"]: r["state"] for r in trace["spans"]}
        assert states["task plan"] == "error" and states[chat_span["name"]] == "error"
        assert trace["badge"] == "finished with errors"
        await screenshot(page, tmp_path, "waterfall-finished")
        errors.check()


async def test_every_jaeger_link_matches_a_separate_subscriber(browser: Browser) -> None:
    async with serving() as (server, team):
        page, errors = await live_page(browser, server)
        async with stream(f"{server.url}/events?filters=span:*,trace:completed,test:done") \
                as (_, reader):
            await reader.until("connected")
            await Workload(team.telemetry, server).run()
            assert await team.telemetry.aforce_flush(10)
            server.publish("test:done", {})
            spans: dict[str, dict[str, Any]] = {}
            completed: dict[str, dict[str, Any]] = {}
            while True:
                frame = await reader.next(timeout=15)
                if frame.event == "test:done":
                    break
                if frame.event == "span:started":
                    spans[frame.data["spanId"]] = frame.data
                elif frame.event == "trace:completed":
                    completed[frame.data["traceId"]] = frame.data
        await wait_for(page, "(n) => window.otelSseDashboard.stats().tasks === n", N_TASKS)
        hrefs: list[str] = await page.eval_on_selector_all(
            "a.jaeger[href]", "nodes => nodes.map(n => n.getAttribute('href'))")
        assert len(hrefs) > 3 * N_TASKS
        prefix = f"{JAEGER}/trace/"
        for href in hrefs:
            assert href.startswith(prefix), href
            trace_id, _, query = href[len(prefix):].partition("?uiFind=")
            span = spans[query]
            assert span["traceId"] == trace_id, href
        # Finished runs fold into one line each, linking to their root span.
        folded = await page.eval_on_selector_all(
            "#folded .folded", "nodes => nodes.map(n => [n.dataset.traceId, "
            "n.querySelector('a').getAttribute('href')])")
        assert folded
        for trace_id, href in folded:
            assert href == f"{prefix}{trace_id}?uiFind={completed[trace_id]['rootSpanId']}"
        errors.check()


# ------------------------------------------------------------ opened in the middle


async def test_page_opened_mid_task_shows_it_running_at_once(browser: Browser) -> None:
    async with serving() as (server, team):
        async with stream(f"{server.url}/events?filters=task:progress,llm:token") as (_, reader):
            await reader.until("connected")
            team.agents.emit_agent_started("agent-s", "task-s")
            team.tasks.emit_task_created("task-s", name="long haul", agent_id="agent-s")
            team.tasks.emit_task_started("task-s")
            team.tasks.emit_progress("task-s", percentage=40, current_step="analysing")
            team.llm.emit_request_started("req-s", provider="anthropic", model="m",
                                          task_id="task-s", agent_id="agent-s", messages=[])
            for i, word in enumerate(["alpha ", "beta ", "gamma "]):
                team.llm.emit_token("req-s", word, i)
            await read_until(reader, "task:progress", lambda d: d["progress"]["percentage"] == 40)
            await read_until(reader, "llm:token", lambda d: d["index"] == 2)

        # Nothing more is emitted: what the page shows comes from the snapshot.
        page, errors = await open_page(browser, f"{server.url}/dashboard")
        await wait_for(page, """() => document.querySelector('#tasks .task')?.dataset.status
                                === 'running'""")
        (row,) = await tasks_in(page)
        assert row["taskId"] == "task-s" and row["label"].startswith("40% analysing")
        (card,) = await page.evaluate(REQUESTS)
        assert card["status"] == "streaming" and card["text"] == "alpha beta gamma "
        traces = await page.evaluate(TRACES)
        (trace,) = traces
        assert trace["state"] == "running"
        assert [s["depth"] for s in trace["spans"]] == [0, 1, 2]
        assert all(s["state"] == "running" for s in trace["spans"])
        stats = await page.evaluate(STATS)
        assert stats["snapshots"] == 1

        # Then it goes on live, without the snapshot's text twice.
        team.llm.emit_token("req-s", "delta", 3)
        team.llm.emit_request_completed("req-s", response="alpha beta gamma delta", duration=9)
        team.tasks.emit_task_completed("task-s")
        await wait_for(page, "() => document.querySelector('#tasks .task').dataset.status "
                             "=== 'completed'")
        (card,) = await page.evaluate(REQUESTS)
        assert card["text"] == "alpha beta gamma delta"
        errors.check()


# ---------------------------------------------------------------- heartbeats, stale


async def test_heartbeats_keep_a_long_span_running_and_a_silent_source_goes_stale(
        browser: Browser, tmp_path: Path) -> None:
    async with serving(heartbeat_interval=0.3, stale_after=1.0) as (server, team):
        page, errors = await live_page(browser, server)
        team.tasks.emit_task_created("task-long", name="long")
        team.tasks.emit_task_started("task-long")
        # A span from another process, through the gateway, which then goes silent.
        remote: dict[str, Any] = {"traceId": "ab" * 16, "spanId": "cd" * 8, "parentSpanId": None,
                  "name": "remote work", "kind": "internal", "serviceName": "remote",
                  "attributes": {}, "startTime": datetime.now(UTC).isoformat()}
        server.hub.publish_from("remote/instance-1", "span:started", remote)
        await wait_for(page, """() => {
            const rows = [...document.querySelectorAll('#traces .span')];
            const long = rows.find(r => r.querySelector('.span-link').textContent === 'task long');
            const gone = rows.find(r => r.dataset.spanId === 'cdcdcdcdcdcdcdcd');
            return long && gone && Number(long.dataset.beats) >= 8 &&
                   long.dataset.state === 'running' && gone.dataset.state === 'stale'; }""",
                       timeout=30)
        # Eight heartbeats 0.3 s apart: longer than the page waits before it calls a span
        # with no sign of life quiet, yet the long span is running.
        await screenshot(page, tmp_path, "stale")
        log = await page.text_content("#log")
        assert log is not None and "stale: its source sent nothing for 1 s" in log
        team.tasks.emit_task_completed("task-long")
        errors.check()


# ------------------------------------------------------------------- restarts


async def test_restart_on_the_same_port_catches_up_without_duplicates(browser: Browser) -> None:
    async with serving(retry=200) as (server, team):
        port = server.port
        page, errors = await live_page(browser, server)
        for n in range(3):
            team.full_task(n)
        await wait_for(page, "() => window.otelSseDashboard.stats().tasks === 3 && "
                             "[...document.querySelectorAll('#tasks .task')]"
                             ".every(r => r.dataset.status === 'completed')")
        before = await page.evaluate(STATS)

        await server.stop()
        await wait_for(page, "() => document.getElementById('connection').dataset.state "
                             "!== 'live'")
        for n in range(3, 6):
            team.full_task(n)  # while the server is down: kept for its restart
        await server.start()
        assert server.port == port
        # (The telemetry queued meanwhile leaves with the next item recorded.)
        team.full_task(6)

        await wait_for(page, """() => {
            const rows = [...document.querySelectorAll('#tasks .task')];
            return rows.length === 7 && rows.every(r => r.dataset.status === 'completed'); }""")
        await live(page)
        rows = await tasks_in(page)
        assert sorted(r["taskId"] for r in rows) == [f"task-{n}" for n in range(7)]
        cards = await page.evaluate(REQUESTS)
        assert sorted(c["requestId"] for c in cards) == [f"req-{n}" for n in range(7)]
        assert all(c["text"] == "t0 t1 t2 " for c in cards)
        after = await page.evaluate(STATS)
        # Resumed from its last id: no gap, no second snapshot.
        assert after["gaps"] == 0 and after["snapshots"] == before["snapshots"]
        assert await page.locator("#connection").text_content() == "live"
        errors.check()


async def test_a_new_server_on_the_port_gives_a_gap_and_no_duplicate_rows(
        browser: Browser, tmp_path: Path) -> None:
    async with serving(retry=200) as (server, team):
        port = server.port
        page, errors = await live_page(browser, server)
        for n in range(2):
            team.full_task(n)
        team.agents.emit_agent_stopped("agent-a")  # nothing left open in this run
        await wait_for(page, "() => window.otelSseDashboard.stats().tasks === 2 && "
                             "!document.querySelector('#traces .trace.state-running')")
    # Another process's server (another run of ids) on the same port, with work open.
    async with serving(port=port, retry=200) as (_, team2):
        team2.agents.emit_agent_started("agent-b", "task-open")
        team2.tasks.emit_task_created("task-open", name="open", agent_id="agent-b")
        team2.tasks.emit_task_started("task-open")
        team2.llm.emit_request_started("req-open", provider="p", model="m", task_id="task-open",
                                       agent_id="agent-b", messages=[])
        for i in range(4):
            team2.llm.emit_token("req-open", f"w{i} ", i)
        await wait_for(page, """() => document.getElementById('connection').dataset.state
                                === 'gap'""")
        # The snapshot and the history replayed after the gap both describe the open
        # task: it is one row, its text written once.
        await wait_for(page, """() => {
            const c = document.querySelector("#requests .request[data-request-id='req-open']");
            return c && c.querySelector('.request-text').textContent === 'w0 w1 w2 w3 '; }""")
        rows = await tasks_in(page)
        assert sorted(r["taskId"] for r in rows) == ["task-0", "task-1", "task-open"]
        traces = await page.evaluate(TRACES)
        open_trace = [t for t in traces if t["state"] == "running"]
        assert len(open_trace) == 1 and len(open_trace[0]["spans"]) == 3
        span_ids = [s["spanId"] for t in traces for s in t["spans"]]
        assert len(span_ids) == len(set(span_ids))
        text = await page.text_content("#connection")
        assert text is not None and text.startswith("gap:")
        await screenshot(page, tmp_path, "gap")
        team2.llm.emit_request_completed("req-open", response="w0 w1 w2 w3 ", duration=1)
        team2.tasks.emit_task_completed("task-open")
        await wait_for(page, """() => document.querySelector(
            "#tasks .task[data-task-id='task-open']").dataset.status === 'completed'""")
        errors.check()


# ----------------------------------------------------------------- authentication


async def test_token_in_the_fragment_becomes_an_httponly_session(browser: Browser) -> None:
    async with serving(token=TOKEN) as (server, team):
        context = await browser.new_context()
        page = await context.new_page()
        errors = PageErrors(page)
        await page.goto(f"{server.url}/dashboard#token={TOKEN}")
        await live(page)
        # The token left the address bar (and history); the session is a cookie that
        # scripts cannot read.
        assert TOKEN not in await page.evaluate("location.href")
        assert await page.evaluate("document.cookie") == ""
        (cookie,) = await context.cookies()
        assert cookie["name"] == "otel_sse_session" and cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
        team.full_task(1)
        await wait_for(page, "() => document.querySelector('#tasks .task')?.dataset.status "
                             "=== 'completed'")
        errors.check()
        await context.close()

        # Without the fragment or a cookie: the page asks for the token.
        page, errors = await open_page(browser, f"{server.url}/dashboard")
        await wait_for(page, "() => !document.getElementById('token-panel').hidden")
        assert await page.get_attribute("#connection", "data-state") == "unauthorized"
        await page.fill("#token-input", "not-the-token")
        await page.click("#token-form button")
        await wait_for(page, "() => document.getElementById('token-error').textContent "
                             "=== 'that token was not accepted'")
        await page.fill("#token-input", TOKEN)
        await page.click("#token-form button")
        await live(page)
        assert await page.is_hidden("#token-panel")
        # A new subscriber: the snapshot is empty (nothing open), history is not replayed.
        team.full_task(2)
        await wait_for(page, "() => document.querySelector(\"#tasks .task[data-task-id='task-2']\")"
                             "?.dataset.status === 'completed'")
        errors.check()


async def test_a_wrong_token_in_the_fragment_is_refused(browser: Browser) -> None:
    async with serving(token=TOKEN) as (server, _):
        page, errors = await open_page(browser, f"{server.url}/dashboard#token=wrong-token-1")
        await wait_for(page, "() => document.getElementById('token-error').textContent "
                             "=== 'the token in the address was not accepted'")
        assert "wrong-token" not in await page.evaluate("location.href")
        assert await page.context.cookies() == []
        errors.check()


# ------------------------------------------------------------------- the page itself


async def test_page_is_served_at_the_root_to_browsers_with_a_strict_policy() -> None:
    async with serving(jaeger_url='http://jaeger.test:16686/"><x') as (server, _):
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/", headers={"Accept": "text/html"}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
                policy = resp.headers["Content-Security-Policy"]
                page = await resp.text()
            for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                              "connect-src 'self'", "frame-ancestors 'none'"):
                assert directive in policy
            # The Jaeger URL is written into an attribute, escaped.
            meta = '<meta name="otel-sse-jaeger" content="http://jaeger.test:16686/&quot;&gt;&lt;x">'
            assert meta in page
            assert "<script>" not in page and "style=" not in page
            for name, kind in (("app.js", "text/javascript"), ("store.js", "text/javascript"),
                               ("app.css", "text/css")):
                async with session.get(f"{server.url}/dashboard/{name}") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith(kind)
            for bad in ("/dashboard/../server.py", "/dashboard/.hidden", "/dashboard/nope.js"):
                async with session.get(f"{server.url}{bad}") as resp:
                    assert resp.status == 404, bad


async def test_a_jaeger_url_that_is_not_http_falls_back_to_the_default(
        browser: Browser) -> None:
    # The server refuses such a URL (tests/test_security.py); the page does not rely
    # on it: here the page arrives with one written into it on the way.
    async with serving() as (server, team):
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = PageErrors(page)

        async def tamper(route: Route) -> None:
            response = await route.fetch()
            body = (await response.text()).replace(
                f'content="{JAEGER}"', 'content="javascript:alert(1)"')
            assert "javascript:alert(1)" in body
            await route.fulfill(response=response, body=body)

        await page.route(f"{server.url}/", tamper)
        await page.goto(f"{server.url}/")
        await live(page)
        team.full_task(1)
        await wait_for(page, "() => document.querySelector('#tasks .task a.task-link')?.href")
        (row,) = await tasks_in(page)
        assert row["href"] == f"http://localhost:16686/trace/{row['traceId']}?uiFind={row['spanId']}"
        errors.check()


STORE_CASES = """async () => {
  const { Store } = await import('/dashboard/store.js');
  const ids = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16) };
  const llm = { requestId: 'r', provider: 'p', model: 'm', ...ids };
  const token = (index, text) => ['llm:token', { ...llm, token: text, index }];
  const run = (events) => {
    const store = new Store();
    for (const [type, data] of events) store.apply(type, data);
    return store;
  };
  const text = (store) => [...store.requests.values()][0].text;
  const snapshot = { openSpans: 1, events: [
    { event: 'llm:request:started', data: { ...llm, messages: [] } },
    { event: 'llm:text', data: { ...llm, text: 'a b c ', truncated: false } }] };
  const task = (type, status, extra) => [type, { taskId: 't', status, ...ids, ...extra }];
  return {
    // After a snapshot, live tokens continue its text.
    live: text(run([['snapshot', snapshot], token(3, 'd ')])),
    // After a gap: the snapshot, then history replayed from the first token.
    replayed: text(run([['snapshot', snapshot], token(0, 'a '), token(1, 'b '),
                        token(2, 'c '), token(3, 'd ')])),
    // A token seen twice counts once.
    twice: text(run([['llm:request:started', { ...llm, messages: [] }], token(0, 'x '),
                     token(0, 'x '), token(1, 'y')])),
    // A throttled progress update that comes after the end does not reopen the task.
    ended: [...run([task('task:started', 'running'), task('task:completed', 'completed'),
                    task('task:progress', 'running', { progress: { taskId: 't', percentage: 90,
                    currentStep: 's', timestamp: '2026-01-01T00:00:00.000Z' } })])
            .tasks.values()][0].status,
    // Spans seen again (a snapshot, then the replay) are one span.
    spans: run([['span:started', { ...ids, parentSpanId: null, name: 'x',
                                   startTime: '2026-01-01T00:00:00.000001Z' }],
                ['span:started', { ...ids, parentSpanId: null, name: 'x',
                                   startTime: '2026-01-01T00:00:00.000001Z' }]])
           .traces.get(ids.traceId).spans.size,
  };
}"""


async def test_store_applies_events_seen_twice_once(browser: Browser) -> None:
    async with serving() as (server, _):
        page, errors = await open_page(browser, f"{server.url}/dashboard")
        result = await page.evaluate(STORE_CASES)
        assert result == {"live": "a b c d ", "replayed": "a b c d ", "twice": "x y",
                          "ended": "completed", "spans": 1}
        errors.check()


# ------------------------------------------------------------------------- filters


async def test_filter_box_resubscribes_with_the_streams_filters(browser: Browser) -> None:
    async with serving() as (server, team):
        page, errors = await live_page(browser, server)
        await page.fill("#filter-input", "task:*, span:*")
        await page.press("#filter-input", "Enter")
        await wait_for(page, "() => location.search === '?filters=task%3A*%2Cspan%3A*'")
        await live(page)
        assert await page.input_value("#filter-input") == "task:*,span:*"
        (client,) = server.get_clients()  # the first subscription is closed
        assert client["filters"] == ["task:*", "span:*"]
        team.full_task(7)
        await wait_for(page, "() => document.querySelector('#tasks .task')?.dataset.status "
                             "=== 'completed'")
        await wait_for(page, "() => document.querySelectorAll('#traces .span, #folded .folded')"
                             ".length > 0")
        assert await page.evaluate(REQUESTS) == []  # llm:* is not subscribed
        # A pattern the server would refuse is refused on the page, which keeps its stream.
        await page.fill("#filter-input", "task:<x>")
        await page.press("#filter-input", "Enter")
        message = await page.text_content("#filter-error")
        assert message is not None and "may only hold letters" in message
        assert await page.get_attribute("#connection", "data-state") == "live"
        errors.check()
