"""``otel-sse tail`` as a real process: on a terminal emulator, piped, as JSON, failing."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pexpect
import pyte
import pytest

from otel_sse.client import SSEClient
from otel_sse.server import SSEServer
from tests._client_helpers import RawServer, Request, head
from tests.conftest import free_port

LINK = re.compile(r"http://localhost:16686/trace/([0-9a-f]{32})\?uiFind=([0-9a-f]{16})")
BAR = re.compile(r"^(\S+) .*━.* (\d+)%")
RUNNING = re.compile(r"^(req-[0-9a-f]+) \S+ ▸ (.+?)\s*$")
ANSI = "\x1b"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "OTEL_SSE_TOKEN")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """``otel-sse demo`` in its own process: a real server fed by the real emitters."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sse", "demo", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env())
    assert proc.stdout is not None
    banner = ""
    try:
        while "Stop: Ctrl-C" not in banner:
            line = proc.stdout.readline()
            assert line, f"demo ended early: {banner}"
            banner += line
        yield f"http://127.0.0.1:{port}/events"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


class Ends:
    """What an independent subscriber sees end: span ids and full responses."""

    def __init__(self, url: str) -> None:
        self.ids: set[tuple[str, str]] = set()
        self.responses: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        filters = ["task:completed", "task:failed", "llm:request:completed"]
        for event in SSEClient.iter_sync(url, filters=filters):
            data = event.data
            self.ids.add((data["traceId"], data["spanId"]))
            if event.type == "llm:request:completed":
                self.responses[data["requestId"]] = data["response"]
            if self._stop.is_set():
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_terminal_view_shows_bars_running_text_and_jaeger_links(demo: str) -> None:
    rows, columns = 50, 180
    screen = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(screen)
    ends = Ends(demo)
    child = pexpect.spawn(
        sys.executable, ["-m", "otel_sse", "tail", demo, "--filters", "task:*,llm:*"],
        dimensions=(rows, columns), env=_clean_env(TERM="xterm-256color"))
    bars: set[tuple[str, int]] = set()
    texts: dict[str, list[str]] = {}
    links: set[tuple[str, str]] = set()

    def grown() -> bool:
        # Two sightings of one request's text, the later one longer, both the
        # start of the response that request ended with.
        for request, seen in texts.items():
            full = ends.responses.get(request)
            if full is None:
                continue
            starts = [t for t in seen if full.startswith(t) and len(t) < len(full)]
            if len({len(t) for t in starts}) >= 2:
                return True
        return False

    try:
        deadline = time.monotonic() + 60
        while not (any(0 < pct < 100 for _, pct in bars) and grown() and links & ends.ids):
            assert time.monotonic() < deadline, (
                f"bars={sorted(bars)[:5]} texts={texts} links={links} ends={ends.ids}\n"
                + "\n".join(screen.display))
            try:
                stream.feed(child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                continue
            for row in screen.display:
                if match := BAR.match(row):
                    bars.add((match[1], int(match[2])))
                if match := RUNNING.match(row):
                    texts.setdefault(match[1], []).append(match[2])
                links.update((m[1], m[2]) for m in LINK.finditer(row))
        assert ANSI not in "".join(screen.display)  # the emulator consumed every escape
        child.sendintr()
        child.expect(pexpect.EOF, timeout=15)
    finally:
        child.close(force=True)
        ends.close()
    assert child.exitstatus == 0


def test_piped_output_is_plain_lines(demo: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_sse", "tail", demo, "--filters", "task:*",
         "--duration", "6"],
        capture_output=True, text=True, timeout=30, env=_clean_env(FORCE_COLOR="1"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ANSI not in out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["tail", "connected", "to"]
    assert any(" task:progress " in line and "%" in line for line in lines)
    ends = [line for line in lines if " task:completed " in line or " task:failed " in line]
    assert ends and all(LINK.search(line) for line in ends)
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3}  task:", line) for line in lines[1:])


def test_json_is_one_object_per_line(demo: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_sse", "tail", demo, "--json", "--count", "80",
         "--duration", "30"],
        capture_output=True, text=True, timeout=60, env=_clean_env(FORCE_COLOR="1"))
    assert result.returncode == 0, result.stderr
    assert ANSI not in result.stdout
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 80
    assert all(set(record) == {"id", "event", "data"} for record in records)
    assert all(isinstance(record["data"], dict) for record in records)
    telemetry = [r for r in records if r["event"].startswith(("task:", "llm:", "agent:"))]
    assert telemetry and all(re.fullmatch(r"[0-9a-f]{32}", r["data"]["traceId"])
                             for r in telemetry)
    assert "connected to" in result.stderr


