"""``otel-sse serve --workers N``: N gateway processes on one port, sharing the Redis bus.

One Python process serves about one core. Each worker is a whole gateway (its
own loop, connections and fan-out) listening on the same port with
``SO_REUSEPORT``, so the kernel spreads new connections among them; they share
events through the Redis bus, so a client sees the same stream whichever
worker it lands on and resumes on any of them. With the in-process bus each
worker would have events of its own: that is refused.

This process only supervises: it reserves the port (for ``--port 0``), starts
the workers (``spawn``: nothing of this process's state is inherited), prints
where to look once every worker listens, restarts a worker that dies, and on
Ctrl-C or SIGTERM stops them all within their shutdown deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import queue
import socket
import sys
import time
from multiprocessing.context import SpawnProcess
from typing import Any

from otel_sse.cli.banner import banner
from otel_sse.errors import ConfigError, OtelSSEError, ServerError
from otel_sse.server.config import ServerConfig

# A worker that dies is restarted, at most this often (seconds).
RESTART_EVERY = 1.0
READY_TIMEOUT = 60.0


def check_workers(config: ServerConfig, workers: int) -> None:
    """Several workers need a shared bus."""
    if workers > 1 and not config.shared_bus:
        raise ConfigError(
            f"--workers {workers} needs a shared bus (--bus redis://host:port/db or "
            "OTEL_SSE_BUS): with the in-process bus each worker would have its own events, "
            "and a client would see only those of the worker it reached")


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT, not listening: it keeps the
    port (0: a free one) for the workers, which bind it too, and takes no connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host if host not in ("", "localhost") else "127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sock


def _worker(config: ServerConfig, index: int, events: Any) -> None:
    """A worker process: one gateway until SIGTERM/SIGINT."""
    from otel_sse.cli.runner import run

    with contextlib.suppress(KeyboardInterrupt):
        run(lambda: _serve(config, index, events))


async def _serve(config: ServerConfig, index: int, events: Any) -> int:
    from otel_sse.cli.runner import stop_event
    from otel_sse.server import SSEServer

    stop = stop_event()
    server = SSEServer(config=config)
    try:
        await server.start()
    except OtelSSEError as exc:
        events.put(("error", index, str(exc)))
        return 2
    events.put(("ready", index, server.grpc_port))
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0


class Workers:
    """The worker processes of one ``serve``."""

    def __init__(self, config: ServerConfig, count: int) -> None:
        self.config = config
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.events = self.context.Queue()
        self.procs: list[SpawnProcess] = []
        self.restarts = 0

    def start(self, index: int) -> SpawnProcess:
        proc = self.context.Process(target=_worker, args=(self.config, index, self.events),
                                    name=f"otel-sse-worker-{index}", daemon=False)
        proc.start()
        return proc

    async def start_all(self) -> int | None:
        """Start every worker; the OTLP/gRPC port once all listen (a ServerError with
        the first worker's error when one cannot start)."""
        self.procs = [self.start(i) for i in range(self.count)]
        ready = 0
        grpc_port: int | None = None
        deadline = time.monotonic() + READY_TIMEOUT
        while ready < self.count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerError(f"the workers did not start within {READY_TIMEOUT:g} s")
            try:
                kind, _, detail = await asyncio.to_thread(self.events.get, True,
                                                          min(remaining, 0.5))
            except queue.Empty:
                dead = [p for p in self.procs if p.exitcode is not None]
                if dead:
                    raise ServerError(f"worker {dead[0].name} exited with status "
                                      f"{dead[0].exitcode} while starting") from None
                continue
            if kind == "error":
                raise ServerError(str(detail))
            ready += 1
            grpc_port = detail
        return grpc_port

    async def supervise(self, stop: asyncio.Event, duration: float | None) -> None:
        """Until ``stop`` or ``duration``: restart a worker that died."""
        end = None if duration is None else time.monotonic() + duration
        last_restart = 0.0
        while not stop.is_set() and (end is None or time.monotonic() < end):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
            for index, proc in enumerate(self.procs):
                if proc.exitcode is None or stop.is_set():
                    continue
                if time.monotonic() - last_restart < RESTART_EVERY:
                    break
                print(f"otel-sse: worker {index} (pid {proc.pid}) exited with status "
                      f"{proc.exitcode}; starting another", file=sys.stderr, flush=True)
                last_restart = time.monotonic()
                self.restarts += 1
                self.procs[index] = self.start(index)

    async def stop_all(self) -> None:
        """SIGTERM to every worker; SIGKILL to those still running after their deadline."""
        for proc in self.procs:
            if proc.exitcode is None:
                proc.terminate()
        deadline = time.monotonic() + self.config.shutdown_timeout + 3.0
        while any(p.exitcode is None for p in self.procs) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for proc in self.procs:
            if proc.exitcode is None:
                proc.kill()
                proc.join(1.0)
        self.events.close()


async def run_workers(config: ServerConfig, count: int, stop: asyncio.Event,
                      duration: float | None) -> int:
    """Serve ``config`` from ``count`` processes until ``stop`` (or ``duration`` s)."""
    check_workers(config, count)
    host = config.host or "0.0.0.0"
    http = reserve_port(host, config.port)
    grpc = reserve_port(host, config.grpc_port) if config.grpc_port is not None else None
    try:
        config = dataclasses.replace(
            config, reuse_port=True, port=http.getsockname()[1],
            grpc_port=grpc.getsockname()[1] if grpc is not None else None)
        workers = Workers(config, count)
        try:
            grpc_port = await workers.start_all()
            scheme = "https" if config.tls else "http"
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            url = f"{scheme}://{f'[{shown}]' if ':' in shown else shown}:{config.port}"
            print(banner(url, config, grpc_port), flush=True)
            print(f"  workers:    {count} processes sharing the port, bus "
                  f"{config.redis_bus().display_url} (stream {config.stream_key})", flush=True)
            await workers.supervise(stop, duration)
        finally:
            await workers.stop_all()
    finally:
        http.close()
        if grpc is not None:
            grpc.close()
    return 0
