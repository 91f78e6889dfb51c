"""The command line: serve and demo as real processes, watched with curl."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys

import pytest

from otel_sse.cli import build_parser, main
from otel_sse.cli.serve import server_config
from tests.conftest import free_port


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


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_demo_streams_a_realistic_mix() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "otel_sse.cli", "demo", "--host", "127.0.0.1", "--port", str(port),
        "--duration", "20", "--rate", "4",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        banner = ""
        while "Stop: Ctrl-C" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, f"demo ended early: {banner}"
            banner += line.decode()
        assert "--http2-prior-knowledge" in banner
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sN", "--max-time", "15", f"http://127.0.0.1:{port}/events",
            stdout=asyncio.subprocess.PIPE)
        assert curl.stdout is not None
        seen: set[str] = set()
        try:
            while not {"llm:token", "task:created", "agent:started"} <= seen:
                text = (await asyncio.wait_for(curl.stdout.readline(), 15)).decode()
                assert text, "stream ended"
                if text.startswith("event: "):
                    seen.add(text[7:].strip())
                elif text.startswith("data: "):
                    json.loads(text[6:])
        finally:
            curl.kill()
            await curl.wait()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == 0


def test_serve_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "otel_sse.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}/events" in proc.stdout.readline()
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
