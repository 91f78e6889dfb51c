"""``otel-sse serve``: the server on its own."""

from __future__ import annotations

import argparse
from typing import Any

from otel_sse.cli.runner import stop_event, wait_until


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "port": args.port, "host": args.host, "http2": args.http2 or None,
        "cert_path": args.cert, "key_path": args.key,
        "compression": False if args.no_compression else None,
        "max_clients": args.max_clients,
    }


def add_server_arguments(parser: argparse.ArgumentParser, port: int | None) -> None:
    parser.add_argument("--host", default=None, help="bind address (default localhost)")
    parser.add_argument("--port", type=int, default=port, help="port (0 picks a free one)")
    parser.add_argument("--http2", action="store_true", help="HTTP/2 over TLS (needs --cert/--key)")
    parser.add_argument("--cert", default=None, help="TLS certificate (PEM)")
    parser.add_argument("--key", default=None, help="TLS private key (PEM)")
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--max-clients", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")


async def serve(args: argparse.Namespace) -> int:
    from otel_sse.server import SSEServer

    stop = stop_event()
    server = SSEServer(**server_options(args))
    await server.start()
    print(f"otel-sse serving {server.url}/events", flush=True)
    try:
        await wait_until(stop, args.duration)
    finally:
        await server.stop()
    return 0
