"""A subscriber: follow a stream with ``SSEClient`` and print one line per event.

    python examples/subscribe.py http://127.0.0.1:3000/events
    python examples/subscribe.py http://127.0.0.1:3000/events --filters 'task:*,llm:*' --count 10
    OTEL_SSE_TOKEN=... python examples/subscribe.py https://gateway.example/events

It reconnects by itself and resumes where it left off (``Last-Event-ID``); several
URLs are replicas to fail over between. ``--count N`` stops after N events (the
server's own ``connected`` event not counted). Each line: the event's id, its type,
and its JSON data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os

from otel_sse import SSEClient


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="stream URLs (replicas of one stream)")
    parser.add_argument("--filters", default=None, help="event type patterns, comma-separated")
    parser.add_argument("--count", type=int, default=0, help="stop after this many events")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    token = os.environ.get("OTEL_SSE_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    seen = 0
    async with SSEClient(args.urls, filters=args.filters, headers=headers) as client:
        async for event in client:
            if event.type == "connected":
                continue
            print(event.id, event.type, json.dumps(event.data), flush=True)
            seen += 1
            if seen == args.count:
                return


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it quietly
        asyncio.run(main(parse_args()))
