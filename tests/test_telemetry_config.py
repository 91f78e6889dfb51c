"""configure(): typed config with OTEL_* fallbacks, validation, attaching to app providers."""

from __future__ import annotations

from pathlib import Path

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
    for signal in ("traces", "logs", "metrics"):
        otlp = cfg.otlp(signal)
        assert otlp.protocol == "grpc" and otlp.endpoint == "http://localhost:4317"
        assert not otlp.endpoint_configured and otlp.insecure and otlp.timeout == 10.0
        assert otlp.headers == () and otlp.compression == "none" and otlp.certificate is None
    # No endpoint anywhere: stream live only.
    assert (cfg.traces_exporter, cfg.logs_exporter, cfg.metrics_exporter) == ((), (), ())
    assert cfg.metric_export_interval == 60.0 and cfg.capture_content == "none"
    assert cfg.shutdown_timeout == 5.0 and not cfg.sdk_disabled


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
    logs = cfg.otlp_logs
    assert logs.endpoint == "http://collector:4318/v1/logs" and logs.protocol == "http/protobuf"
    assert dict(logs.headers) == {"api-key": "secret", "x": "y"}
    assert logs.timeout == 2.5 and cfg.metric_export_interval == 1.5
    assert cfg.traces_exporter == () and cfg.logs_exporter == ("otlp",)
    assert cfg.content_on_spans and not cfg.content_on_events
    # Arguments win over the environment.
    cfg = TelemetryConfig.from_env(env, service_name="arg", otlp_protocol="grpc",
                                   capture_content=False)
    assert cfg.service_name == "arg" and cfg.otlp_logs.protocol == "grpc"
    assert cfg.otlp_logs.endpoint == "http://collector:4318"  # a gRPC target: no path
    assert cfg.capture_content == "none"


@pytest.mark.parametrize(("var", "value"), [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "udp"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x:1"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:port"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://:4318/v1/traces"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
    ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "=x"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
    ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zip"),
    ("OTEL_EXPORTER_OTLP_INSECURE", "yes"),
    ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "1"),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem"),
    ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/no/such/key.pem"),
    ("OTEL_RESOURCE_ATTRIBUTES", "=x"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "-5"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
    ("OTEL_LOGS_EXPORTER", "zipkin"),
    ("OTEL_TRACES_EXPORTER", "otlp,none"),
    ("OTEL_METRICS_EXPORTER", ","),
    ("OTEL_METRICS_EXPORTER", "otlp,prometheus"),
    ("OTEL_SDK_DISABLED", "1"),
    ("OTEL_SDK_DISABLED", "yes"),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe"),
    ("OTEL_SSE_EXPORT_TOKENS", "perhaps"),
    ("OTEL_SSE_SHUTDOWN_TIMEOUT", "soon"),
    ("OTEL_SSE_SHUTDOWN_TIMEOUT", "0"),
    ("OTEL_SSE_SHUTDOWN_TIMEOUT", "-2"),
    ("OTEL_SSE_SHUTDOWN_TIMEOUT", "inf"),
])
def test_bad_values_name_the_variable_and_value(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TelemetryConfig.from_env({var: value})
    assert var in str(caught.value) and repr(value) in str(caught.value)


@pytest.mark.parametrize(("option", "value"), [
    ("shutdown_timeout", 0), ("shutdown_timeout", -1.0), ("shutdown_timeout", float("nan")),
    ("otlp_timeout", 0), ("otlp_protocol", "http/json"), ("otlp_compression", "lz4"),
    ("otlp_endpoint", "collector:4318"), ("traces_exporter", "jaeger"),
    ("metrics_exporter", ["otlp", "none"]), ("otlp_certificate", "/no/such/ca.pem"),
])
def test_bad_arguments_name_the_argument_and_value(option: str, value: object) -> None:
    kwargs: dict[str, object] = {option: value}
    if option == "otlp_endpoint":
        kwargs["otlp_protocol"] = "http/protobuf"  # a URL is needed for OTLP/HTTP
    with pytest.raises(ConfigError) as caught:
        TelemetryConfig.from_env({}, **kwargs)  # type: ignore[arg-type]
    assert option in str(caught.value)


def test_config_is_frozen() -> None:
    cfg = TelemetryConfig.from_env({})
    with pytest.raises(AttributeError):
        cfg.shutdown_timeout = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.otlp_traces.endpoint = "http://elsewhere:4317"  # type: ignore[misc]


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
        await tel.ashutdown()
    # After shutdown our processors are inert; the app's provider keeps working.
    with app_tp.get_tracer("app").start_as_current_span("later"):
        pass
    await settle()
    assert "later" not in [d["name"] for d in sink.of("span:ended")]
    assert "later" in [s.name for s in app_spans.get_finished_spans()]


# -- OpenTelemetry's environment rules (specification: protocol/exporter.md) --------------

HTTP = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}


