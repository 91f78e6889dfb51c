"""The command line: serve and demo as real processes, watched with curl."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from otel_sse.cli import build_parser, main
from otel_sse.cli.serve import server_config
from tests.conftest import free_port
from tests.otlp_receiver import OtlpGrpcReceiver


def test_parser_knows_the_commands() -> None:
    parser = build_parser()
    assert parser.parse_args(["serve", "--port", "0"]).command == "serve"
    assert server_config(parser.parse_args(["demo"]), environ={}).port == 3000
    assert parser.parse_args(["tail", "--filters", "task:*"]).filters == "task:*"
    with pytest.raises(SystemExit):
        parser.parse_args(["nope"])


def test_bad_option_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--http2"]) == 2
    assert "cert_path" in capsys.readouterr().err


FAMILIES = {"task": {"task:created", "task:progress", "task:completed", "task:failed"},
            "agent": {"agent:spawned", "agent:started", "agent:output:stdout", "agent:stopped"},
            "llm": {"llm:request:started", "llm:token", "llm:tool:call", "llm:tool:result",
                    "llm:request:completed"},
            "span": {"span:started", "span:ended", "trace:completed"}}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_demo_streams_every_family_from_a_workload_process_and_stops_cleanly() -> None:
    port = free_port()
    with OtlpGrpcReceiver() as jaeger:  # stands in for Jaeger: the workload exports there
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.endpoint,
               "OTEL_SSE_PORT": str(port)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "otel_sse", "demo", "--rate", "4", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        output = ""
        try:
            while "Stop: Ctrl-C" not in output:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, f"demo ended early: {output}"
                output += line.decode()
            assert f"http://127.0.0.1:{port}/dashboard" in output
            assert f"{sys.executable} -m otel_sse tail" in output
            curl = await asyncio.create_subprocess_exec(
                "curl", "-sN", "--max-time", "60", f"http://127.0.0.1:{port}/events",
                stdout=asyncio.subprocess.PIPE)
            assert curl.stdout is not None
            seen: set[str] = set()
            traces: set[str] = set()
            try:
                while not all(family & seen for family in FAMILIES.values()) \
                        or "task:failed" not in seen:
                    text = (await asyncio.wait_for(curl.stdout.readline(), 60)).decode()
                    assert text, "stream ended"
                    if text.startswith("event: "):
                        seen.add(text[7:].strip())
                    elif text.startswith("data: "):
                        data = json.loads(text[6:])
                        if isinstance(data, dict) and data.get("traceId"):
                            traces.add(data["traceId"])
            finally:
                curl.kill()
                await curl.wait()
            proc.send_signal(signal.SIGINT)
            rest, _ = await asyncio.wait_for(proc.communicate(), 20)
            output += rest.decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, output
        assert "Traceback" not in output, output
        for family, types in FAMILIES.items():
            assert types & seen, family
        # The workload exported its spans (at shutdown at the latest) to the collector
        # that listened: the ids on the stream are the exported ones.
        await jaeger.async_wait_for(lambda r: bool(r.spans()), timeout=20)
        exported = {span["trace_id"] for span in jaeger.spans()}
        assert traces & exported


def test_serve_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "otel_sse", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--grpc-port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}/events" in proc.stdout.readline()
        banner = [proc.stdout.readline() for _ in range(5)]
        assert any("OTLP/gRPC:  http://127.0.0.1:" in line for line in banner), banner
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_tail_prints_filtered_events_as_json() -> None:
    from tests.sse_helpers import running_server

    async with running_server() as server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "otel_sse.cli", "tail", f"{server.url}/events",
            "--filters", "task:*", "--json", "--count", "2", "--duration", "20",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        while not server.get_clients():
            await asyncio.sleep(0.02)
        server.publish("agent:spawned", {"agentId": "a"})
        server.publish("task:created", {"taskId": "t1"})
        server.publish("task:completed", {"taskId": "t1"})
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [line["event"] for line in lines] == ["task:created", "task:completed"]
    assert lines[0]["data"]["taskId"] == "t1" and lines[0]["id"]


def test_help_shows_defaults_and_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("default: 3000; env OTEL_SSE_PORT", "default: localhost; env OTEL_SSE_HOST",
                     "default: 4319; env OTEL_SSE_GRPC_PORT", "env OTEL_SSE_TOKEN",
                     "default: http://localhost:16686; env OTEL_SSE_JAEGER_URL"):
        assert expected in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("otel-sse 0.")


def test_flags_then_environment_then_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "otel-sse.toml"
    config.write_text('[server]\nport = 4100\nmax_clients = 9\nhistory_size = 50\n')
    monkeypatch.setenv("OTEL_SSE_MAX_CLIENTS", "7")
    args = build_parser().parse_args(["serve", "--config", str(config), "--history-size", "60"])
    built = server_config(args)
    assert (built.port, built.max_clients, built.history_size) == (4100, 7, 60)
    config.write_text("port = [")
    assert main(["serve", "--config", str(config)]) == 2


def test_a_public_bind_without_a_token_refuses_to_start(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--port", "0", "--no-grpc"]) == 2
    error = capsys.readouterr().err
    assert "--insecure-no-auth" in error and error.count("\n") == 1
