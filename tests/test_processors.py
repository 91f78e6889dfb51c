"""The SSE processors: non-blocking hooks, bounded queue, one wake-up per busy period,
foreign telemetry as generic events."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_sse.processors import SSEBridge, SSELogRecordProcessor, SSESpanProcessor
from tests.test_bridge_support import ListSink, check_event, settle


class CountingLoop:
    """Wraps the running loop to count cross-thread wake-ups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wakeups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)

    def call_soon_threadsafe(self, *args: Any) -> Any:
        self.wakeups += 1
        return self.loop.call_soon_threadsafe(*args)


def _providers(bridge: SSEBridge) -> tuple[TracerProvider, LoggerProvider]:
    resource = Resource.create({"service.name": "foreign-svc"})
    tp = TracerProvider(resource=resource, shutdown_on_exit=False)
    tp.add_span_processor(SSESpanProcessor(bridge))
    lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
    lp.add_log_record_processor(SSELogRecordProcessor(bridge))
    return tp, lp


async def test_foreign_spans_and_logs_become_generic_events() -> None:
    sink = ListSink()
    bridge = SSEBridge(sink)
    tp, lp = _providers(bridge)
    tracer = tp.get_tracer("third.party")
    with tracer.start_as_current_span("GET /items", kind=SpanKind.SERVER,
                                      attributes={"http.route": "/items", "tags": ("a", "b")}):
        with tracer.start_as_current_span("db query") as child:
            child.add_event("row", {"n": 1})
            child.set_status(Status(StatusCode.ERROR, "timeout"))
            lp.get_logger("third.party").emit(body={"msg": "slow"}, severity_text="WARN",
                                              event_name="db.slow", attributes={"ms": 900})
    await settle()
    types = sink.types()
    assert types == ["span:started", "span:started", "log", "span:ended", "span:ended"]
    for event_type, data in sink.events:
        check_event(event_type, data)
    started = sink.of("span:started")
    assert started[0]["kind"] == "server" and started[0]["serviceName"] == "foreign-svc"
    assert started[0]["attributes"] == {"http.route": "/items", "tags": ["a", "b"]}
    assert started[1]["parentSpanId"] == started[0]["spanId"]
    ended = sink.of("span:ended")[0]
    assert ended["status"] == "error" and ended["statusMessage"] == "timeout"
    assert ended["events"][0]["name"] == "row" and ended["durationMs"] >= 0
    assert ended["endTime"].endswith("Z") and len(ended["endTime"]) == 27  # microseconds
    log = sink.of("log")[0]
    assert log["eventName"] == "db.slow" and log["body"] == {"msg": "slow"}
    assert log["spanId"] == started[1]["spanId"] and log["severity"] == "WARN"


async def test_one_wakeup_per_busy_period_from_other_threads() -> None:
    sink = ListSink()
    counting = CountingLoop(asyncio.get_running_loop())
    sink.loop = counting  # type: ignore[assignment]
    bridge = SSEBridge(sink)
    tp, _ = _providers(bridge)
    tracer = tp.get_tracer("t")

    def burst() -> None:
        for i in range(2000):
            with tracer.start_as_current_span(f"s{i}"):
                pass

    await asyncio.to_thread(burst)
    await settle(0.1)
    assert len(sink.events) == 4000
    assert counting.wakeups < 50, counting.wakeups  # not one per span


async def test_queue_is_bounded_and_counts_drops() -> None:
    sink = ListSink()
    sink.loop = None  # type: ignore[assignment]  # not started yet: nothing drains
    bridge = SSEBridge(sink, max_queue=10)
    tp, _ = _providers(bridge)
    for i in range(25):
        tp.get_tracer("t").start_span(f"s{i}").end()
    assert bridge.pending == 10 and bridge.dropped == 40
    sink.loop = asyncio.get_running_loop()
    tp.get_tracer("t").start_span("late").end()  # the next hook wakes the drain
    await settle()
    assert len(sink.events) == 10 and bridge.stats()["published"] == 10
    assert bridge.dropped == 42


async def test_hooks_never_raise_when_the_sink_fails() -> None:
    class Broken(ListSink):
        def publish(self, event_type: str, data: Any) -> int:
            raise ValueError("bad event type\n")

    sink = Broken()
    bridge = SSEBridge(sink)
    tp, lp = _providers(bridge)
    with tp.get_tracer("t").start_as_current_span("x"):
        lp.get_logger("t").emit(body="b")
    await settle()
    assert bridge.errors == 3 and bridge.pending == 0


