"""An SSEServer in a process of its own, driven over stdin, so that tests can read its
memory (``/proc/<pid>/status``) without the test's own allocations in the way.

    python -m tests.server_proc '{"max_clients": 200}'

prints ``ready <port>``, then answers one line per command:

* ``publish COUNT SIZE RATE``: COUNT events of SIZE bytes of data at RATE/s
  (0: all at once), on the server's loop; answers ``published COUNT``;
* ``threads THREADS EACH BLOCK``: THREADS threads publish EACH events each while
  the loop is blocked for BLOCK seconds; answers ``published N`` when the
  threads are done;
* ``stats``: answers ``stats <json of get_stats()>``;
* ``quit`` (or end of input): stops the server and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from otel_sse.server import SSEServer


class ServerProcess:
    """The test side: start the server process, send commands, read its memory."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> ServerProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.server_proc", json.dumps(self.options),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self.port = int((await self._line("ready", 30)).split()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        if proc.returncode is None:
            proc.stdin.write(b"quit\n")
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _line(self, prefix: str, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), timeout)).decode()
            assert line, f"the server process ended (waiting for {prefix!r})"
            if line.startswith(prefix):
                return line.strip()

    async def command(self, line: str, answer: str, timeout: float = 60) -> str:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._line(answer, timeout)

    async def stats(self) -> dict[str, Any]:
        line = await self.command("stats", "stats ")
        stats: dict[str, Any] = json.loads(line[len("stats "):])
        return stats

    async def peak_rss_during(self, line: str, answer: str,
                              between: Callable[[], Awaitable[object]] | None = None) -> float:
        """Run a command; the highest resident memory seen (MB) until it answers.
        ``between`` runs between readings (the test's own I/O), else a short pause."""
        command = asyncio.ensure_future(self.command(line, answer))
        peak = self.rss_mb()
        while not command.done():
            peak = max(peak, self.rss_mb())
            await (between() if between is not None else asyncio.sleep(0.1))
        await command
        return max(peak, self.rss_mb())

    async def wait_stats(self, key: str, value: object, timeout: float = 10.0) -> None:
        """Until ``get_stats()[key] == value``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (await self.stats())[key] != value:
            assert loop.time() < deadline, f"{key} never became {value!r}"
            await asyncio.sleep(0.05)

    def rss_mb(self) -> float:
        """Resident memory now, from /proc."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


async def _publish(server: SSEServer, count: int, size: int, rate: float) -> None:
    filler = "x" * max(0, size - 40)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        server.publish("bench:event", {"i": i, "pad": filler})
        if rate > 0:
            due = start + (i + 1) / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


def _threads(server: SSEServer, threads: int, each: int, block: float) -> int:
    def produce(n: int) -> None:
        for i in range(each):
            server.publish("bench:event", {"thread": n, "i": i})

    workers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(block)  # the loop is held up: what the threads publish must wait, bounded
    for worker in workers:
        worker.join()
    return threads * each


async def main(options: dict[str, Any]) -> None:
    server = SSEServer(**{"port": 0, "host": "127.0.0.1", **options})
    await server.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"ready {server.port}", flush=True)
    try:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                break
            if line[0] == "publish":
                count, size, rate = int(line[1]), int(line[2]), float(line[3])
                await _publish(server, count, size, rate)
                print(f"published {count}", flush=True)
            elif line[0] == "threads":
                done = _threads(server, int(line[1]), int(line[2]), float(line[3]))
                print(f"published {done}", flush=True)
            elif line[0] == "stats":
                print("stats " + json.dumps(server.get_stats()), flush=True)
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
