"""Zero-code: an unchanged OpenAI app, live on the stream and exported over OTLP.

``opentelemetry-instrument`` runs ``examples/plain_agent.py`` (the real ``openai``
SDK, no OpenTelemetry and no otel-sse in its code) in a process of its own, with
otel-sse's distro and configurator, against the stub model served by this test:
the real ``opentelemetry-instrumentation-openai-v2`` records its calls, and the
``llm:*`` events reach an SSE subscriber, from a server the app's process started
(``OTEL_SSE_PORT``) or through a gateway in this process (``OTEL_SSE_GATEWAY``),
with the trace and span ids of the spans a real OTLP receiver got.
``otel_sse.instrument()`` is run in this process too.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import _logs, metrics, trace

import otel_sse
from otel_sse.demo.script import Script
from otel_sse.demo.stub_model import StubModelServer
from otel_sse.errors import ConfigError, ServerError
from otel_sse.instrumentation.auto import AutoConfig
from otel_sse.server import ServerConfig
from otel_sse.server.background import BackgroundServer
from otel_sse.telemetry import current
from tests.conftest import free_port
from tests.instrument_rig import Frames, of, types
from tests.otlp_receiver import OtlpGrpcReceiver
from tests.sse_helpers import running_server
from tests.test_bridge_support import StreamCollector, check_event

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "plain_agent.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
SCRIPT = Script.tool_then_answer("get_weather", {"city": "Paris"}, "It is sunny in Paris.",
                                 preamble="Let me check.")
ANSWER = "It is sunny in Paris."
QUESTION = "What is the weather in Paris?"  # what the example asks
NO_STREAM_LINE = "otel-sse: no live stream: set OTEL_SSE_PORT"


def _example_ask() -> Callable[[openai.OpenAI, str, str], str]:
    """The example's ``ask()``, to run in this process."""
    spec = importlib.util.spec_from_file_location("plain_agent_example", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ask: Callable[[openai.OpenAI, str, str], str] = module.ask
    return ask


def _env(stub: StubModelServer, receiver: OtlpGrpcReceiver, **extra: str) -> dict[str, str]:
    """The app's environment: ours without OTEL_*/OPENAI_*, plus the stub, the receiver,
    otel-sse's distro and configurator, and ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PYTEST_", "OPENAI_"))}
    env.update(OPENAI_BASE_URL=stub.url, OPENAI_API_KEY="stub",
               OTEL_PYTHON_DISTRO="otel_sse", OTEL_PYTHON_CONFIGURATOR="otel_sse",
               OTEL_SERVICE_NAME="plain-agent", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
               OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_METRICS_EXPORTER="none",
               OTEL_BSP_SCHEDULE_DELAY="50")
    env.update(extra)
    return env


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    """``opentelemetry-instrument python examples/plain_agent.py``."""
    return await asyncio.create_subprocess_exec(
        str(INSTRUMENT), sys.executable, str(APP), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _finish(app: asyncio.subprocess.Process) -> tuple[str, str]:
    """The app's stdout and stderr, once it exited successfully."""
    out, err = await asyncio.wait_for(app.communicate(), 60)
    assert app.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def _run(env: dict[str, str]) -> tuple[str, str]:
    return await _finish(await _start(env))


def _checked(frames: Frames) -> Frames:
    """``frames``, each checked against the contract (the server's own ``stream:gap`` aside)."""
    for event_type, data in frames:
        if event_type != "stream:gap":
            check_event(event_type, data)
    return frames


async def _chat_spans(receiver: OtlpGrpcReceiver) -> dict[str, dict[str, Any]]:
    """The two chat spans the receiver got, by span id."""
    await receiver.async_wait_for(lambda r: len(r.spans(name="chat stub-model")) >= 2,
                                  timeout=15)
    return {span["span_id"]: span for span in receiver.spans(name="chat stub-model")}


def _llm_events(frames: Frames) -> Frames:
    """The ``llm:*`` events of two requests, each in its order. (A gateway keeps the order
    of each span's events; a batch may hold the start of one request and the end of the
    one before, which it sends as two requests.)"""
    llm = [(t, d) for t, d in frames if t.startswith("llm:")]
    by_request: dict[str, list[str]] = {}
    for event_type, data in llm:
        by_request.setdefault(data["requestId"], []).append(event_type)
    assert list(by_request.values()) == [
        ["llm:request:started", "llm:usage", "llm:request:completed"]] * 2, llm
    return llm


def _assert_requests(frames: Frames, spans: dict[str, dict[str, Any]]) -> None:
    """Two model calls (the tool call, then the answer) as ``llm:*`` events carrying the
    ids of the chat spans the receiver got."""
    llm = _llm_events(frames)
    started, completed = of(llm, "llm:request:started"), of(llm, "llm:request:completed")
    assert len(spans) == 2
    assert {d["spanId"] for d in started} == set(spans)
    for begin, end in zip(started, completed, strict=True):
        assert (begin["provider"], begin["model"]) == ("openai", "stub-model")
        assert end["requestId"] == begin["requestId"] and end["spanId"] == begin["spanId"]
        span = spans[begin["spanId"]]
        assert span["trace_id"] == begin["traceId"] == end["traceId"]
        assert span["resource"]["service.name"] == "plain-agent"
        assert span["attributes"]["gen_ai.usage.input_tokens"] == end["usage"]["promptTokens"]
    # As the stub counts: the question's words, the pieces streamed.
    assert completed[0]["usage"] == {"promptTokens": 6, "completionTokens": 6,
                                     "totalTokens": 12}


async def _listening(port: int, timeout: float = 30.0) -> None:
    """Once something accepts connections on ``port`` (the app's process starting up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port} after {timeout} s"
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


# -- opentelemetry-instrument in a process of its own -------------------------------------


async def test_embedded_server_streams_an_unchanged_app() -> None:
    """``OTEL_SSE_PORT``: the app's process serves the stream; its model calls are on it,
    and the server says ``shutdown`` when the process exits."""
    subscribed = asyncio.Event()

    async def held(_: float) -> None:  # the model answers once the test is subscribed
        await subscribed.wait()

    port = free_port()
    with OtlpGrpcReceiver() as receiver:
        async with StubModelServer(SCRIPT, token_delay=0.001, sleep=held) as stub:
            app = await _start(_env(stub, receiver, OTEL_SSE_PORT=str(port)))
            try:
                await _listening(port)
            except BaseException:
                app.kill()
                await app.wait()
                raise
            # An id this server never gave: everything it holds, then live.
            async with StreamCollector(f"http://127.0.0.1:{port}/events?lastEventId=before-0",
                                       marker="shutdown") as collector:
                subscribed.set()
                out, err = await _finish(app)
                frames = _checked(await collector.finish())
        spans = await _chat_spans(receiver)
    assert out.strip() == ANSWER
    assert NO_STREAM_LINE not in err
    _assert_requests(frames, spans)
    assert "trace:completed" in types(frames)


async def _through_gateway(receiver: OtlpGrpcReceiver, **extra: str
                           ) -> tuple[str, str, Frames]:
    """The app run with ``OTEL_SSE_GATEWAY`` naming a gateway here (and ``extra``): its
    stdout, its stderr, and what a subscriber of the gateway saw."""
    async with StubModelServer(SCRIPT) as stub, running_server() as gateway:
        async with StreamCollector(f"{gateway.url}/events") as collector:
            out, err = await _run(_env(stub, receiver, OTEL_SSE_GATEWAY=gateway.url, **extra))
            # The process sent everything before it exited.
            gateway.publish("test:done", {})
            return out, err, _checked(await collector.finish())


@pytest.mark.parametrize("disabled", [None, "langchain, openai_agents"],
                         ids=["all", "others-disabled"])
async def test_gateway_receives_an_unchanged_app(disabled: str | None) -> None:
    """``OTEL_SSE_GATEWAY``: the app's process forwards to a gateway (an ``SSEServer``
    here), whose subscriber sees the model calls; disabling other instrumentations
    (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, spaces and all) leaves openai's on."""
    extra = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled} if disabled else {}
    with OtlpGrpcReceiver() as receiver:
        out, err, frames = await _through_gateway(receiver, **extra)
        spans = await _chat_spans(receiver)
    assert out.strip() == ANSWER
    assert NO_STREAM_LINE not in err
    _assert_requests(frames, spans)


