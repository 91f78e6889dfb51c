"""OpenTelemetry's environment rules, checked where the data lands: real OTLP receivers.

The configuration-level rules (precedence, URL forms, bad values) are in
``test_telemetry_config.py``; here each rule is shown to send the right signal
to the right collector, over the right protocol and transport security.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from opentelemetry import metrics, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from otel_sse.telemetry import Telemetry, configure
from otel_sse.telemetry.setup import TelemetryRegistry
from tests.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver
from tests.test_bridge_support import ListSink, settle

ROOT = Path(__file__).resolve().parent.parent


def record(tel: Telemetry, tag: str) -> None:
    """One span, one log record and one metric point, all named after ``tag``."""
    with tel.tracer.start_as_current_span(f"span {tag}"):
        tel.logger.emit(body=f"log {tag}")
    tel.meter_provider.get_meter("test").create_counter(f"metric.{tag}").add(1)


def received(receiver: Any) -> tuple[list[str], list[str], list[str]]:
    return ([s["name"] for s in receiver.spans()], [str(r["body"]) for r in receiver.logs()],
            [m["name"] for m in receiver.metrics()])


@pytest.fixture
def http_receivers() -> Iterator[tuple[OtlpHttpReceiver, OtlpHttpReceiver]]:
    with OtlpHttpReceiver() as first, OtlpHttpReceiver() as second:
        yield first, second


def test_per_signal_endpoint_receives_its_signal(
    monkeypatch: pytest.MonkeyPatch, http_receivers: tuple[OtlpHttpReceiver, OtlpHttpReceiver]
) -> None:
    generic, traces_only = http_receivers
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", generic.endpoint)
    # As is: a per-signal URL is not suffixed (the receiver only serves /v1/traces).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces_only.traces_url)
    tel = configure(service_name="per-signal", set_global=False)
    record(tel, "a")
    assert tel.shutdown()
    assert received(traces_only) == (["span a"], [], [])
    assert received(generic) == ([], ["log a"], ["metric.a"])


def test_per_signal_protocol_and_endpoint(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    with OtlpGrpcReceiver() as grpc_receiver, OtlpHttpReceiver() as http_receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", http_receiver.endpoint + "/")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", grpc_receiver.endpoint)
        tel = configure(set_global=False)
        record(tel, "b")
        assert tel.shutdown()
        assert received(grpc_receiver) == ([], ["log b"], [])
        assert received(http_receiver) == (["span b"], [], ["metric.b"])


def test_arguments_win_over_every_variable(
    monkeypatch: pytest.MonkeyPatch, http_receivers: tuple[OtlpHttpReceiver, OtlpHttpReceiver]
) -> None:
    chosen, ignored = http_receivers
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ignored.traces_url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    tel = configure(otlp_endpoint=chosen.endpoint, otlp_protocol="http/protobuf",
                    metrics_exporter="none", set_global=False)
    record(tel, "c")
    assert tel.shutdown()
    assert received(chosen) == (["span c"], ["log c"], [])
    assert received(ignored) == ([], [], [])


def test_exporter_list_sends_to_each() -> None:
    """``otlp,console``: the collector and the console both get the spans. (In a child
    process: the console exporters hold on to the ``sys.stdout`` they were imported with.)"""
    script = textwrap.dedent("""
        from otel_sse.telemetry import configure
        from tests.test_telemetry_env import record
        tel = configure(set_global=False)
        record(tel, "d")
        assert tel.shutdown()
    """)
    with OtlpGrpcReceiver() as receiver:
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
               "OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_LOGS_EXPORTER": "none"}
        child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               env=env, cwd=ROOT, timeout=60, check=False)
        assert child.returncode == 0, child.stderr
        assert received(receiver) == (["span d"], [], ["metric.d"])
    assert json.loads(child.stdout)["name"] == "span d"  # the console exporter's JSON, once


@pytest.fixture
def tls_collector(tls_files: dict[str, Path]) -> Iterator[tuple[int, list[str]]]:
    """An OTLP/gRPC trace collector on TLS that requires a client certificate."""
    names: list[str] = []
    lock = threading.Lock()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            with lock:
                names.extend(span.name for rs in request.resource_spans
                             for ss in rs.scope_spans for span in ss.spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.so_reuseport", 0)])
    add: Any = trace_service_pb2_grpc.add_TraceServiceServicer_to_server
    add(Traces(), server)
    credentials = grpc.ssl_server_credentials(
        [(tls_files["key"].read_bytes(), tls_files["cert"].read_bytes())],
        root_certificates=tls_files["ca"].read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port, names
    finally:
        server.stop(0).wait()


def test_per_signal_certificate_and_client_certificate(
    monkeypatch: pytest.MonkeyPatch, tls_collector: tuple[int, list[str]],
    tls_ca: trustme.CA, tls_files: dict[str, Path], tmp_path: Path,
) -> None:
    port, names = tls_collector
    client = tls_ca.issue_cert("client.example")
    key, cert = tmp_path / "client-key.pem", tmp_path / "client-cert.pem"
    client.private_key_pem.write_to_path(str(key))
    client.cert_chain_pems[0].write_to_path(str(cert))
    # No scheme: transport security comes from the insecure setting, per signal.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "false")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(tls_files["ca"]))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", str(key))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", str(cert))
    tel = configure(set_global=False)
    assert tel.config.otlp_traces.insecure is False
    record(tel, "e")
    assert tel.shutdown()
    assert names == ["span e"]


async def test_sdk_disabled_exports_nothing_and_keeps_the_live_stream(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with OtlpGrpcReceiver() as receiver:
        # In os.environ, where the SDK's own providers read it too.
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        sink = ListSink()
        tel = configure(service_name="disabled", server=sink, otlp_endpoint=receiver.endpoint,
                        traces_exporter="otlp", set_global=True)
        assert tel.config.sdk_disabled and tel.health == {}
        assert trace.get_tracer_provider() is not tel.tracer_provider
        assert metrics.get_meter_provider() is not tel.meter_provider
        assert isinstance(tel.meter_provider, NoOpMeterProvider)
        record(tel, "f")
        await settle()
        assert [d["name"] for d in sink.of("span:ended")] == ["span f"]
        assert [d["body"] for d in sink.of("log")] == ["log f"]
        assert await tel.ashutdown()
        assert receiver.request_count == 0


async def test_sdk_disabled_emitters_without_configure_stream_on_private_providers(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The application's global SDK providers are no-ops with the SDK disabled, so
    an emitter's handle does not attach to them."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    if not isinstance(_logs.get_logger_provider(), LoggerProvider):
        _logs.set_logger_provider(LoggerProvider())
    registry = TelemetryRegistry()
    sink = ListSink()
    assert registry.resolve(sink).tracer_provider is trace.get_tracer_provider()

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    other = ListSink()
    handle = TelemetryRegistry().resolve(other)
    assert handle.tracer_provider is not trace.get_tracer_provider()
    record(handle, "g")
    await settle()
    assert [d["name"] for d in other.of("span:ended")] == ["span g"]

