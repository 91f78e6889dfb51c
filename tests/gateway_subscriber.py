"""A subscriber in a process of its own: ``SSEClient`` on a stream, each event stamped
with the time it arrived, here, before anything else is done with it.

    python -m tests.gateway_subscriber URL FILE     (the token in OTEL_SSE_TOKEN)

prints ``subscribed`` once connected, then writes one line per event to FILE:
``<receive time ns> <event type> <data as received>``, and ends after the event
``test:end``. Its own process, writing to a file rather than a pipe, so that
nothing the test process does meanwhile (its garbage collections, its other
servers, how fast it reads) is in the times.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from otel_sse.client import SSEClient


async def main(url: str, path: str) -> None:
    token = os.environ.get("OTEL_SSE_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    # A write to a file lands in the page cache: it never waits for a reader.
    with open(path, "w", encoding="utf-8") as out:  # noqa: ASYNC230
        write, flush = out.write, out.flush
        async with SSEClient(url, headers=headers, auto_reconnect=False,
                             read_timeout=None) as client:
            print("subscribed", flush=True)  # connect() returns once the stream is open
            async for event in client:
                received = time.time_ns()
                write(f"{received} {event.type} {event.raw}\n")
                flush()
                if event.type == "test:end":
                    return


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
