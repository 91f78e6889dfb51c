"""configure(): typed config with OTEL_* fallbacks, validation, attaching to app providers."""

from __future__ import annotations

import pytest
from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_sse.emitters import TaskStream
from otel_sse.errors import ConfigError
from otel_sse.telemetry import TelemetryConfig, configure
from tests.test_bridge_support import ListSink, settle


def test_defaults_without_environment() -> None:
    cfg = TelemetryConfig.from_env({})
    assert cfg.otlp_protocol == "grpc" and cfg.otlp_endpoint is None
    assert (cfg.traces_exporter, cfg.logs_exporter, cfg.metrics_exporter) == ("none",) * 3
    assert cfg.metric_export_interval == 60.0 and cfg.capture_content == "none"


def test_environment_fallbacks() -> None:
    env = {
        "OTEL_SERVICE_NAME": "svc",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,team=a%20b",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret,x=y",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRIC_EXPORT_INTERVAL": "1500",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
    }
    cfg = TelemetryConfig.from_env(env)
    assert cfg.service_name == "svc"
    assert cfg.resource == {"deployment.environment": "test", "team": "a b"}
    assert cfg.otlp_endpoint == "http://collector:4318" and cfg.otlp_protocol == "http/protobuf"
    assert cfg.headers == {"api-key": "secret", "x": "y"}
    assert cfg.otlp_timeout == 2.5 and cfg.metric_export_interval == 1.5
    assert cfg.traces_exporter == "none" and cfg.logs_exporter == "otlp"
    assert cfg.content_on_spans and not cfg.content_on_events
    # Arguments win over the environment.
    cfg = TelemetryConfig.from_env(env, service_name="arg", otlp_protocol="grpc",
                                   capture_content=False)
    assert cfg.service_name == "arg" and cfg.otlp_protocol == "grpc"
    assert cfg.capture_content == "none"


@pytest.mark.parametrize(("env", "needle"), [
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x:1"}, "ftp://x:1"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:port"}, "http://x:port"),
    ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "novalue"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "=x"}, "=x"),
    ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "soon"),
    ({"OTEL_METRIC_EXPORT_INTERVAL": "-5"}, "-5"),
    ({"OTEL_LOGS_EXPORTER": "zipkin"}, "zipkin"),
    ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "maybe"}, "maybe"),
    ({"OTEL_SSE_EXPORT_TOKENS": "perhaps"}, "perhaps"),
])
def test_bad_values_name_the_value(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=repr(needle).replace("\\", "\\\\").replace(".", r"\.")
                       .replace("(", r"\(").replace("?", r"\?").replace("+", r"\+")):
        TelemetryConfig.from_env(env)


def test_config_is_frozen() -> None:
    cfg = TelemetryConfig.from_env({})
    with pytest.raises(AttributeError):
        cfg.otlp_protocol = "http/protobuf"  # type: ignore[misc]


def test_traces_exporter_none_means_no_span_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    tel = configure(set_global=False, logs_exporter="none", metrics_exporter="none")
    try:
        assert tel.health == {}
        assert tel.config.service_name is None
    finally:
        tel.shutdown()


async def test_attaches_to_providers_the_app_configured() -> None:
    """The app set SDK providers globally: configure() adds our processors to them."""
    app_spans = InMemorySpanExporter()
    app_tp = trace.get_tracer_provider()
    if not isinstance(app_tp, TracerProvider):
        app_tp = TracerProvider()
        trace.set_tracer_provider(app_tp)
    if not isinstance(_logs.get_logger_provider(), LoggerProvider):
        _logs.set_logger_provider(LoggerProvider())
    app_tp.add_span_processor(SimpleSpanProcessor(app_spans))
    sink = ListSink()
    tel = configure(service_name="ignored-for-app-providers", server=sink)
    try:
        assert tel.tracer_provider is app_tp
        tasks = TaskStream(sink)  # created after configure(): uses what it set up
        assert tasks.telemetry is tel
        with app_tp.get_tracer("app").start_as_current_span("app work") as app_span:
            tasks.emit_task_created("t", name="inside app")
            tasks.emit_task_completed("t")
        await settle()
        names = [s.name for s in app_spans.get_finished_spans()]
        assert "task inside app" in names and "app work" in names  # the app's exporter got ours
        created = sink.of("task:created")[0]
        assert created["parentSpanId"] == f"{app_span.get_span_context().span_id:016x}"
        assert [d["name"] for d in sink.of("span:ended")] == ["task inside app", "app work"]
    finally:
        tel.shutdown()
    # After shutdown our processors are inert; the app's provider keeps working.
    with app_tp.get_tracer("app").start_as_current_span("later"):
        pass
    await settle()
    assert "later" not in [d["name"] for d in sink.of("span:ended")]
    assert "later" in [s.name for s in app_spans.get_finished_spans()]