async def test_a_disabled_instrumentation_records_nothing() -> None:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=openai``: the app runs as before, and
    neither the stream nor the receiver hears of its model calls."""
    with OtlpGrpcReceiver() as receiver:
        out, _, frames = await _through_gateway(
            receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai")
        assert out.strip() == ANSWER  # the calls were made and answered
        assert not [t for t in types(frames) if t.startswith(("llm:", "span:"))]
        assert receiver.spans() == []  # the exporters flushed at exit: nothing to send


async def test_sdk_disabled_streams_live_and_exports_nothing() -> None:
    """``OTEL_SDK_DISABLED=true``: nothing is exported, and the live stream still has the
    model calls (the instrumentation records onto the private providers)."""
    with OtlpGrpcReceiver() as receiver:
        out, _, frames = await _through_gateway(receiver, OTEL_SDK_DISABLED="true")
        assert out.strip() == ANSWER
        assert receiver.request_count == 0
    assert {d["provider"] for d in of(_llm_events(frames), "llm:request:started")} == {"openai"}


async def test_with_no_live_destination_it_exports_and_says_so_once() -> None:
    """Nothing names a destination: one line says where to set one, and the spans are
    exported. OTEL_PYTHON_DISTRO/_CONFIGURATOR are unset too: otel-sse's are the only
    ones installed, so opentelemetry-instrument finds them by itself."""
    with OtlpGrpcReceiver() as receiver:
        async with StubModelServer(SCRIPT) as stub:
            env = _env(stub, receiver)
            del env["OTEL_PYTHON_DISTRO"], env["OTEL_PYTHON_CONFIGURATOR"]
            out, err = await _run(env)
        spans = await _chat_spans(receiver)
    assert out.strip() == ANSWER
    assert err.count(NO_STREAM_LINE) == 1, err
    assert "OTEL_SSE_GATEWAY" in err
    assert {span["resource"]["service.name"] for span in spans.values()} == {"plain-agent"}


# -- otel_sse.instrument() in this process --------------------------------------------------


@pytest.fixture
def fresh_globals() -> Iterator[None]:
    """No OpenTelemetry global providers and no current handle, as at a program's start;
    what was there is put back afterwards."""
    import opentelemetry._logs._internal as logs_internal
    import opentelemetry.metrics._internal as metrics_internal

    leftover = current()
    if leftover is not None:
        leftover.shutdown()
    onces = (trace._TRACER_PROVIDER_SET_ONCE, metrics_internal._METER_PROVIDER_SET_ONCE,
             logs_internal._LOGGER_PROVIDER_SET_ONCE)
    saved = (trace._TRACER_PROVIDER, metrics_internal._METER_PROVIDER,
             logs_internal._LOGGER_PROVIDER, [once._done for once in onces])
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER = None
    logs_internal._LOGGER_PROVIDER = None
    for once in onces:
        once._done = False
    try:
        yield
    finally:
        (trace._TRACER_PROVIDER, metrics_internal._METER_PROVIDER,
         logs_internal._LOGGER_PROVIDER) = saved[:3]
        for once, done in zip(onces, saved[3], strict=True):
            once._done = done


async def test_instrument_in_process(fresh_globals: None, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    """``otel_sse.instrument()``: the server it starts on a thread of its own streams the
    instrumented calls, the receiver gets their spans; a second call returns the same;
    shutting the handle down stops the server."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    with OtlpGrpcReceiver() as receiver:
        for name, value in {"OTEL_SSE_PORT": "0",
                            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                            "OTEL_METRICS_EXPORTER": "none", "OTEL_BSP_SCHEDULE_DELAY": "50",
                            # Keep the agent frameworks' instrumentations out of this process.
                            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "langchain,openai_agents",
                            }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("OTEL_SSE_GATEWAY", raising=False)
        telemetry, server = otel_sse.instrument(service_name="plain-agent")
        try:
            assert server is not None and server.running
            assert otel_sse.instrument() == (telemetry, server)  # idempotent
            assert trace.get_tracer_provider() is telemetry.tracer_provider
            assert OpenAIInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
            async with StubModelServer(SCRIPT) as stub:
                async with StreamCollector(f"{server.url}/events") as collector:
                    client = openai.OpenAI(base_url=stub.url, api_key="stub", max_retries=0)
                    answer = await asyncio.to_thread(_example_ask(), client, "stub-model", QUESTION)
                    assert await telemetry.aforce_flush(10)
                    server.publish("test:done", {})
                    frames = _checked(await collector.finish())
            _assert_requests(frames, await _chat_spans(receiver))
            assert answer == ANSWER
        finally:
            OpenAIInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
            assert await telemetry.ashutdown()
    assert not server.running
    assert current() is None
    assert _logs.get_logger_provider() is telemetry.logger_provider
    assert metrics.get_meter_provider() is telemetry.meter_provider


