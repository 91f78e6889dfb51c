"""Client parse throughput: events/s one client parses from a fast local server.

A raw asyncio server in a child process writes one pre-built buffer (the same
bytes for every client) as fast as the socket takes it, HTTP/1.1
close-delimited. Each client reads it to the last event; the clock runs from
the request to the last event. Clients: otel-sse's ``SSEClient``, httpx-sse
and aiohttp-sse-client, interleaved, several repetitions; medians reported.

Two modes: ``parse`` (iterate the events: type and data string available)
and ``json`` (also decode every event's JSON data).

    python bench/client.py [--events 200000] [--repeat 5] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _results import RESULTS, write_section

SECTION = "## Client parse throughput"


def build_stream(events: int) -> bytes:
    from otel_sse.wire.encoder import dumps, encode_event

    parts = []
    for i in range(events):
        payload = {
            "taskId": f"task-{i % 1000}",
            "status": "running",
            "progress": {"percentage": i % 100, "currentStep": "Analyzing requirements"},
            "timestamp": "2024-05-01T12:00:00.000Z",
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "spanId": "00f067aa0ba902b7",
            "parentSpanId": None,
        }
        parts.append(encode_event(dumps(payload), "task:progress", str(i + 1)))
    return b"".join(parts)


def serve(port_pipe: Any, events: int) -> None:
    """Child process: answer every request with the same head + buffer, then close."""
    body = build_stream(events)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head)
            writer.write(body)
            await writer.drain()
            # Keep the socket open: clients stop by themselves after the last
            # event, and aiohttp-sse-client would otherwise reconnect.
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_pipe.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def run_otel(url: str, events: int, decode: bool) -> None:
    from otel_sse.client import SSEClient

    client = SSEClient(url, auto_reconnect=False, read_timeout=60.0, compression=False)
    seen = 0
    async with client:
        async for event in client:
            if decode:
                event.data  # noqa: B018 - decoding the JSON is what is measured
            seen += 1
            if seen == events:
                break
    assert seen == events, seen


async def run_httpx_sse(url: str, events: int, decode: bool) -> None:
    import httpx
    from httpx_sse import aconnect_sse

    seen = 0
    async with (
        httpx.AsyncClient(timeout=None) as http,
        aconnect_sse(http, "GET", url) as source,
    ):
        async for sse in source.aiter_sse():
            if decode:
                sse.json()
            seen += 1
            if seen == events:
                break
    assert seen == events, seen


async def run_aiohttp_sse_client(url: str, events: int, decode: bool) -> None:
    from aiohttp_sse_client import client as sse_client

    seen = 0
    async with sse_client.EventSource(url) as source:
        async for event in source:
            if decode:
                json.loads(event.data)
            seen += 1
            if seen == events:
                break
    assert seen == events, seen


CLIENTS: dict[str, Callable[[str, int, bool], Awaitable[None]]] = {
    "otel-sse SSEClient": run_otel,
    "httpx-sse": run_httpx_sse,
    "aiohttp-sse-client": run_aiohttp_sse_client,
}
OURS = "otel-sse SSEClient"


def measure(name: str, url: str, events: int, decode: bool, use_uvloop: bool) -> float:
    async def timed() -> float:
        start = time.perf_counter()
        await CLIENTS[name](url, events, decode)
        return events / (time.perf_counter() - start)

    if use_uvloop:
        import uvloop

        return uvloop.run(timed())
    return asyncio.run(timed())


def table(results: dict[str, dict[str, list[float]]], modes: list[str]) -> str:
    lines = [
        "| client | " + " | ".join(f"{m}: events/s (median)" for m in modes) + " |",
        "| --- | " + " | ".join("---:" for _ in modes) + " |",
    ]
    for name in CLIENTS:
        cells = [f"{statistics.median(results[m][name]):,.0f}" for m in modes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ratios = []
    for m in modes:
        peer = max(statistics.median(results[m][n]) for n in CLIENTS if n != OURS)
        ratios.append(f"**{statistics.median(results[m][OURS]) / peer:.2f}x**")
    lines.append("| otel-sse / faster peer | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--modes", default="parse,json", help="parse, json or both")
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(child, args.events), daemon=True)
    server.start()
    port = parent.recv()
    url = f"http://127.0.0.1:{port}/events"
    size = len(build_stream(args.events))

    results: dict[str, dict[str, list[float]]] = {m: {n: [] for n in CLIENTS} for m in modes}
    try:
        for mode in modes:
            measure(OURS, url, args.events, mode == "json", args.uvloop)  # warm-up
            for _ in range(args.repeat):
                for name in CLIENTS:
                    rate = measure(name, url, args.events, mode == "json", args.uvloop)
                    results[mode][name].append(rate)
                    print(f"  {mode:5} {name:20} {rate:12,.0f} events/s", file=sys.stderr)
    finally:
        server.terminate()
        server.join()

    command = "python bench/client.py " + " ".join(sys.argv[1:])
    body = "\n".join(
        [
            SECTION,
            "",
            f"`{command.strip()}` — {args.events:,} events of ~{size // args.events} bytes "
            f"({size / 1e6:.1f} MB), HTTP/1.1 close-delimited from a raw asyncio server in "
            f"another process; median of {args.repeat} runs per client, interleaved. "
            f"`parse`: iterate the events; `json`: also decode each event's JSON data. "
            f"Python {platform.python_version()}, "
            f"{'uvloop' if args.uvloop else 'asyncio'} event loop, "
            f"{platform.machine()} with {os.cpu_count()} CPUs.",
            "",
            table(results, modes),
        ]
    )
    print(body)
    if args.write:
        write_section(SECTION, body)
        print(f"\nwrote the section to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
