"""The gateway forwarder: its configuration, its requests, and how it behaves when
the gateway is away, refuses the token, or cannot keep up.

Real parts: a real gateway (``SSEServer``, OTLP/HTTP ingest) on 127.0.0.1, real
SDK providers, real sockets; the encoder and the outage bookkeeping are also
driven directly (they are sans-I/O).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from opentelemetry.context import Context
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otel_sse.convert import LiveEvent
from otel_sse.convert import names as n
from otel_sse.convert.otlp import any_value
from otel_sse.emitters import AgentStream, LLMStream, TaskStream
from otel_sse.env import Env
from otel_sse.errors import ConfigError
from otel_sse.processors.model import started_snapshot
from otel_sse.server import SSEServer
from otel_sse.telemetry import GatewayConfig, Telemetry, configure
from otel_sse.telemetry.gateway_encode import END, FLUSH, LIVE, LOG, START, RequestEncoder
from otel_sse.telemetry.gateway_link import GatewayHealth, Reply
from otel_sse.telemetry.setup import TelemetryRegistry
from tests.black_holes import SilentListener, refused_endpoint
from tests.conftest import free_port
from tests.sse_helpers import FrameReader, running_server, stream

TOKEN = "producer-token-1"
LOGGER = "otel_sse.telemetry.gateway"


def _lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def _until(what: str, condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.01)


def _gateway(url: str, tel_options: dict[str, Any] | None = None, **options: Any) -> Telemetry:
    """``configure()`` for tests: this gateway, fast retries, nothing exported."""
    options.setdefault("retry_initial", 0.02)
    options.setdefault("retry_max", 0.1)
    return configure(service_name="forwarded", gateway=GatewayConfig(url, **options),
                     set_global=False, metrics_exporter="none", **(tel_options or {}))


async def _events_until(reader: FrameReader, last: str, timeout: float = 10.0,
                        **match: Any) -> list[tuple[str, Any]]:
    """The events read until one of type ``last`` (whose data has ``match``)."""
    seen: list[tuple[str, Any]] = []
    while True:
        frame = await reader.next(timeout)
        seen.append((frame.event, frame.data))
        if frame.event == last and all(frame.data.get(k) == v for k, v in match.items()):
            return seen


@asynccontextmanager
async def _subscribed(server: SSEServer, token: str | None = None
                      ) -> AsyncIterator[FrameReader]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with stream(server.url + "/events", headers=headers) as (response, reader):
        assert response.status == 200
        yield reader


# -- configuration ---------------------------------------------------------------------------
def test_the_gateway_and_its_token_come_from_arguments_then_the_environment() -> None:
    env = Env({"OTEL_SSE_GATEWAY": "http://gw:3000/", "OTEL_SSE_TOKEN": "subscriber-1",
               "OTEL_SSE_PRODUCER_TOKEN": "producer-1", "OTEL_SSE_GATEWAY_INTERVAL": "0.05"})
    config = GatewayConfig.from_env(env)
    assert config is not None
    assert (config.url, config.token, config.interval) == ("http://gw:3000", "producer-1", 0.05)
    assert (config.host, config.port, config.path("traces")) == ("gw", 3000, "/v1/traces")
    env = Env({"OTEL_SSE_GATEWAY": "http://gw:3000", "OTEL_SSE_TOKEN": "subscriber-1",
               "OTEL_SSE_PRODUCER_TOKEN": "producer-1", "OTEL_SSE_GATEWAY_TOKEN": "gateway-1"})
    assert GatewayConfig.from_env(env).token == "gateway-1"  # type: ignore[union-attr]
    assert GatewayConfig.from_env(Env({"OTEL_SSE_TOKEN": "only-1",
                                       "OTEL_SSE_GATEWAY": "http://gw"})).token == "only-1"  # type: ignore[union-attr]
    given = GatewayConfig.from_env(env, "https://proxy.example/otel-sse/", "arg-token")
    assert given is not None and given.token == "arg-token" and given.https
    assert (given.port, given.path("logs")) == (443, "/otel-sse/v1/logs")
    assert GatewayConfig.from_env(Env({})) is None
    assert GatewayConfig.from_env(Env({}), GatewayConfig("http://a:1"), "t-1").token == "t-1"  # type: ignore[union-attr]


@pytest.mark.parametrize(("url", "says"), [
    ("localhost:3000", "must be http://host:port"),
    ("ftp://gw:21", "must be http://host:port"),
    ("http://gw:port", "is not a URL"),
    ("http://gw:3000/?token=x", "no query"),
])
def test_a_bad_gateway_url_is_refused_naming_it(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match="OTEL_SSE_GATEWAY") as raised:
        GatewayConfig.from_env(Env({"OTEL_SSE_GATEWAY": url}))
    assert says in str(raised.value)


def test_secrets_are_in_no_error_and_no_repr() -> None:
    with pytest.raises(ConfigError) as raised:
        GatewayConfig("http://user:hunter2@gw:3000")
    assert "hunter2" not in str(raised.value) and "***@gw:3000" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        GatewayConfig("http://gw:3000", token="line-1\nline-2")
    assert "line-1" not in str(raised.value)
    with pytest.raises(ConfigError, match="gateway="):
        GatewayConfig.from_env(Env({}), None, "token-without-gateway")
    tel = configure(service_name="secret", gateway=refused_endpoint(), token="s3cret-token",
                    set_global=False, metrics_exporter="none")
    try:
        assert tel.gateway is not None
        for text in (repr(tel.config), repr(tel.config.gateway), repr(tel.gateway),
                     str(tel.gateway.stats())):
            assert "s3cret-token" not in text
    finally:
        tel.shutdown(0.5)


# -- what is sent ----------------------------------------------------------------------------
class _Keep(LogRecordProcessor):
    def __init__(self) -> None:
        self.records: list[ReadWriteLogRecord] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.records.append(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _decode(body: bytes, signal: str | None) -> list[tuple[str, Any]]:
    """(what, name) of each item of a request: ("start"/"end", span name), ("log", event)."""
    if signal == "traces":
        request = ExportTraceServiceRequest.FromString(body)
        return [("end" if span.end_time_unix_nano else "start", span.name)
                for group in request.resource_spans for scoped in group.scope_spans
                for span in scoped.spans]
    logs = ExportLogsServiceRequest.FromString(body)
    return [("log", record.event_name or any_value(record.body))
            for group in logs.resource_logs for scoped in group.scope_logs
            for record in scoped.log_records]


def test_a_batch_is_its_starts_then_its_records_then_its_ends() -> None:
    tracer = TracerProvider(resource=Resource.create({"service.name": "enc"})).get_tracer("t")
    logs = LoggerProvider()
    kept = _Keep()
    logs.add_log_record_processor(kept)
    logger = logs.get_logger("t")
    span_a, span_b = tracer.start_span("a"), tracer.start_span("b")
    a, b = cast(ReadableSpan, span_a), cast(ReadableSpan, span_b)
    logger.emit(body="r1")
    logger.emit(body="r2")
    span_b.end()
    span_a.end()
    token = LiveEvent("llm:token", {"requestId": "r", "provider": "p", "model": "m",
                                    "token": "hi", "index": 0}, 1, 2, None, 5)
    marked: list[str] = []
    encoder = RequestEncoder({"service.name": "enc", "service.instance.id": "i-1"}, 2)
    out = encoder.encode([
        (START, started_snapshot(a)), (LOG, kept.records[0]), (START, started_snapshot(b)),
        (LIVE, token), (END, b), (LOG, kept.records[1]), (FLUSH, lambda: marked.append("x")),
        (END, a), (LOG, object()),  # the last one cannot be converted: counted, left out
    ])
    assert [(o.signal, _decode(o.body, o.signal) if o.signal else None) for o in out] == [
        ("traces", [("start", "a"), ("start", "b")]),
        ("logs", [("log", "r1"), ("log", n.EVENT_NAMES["llm:token"])]),  # max_batch=2
        ("logs", [("log", "r2")]),
        ("traces", [("end", "b")]),
        (None, None),
        ("traces", [("end", "a")]),
    ]
    assert [o.items for o in out] == [2, 2, 1, 1, 0, 1] and encoder.errors == 1
    out[4].done()  # type: ignore[misc]
    assert marked == ["x"]
    request = ExportTraceServiceRequest.FromString(out[0].body)
    resource = {kv.key: any_value(kv.value) for kv in request.resource_spans[0].resource.attributes}
    assert resource == {"service.name": "enc", "service.instance.id": "i-1"}
    keepalive = ExportLogsServiceRequest.FromString(encoder.keepalive().body)
    assert len(keepalive.resource_logs) == 1 and not keepalive.resource_logs[0].scope_logs


def test_live_only_fields_ride_as_attributes() -> None:
    tracer = TracerProvider().get_tracer("t")
    span = cast(ReadableSpan, tracer.start_span("chat m",
                                                 attributes={n.GEN_AI_OPERATION_NAME: "chat"}))
    live = {"messages": [{"role": "user", "content": "secret prompt"}]}
    out = RequestEncoder({"service.name": "enc"}, 10).encode(
        [((START, live), started_snapshot(span))])
    request = ExportTraceServiceRequest.FromString(out[0].body)
    attributes = {kv.key: any_value(kv.value)
                  for kv in request.resource_spans[0].scope_spans[0].spans[0].attributes}
    assert "secret prompt" in attributes[n.GEN_AI_INPUT_MESSAGES]
    assert attributes[n.GEN_AI_OPERATION_NAME] == "chat"


# -- outage bookkeeping (sans-I/O) -------------------------------------------------------------
def test_one_line_when_the_gateway_goes_and_one_when_it_is_back(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    now = [100.0]
    health = GatewayHealth(GatewayConfig("http://gw:1", retry_initial=0.1, retry_max=0.5),
                           clock=lambda: now[0], jitter=lambda: 1.0)
    delays = [health.unreachable("connection refused", dropped=0) for _ in range(5)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert health.waiting == pytest.approx(0.5)
    now[0] += 12.5
    health.succeeded(dropped=7)
    health.succeeded(dropped=7)
    assert _lines(caplog, logging.WARNING) == [
        "otel-sse: cannot reach the gateway at http://gw:1 (connection refused); the "
        "application carries on, live telemetry waits (up to 32 MiB) and is sent when the "
        "gateway is back; this is not logged again until then"]
    assert _lines(caplog) == [
        "otel-sse: the gateway at http://gw:1 is back after 12.5 s; 7 live items were dropped "
        "meanwhile"]
    assert health.failures == 0 and health.waiting == 0


def test_a_refused_token_is_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    health = GatewayHealth(GatewayConfig("http://gw:1", token="wrong-token"))
    for _ in range(3):
        health.refused(Reply(401, "Unauthorized", b"a token is needed"), "/v1/logs", 0)
    health.rejected(Reply(413, "Content Too Large", b"too big"), "/v1/traces", 3)
    health.rejected(Reply(413, "Content Too Large", b"too big"), "/v1/traces", 3)
    warned = _lines(caplog, logging.WARNING)
    assert warned == [
        "otel-sse: the gateway at http://gw:1 refused this process's token (401 Unauthorized): "
        "set OTEL_SSE_GATEWAY_TOKEN (or configure(token=...)) to its producer token; live "
        "telemetry is dropped until it is accepted",
        "otel-sse: the gateway at http://gw:1 rejected POST /v1/traces (413 Content Too Large: "
        "too big); its 3 items are dropped"]
    assert not any("wrong-token" in line for line in warned)
    caplog.clear()
    GatewayHealth(GatewayConfig("http://gw:1")).refused(Reply(401, "Unauthorized", b""), "/", 0)
    assert "wants a token and this process sent none" in _lines(caplog, logging.WARNING)[0]


# -- against a real gateway ------------------------------------------------------------------
class _Count(SpanProcessor, LogRecordProcessor):
    """Counts what the hooks saw: what the forwarder was offered."""

    def __init__(self) -> None:
        self.seen = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.seen += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.seen += 1

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.seen += 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


async def test_a_gateway_down_at_start_costs_one_line_and_is_found_when_it_comes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    port = free_port()
    tel = _gateway(f"http://127.0.0.1:{port}")
    assert tel.gateway is not None
    stats = tel.gateway.stats
    counted = _Count()
    tel.tracer_provider.add_span_processor(counted)
    try:
        tasks = TaskStream(telemetry=tel)
        for i in range(200):  # every call returns: the hooks only queue
            tasks.emit_task_created(f"early-{i}", name="before the gateway")
            tasks.emit_task_completed(f"early-{i}", result={"i": i})
        await _until("three failed attempts", lambda: stats()["failures"] >= 3)
        assert stats()["pending"] > 0 and not stats()["connected"]
        async with running_server(port=port) as server, _subscribed(server) as reader:
            await _until("the recovery", lambda: stats()["connected"])
            tasks.emit_task_created("late", name="after the gateway came")
            tasks.emit_task_completed("late", result={"ok": True})
            await _events_until(reader, "task:completed", taskId="late")
            assert await asyncio.to_thread(tel.gateway.flush, 10)
    finally:
        await tel.ashutdown(2)
    final = stats()
    assert final["sent"] == final["submitted"] == counted.seen and final["dropped"] == 0
    warned = _lines(caplog, logging.WARNING)
    assert len(warned) == 1 and warned[0].startswith(
        f"otel-sse: cannot reach the gateway at http://127.0.0.1:{port} (")
    back = _lines(caplog)
    assert len(back) == 1 and back[0].startswith(
        f"otel-sse: the gateway at http://127.0.0.1:{port} is back after ")


async def test_a_wrong_token_is_one_clear_line_and_nothing_is_published(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_server(token="subscriber-1", producer_token=TOKEN) as server, \
            _subscribed(server, "subscriber-1") as reader:
        tel = _gateway(server.url, token="not-the-producer-token")
        assert tel.gateway is not None
        stats = tel.gateway.stats
        try:
            tasks = TaskStream(telemetry=tel)
            tasks.emit_task_created("t", name="refused")
            await _until("refusals", lambda: stats()["rejected"] >= 1 and stats()["failures"] >= 2)
            tasks.emit_task_completed("t")
            await _until("more refusals", lambda: stats()["rejected"] >= 2)
            server.publish("test:end", {})
            events = await _events_until(reader, "test:end")
        finally:
            await tel.ashutdown(1)
    assert [e for e, _ in events if e not in ("connected", "snapshot")] == ["test:end"]
    warned = _lines(caplog, logging.WARNING)
    assert len(warned) == 1 and "refused this process's token (401 Unauthorized)" in warned[0]
    assert "OTEL_SSE_GATEWAY_TOKEN" in warned[0]
    assert not any("not-the-producer-token" in r.getMessage() for r in caplog.records)


async def test_the_bounds_drop_and_count_and_everything_is_accounted_for(
        caplog: pytest.LogCaptureFixture) -> None:
    """While the gateway is away: at most ``max_queue`` items wait to be encoded (the
    newest are refused) and ``max_bytes`` encoded (the oldest go). Every item the
    hooks saw is sent, dropped, rejected or failed to convert, none twice."""
    caplog.set_level(logging.INFO, LOGGER)
    port = free_port()
    tel = _gateway(f"http://127.0.0.1:{port}", max_queue=50, max_bytes=8192, max_batch=20)
    assert tel.gateway is not None
    stats = tel.gateway.stats
    counted = _Count()
    tel.tracer_provider.add_span_processor(counted)
    tel.logger_provider.add_log_record_processor(counted)
    try:
        agents = AgentStream(telemetry=tel)
        agents.emit_agent_spawned("a", name="busy")
        for i in range(3000):
            agents.emit_output("a", "stdout", f"line {i} " + "x" * 200)
        await _until("the backlog to fill", lambda: stats()["pending"] <= 60)
        assert stats()["dropped"] > 0
        async with running_server(port=port):
            agents.emit_agent_stopped("a")
            assert await asyncio.to_thread(tel.gateway.flush, 10)
    finally:
        await tel.ashutdown(2)
    final = stats()
    assert final["pending"] == final["rejected"] == final["errors"] == 0
    assert final["sent"] + final["dropped"] == counted.seen
    assert 0 < final["sent"] < counted.seen
    (back,) = _lines(caplog)
    dropped_meanwhile = int(back.split("; ")[1].split()[0])
    assert 0 < dropped_meanwhile <= final["dropped"]


async def test_shutdown_keeps_its_deadline_when_the_gateway_hangs(
        caplog: pytest.LogCaptureFixture) -> None:
    """A gateway that accepts and never answers: the request in flight is ended at
    the deadline, and one line says what was not delivered."""
    caplog.set_level(logging.INFO, LOGGER)
    with SilentListener() as silent:
        tel = _gateway(silent.endpoint, {"shutdown_timeout": 1.0})
        assert tel.gateway is not None
        tasks = TaskStream(telemetry=tel)
        for i in range(20):
            tasks.emit_task_created(f"t{i}")
        start = time.monotonic()
        ok = await tel.ashutdown()
        elapsed = time.monotonic() - start
    assert ok is False
    assert elapsed < 1.0 + 4.0, f"shutdown took {elapsed:.1f} s"  # deadline + slack
    (line,) = _lines(caplog, logging.WARNING)
    assert line.startswith("otel-sse: ") and "were not delivered to the gateway" in line


async def test_tls_gateway_with_its_certificate_authority(tls_files: dict[str, Path]) -> None:
    async with running_server(cert_path=str(tls_files["cert"]), key_path=str(tls_files["key"])
                              ) as server:
        assert server.url.startswith("https://")
        tel = _gateway(server.url, certificate=str(tls_files["ca"]))
        assert tel.gateway is not None
        try:
            TaskStream(telemetry=tel).emit_task_created("over-tls")
            assert await asyncio.to_thread(tel.gateway.flush, 10)
            assert tel.gateway.stats()["sent"] == 1
        finally:
            await tel.ashutdown(1)
        assert server.get_stats()["ingestSpans"] == 1


async def test_emitters_without_a_server_stream_tokens_to_the_gateway() -> None:
    async with running_server() as server, _subscribed(server) as reader:
        tel = _gateway(server.url)
        try:
            llm = LLMStream(telemetry=tel)
            llm.emit_request_started("r", provider="p", model="m", messages=[])
            for i in range(3):
                llm.emit_token("r", f"t{i}", i)
            llm.emit_request_completed("r", response="t0t1t2")
            events = await _events_until(reader, "trace:completed")
        finally:
            await tel.ashutdown(1)
    tokens = [d for e, d in events if e == "llm:token"]
    assert [(t["token"], t["index"], t["requestId"]) for t in tokens] == [
        ("t0", 0, "r"), ("t1", 1, "r"), ("t2", 2, "r")]
    started = next(d for e, d in events if e == "llm:request:started")
    assert {t["spanId"] for t in tokens} == {started["spanId"]}


def test_otel_sse_gateway_alone_forwards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without configure(): the emitters' telemetry handle forwards too."""
    monkeypatch.setenv("OTEL_SSE_GATEWAY", refused_endpoint())
    handle = TelemetryRegistry().resolve(None)
    try:
        assert handle.gateway is not None
        assert handle.gateway.config.url == os.environ["OTEL_SSE_GATEWAY"]
    finally:
        handle.shutdown(0.5)