@pytest.mark.parametrize(("env", "traces", "logs"), [
    # The generic endpoint is a base: v1/<signal> is appended relative to it.
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
     "http://c:4318/v1/traces", "http://c:4318/v1/logs"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"},
     "http://c:4318/v1/traces", "http://c:4318/v1/logs"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/mycollector/"},
     "http://c:4318/mycollector/v1/traces", "http://c:4318/mycollector/v1/logs"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/mycollector"},
     "http://c:4318/mycollector/v1/traces", "http://c:4318/mycollector/v1/logs"),
    # A per-signal endpoint is used as is; with no path, the root path.
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t.example.com/custom/spans"},
     "https://t.example.com/custom/spans", "http://c:4318/v1/logs"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318"},
     "http://t:4318/", "http://localhost:4318/v1/logs"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t.example.com/v1/metrics/"},
     "https://t.example.com/v1/metrics/", "http://localhost:4318/v1/logs"),
    # Nothing set: the default endpoint.
    ({}, "http://localhost:4318/v1/traces", "http://localhost:4318/v1/logs"),
])
def test_http_endpoint_urls(env: dict[str, str], traces: str, logs: str) -> None:
    cfg = TelemetryConfig.from_env({**HTTP, **env})
    assert (cfg.otlp_traces.endpoint, cfg.otlp_logs.endpoint) == (traces, logs)


def test_grpc_endpoints_are_never_suffixed() -> None:
    cfg = TelemetryConfig.from_env({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://logs.example.com:443",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "metrics-host:4317"})
    assert cfg.otlp_traces.endpoint == "http://c:4317"
    assert cfg.otlp_logs.endpoint == "https://logs.example.com:443"
    assert cfg.otlp_metrics.endpoint == "metrics-host:4317"


def test_arguments_win_over_per_signal_variables() -> None:
    env = {**HTTP, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/v1/traces",
           "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1000",
           "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k=env,only=env"}
    cfg = TelemetryConfig.from_env(env, otlp_endpoint="http://arg:4318",
                                   otlp_protocol="http/protobuf", otlp_timeout=3,
                                   otlp_headers={"k": "arg"})
    traces = cfg.otlp_traces
    # The argument is a base, like the generic variable.
    assert traces.endpoint == "http://arg:4318/v1/traces"
    assert traces.protocol == "http/protobuf" and traces.timeout == 3.0
    assert dict(traces.headers) == {"k": "arg", "only": "env"}


def test_per_signal_variables_win_over_generic_ones() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:4317",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=generic,b=generic",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "a=logs",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "500",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none",
    }
    cfg = TelemetryConfig.from_env(env)
    assert (cfg.otlp_traces.protocol, cfg.otlp_logs.protocol, cfg.otlp_metrics.protocol) == (
        "http/protobuf", "http/protobuf", "grpc")
    assert cfg.otlp_metrics.endpoint == "http://m:4317"
    # Per-signal headers replace the generic list rather than adding to it.
    assert dict(cfg.otlp_logs.headers) == {"a": "logs"}
    assert dict(cfg.otlp_traces.headers) == {"a": "generic", "b": "generic"}
    assert (cfg.otlp_traces.timeout, cfg.otlp_logs.timeout) == (0.5, 2.0)
    assert (cfg.otlp_traces.compression, cfg.otlp_logs.compression) == ("none", "gzip")


def test_timeout_is_milliseconds_and_zero_means_no_limit() -> None:
    cfg = TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "0",
                                    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "250"})
    assert cfg.otlp_traces.timeout > 24 * 3600  # "indefinite": the spec's 2**31-1 ms
    assert cfg.otlp_logs.timeout == 0.25


