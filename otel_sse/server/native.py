"""The front door's own ASGI ``receive``/``send`` for the stream requests it serves natively.

Each body is framed as one chunk in one ``transport.write``; ``send`` waits only while
the transport is paused (bounded buffer, no lock, no drain per message).
"""

from __future__ import annotations

import asyncio
import re
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING

from otel_sse.server.http import Message, respond_text

if TYPE_CHECKING:
    from otel_sse.server.front import FrontDoor

SERVER_HEADER = b"otel-sse"

_BAD_HEADER_BYTES = re.compile(rb"[\r\n\x00]")

_date_cache: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class NativeResponse:
    """ASGI ``receive``/``send`` over a client connection (mixed into ``FrontProtocol``)."""

    # State of the connection and of the request being answered (set by the protocol).
    door: FrontDoor
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    paused: bool
    drain_waiter: asyncio.Future[None] | None
    eof: bool
    request_read: bool
    disconnected: asyncio.Future[None] | None
    keep_alive: bool
    started: bool
    chunked: bool
    done: bool

    async def _respond_500(self) -> None:
        self.keep_alive = False
        await respond_text(self.send, 500, "internal server error", [])

    # -- ASGI -------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.request_read:
            self.request_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.disconnected is None:
            self.disconnected = self.loop.create_future()
            if self.transport is None or self.eof:
                self.disconnected.set_result(None)
        await self.disconnected
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        transport = self.transport
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.done or transport is None or transport.is_closing():
                return  # the client is gone; the app hears it through receive()
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.chunked:
                data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
                if not more:
                    data += b"0\r\n\r\n"
            else:
                data = bytes(body)
            if data:
                transport.write(data)
            if not more:
                self.done = True
            elif self.paused:
                await self._drain()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            if transport is None or transport.is_closing():
                return
            transport.write(self._response_head(message))
        else:
            raise ValueError(f"unexpected ASGI message type {kind!r}")

    def _response_head(self, message: Message) -> bytes:
        status = int(message["status"])
        lines = [b"HTTP/1.1 %d %b\r\n" % (status, _reason(status))]
        has_length = False
        for name, value in message.get("headers", ()):
            name, value = bytes(name), bytes(value)
            lowered = name.lower()
            if lowered == b"content-length":
                has_length = True
            elif lowered in (b"transfer-encoding", b"connection", b"date", b"server"):
                continue  # framing and these are ours
            if _BAD_HEADER_BYTES.search(name) or _BAD_HEADER_BYTES.search(value):
                raise ValueError(f"invalid response header {name!r}: {value!r}")
            lines.append(b"%b: %b\r\n" % (name, value))
        bodiless = status < 200 or status in (204, 304)
        self.chunked = not has_length and not bodiless
        if self.chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive or not self.door.accepting:
            self.keep_alive = False
            lines.append(b"connection: close\r\n")
        lines.append(b"date: %b\r\nserver: %b\r\n\r\n" % (_date_header(), SERVER_HEADER))
        return b"".join(lines)

    async def _drain(self) -> None:
        while self.paused and self.transport is not None:
            waiter = self.loop.create_future()
            self.drain_waiter = waiter
            try:
                await waiter
            finally:
                self.drain_waiter = None

    def _wake_writer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
