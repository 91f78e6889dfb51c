"""Telemetry shutdown has a deadline, whatever the collector does (real exporters, real sockets).

Every collector here is down in its own way (see ``tests/black_holes.py``); with
the exporters' default 10 s timeout and their retries, an unbounded shutdown
takes a minute. The bound asserted is the deadline plus a generous slack.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_sse.telemetry import Telemetry, configure, current
from tests.black_holes import HangingGrpcCollector, SilentListener, refused_endpoint
from tests.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, OtlpReceiverBase

DEADLINE = 1.0
SLACK = 4.0  # generous: thread start-up and a loaded 2-core machine
N = 50
ROOT = Path(__file__).resolve().parent.parent


def record(tel: Telemetry, n: int = N) -> None:
    """``n`` spans and ``n`` log records, and three metric points."""
    for i in range(n):
        with tel.tracer.start_as_current_span(f"work {i}"):
            tel.logger.emit(body=f"line {i}")
    counter = tel.meter_provider.get_meter("test").create_counter("test.items")
    for kind in ("a", "b", "c"):
        counter.add(1, {"kind": kind})


@pytest.fixture
def collector(request: pytest.FixtureRequest) -> Iterator[Any]:
    kind = request.param
    if kind == "refused":
        yield refused_endpoint()
        return
    with (SilentListener() if kind == "silent" else HangingGrpcCollector()) as down:
        yield down


def _endpoint(collector: Any) -> str:
    return collector if isinstance(collector, str) else str(collector.endpoint)


def _our_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "otel_sse.telemetry" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("protocol", "collector"), [
    ("grpc", "refused"), ("http/protobuf", "refused"),
    ("grpc", "silent"),        # never completes the HTTP/2 handshake
    ("grpc", "hanging"),       # completes it, never answers the export
    ("http/protobuf", "silent"),  # accepts the request, never answers
], indirect=["collector"])
def test_shutdown_returns_within_its_deadline(
    protocol: str, collector: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tel = configure(service_name="deadline", otlp_endpoint=_endpoint(collector),
                    otlp_protocol=protocol, shutdown_timeout=DEADLINE, set_global=False)
    record(tel)
    start = time.monotonic()
    ok = tel.shutdown()
    elapsed = time.monotonic() - start

    assert elapsed < DEADLINE + SLACK, f"shutdown took {elapsed:.1f} s"
    assert not ok
    if isinstance(collector, SilentListener):
        assert collector.accepted > 0  # the exporters did reach the black hole
    if isinstance(collector, HangingGrpcCollector):
        assert collector.calls > 0
    # One line says what was given up, with counts; no traceback anywhere.
    warnings = _our_warnings(caplog)
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert "gave up" in line and "still blocked" not in line
    assert f"{N} spans" in line and f"{N} log records" in line and "3 metric points" in line
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    noisy = [r.getMessage() for r in caplog.records
             if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]
    assert not noisy, noisy
    # Giving up stopped the exporters: no shutdown thread of ours is left behind.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("otel-sse-telemetry-")]
    # A second call returns at once.
    assert tel.shutdown() is True


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_healthy_collector_receives_everything_recorded_before_shutdown(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    receiver: OtlpReceiverBase = OtlpGrpcReceiver() if protocol == "grpc" else OtlpHttpReceiver()
    with receiver:
        # Long delays: only the shutdown itself can have exported this.
        tel = configure(service_name="healthy", otlp_endpoint=receiver.endpoint,
                        otlp_protocol=protocol, export_schedule_delay=60,
                        metric_export_interval=60, set_global=False)
        n = 1200  # several batches of 512
        record(tel, n)
        assert tel.shutdown() is True
        spans = receiver.spans()
        logs = receiver.logs()
        points = {p["attributes"]["kind"]: p["value"]
                  for m in receiver.metrics("test.items") for p in m["data_points"]}
    assert sorted(s["name"] for s in spans) == sorted(f"work {i}" for i in range(n))
    assert sorted(r["body"] for r in logs) == sorted(f"line {i}" for i in range(n))
    assert points == {"a": 1, "b": 1, "c": 1}
    assert not _our_warnings(caplog)


@pytest.mark.parametrize(("protocol", "collector"), [
    ("grpc", "silent"), ("grpc", "hanging"), ("http/protobuf", "silent"),
], indirect=["collector"])
def test_process_exit_is_bounded_by_the_deadline(protocol: str, collector: Any) -> None:
    """The atexit hook ``configure()`` registers is bounded the same way."""
    script = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from otel_sse.telemetry import configure
        from tests.test_telemetry_shutdown import record
        tel = configure(service_name="exiting", otlp_endpoint={_endpoint(collector)!r},
                        otlp_protocol={protocol!r}, shutdown_timeout={DEADLINE!r})
        record(tel)
        print("recorded", flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) as child:
        try:
            assert child.stdout is not None and child.stderr is not None
            assert child.stdout.readline().strip() == "recorded"
            start = time.monotonic()
            child.wait(timeout=DEADLINE + 60)
            elapsed = time.monotonic() - start
            stderr = child.stderr.read()
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == 0, stderr
    assert elapsed < DEADLINE + SLACK, f"the process took {elapsed:.1f} s to exit"
    assert "Traceback" not in stderr, stderr
    gave_up = [line for line in stderr.splitlines() if "gave up" in line]
    assert len(gave_up) == 1 and f"{N} spans" in gave_up[0], stderr


async def test_ashutdown_leaves_the_event_loop_running() -> None:
    with SilentListener() as down:
        # A longer deadline than elsewhere: a loop blocked for it could not pass
        # for a scheduling hiccup.
        deadline = 2.0
        tel = configure(otlp_endpoint=down.endpoint, otlp_protocol="grpc",
                        shutdown_timeout=deadline, set_global=False)
        record(tel)
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        start = time.monotonic()
        ok = await tel.ashutdown()
        elapsed = time.monotonic() - start
        ticker.cancel()
    assert not ok and elapsed < deadline + SLACK
    # The loop kept turning all along: a blocked loop would show one gap as long
    # as the shutdown itself.
    assert len(gaps) > 10 and max(gaps) < 0.5, max(gaps)


def test_force_flush_timeout_is_a_total_and_shutdown_still_stops_it() -> None:
    with SilentListener() as down:
        tel = configure(otlp_endpoint=down.endpoint, otlp_protocol="http/protobuf",
                        shutdown_timeout=DEADLINE, set_global=False)
        record(tel)
        start = time.monotonic()
        assert tel.force_flush(0.5) is False  # three providers, one budget
        assert time.monotonic() - start < 0.5 + SLACK
        # The flush goes on in the background; shutdown gives it up in time.
        start = time.monotonic()
        assert tel.shutdown() is False
        assert time.monotonic() - start < DEADLINE + SLACK


def test_shutdown_forgets_the_current_handle() -> None:
    tel = configure(set_global=False)
    assert current() is tel
    assert tel.shutdown() is True  # nothing to export: nothing lost
    assert current() is None
    assert tel.shutdown() is True
