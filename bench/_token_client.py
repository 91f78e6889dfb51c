"""Subscribed client for the token-throughput part of ``bench/overhead.py``.

Runs in its own process, so that reading and parsing never compete with the
producer or the server for the GIL (a client sharing their loop was cut off
by the server's slow-client policy: it was the client that was slow).

    python bench/_token_client.py URL TOTAL SEND_TIMES_FILE

Protocol with the parent:

- prints ``ready`` on stdout once the stream's ``connected`` event arrived;
- records ``time.time_ns()`` at the receipt of every ``llm:token`` (one clock
  read per network chunk: every event in a chunk arrived together), keyed by
  the token's ``index``;
- stops when it has ``TOTAL`` tokens, when the stream ends (the server cut it
  off, or stopped), or, once the parent wrote ``done`` on its stdin, when no
  token arrived for ``--idle`` seconds;
- then reads ``SEND_TIMES_FILE`` (the producer's ``time.time_ns()`` just before
  each ``emit_token``, an ``array('q')`` indexed by ``index``, written by the
  parent before ``done``) and prints one JSON line with counts and latencies.

Latency is receipt minus the producer's ns send time for the same ``index``:
the payload's own ``timestamp`` has millisecond resolution only, so it is not
used. Both clocks are the same host's wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from array import array

import aiohttp
from _results import percentile

_TOKEN = re.compile(rb'event: llm:token\ndata: [^\n]*?"index":(\d+)')
_EVENT = re.compile(rb"^event: (\S+)", re.M)


async def run(url: str, total: int, send_path: str, idle: float) -> dict[str, object]:
    recv = array("q", [0]) * total
    received = duplicates = gaps = 0
    other: dict[str, int] = {}
    first_ns = last_ns = 0
    ended = "complete"
    done = asyncio.Event()
    progress = asyncio.Event()

    async def watch_stdin() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        done.set()

    async def read(resp: aiohttp.ClientResponse) -> None:
        nonlocal received, duplicates, gaps, first_ns, last_ns, ended
        buffer = b""
        connected = False
        async for chunk in resp.content.iter_any():
            now = time.time_ns()
            buffer += chunk
            cut = buffer.rfind(b"\n\n")
            if cut < 0:
                continue
            block, buffer = buffer[:cut + 2], buffer[cut + 2:]
            if not connected and b"event: connected" in block:
                connected = True
                print("ready", flush=True)
            for match in _TOKEN.finditer(block):
                index = int(match.group(1))
                if 0 <= index < total:
                    if recv[index]:
                        duplicates += 1
                        continue
                    recv[index] = now
                    received += 1
            tokens_here = block.count(b"event: llm:token\n")
            if tokens_here:
                if not first_ns:
                    first_ns = now
                last_ns = now
                progress.set()
            if block.count(b"event: ") != tokens_here:  # control frames (rare)
                for name in _EVENT.findall(block):
                    if name != b"llm:token":
                        key = name.decode()
                        other[key] = other.get(key, 0) + 1
                        if key == "stream:gap":
                            gaps += 1
            if received >= total:
                return
        ended = "stream ended by the server"

    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
        f"{url}/events?filters=llm:token",
        headers={"Accept": "text/event-stream", "Accept-Encoding": "identity"},
    ) as resp:
        reader = asyncio.create_task(read(resp))
        stdin = asyncio.create_task(watch_stdin())
        while not reader.done():
            if done.is_set():
                progress.clear()
                try:
                    await asyncio.wait_for(asyncio.shield(progress.wait()), idle)
                except TimeoutError:
                    if not reader.done():
                        ended = f"idle {idle:g} s after the producer finished"
                        reader.cancel()
                    break
            else:
                await asyncio.wait({reader, stdin}, return_when=asyncio.FIRST_COMPLETED)
        try:
            await reader
        except asyncio.CancelledError:
            pass
        except aiohttp.ClientError as exc:
            ended = f"stream error: {exc!r}"
        if not done.is_set():  # finished first: the send times come with "done"
            await done.wait()
        stdin.cancel()

    sent = array("q")
    with open(send_path, "rb") as fh:
        sent.frombytes(fh.read())
    latencies = sorted(recv[i] - sent[i] for i in range(min(total, len(sent)))
                       if recv[i] and sent[i])
    first_send = min((s for s in sent if s), default=0)
    span_s = (last_ns - first_send) / 1e9 if last_ns and first_send else 0.0
    return {
        "total": total,
        "received": received,
        "lost": total - received,
        "duplicates": duplicates,
        "gaps": gaps,
        "other_events": other,
        "ended": ended,
        "tokens_per_s": received / span_s if span_s > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) / 1e6,
        "p99_ms": percentile(latencies, 0.99) / 1e6,
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("total", type=int)
    parser.add_argument("send_times")
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.total, args.send_times, args.idle))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