@pytest.mark.parametrize(("endpoint", "insecure_env", "insecure"), [
    ("http://c:4317", "false", True),       # the scheme wins over the insecure setting
    ("https://c:4317", "true", False),
    ("c:4317", None, False),                 # no scheme: the setting, false by default
    ("c:4317", "true", True),
    ("c:4317", "TRUE", True),
])
def test_grpc_insecure_rules(endpoint: str, insecure_env: str | None, insecure: bool) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    if insecure_env is not None:
        env["OTEL_EXPORTER_OTLP_INSECURE"] = insecure_env
    assert TelemetryConfig.from_env(env).otlp_traces.insecure is insecure


def test_per_signal_insecure_and_tls_files(tmp_path: Path) -> None:
    ca, key, cert = (tmp_path / name for name in ("ca.pem", "key.pem", "cert.pem"))
    for path in (ca, key, cert):
        path.write_text("-")
    cfg = TelemetryConfig.from_env({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
        "OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "false",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(ca),
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY": str(key),
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE": str(cert)})
    assert cfg.otlp_traces.insecure and not cfg.otlp_logs.insecure
    assert cfg.otlp_logs.certificate == str(ca) and cfg.otlp_logs.client_key == str(key)
    assert cfg.otlp_traces.client_key is None
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"):
        TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": str(key)})


@pytest.mark.parametrize(("value", "expected"), [
    ("otlp,console", ("otlp", "console")),
    (" OTLP , Console ", ("otlp", "console")),
    ("console,otlp,console", ("console", "otlp")),
    ("none", ()),
    ("NONE", ()),
    ("console", ("console",)),
])
def test_exporter_lists(value: str, expected: tuple[str, ...]) -> None:
    cfg = TelemetryConfig.from_env({"OTEL_TRACES_EXPORTER": value,
                                    "OTEL_LOGS_EXPORTER": value, "OTEL_METRICS_EXPORTER": value})
    assert cfg.traces_exporter == cfg.logs_exporter == cfg.metrics_exporter == expected
    by_argument = TelemetryConfig.from_env({}, traces_exporter=value.split(","))
    assert by_argument.traces_exporter == expected


def test_a_signal_is_exported_by_default_only_where_an_endpoint_is_set() -> None:
    cfg = TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4317"})
    assert (cfg.traces_exporter, cfg.logs_exporter, cfg.metrics_exporter) == (("otlp",), (), ())
    cfg = TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                                    "OTEL_METRICS_EXPORTER": "none"})
    assert (cfg.traces_exporter, cfg.logs_exporter, cfg.metrics_exporter) == (
        ("otlp",), ("otlp",), ())


def test_sdk_disabled_turns_every_exporter_off() -> None:
    env = {"OTEL_SDK_DISABLED": "True", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
           "OTEL_TRACES_EXPORTER": "otlp,console"}
    cfg = TelemetryConfig.from_env(env, logs_exporter="otlp")
    assert cfg.sdk_disabled
    assert (cfg.traces_exporter, cfg.logs_exporter, cfg.metrics_exporter) == ((), (), ())
    assert not TelemetryConfig.from_env({"OTEL_SDK_DISABLED": "false"}).sdk_disabled
    # The argument is the code equivalent and wins over the variable.
    enabled = TelemetryConfig.from_env(env, sdk_disabled=False)
    assert not enabled.sdk_disabled and enabled.traces_exporter == ("otlp", "console")


@pytest.mark.parametrize(("value", "mode"), [
    ("NO_CONTENT", "none"), ("SPAN_ONLY", "span"), ("EVENT_ONLY", "event"),
    ("SPAN_AND_EVENT", "span_and_event"), ("span_only", "span"),
    ("true", "span_and_event"), ("False", "none"),
])
def test_capture_message_content_values(value: str, mode: str) -> None:
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value}
    assert TelemetryConfig.from_env(env).capture_content == mode


def test_shutdown_timeout_sources() -> None:
    assert TelemetryConfig.from_env({"OTEL_SSE_SHUTDOWN_TIMEOUT": "2.5"}).shutdown_timeout == 2.5
    assert TelemetryConfig.from_env({"OTEL_SSE_SHUTDOWN_TIMEOUT": "2.5"},
                                    shutdown_timeout=1).shutdown_timeout == 1.0


def test_blank_values_count_as_unset() -> None:
    cfg = TelemetryConfig.from_env({"OTEL_TRACES_EXPORTER": " ", "OTEL_SDK_DISABLED": "",
                                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
                                    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert cfg.otlp_traces.endpoint == "http://c:4317" and cfg.traces_exporter == ("otlp",)