async def test_a_forked_child_is_a_source_of_its_own() -> None:
    """After fork() the child forwards on a thread of its own, under its own
    ``service.instance.id``; what the parent had queued stays the parent's."""
    async with running_server() as server, _subscribed(server) as reader:
        tel = _gateway(server.url)
        assert tel.gateway is not None
        parent_id = tel.gateway.resource["service.instance.id"]
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():  # 3.12+ warns about fork() beside threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: report and leave without running the parent's atexit
            code = 1
            try:
                gateway = tel.gateway
                TaskStream(telemetry=tel).emit_task_created("from-the-child")
                sent = gateway.flush(10)
                os.write(write_end, f"{gateway.resource['service.instance.id']} {sent}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        try:
            _, status = await asyncio.to_thread(os.waitpid, pid, 0)
            report = os.read(read_end, 200).decode().split()
            events = await _events_until(reader, "task:created")
        finally:
            os.close(read_end)
            await tel.ashutdown(1)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report[1] == "True" and report[0] != parent_id
    assert events[-1][1]["taskId"] == "from-the-child"


async def test_a_quiet_app_that_keeps_alive_has_no_stale_spans() -> None:
    """The forwarder sends an empty logs export after ``keepalive`` seconds of
    silence so that the gateway does not report its open spans ``span:stale``."""
    async with running_server(stale_after=1.0, heartbeat_interval=0.2) as server, \
            _subscribed(server) as reader:
        tel = _gateway(server.url, keepalive=0.2)
        try:
            TaskStream(telemetry=tel).emit_task_created("long", name="thinking quietly")
            seen: list[tuple[str, Any]] = []
            # Heartbeats name the open span until it has been open 2 s (twice
            # stale_after), or the gateway calls it stale.
            while True:
                frame = await reader.next(10)
                seen.append((frame.event, frame.data))
                if frame.event == "span:stale":
                    break
                if frame.event == "span:heartbeat" and any(
                        s["elapsedMs"] >= 2000 for s in frame.data["spans"]):
                    break
            assert tel.gateway is not None and tel.gateway.stats()["requests"] >= 5
        finally:
            await tel.ashutdown(1)
    assert "span:stale" not in [e for e, _ in seen]
