"""``otel-sse serve``: the gateway.

Settings come from flags, then ``OTEL_SSE_*`` variables, then a TOML file
(``--config``), then the defaults; ``--help`` shows each default and variable.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import otel_sse.env as envtypes
from otel_sse.cli.banner import banner
from otel_sse.cli.runner import stop_event, wait_until
from otel_sse.env import Env
from otel_sse.errors import ConfigError
from otel_sse.server.config import ServerConfig

DEFAULT_GRPC_PORT = 4319
WORKERS_ENV = "OTEL_SSE_WORKERS"
_DEFAULTS = {f.name: f.default for f in fields(ServerConfig)}


def _help(text: str, name: str, default: object = None) -> str:
    shown = _DEFAULTS.get(name) if default is None else default
    shown_text = "none" if shown in (None, ()) else shown
    return f"{text} (default: {shown_text}; env {ServerConfig.env_name(name)})"


def add_server_arguments(parser: argparse.ArgumentParser,
                         grpc_port: int | None = DEFAULT_GRPC_PORT) -> None:
    """The flags of a command that runs a server (serve, demo); ``grpc_port``: the
    command's default OTLP/gRPC port (None: off unless asked for)."""
    parser.set_defaults(default_grpc_port=grpc_port)
    add = parser.add_argument
    add("--config", type=Path, default=None, metavar="FILE",
        help="a TOML file of server settings (the ServerConfig field names)")
    add("--host", help=_help("bind address; a non-loopback one needs a token", "host"))
    add("--port", type=int, help=_help("HTTP port (0 picks a free one)", "port"))
    add("--grpc-port", type=int,
        help=_help("OTLP/gRPC ingest port (0 picks a free one)", "grpc_port",
                   grpc_port or "off"))
    add("--no-grpc", action="store_true", help="no OTLP/gRPC ingest")
    add("--token", help=_help("subscribers (and producers, unless --producer-token) must send "
                              "Authorization: Bearer TOKEN", "token"))
    add("--token-file", type=Path, help=_help("read the token from this file", "token_file"))
    add("--producer-token",
        help=_help("a separate token for OTLP ingest and POST /v1/events", "producer_token"))
    add("--producer-token-file", type=Path,
        help=_help("read the producer token from this file", "producer_token_file"))
    add("--insecure-no-auth", action="store_true", default=None,
        help=_help("allow a non-loopback bind without a token (a trusted network only)",
                   "insecure_no_auth"))
    add("--cors-origin", action="append", dest="cors_origins", metavar="ORIGIN",
        help=_help("allow this origin cross-origin access; repeatable; * for any",
                   "cors_origins"))
    add("--allowed-host", action="append", dest="allowed_hosts", metavar="HOST",
        help=_help("accept requests naming this host besides loopback ones; repeatable",
                   "allowed_hosts"))
    add("--jaeger-url", help=_help("where the dashboard links traces", "jaeger_url"))
    add("--http2", action="store_true", default=None,
        help=_help("HTTP/2 over TLS (needs --cert/--key)", "http2"))
    add("--cert", dest="cert_path", help=_help("TLS certificate (PEM)", "cert_path"))
    add("--key", dest="key_path", help=_help("TLS private key (PEM)", "key_path"))
    add("--no-compression", action="store_true", help="never compress streams")
    add("--max-clients", type=int, help=_help("stream subscribers at most", "max_clients"))
    add("--history-size", type=int, help=_help("events kept for replay", "history_size"))
    add("--bus", metavar="URL",
        help=_help("the event bus: memory, or redis://[user:password@]host:port/db "
                   "(rediss:// for TLS) shared by several gateways", "bus", "memory"))
    add("--stream-key", metavar="KEY",
        help=_help("the Redis stream of this gateway's events (one per tenant)",
                   "stream_key"))
    add("--duration", type=float, default=None,
        help="stop after this many seconds (default: until Ctrl-C)")


def server_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None,
                  file_defaults: Mapping[str, Any] | None = None,
                  **overrides: Any) -> ServerConfig:
    """The ServerConfig the flags, the environment (``environ``, default ``os.environ``)
    and ``--config`` give; ``file_defaults`` are the command's own defaults (below all)."""
    file: dict[str, Any] = {"grpc_port": getattr(args, "default_grpc_port", DEFAULT_GRPC_PORT),
                            **(file_defaults or {})}
    if args.config is not None:
        try:
            loaded = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--config: cannot read {str(args.config)!r}: "
                              f"{exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {str(args.config)!r} is not valid TOML: {exc}") from None
        file.update(loaded.get("server", loaded))
    if args.no_grpc:
        file["grpc_port"] = None
    flags = {name: getattr(args, name, None) for name in (
        "host", "port", "grpc_port", "token", "token_file", "producer_token",
        "producer_token_file", "insecure_no_auth", "cors_origins", "allowed_hosts",
        "jaeger_url", "http2", "cert_path", "key_path", "max_clients", "history_size",
        "bus", "stream_key")}
    if args.no_compression:
        flags["compression"] = False
    if args.no_grpc:
        flags.pop("grpc_port")
    return ServerConfig.build(file=file, environ=environ, **{**flags, **overrides})


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve``'s own flags (a demo is one process)."""
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help=f"serve from N processes sharing the port (SO_REUSEPORT); needs --bus redis://... "
             f"(default: 1; env {WORKERS_ENV})")


def worker_count(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """``--workers``, else ``OTEL_SSE_WORKERS``, else 1."""
    if args.workers is not None:
        value: object = args.workers
        where = "--workers"
    else:
        raw = Env(environ).get(WORKERS_ENV)
        if raw is None:
            return 1
        value, where = envtypes.integer(raw, WORKERS_ENV), WORKERS_ENV
    return envtypes.int_at_least(value, where, 1)


async def serve(args: argparse.Namespace) -> int:
    from otel_sse.server import SSEServer

    # gRPC's own logger would print a port conflict before our one-line error does.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    stop = stop_event()
    config = server_config(args)
    workers = worker_count(args)
    if workers > 1:
        from otel_sse.cli.workers import run_workers

        return await run_workers(config, workers, stop, args.duration)
    server = SSEServer(config=config)
    await server.start()
    print(banner(server.url, server.config, server.grpc_port), flush=True)
    try:
        await wait_until(stop, args.duration)
    finally:
        await server.stop()
    return 0
