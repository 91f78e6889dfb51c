"""The snapshot a new subscriber gets describes the open work with the events that
opened it, although a span's seed events are published just before its span:started."""

from __future__ import annotations

from otel_sse.bus.open_spans import EARLY_SPANS, OpenSpans
from otel_sse.emitters import AgentStream, LLMStream, TaskStream
from otel_sse.telemetry import configure
from tests.sse_helpers import running_server, stream


async def test_snapshot_holds_the_opening_events_of_every_open_span() -> None:
    async with running_server() as server:
        tel = configure(service_name="open-spans", server=server, set_global=False)
        try:
            agents, tasks = AgentStream(server, telemetry=tel), TaskStream(server, telemetry=tel)
            llm = LLMStream(server, telemetry=tel)
            async with stream(f"{server.url}/events?filters=llm:token") as (_, reader):
                await reader.until("connected")
                agents.emit_agent_started("agent-1", "task-1")
                tasks.emit_task_created("task-1", name="fix", agent_id="agent-1")
                tasks.emit_task_started("task-1")
                llm.emit_request_started("req-1", provider="p", model="m", task_id="task-1",
                                         agent_id="agent-1", messages=[])
                for i, word in enumerate(["one ", "two"]):
                    llm.emit_token("req-1", word, i)
                while (await reader.until("llm:token")).data["index"] != 1:
                    pass
            async with stream(f"{server.url}/events") as (_, reader):
                await reader.until("connected")
                snapshot = await reader.next()
        finally:
            await tel.ashutdown()
    assert snapshot.event == "snapshot" and snapshot.data["openSpans"] == 3
    events = [(e["event"], e["data"]) for e in snapshot.data["events"]]
    types = [t for t, _ in events]
    assert types == ["span:started", "agent:started", "span:started", "task:created",
                     "task:started", "span:started", "llm:request:started", "llm:text"]
    by_type = dict(events)
    assert by_type["agent:started"]["currentTaskId"] == "task-1"
    assert by_type["task:created"]["name"] == "fix"
    assert by_type["llm:request:started"]["requestId"] == "req-1"
    text = by_type["llm:text"]
    assert text["text"] == "one two" and text["requestId"] == "req-1"
    assert text["spanId"] == by_type["llm:request:started"]["spanId"]


def test_opening_events_of_spans_that_never_start_are_bounded() -> None:
    spans = OpenSpans()
    for n in range(EARLY_SPANS * 3):
        spans.observe("task:created", {"taskId": f"t{n}", "spanId": f"{n:016x}"})
    assert len(spans.early) == EARLY_SPANS
    assert not spans.spans
    # The newest wait for their span, which takes them when it starts.
    last = f"{EARLY_SPANS * 3 - 1:016x}"
    spans.observe("span:started", {"spanId": last, "traceId": "0" * 32, "parentSpanId": None})
    (group,) = [e for e in spans.snapshot()["events"] if e["event"] == "task:created"]
    assert group["data"]["taskId"] == f"t{EARLY_SPANS * 3 - 1}"
    assert last not in spans.early