async def test_instrument_without_a_destination_says_so(
        fresh_globals: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    for name in ("OTEL_SSE_PORT", "OTEL_SSE_GATEWAY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    telemetry, server = otel_sse.instrument()
    try:
        assert server is None and telemetry.bridges == [] and telemetry.gateway is None
        otel_sse.instrument()
        lines = [r.getMessage() for r in caplog.records if NO_STREAM_LINE in r.getMessage()]
        assert len(lines) == 1
    finally:
        assert await telemetry.ashutdown()


async def test_instrument_after_configure_streams_that_handle(
        fresh_globals: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """An application that called ``configure()`` first keeps its handle: ``instrument()``
    adds the server to it, and shutting it down stops the server."""
    monkeypatch.delenv("OTEL_SSE_GATEWAY", raising=False)
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    own = otel_sse.configure(service_name="configured-first", set_global=False,
                             metrics_exporter="none")
    telemetry, server = otel_sse.instrument(port=0)
    try:
        assert telemetry is own and server is not None
        assert own.bridge_for(server) is not None
        async with StreamCollector(f"{server.url}/events") as collector:
            with own.tracer.start_as_current_span("configured work"):
                pass
            assert await own.aforce_flush(10)
            server.publish("test:done", {})
            frames = _checked(await collector.finish())
        assert [d["name"] for d in of(frames, "span:ended")] == ["configured work"]
    finally:
        assert await own.ashutdown()
    assert not server.running


# -- the parts ------------------------------------------------------------------------------


def test_auto_config_from_the_environment() -> None:
    assert AutoConfig.from_env({}) == AutoConfig()
    config = AutoConfig.from_env({"OTEL_SSE_PORT": "0", "OTEL_SSE_HISTORY_SIZE": "50"})
    assert config.server is not None and config.gateway is None
    assert (config.server.port, config.server.history_size) == (0, 50)
    # A gateway wins: the shell running `otel-sse serve` on OTEL_SSE_PORT may start the app.
    both = AutoConfig.from_env({"OTEL_SSE_PORT": "3000",
                                "OTEL_SSE_GATEWAY": "http://127.0.0.1:3000"})
    assert both.server is None and both.gateway is not None
    assert both.gateway.url == "http://127.0.0.1:3000"
    assert AutoConfig.from_env({}, port=4000).server == ServerConfig.build(environ={},
                                                                           port=4000)
    with pytest.raises(ConfigError, match="OTEL_SSE_PORT='x'"):
        AutoConfig.from_env({"OTEL_SSE_PORT": "x"})
    with pytest.raises(ConfigError, match="OTEL_SSE_GATEWAY"):
        AutoConfig.from_env({"OTEL_SSE_GATEWAY": "ftp://nowhere"})


async def test_background_server_serves_from_its_own_thread_and_stops() -> None:
    background = BackgroundServer(ServerConfig.build(environ={}, port=0, host="127.0.0.1"))
    background.start()
    try:
        assert background.running and background.server.loop is not asyncio.get_running_loop()
        async with StreamCollector(f"{background.url}/events", marker="shutdown") as collector:
            background.server.publish("deploy:done", {"from": "another thread"})
            stopped = await asyncio.to_thread(background.stop, 5.0)
            frames = await collector.finish()
    finally:
        background.stop()
    assert stopped and not background.running
    assert next(d for t, d in frames if t == "deploy:done")["from"] == "another thread"
    assert background.stop() is True  # idempotent


def test_background_server_on_a_taken_port_raises() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        background = BackgroundServer(ServerConfig.build(environ={}, port=port,
                                                         host="127.0.0.1"))
        with pytest.raises(ServerError, match=str(port)):
            background.start()
        assert not background.running
        assert background.stop() is True