async def test_flush_from_another_thread_waits_for_the_loop() -> None:
    sink = ListSink()
    bridge = SSEBridge(sink)
    tp, _ = _providers(bridge)
    done = threading.Event()

    def work() -> None:
        for i in range(100):
            tp.get_tracer("t").start_span(f"s{i}").end()
        assert bridge.flush(5)
        done.set()

    await asyncio.to_thread(work)
    assert done.is_set() and len(sink.events) == 200


async def test_span_started_shows_the_attributes_the_span_started_with() -> None:
    sink = ListSink()
    tp, _ = _providers(SSEBridge(sink))
    span = tp.get_tracer("t").start_span("op", attributes={"at.start": 1})
    span.set_attribute("later", "x")  # before the loop has converted the start
    span.end()
    await settle()
    assert sink.of("span:started")[0]["attributes"] == {"at.start": 1}
    assert sink.of("span:ended")[0]["attributes"] == {"at.start": 1, "later": "x"}


async def test_a_backlog_goes_out_in_slices_a_small_client_queue_can_take() -> None:
    # A server whose clients may fall only 40 events behind must not get a
    # backlog of thousands in one loop callback: its writers could not run.
    class SmallQueueSink(ListSink):
        class config:  # stands in for ServerConfig
            client_queue_size = 40

        def __init__(self) -> None:
            super().__init__()
            self.tick = 0
            self.per_tick: dict[int, int] = {}

        def publish(self, event_type: str, data: Any) -> int:
            self.per_tick[self.tick] = self.per_tick.get(self.tick, 0) + 1
            return super().publish(event_type, data)

    sink = SmallQueueSink()
    loop = sink.loop
    sink.loop = None  # type: ignore[assignment]  # held up: the backlog builds
    bridge = SSEBridge(sink)
    tp, _ = _providers(bridge)
    for i in range(300):
        tp.get_tracer("t").start_span(f"s{i}").end()
    assert bridge.pending == 600
    stop = False

    async def ticker() -> None:
        while not stop:
            sink.tick += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    sink.loop = loop
    tp.get_tracer("t").start_span("last").end()
    assert await bridge.wait_idle(5)
    stop = True
    await task
    assert len(sink.events) == 602
    assert max(sink.per_tick.values()) <= 10  # a quarter of 40
    assert len(sink.per_tick) >= 60


async def test_after_shutdown_hooks_take_nothing_and_stats_add_up() -> None:
    sink = ListSink()
    bridge = SSEBridge(sink)
    tp, lp = _providers(bridge)
    for i in range(5):
        tp.get_tracer("t").start_span(f"s{i}").end()
    lp.get_logger("t").emit(body="kept")
    assert bridge.stats()["submitted"] == 11 and bridge.pending == 11
    tp.shutdown()  # flushes what was accepted, then closes the bridge
    assert len(sink.events) == 11 and bridge.pending == 0
    tp.get_tracer("t").start_span("late").end()
    lp.get_logger("t").emit(body="late")
    await settle()
    assert bridge.stats() == {"submitted": 11, "published": 11, "dropped": 0, "errors": 0,
                              "pending": 0}
    assert len(sink.events) == 11



async def test_what_was_queued_before_the_server_started_goes_out_when_it_starts() -> None:
    from otel_sse.server import SSEServer

    server = SSEServer(port=0, host="127.0.0.1")
    bridge = SSEBridge(server)
    tp, _ = _providers(bridge)
    with tp.get_tracer("early").start_as_current_span("before the server"):
        pass
    assert bridge.pending == 2  # the span's start and end, waiting for a loop
    await server.start()
    try:
        # Nothing else is emitted: starting the server is what drains the queue.
        async with asyncio.timeout(5):
            while bridge.published < 2:
                await asyncio.sleep(0.01)
        history = server.hub.log.history
        assert history.types(history.first_seq, history.last_seq) == [
            "span:started", "span:ended", "trace:completed"]
    finally:
        await server.stop()
        tp.shutdown()


async def test_a_bridge_dropped_by_a_later_configure_is_not_kept_by_the_server() -> None:
    import gc
    import weakref

    from otel_sse.server import SSEServer

    server = SSEServer(port=0, host="127.0.0.1")
    kept = SSEBridge(server)
    dropped = weakref.ref(SSEBridge(server))
    gc.collect()
    assert dropped() is None  # the server holds its bridges weakly
    await server.start()
    try:
        assert len(server.hub._on_bind) == 1 and server.hub._on_bind[0]() is not None
    finally:
        await server.stop()
    del kept
