"""``otel-sse tail``: print a stream's events in a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json


def add_tail_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default="http://localhost:3000/events")
    parser.add_argument("--filters", default=None, help="e.g. task:*,agent:spawned")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--count", type=int, default=0, help="stop after N events")
    parser.add_argument("--duration", type=float, default=None)


async def tail(args: argparse.Namespace) -> int:
    from otel_sse.client import SSEClient

    filters = [f for f in (args.filters or "").split(",") if f] or None
    client = SSEClient(args.url, filters=filters)
    shown = 0
    try:
        async with asyncio.timeout(args.duration):
            async for event in client:
                if args.json:
                    print(json.dumps({"id": event.id, "event": event.type, "data": event.data}),
                          flush=True)
                else:
                    print(f"{event.type:<24} {event.raw}", flush=True)
                shown += 1
                if args.count and shown >= args.count:
                    break
    except TimeoutError:
        pass
    finally:
        await client.disconnect()
    return 0
