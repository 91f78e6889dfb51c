"""A real ``redis-server`` on a free port, and a client recording what it reads, for the
Redis bus's tests.

``make test`` installs it (``make system-deps``); where it is missing the tests
that need it are skipped, naming it. The server can be stopped (keeping its
data: an append-only file written on every command) and started again on the
same port, with that data or without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest

from otel_sse.client import SSEClient, SSEEvent
from tests._client_helpers import FAST, wait_for
from tests.conftest import free_port

REDIS_SERVER = shutil.which("redis-server")

needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not installed (make system-deps installs it: apt-get install "
           "redis-server)")


class RedisServer:
    """One redis-server process on ``port``, its files in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        assert REDIS_SERVER is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.answers():
            assert self.proc.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: what the append-only file holds survives (every command is synced)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def wipe(self) -> None:
        """Forget the data: the next start is an empty server."""
        for path in self.folder.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def stop(self) -> None:
        self.kill()


def stream_entries(url: str, key: str = "otel-sse:events") -> list[tuple[str, dict[bytes, bytes]]]:
    """Every entry of the stream ``key``: (id, fields)."""
    import redis

    with redis.Redis.from_url(url) as client:
        raw = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key) or [])
    return [(entry_id.decode(), fields) for entry_id, fields in raw]


def trim(url: str, keep: int, key: str = "otel-sse:events") -> None:
    """Trim the stream to its ``keep`` newest entries, exactly."""
    import redis

    with redis.Redis.from_url(url) as client:
        client.xtrim(key, maxlen=keep, approximate=False)


class Reader:
    """Every event one client yields (lifecycle events too)."""

    def __init__(self, url: str | list[str], **options: Any) -> None:
        self.client = SSEClient(url, **{**FAST, **options})
        self.events: list[SSEEvent] = []
        self.connects: list[SSEEvent] = []
        self.client.on("connected", self.connects.append)
        self._task: asyncio.Task[None] | None = None

    def of(self, event_type: str) -> list[SSEEvent]:
        return [e for e in self.events if e.type == event_type]

    async def __aenter__(self) -> Reader:
        async def consume() -> None:
            async for event in self.client:
                self.events.append(event)

        self._task = asyncio.create_task(consume())
        await wait_for(lambda: len(self.connects) >= 1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()
        assert self._task is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
