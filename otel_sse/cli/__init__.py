"""``otel-sse serve | demo | tail``: ``main(argv=None) -> int``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from otel_sse._version import __version__
from otel_sse.cli.runner import run
from otel_sse.cli.serve import add_server_arguments, add_worker_arguments, serve, server_config
from otel_sse.cli.tail import add_tail_arguments, tail
from otel_sse.errors import OtelSSEError


async def _demo(args: argparse.Namespace) -> int:
    from otel_sse.cli.demo import run_demo

    # A demo serves loopback by default (no token needed), unless told otherwise.
    config = server_config(args, file_defaults={"host": "127.0.0.1"})
    return await run_demo(config, duration=args.duration, rate=args.rate, gateway=args.gateway)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-sse", description="Live Server-Sent Events for AI agent telemetry.")
    parser.add_argument("--version", action="version", version=f"otel-sse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="run the gateway: event stream, OTLP ingest, dashboard")
    add_server_arguments(serve_parser)
    add_worker_arguments(serve_parser)
    demo = commands.add_parser(
        "demo", help="run the gateway and an agent team streaming to it from another process")
    add_server_arguments(demo, grpc_port=None)
    demo.add_argument("--gateway", default=None, metavar="URL",
                      help="run only the agent team, against the gateway at URL (its producer "
                      "token from OTEL_SSE_GATEWAY_TOKEN); the team exports its traces to "
                      "OTEL_EXPORTER_OTLP_ENDPOINT when something listens there")
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
