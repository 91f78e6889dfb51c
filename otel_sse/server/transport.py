"""Small helpers shared by the front door's client and upstream connections."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

Address = tuple[str, int]

# The write buffer above which ``send`` waits (and a proxy stops reading the other side).
HIGH_WATER = 64 * 1024


def pause(transport: asyncio.Transport) -> None:
    if not transport.is_closing() and transport.is_reading():
        transport.pause_reading()


def resume(transport: asyncio.Transport) -> None:
    if not transport.is_closing() and not transport.is_reading():
        transport.resume_reading()


def linger_zero(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError, TypeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def address(value: object) -> Address | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
