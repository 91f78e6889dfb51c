"""Test helpers: read SSE frames off a real HTTP response, start servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from otel_sse.server import SSEServer


@dataclass
class Frame:
    event: str
    data: Any
    id: str | None
    raw: str
    comments: list[str]


def parse_block(block: str) -> Frame:
    event, data_lines, event_id, comments = "message", [], None, []
    for line in block.split("\n"):
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data_lines.append(value)
        elif name == "id":
            event_id = value
    raw = "\n".join(data_lines)
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw
    return Frame(event, data, event_id, raw, comments)


class FrameReader:
    """Splits a (decoded) byte stream into frames; our server writes LF line ends only."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.buffer = ""

    async def next(self, timeout: float = 5.0, include_comments: bool = False) -> Frame:
        while True:
            # A keep-alive comment stands alone on a line, with no blank line after it.
            while self.buffer.startswith(":") and "\n" in self.buffer:
                line, self.buffer = self.buffer.split("\n", 1)
                self.buffer = self.buffer.removeprefix("\n")
                if include_comments:
                    return Frame("", None, None, "", [line[1:].strip()])
            while "\n\n" in self.buffer:
                block, self.buffer = self.buffer.split("\n\n", 1)
                frame = parse_block(block)
                if frame.data is None and frame.raw == "" and not include_comments:
                    continue
                return frame
            chunk = await asyncio.wait_for(self.response.content.readany(), timeout)
            if not chunk:
                raise EOFError("stream ended")
            self.buffer += chunk.decode("utf-8")

    async def until(self, event: str, timeout: float = 5.0) -> Frame:
        while True:
            frame = await self.next(timeout)
            if frame.event == event:
                return frame

    async def take(self, count: int, event: str | None = None, timeout: float = 5.0) -> list[Frame]:
        frames: list[Frame] = []
        while len(frames) < count:
            frame = await self.next(timeout)
            if event is None or frame.event == event:
                frames.append(frame)
        return frames


@asynccontextmanager
async def running_server(**options: Any) -> AsyncIterator[SSEServer]:
    options.setdefault("port", 0)
    options.setdefault("host", "127.0.0.1")
    server = SSEServer(**options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def stream(url: str, headers: dict[str, str] | None = None,
                 session: aiohttp.ClientSession | None = None,
                 ) -> AsyncIterator[tuple[aiohttp.ClientResponse, FrameReader]]:
    own = session is None
    sess = session or aiohttp.ClientSession(auto_decompress=True)
    try:
        hdrs = {"Accept": "text/event-stream", "Accept-Encoding": "identity", **(headers or {})}
        async with sess.get(url, headers=hdrs, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            yield resp, FrameReader(resp)
    finally:
        if own:
            await sess.close()