async def _run_tail(*argv: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "otel_sse", "tail", *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_clean_env(**env))
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_401_is_one_line_and_a_failure_exit_and_the_token_stays_secret() -> None:
    async def locked(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(401, "text/plain", [("WWW-Authenticate", "Bearer")],
                          reason="Unauthorized") + b"missing or wrong bearer token\n")

    async with RawServer(locked) as server:
        code, out, err = await _run_tail(server.url, "--token", "s3cret-t0ken", "--duration", "20")
        assert server.requests[0].headers["authorization"] == "Bearer s3cret-t0ken"
        assert code == 1
        assert out == ""
        assert err.count("\n") == 1
        assert err.startswith(f"otel-sse tail: {server.url}: HTTP 401 Unauthorized")
        assert err.rstrip().endswith("the token was refused")
        assert len(server.requests) == 1

        code, out, err = await _run_tail(server.url, "--duration", "20",
                                         OTEL_SSE_TOKEN="env-t0ken")
        assert server.requests[1].headers["authorization"] == "Bearer env-t0ken"
        assert code == 1 and "s3cret" not in err and "env-t0ken" not in err + out

        code, _, err = await _run_tail(server.url, "--json", "--duration", "20")
        assert "authorization" not in server.requests[2].headers
        assert code == 1 and err.count("\n") == 1
        assert "wants a token (--token or OTEL_SSE_TOKEN)" in err


async def test_404_is_one_line_and_a_failure_exit() -> None:
    server = SSEServer(port=0, host="127.0.0.1")
    await server.start()
    try:
        code, out, err = await _run_tail(f"{server.url}/nope", "--duration", "20")
    finally:
        await server.stop()
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"otel-sse tail: {server.url}/nope: HTTP 404")
    assert "no event stream at this URL" in err


async def test_reconnects_quietly_over_several_urls() -> None:
    async def busy(index: int, request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(503, "text/plain", reason="Busy"))

    port = free_port()
    main = SSEServer(port=port, host="127.0.0.1", keep_alive_interval=5.0)
    await main.start()
    async with RawServer(busy) as spare:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "otel_sse", "tail", f"{main.url}/events", spare.url,
            "--duration", "60", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=_clean_env())
        assert proc.stdout is not None
        lines: list[str] = []

        async def read_until(text: str) -> None:
            while not any(text in line for line in lines):
                line = await asyncio.wait_for(proc.stdout.readline(), 30)  # type: ignore[union-attr]
                assert line, f"tail ended: {lines}"
                lines.append(line.decode().rstrip("\n"))

        try:
            await read_until("connected to")
            await main.stop()
            await read_until("lost")
            # The spare answers 503 and the main one is down: several rounds of attempts.
            async with asyncio.timeout(30):
                while len(spare.requests) < 3:
                    await asyncio.sleep(0.05)
            await main.start()
            await read_until("reconnected to")
            main.publish("task:created", {"taskId": "after"})
            await read_until("after")
        finally:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), 15)
            await main.stop()
    assert proc.returncode == 0
    news = [line for line in lines if line.lstrip().startswith("tail ")]
    assert len(news) == 3, lines
    assert "connected to" in news[0] and "lost" in news[1] and "reconnected to" in news[2]
    assert not any("503" in line or "attempt" in line for line in lines)
    assert any("the server is shutting down" in line for line in lines)
