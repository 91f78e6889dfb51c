"""``otel-sse serve | demo | tail``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from otel_sse.errors import OtelSSEError


def _raise_fd_limit() -> None:
    # Each client is a socket; the default soft limit (often 1024) caps the server early.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run on uvloop when it is installed (it is the embedding code's choice)."""
    _raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def stop_event() -> asyncio.Event:
    """Set on SIGINT/SIGTERM; installed before anything is announced, so no signal is missed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_until(stop: asyncio.Event, duration: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)


def _server_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "port": args.port, "host": args.host, "http2": args.http2 or None,
        "cert_path": args.cert, "key_path": args.key,
        "compression": False if args.no_compression else None,
        "max_clients": args.max_clients,
    }


def _add_server_arguments(parser: argparse.ArgumentParser, port: int | None) -> None:
    parser.add_argument("--host", default=None, help="bind address (default localhost)")
    parser.add_argument("--port", type=int, default=port, help="port (0 picks a free one)")
    parser.add_argument("--http2", action="store_true", help="HTTP/2 over TLS (needs --cert/--key)")
    parser.add_argument("--cert", default=None, help="TLS certificate (PEM)")
    parser.add_argument("--key", default=None, help="TLS private key (PEM)")
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--max-clients", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")


async def _serve(args: argparse.Namespace) -> int:
    from otel_sse.server import SSEServer

    stop = stop_event()
    server = SSEServer(**_server_options(args))
    await server.start()
    print(f"otel-sse serving {server.url}/events", flush=True)
    try:
        await wait_until(stop, args.duration)
    finally:
        await server.stop()
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from otel_sse.demo import run_demo

    return await run_demo(_server_options(args), duration=args.duration,
                          otlp_endpoint=args.otlp_endpoint, rate=args.rate)


async def _tail(args: argparse.Namespace) -> int:
    from otel_sse.client import SSEClient

    filters = [f for f in (args.filters or "").split(",") if f] or None
    client = SSEClient(args.url, filters=filters)
    shown = 0
    try:
        async with asyncio.timeout(args.duration):
            async for event in client:
                if args.json:
                    print(json.dumps({"id": event.id, "event": event.type, "data": event.data}),
                          flush=True)
                else:
                    print(f"{event.type:<24} {event.raw}", flush=True)
                shown += 1
                if args.count and shown >= args.count:
                    break
    except TimeoutError:
        pass
    finally:
        await client.disconnect()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-sse", description="Live Server-Sent Events for AI agent telemetry.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run an SSE server")
    _add_server_arguments(serve, None)
    demo = commands.add_parser("demo", help="run a server with a simulated agent team")
    _add_server_arguments(demo, 3000)
    demo.add_argument("--otlp-endpoint", default=None,
                      help="also export the telemetry over OTLP (e.g. http://localhost:4317)")
    demo.add_argument("--rate", type=float, default=1.0, help="speed factor of the scenario")
    tail = commands.add_parser("tail", help="print a stream's events")
    tail.add_argument("url", nargs="?", default="http://localhost:3000/events")
    tail.add_argument("--filters", default=None, help="e.g. task:*,agent:spawned")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--count", type=int, default=0, help="stop after N events")
    tail.add_argument("--duration", type=float, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"serve": _serve, "demo": _demo, "tail": _tail}
    try:
        return run(lambda: handlers[args.command](args))
    except KeyboardInterrupt:
        return 130
    except OtelSSEError as exc:
        print(f"otel-sse: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
