"""The gateway as users run it: `otel-sse serve` in its own process, behind a token; a
plain OpenTelemetry app (no otel_sse in it) exporting over OTLP/gRPC and OTLP/HTTP from
another; `otel-sse tail --json` and SSEClient watching; the security checks over HTTP/1.1
and HTTP/2; hostile ingest next to well-formed traffic that loses nothing."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import h2.events
import pytest

from otel_sse.client import SSEClient
from tests.conftest import free_port
from tests.h2_helpers import H2Client

TOKEN = "e2e-subscriber-token"
PRODUCER = "e2e-producer-token"

# A plain OpenTelemetry app: the stock SDK and OTLP exporters only, configured by the
# standard environment variables.
PLAIN_APP = Path(__file__).resolve().parent.parent / "examples" / "otlp_app.py"


@asynccontextmanager
async def gateway(*args: str) -> AsyncIterator[tuple[str, int, asyncio.subprocess.Process]]:
    port, grpc_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "otel_sse", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--grpc-port", str(grpc_port), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert f"127.0.0.1:{port}/events" in line, line
    try:
        yield f"http://127.0.0.1:{port}", grpc_port, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)


async def run_app(transport: str, endpoint: str, token: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_SERVICE_NAME=f"plain-{transport}", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
               OTEL_EXPORTER_OTLP_PROTOCOL="grpc" if transport == "grpc" else "http/protobuf",
               OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{token}")
    app = await asyncio.create_subprocess_exec(
        sys.executable, str(PLAIN_APP), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(app.communicate(), 60)
    assert app.returncode == 0, err.decode()
    assert "otel_sse" not in PLAIN_APP.read_text()
    trace_id: str = json.loads(out.decode().strip().splitlines()[-1])["traceId"]
    return trace_id


async def test_plain_apps_over_grpc_and_http_reach_tail_and_sseclient() -> None:
    async with gateway("--token", TOKEN, "--producer-token", PRODUCER) as (url, grpc_port, proc):
        tail = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "otel_sse", "tail", f"{url}/events", "--json",
            "--token", TOKEN, "--filters", "span:*,llm:*,log,trace:*", "--duration", "60",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        received: list[tuple[str, Any]] = []
        async with SSEClient(f"{url}/events", filters=["trace:*", "llm:*"],
                             headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            async def watch() -> None:
                async for event in client:
                    received.append((event.type, event.data))
                    if sum(t == "trace:completed" for t, _ in received) == 2:
                        return

            watching = asyncio.create_task(watch())
            async with aiohttp.ClientSession() as session:  # both subscribers are on
                while True:
                    async with session.get(f"{url}/healthz", headers={
                            "Authorization": f"Bearer {TOKEN}"}) as resp:
                        if (await resp.json())["clients"] == 2:
                            break
                    await asyncio.sleep(0.05)
            traces = {
                "grpc": await run_app("grpc", f"http://127.0.0.1:{grpc_port}", PRODUCER),
                "http": await run_app("http", url, PRODUCER),
            }
            await asyncio.wait_for(watching, 30)
        tail.terminate()
        out, _ = await asyncio.wait_for(tail.communicate(), 15)
        lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        proc.terminate()
        logs, _ = await asyncio.wait_for(proc.communicate(), 15)
    completed = {d["traceId"]: d for t, d in received if t == "trace:completed"}
    assert set(completed) == set(traces.values())
    for transport, trace_id in traces.items():
        assert completed[trace_id]["spanCount"] == 2
        assert completed[trace_id]["serviceName"] == f"plain-{transport}"
        requests = [d for t, d in received if t == "llm:request:completed"
                    and d["traceId"] == trace_id]
        assert requests and requests[0]["model"] == "gpt-4o"
        events = {line["event"] for line in lines
                  if isinstance(line["data"], dict) and line["data"].get("traceId") == trace_id}
        assert {"span:started", "span:ended", "llm:request:started", "log"} <= events
    text = logs.decode()
    assert TOKEN not in text and PRODUCER not in text


async def _h2_status(port: int, method: str, path: str, token: str | None,
                     body: bytes = b"") -> int:
    client = await H2Client.open(port)
    headers = [(":method", method), (":scheme", "http"), (":authority", "127.0.0.1"),
               (":path", path), ("content-type", "application/json")]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    stream_id = client.conn.get_next_available_stream_id()
    client.conn.send_headers(stream_id, headers, end_stream=not body)
    if body:
        client.conn.send_data(stream_id, body, end_stream=True)
    await client.flush()
    (response,) = await client.until(h2.events.ResponseReceived)
    client.close()
    status = dict(response.headers or [])[b":status"]
    return int(status)


@pytest.mark.parametrize("protocol", ["http/1.1", "h2c"])
async def test_tokens_on_every_route_and_protocol(protocol: str) -> None:
    async with gateway("--token", TOKEN, "--producer-token", PRODUCER) as (url, _, _proc):
        port = int(url.rsplit(":", 1)[1])
        routes = [("GET", "/events", None, 401), ("GET", "/events", "wrong-token-123", 401),
                  ("POST", "/v1/traces", None, 401), ("POST", "/v1/events", None, 401),
                  ("POST", "/v1/events", TOKEN, 401),  # a subscriber token cannot publish
                  ("POST", "/v1/events", PRODUCER, 202), ("GET", "/healthz", TOKEN, 200)]
        body = json.dumps({"event": "x", "data": {}}).encode()
        async with aiohttp.ClientSession() as session:
            for method, path, token, expected in routes:
                data = body if method == "POST" else b""
                if protocol == "h2c":
                    status = await _h2_status(port, method, path, token, data)
                else:
                    headers = {"Content-Type": "application/json"}
                    if token:
                        headers["Authorization"] = f"Bearer {token}"
                    async with session.request(method, f"{url}{path}", data=data or None,
                                               headers=headers) as resp:
                        status = resp.status
                        if status == 401:
                            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                assert status == expected, (protocol, method, path, token)
            async with session.get(f"{url}/healthz", headers={
                    "Authorization": f"Bearer {TOKEN}", "Origin": "https://evil.example",
                    "Host": f"127.0.0.1:{port}"}) as resp:
                assert "Access-Control-Allow-Origin" not in resp.headers
            async with session.get(f"{url}/healthz", headers={
                    "Authorization": f"Bearer {TOKEN}", "Host": "attacker.example"}) as resp:
                assert resp.status == 403


async def test_hostile_ingest_next_to_well_formed_traffic_loses_nothing(tmp_path: Path) -> None:
    from tests.test_ingest import _span_request

    async with gateway("--no-grpc") as (url, _, _proc), aiohttp.ClientSession() as session:
        good = _span_request(count=200)
        bad_requests = [
            (b"\x0a\xff\xff\xff\xff", {"Content-Type": "application/x-protobuf"}, 400),
            (gzip.compress(b"\0" * (100 * 1024 * 1024)),
             {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, 413),
            (b"x" * (9 * 1024 * 1024), {"Content-Type": "application/x-protobuf"}, 413),
            (b"{}", {"Content-Type": "text/csv"}, 415),
        ]

        async def send_good(i: int) -> None:
            request = type(good)()
            request.CopyFrom(good)
            for span in request.resource_spans[0].scope_spans[0].spans:
                span.trace_id = (i * 1000 + int.from_bytes(span.span_id, "big")).to_bytes(16,
                                                                                          "big")
            while True:
                async with session.post(f"{url}/v1/traces", data=request.SerializeToString(),
                                        headers={"Content-Type": "application/x-protobuf"}) as r:
                    if r.status == 429:  # shed: retry as an exporter would
                        await asyncio.sleep(float(r.headers["Retry-After"]) / 10)
                        continue
                    assert r.status == 200
                    return

        async def send_bad(body: bytes, headers: dict[str, str], expected: int) -> None:
            async with session.post(f"{url}/v1/traces", data=io.BytesIO(body),
                                    headers=headers) as r:
                assert r.status == expected, (r.status, expected, await r.text())

        await asyncio.gather(*(send_good(i) for i in range(20)),
                             *(send_bad(*bad) for bad in bad_requests))
        async with session.get(f"{url}/healthz") as resp:
            stats = await resp.json()
        assert stats["ingestSpans"] == 20 * 200
        assert stats["status"] == "ok"
