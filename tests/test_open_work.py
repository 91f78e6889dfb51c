"""What the stream gives a viewer that opens mid-run: a snapshot of the open work,
trace:completed, heartbeats for long spans, stale spans of a silent source."""

from __future__ import annotations

import aiohttp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_sse import configure
from otel_sse.emitters import LLMStream, TaskStream
from tests.sse_helpers import running_server, stream
from tests.test_bridge_support import check_event


async def test_a_new_subscriber_gets_the_open_work_first() -> None:
    async with running_server() as server:
        tel = configure(service_name="snap", server=server, set_global=False)
        tasks, llm = TaskStream(server, telemetry=tel, progress_update_interval=0.01), \
            LLMStream(server, telemetry=tel)
        tasks.emit_task_created("t1", name="long job")
        tasks.emit_task_started("t1")
        tasks.emit_progress("t1", percentage=40, current_step="reading")
        llm.emit_request_started("r1", provider="openai", model="gpt-4o", task_id="t1",
                                 messages=[{"role": "user", "content": "hi"}])
        for i, word in enumerate(("Hello", " there")):
            llm.emit_token("r1", word, i)
        tasks.emit_task_created("t2", name="done already")
        tasks.emit_task_completed("t2")
        assert await tel.aforce_flush()
        async with stream(f"{server.url}/events") as (_, reader):
            await reader.until("connected")
            snapshot = await reader.next()
            assert snapshot.event == "snapshot" and snapshot.id is None
            events = snapshot.data["events"]
            types = [e["event"] for e in events]
            assert types.count("span:started") == 2  # the task and the LLM request
            assert "task:created" in types and "llm:request:started" in types
            progress = [e["data"] for e in events if e["event"] == "task:progress"]
            assert progress[-1]["progress"]["percentage"] == 40
            text = next(e["data"] for e in events if e["event"] == "llm:text")
            assert text["text"] == "Hello there" and text["requestId"] == "r1"
            created = [e["data"]["taskId"] for e in events if e["event"] == "task:created"]
            assert created == ["t1"]  # t2 ended: not open work
            for entry in events:
                if entry["event"] != "llm:text":
                    check_event(entry["event"], entry["data"])
            tasks.emit_task_completed("t1")
            llm.emit_request_completed("r1", response="Hello there", duration=5)
            assert (await reader.until("task:completed")).data["taskId"] == "t1"
        # A filtered subscriber gets only what its filters take; a resuming one none.
        tasks.emit_task_created("t3", name="another")
        assert await tel.aforce_flush()
        async with stream(f"{server.url}/events?filters=llm:*") as (_, reader):
            await reader.until("connected")
            server.publish("llm:marker", {})
            assert (await reader.next()).event == "llm:marker"  # no snapshot: nothing for it
        async with stream(f"{server.url}/events?filters=task:*") as (_, reader):
            await reader.until("connected")
            snap = await reader.next()
            assert snap.event == "snapshot"
            assert {e["event"] for e in snap.data["events"]} == {"task:created"}
        resume = f"{server.log.run_id}-{server.log.history.last_seq}"
        async with stream(f"{server.url}/events",
                          headers={"Last-Event-ID": resume}) as (_, reader):
            await reader.until("connected")
            server.publish("after:resume", {})
            assert (await reader.next()).event == "after:resume"
        await tel.ashutdown()


async def test_trace_completed_and_heartbeats() -> None:
    async with running_server(heartbeat_interval=0.3) as server, \
            stream(f"{server.url}/events?filters=trace:*,span:heartbeat") as (_, reader):
        await reader.until("connected")
        tel = configure(service_name="beats", server=server, set_global=False)
        tasks = TaskStream(server, telemetry=tel)
        tasks.emit_task_created("slow", name="slow job")
        beat = await reader.until("span:heartbeat")
        assert beat.data["count"] == 1 and beat.data["spans"][0]["name"] == "task slow job"
        check_event("span:heartbeat", beat.data)
        tasks.emit_task_failed("slow", "gave up")
        done = await reader.until("trace:completed")
        assert done.data["spanCount"] == 1 and done.data["errorCount"] == 1
        assert done.data["name"] == "task slow job"
        check_event("trace:completed", done.data)
        assert server.get_stats()["tracesCompleted"] == 1
        await tel.ashutdown()


async def test_spans_of_a_silent_source_go_stale() -> None:
    request = ExportTraceServiceRequest()
    group = request.resource_spans.add()
    for key, value in (("service.name", "remote"), ("service.instance.id", "proc-1")):
        group.resource.attributes.add(key=key).value.string_value = value
    span = group.scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\x07" * 16, b"\x03" * 8
    span.name = "remote work"
    span.start_time_unix_nano = 1_700_000_000_000_000_000  # end 0: a start
    async with running_server(heartbeat_interval=0.2, stale_after=0.5) as server, \
            stream(f"{server.url}/events?filters=span:*") as (_, reader), \
            aiohttp.ClientSession() as session:
        await reader.until("connected")
        async with session.post(f"{server.url}/v1/traces", data=request.SerializeToString(),
                                headers={"Content-Type": "application/x-protobuf"}) as resp:
            assert resp.status == 200
        started = await reader.until("span:started")
        assert started.data["name"] == "remote work"
        stale = await reader.until("span:stale")
        assert stale.data["spanId"] == "03" * 8 and stale.data["serviceName"] == "remote"
        check_event("span:stale", stale.data)
        assert server.get_stats()["openSpans"] == 0
