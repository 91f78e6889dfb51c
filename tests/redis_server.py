"""A real ``redis-server`` on a free port, and a client recording what it reads, for the
Redis bus's tests.

``make test`` installs it (``make system-deps``); where it is missing the tests
that need it are skipped, naming it. The server can be stopped (keeping its
data: an append-only file written on every command) and started again on the
same port, with that data or without it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest

from otel_sse.client import SSEClient, SSEEvent
from tests._client_helpers import FAST, Recorder, wait_for
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

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


class Reader(Recorder):
    """Every event a client of ``url`` yields; entered once it has connected."""

    def __init__(self, url: str | list[str], **options: Any) -> None:
        super().__init__(SSEClient(url, **{**FAST, **options}))

    @property
    def connects(self) -> list[SSEEvent]:
        return self.lifecycle["connected"]

    async def __aenter__(self) -> Reader:
        await super().__aenter__()
        await wait_for(lambda: len(self.connects) >= 1)
        return self
