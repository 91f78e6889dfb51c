"""``otel-sse serve | demo | tail``: ``main(argv=None) -> int``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from otel_sse.cli.runner import run
from otel_sse.cli.serve import add_server_arguments, serve, server_options
from otel_sse.cli.tail import add_tail_arguments, tail
from otel_sse.errors import OtelSSEError


async def _demo(args: argparse.Namespace) -> int:
    from otel_sse.cli.demo import run_demo

    return await run_demo(server_options(args), duration=args.duration,
                          otlp_endpoint=args.otlp_endpoint, rate=args.rate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-sse", description="Live Server-Sent Events for AI agent telemetry.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run an SSE server")
    add_server_arguments(serve_parser, None)
    demo = commands.add_parser("demo", help="run a server with a simulated agent team")
    add_server_arguments(demo, 3000)
    demo.add_argument("--otlp-endpoint", default=None,
                      help="also export the telemetry over OTLP (e.g. http://localhost:4317)")
    demo.add_argument("--rate", type=float, default=1.0, help="speed factor of the scenario")
    add_tail_arguments(commands.add_parser("tail", help="print a stream's events"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"serve": serve, "demo": _demo, "tail": tail}
    try:
        return run(lambda: handlers[args.command](args))
    except KeyboardInterrupt:
        return 130
    except OtelSSEError as exc:
        print(f"otel-sse: {exc}", file=sys.stderr)
        return 2
