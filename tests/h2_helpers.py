"""A raw HTTP/2 cleartext client for tests: the ``h2`` library for the protocol, plus
helpers to send frames no well-behaved client would (floods, resets)."""

from __future__ import annotations

import asyncio
import struct
from typing import TypeVar

import h2.config
import h2.connection
import h2.events
import h2.settings

_E = TypeVar("_E", bound=h2.events.Event)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes((kind, flags))
            + stream_id.to_bytes(4, "big") + payload)


SETTINGS_EMPTY = frame(0x4, 0, 0)
PING = frame(0x6, 0, 0, b"\0" * 8)


def rst_stream(stream_id: int, code: int = 8) -> bytes:
    return frame(0x3, 0, stream_id, struct.pack(">I", code))


class H2Client:
    """One h2c connection (prior knowledge) driven by the test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: h2.connection.H2Connection) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.events: list[h2.events.Event] = []
        self.closed = False

    @classmethod
    async def open(cls, port: int, initial_window: int | None = None,
                   host: str = "127.0.0.1") -> H2Client:
        reader, writer = await asyncio.open_connection(host, port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        conn.initiate_connection()
        if initial_window is not None:
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: initial_window})
        client = cls(reader, writer, conn)
        await client.flush()
        return client

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    def get(self, path: str, headers: list[tuple[str, str]] | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [
            (":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
            (":path", path), *(headers or [])], end_stream=True)
        return stream_id

    async def read(self, timeout: float = 5.0) -> list[h2.events.Event]:
        """The events of the next read (empty when the connection closed)."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        self.events += events
        await self.flush()
        return events

    async def until(self, predicate: type[_E], timeout: float = 5.0,
                    count: int = 1) -> list[_E]:
        """Read until ``count`` events of type ``predicate`` have arrived in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while sum(isinstance(e, predicate) for e in self.events) < count:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closed:
                break
            await self.read(remaining)
        return [e for e in self.events if isinstance(e, predicate)]

    def close(self) -> None:
        self.writer.close()
