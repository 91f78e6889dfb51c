"""The attackers of the abuse benchmark, all in one asyncio process (``abuse.py --attack``).

Driven by stdin / stdout lines: it prints ``ready``; ``start`` begins the attack,
``stop`` ends it (every socket closed), ``window`` answers ``window <json>`` with
running totals (``connected`` now, ``opened``, ``cut`` by the server, ``failed``
connects, and per attack frames sent or bytes read), ``quit`` (or EOF) exits.

Every attack is a number of slots, each holding one connection (or, for the
zero-window attack, one HTTP/2 connection of many streams) and opening a new one
at once when the server cuts it: what the server pays for is never a one-off.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Mapping
from typing import Any, cast

from _loadclient import H2_PREFACE, h2_frame
from _peers import say, stdin_lines
from _proc import install_uvloop, raise_nofile

TCP_ESTABLISHED = 1
POLL = 0.1  # seconds between looks at a stalled socket's state
READ_TICK = 0.05  # slow readers read every this many seconds
FLOOD_TICK = 0.01  # paced floods write every this many seconds
PUMP_BATCHES = 8  # unpaced floods write at most this many batches per callback
SETTINGS_EMPTY = h2_frame(0x4, 0, 0, b"")
PING = h2_frame(0x6, 0, 0, b"\0" * 8)


def request(port: int, path: str) -> bytes:
    """The request head of a stream client, as the fast clients send it."""
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
            "Accept-Encoding: identity\r\nCache-Control: no-cache\r\n\r\n").encode()


async def http_get(port: int, path: str, rcvbuf: int = 0) -> socket.socket:
    """A non-blocking socket that has sent ``GET path`` (its answer left unread)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf:  # before connecting, so that the window it advertises is small too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request(port, path))
    except BaseException:
        sock.close()
        raise
    return sock


async def connect(protocol: asyncio.Protocol, port: int) -> None:
    """Connect ``protocol`` (an instance, not a factory) to the server."""
    await asyncio.get_running_loop().create_connection(lambda: protocol, "127.0.0.1", port)


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (1: established; reset or closed: other)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return 0


class Attack:
    """``count`` attacker slots, each reconnecting when the server cuts it."""

    def __init__(self, port: int, count: int, reconnect_delay: float) -> None:
        self.port = port
        self.count = count
        self.delay = reconnect_delay
        self.tasks: set[asyncio.Task[None]] = set()
        self.opened = 0
        self.cut = 0
        self.failed = 0

    @property
    def connected(self) -> int:
        """Connections (or answered streams) held now."""
        raise NotImplementedError

    def start(self) -> None:
        """Start every slot."""
        loop = asyncio.get_running_loop()
        for i in range(self.count):
            self.tasks.add(loop.create_task(self.slot(i)))

    async def slot(self, index: int) -> None:
        """Hold one connection, and a new one whenever the server cuts it."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop every slot; their sockets are closed."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    async def hold(self, conn: H2Attacker, live: set[H2Attacker]) -> bool:
        """Connect ``conn`` and wait until it is lost (in ``live`` meanwhile); False when
        it could not connect."""
        try:
            await connect(conn, self.port)
        except OSError:
            await self.backoff()
            return False
        live.add(conn)
        try:
            await conn.done
        finally:
            live.discard(conn)
            conn.close()
        return True

    async def backoff(self) -> None:
        self.failed += 1
        await asyncio.sleep(max(self.delay, 0.1))

    def stats(self) -> dict[str, int]:
        """The ``window`` answer: running totals."""
        return {"connected": self.connected, "opened": self.opened, "cut": self.cut,
                "failed": self.failed}


class Stalled(Attack):
    """HTTP/1.1 clients that send their request and never read, with a tiny receive
    buffer; a client the server cuts connects again."""

    def __init__(self, port: int, count: int, reconnect_delay: float, path: str,
                 rcvbuf: int) -> None:
        super().__init__(port, count, reconnect_delay)
        self.path = path
        self.rcvbuf = rcvbuf
        self.live: set[socket.socket] = set()

    @property
    def connected(self) -> int:
        return len(self.live)

    async def slot(self, index: int) -> None:
        while True:
            try:
                sock = await http_get(self.port, self.path, self.rcvbuf)
            except OSError:
                await self.backoff()
                continue
            self.opened += 1
            self.live.add(sock)
            try:
                # Nothing is read, so nothing tells the loop the peer is gone: poll the kernel.
                while tcp_state(sock) == TCP_ESTABLISHED:  # noqa: ASYNC110
                    await asyncio.sleep(POLL)
                self.cut += 1
            finally:
                self.live.discard(sock)
                sock.close()
            await asyncio.sleep(self.delay)


class SlowReaders(Attack):
    """HTTP/1.1 clients that read at most ``rate`` bytes/s each (every READ_TICK s);
    a reader the server cuts connects again."""

    def __init__(self, port: int, count: int, reconnect_delay: float, path: str,
                 rate: float) -> None:
        super().__init__(port, count, reconnect_delay)
        self.path = path
        self.rate = rate
        self.live: set[socket.socket] = set()
        self.bytes_read = 0

    @property
    def connected(self) -> int:
        return len(self.live)

    async def slot(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(READ_TICK * index / self.count)  # spread the wake-ups
        while True:
            try:
                sock = await http_get(self.port, self.path)
            except OSError:
                await self.backoff()
                continue
            self.opened += 1
            self.live.add(sock)
            started, taken = loop.time(), 0
            try:
                while True:
                    await asyncio.sleep(READ_TICK)
                    budget = int((loop.time() - started) * self.rate) - taken
                    if budget <= 0:
                        continue
                    try:
                        data = sock.recv(budget)
                    except BlockingIOError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    taken += len(data)
                    self.bytes_read += len(data)
                self.cut += 1
            finally:
                self.live.discard(sock)
                sock.close()
            await asyncio.sleep(self.delay)

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "bytes_read": self.bytes_read}


def split_frames(buf: bytes) -> tuple[list[tuple[int, int, int, bytes]], bytes]:
    """The whole HTTP/2 frames at the start of ``buf`` (type, flags, stream, payload),
    and what is left."""
    frames = []
    pos, size = 0, len(buf)
    while size - pos >= 9:
        end = pos + 9 + int.from_bytes(buf[pos : pos + 3], "big")
        if end > size:
            break
        stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        frames.append((buf[pos + 3], buf[pos + 4], stream_id, buf[pos + 9 : end]))
        pos = end
    return frames, buf[pos:]


class H2Attacker(asyncio.Protocol):
    """An attacker's h2c connection: it opens with the preface and :meth:`opening`,
    and ``done`` resolves when the connection is lost."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.opened_at = loop.time()
        self.done: asyncio.Future[None] = loop.create_future()

    def opening(self) -> bytes:
        return SETTINGS_EMPTY

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.opened_at = asyncio.get_running_loop().time()
        self.transport.write(H2_PREFACE + self.opening())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _ZeroWindowConn(H2Attacker):
    """One h2c connection whose streams never get flow-control credit."""

    def __init__(self, owner: ZeroWindow) -> None:
        import hpack

        super().__init__()
        self.owner = owner
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.request = [(":method", "GET"), (":scheme", "http"),
                        (":authority", f"127.0.0.1:{owner.port}"), (":path", owner.path),
                        ("accept", "text/event-stream")]
        self.buf = b""
        self.next_id = 1
        self.open: set[int] = set()
        self.answered: set[int] = set()

    def new_stream(self) -> bytes:
        stream_id = self.next_id
        self.next_id += 2
        self.open.add(stream_id)
        self.owner.opened += 1
        return h2_frame(0x1, 0x5, stream_id, self.encoder.encode(self.request))

    def opening(self) -> bytes:
        # INITIAL_WINDOW_SIZE = 0 (every stream's window), ENABLE_PUSH = 0.
        settings = struct.pack(">HI", 0x4, 0) + struct.pack(">HI", 0x2, 0)
        return h2_frame(0x4, 0, 0, settings) + b"".join(
            self.new_stream() for _ in range(self.owner.streams))

    def data_received(self, data: bytes) -> None:
        frames, self.buf = split_frames(self.buf + data)
        out: list[bytes] = []
        for kind, flags, stream_id, payload in frames:
            ended = False
            if kind == 0x1:  # HEADERS: the server sends neither padding nor priority
                status = dict(self.decoder.decode(payload, raw=True)).get(b":status")
                if status == b"200" and stream_id in self.open:
                    self.answered.add(stream_id)
                ended = bool(flags & 0x1)
            elif kind == 0x0:  # DATA (none can come on a zero window, but an end can)
                ended = bool(flags & 0x1)
            elif kind == 0x3:  # RST_STREAM: the server cut it
                if stream_id in self.open:
                    self.owner.cut += 1
                ended = True
            elif kind == 0x4 and not flags & 0x1:
                out.append(h2_frame(0x4, 0x1, 0, b""))
            elif kind == 0x6 and not flags & 0x1:
                out.append(h2_frame(0x6, 0x1, 0, payload))
            if ended and stream_id in self.open:
                self.open.discard(stream_id)
                self.answered.discard(stream_id)
                out.append(self.new_stream())
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))


class ZeroWindow(Attack):
    """h2c connections holding ``streams`` streams each on a zero flow-control window;
    a stream the server resets is replaced by a new one, a lost connection by a new one."""

    def __init__(self, port: int, count: int, reconnect_delay: float, path: str,
                 streams: int) -> None:
        super().__init__(port, count, reconnect_delay)
        self.path = path
        self.streams = streams
        self.conns: set[H2Attacker] = set()
        self.connections_lost = 0

    @property
    def connected(self) -> int:
        return sum(len(conn.answered) for conn in self.conns
                   if isinstance(conn, _ZeroWindowConn))

    async def slot(self, index: int) -> None:
        while True:
            if await self.hold(_ZeroWindowConn(self), self.conns):
                self.connections_lost += 1
                await asyncio.sleep(self.delay)

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "connections_lost": self.connections_lost}


class _FloodConn(H2Attacker):
    """One h2c connection sending one kind of control frame; what comes back is dropped."""

    def __init__(self, owner: Flood, frame: bytes) -> None:
        super().__init__()
        self.owner = owner
        self.frame = frame
        self.batch = frame * owner.batch
        self.paused = False
        self.sent = 0  # frames, for pacing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.owner.opened += 1
        if not self.owner.frames_per_s:
            self.pump()

    def pump(self) -> None:
        """Unpaced: write batches until the socket's buffer is full (pause_writing), a
        few at a time so that the other connections (and stdin) get their turn.

        ``frames`` counts what was written, not what the server read: once it has
        decided to close, the rest goes nowhere."""
        transport = self.transport
        for _ in range(PUMP_BATCHES):
            if transport is None or self.paused or self.lost or transport.is_closing():
                return
            transport.write(self.batch)
            self.owner.frames += self.owner.batch
        asyncio.get_running_loop().call_soon(self.pump)

    def send(self, count: int) -> None:
        """Paced: ``count`` more frames."""
        transport = self.transport
        if count > 0 and transport is not None and not transport.is_closing() \
                and not self.paused:
            transport.write(self.frame * count)
            self.sent += count
            self.owner.frames += count

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if not self.owner.frames_per_s:
            self.pump()

    def data_received(self, data: bytes) -> None:
        self.owner.bytes_in += len(data)


class Flood(Attack):
    """h2c connections sending SETTINGS (even slots) or PING (odd slots) frames,
    unpaced (``frames_per_s`` 0: batches of ``batch`` frames as fast as the socket
    takes them) or paced; a connection the server closes is replaced."""

    def __init__(self, port: int, count: int, reconnect_delay: float, batch: int,
                 frames_per_s: float) -> None:
        super().__init__(port, count, reconnect_delay)
        self.batch = batch
        self.frames_per_s = frames_per_s
        self.conns: set[H2Attacker] = set()
        self.frames = 0
        self.bytes_in = 0
        self.pacer: asyncio.Task[None] | None = None

    @property
    def connected(self) -> int:
        return sum(not conn.lost for conn in self.conns)

    def start(self) -> None:
        super().start()
        if self.frames_per_s:
            self.pacer = asyncio.get_running_loop().create_task(self.pace())

    async def pace(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FLOOD_TICK)
            now = loop.time()
            for conn in list(self.conns):
                if isinstance(conn, _FloodConn):
                    conn.send(int((now - conn.opened_at) * self.frames_per_s) - conn.sent)

    async def slot(self, index: int) -> None:
        frame = SETTINGS_EMPTY if index % 2 == 0 else PING
        while True:
            if await self.hold(_FloodConn(self, frame), self.conns):
                self.cut += 1
                await asyncio.sleep(self.delay)

    async def stop(self) -> None:
        if self.pacer is not None:
            self.pacer.cancel()
            self.pacer = None
        await super().stop()

    def stats(self) -> dict[str, int]:
        return {**super().stats(), "frames": self.frames, "bytes_in": self.bytes_in}


def make_attack(spec: Mapping[str, Any], port: int) -> Attack:
    kind = spec["kind"]
    delay = float(spec.get("reconnect_delay", 0.0))
    if kind == "stalled":
        return Stalled(port, spec["count"], delay, spec["path"], spec["rcvbuf"])
    if kind == "slow":
        return SlowReaders(port, spec["count"], delay, spec["path"], spec["rate"])
    if kind == "zero-window":
        return ZeroWindow(port, spec["count"], delay, spec["path"], spec["streams"])
    if kind == "flood":
        return Flood(port, spec["count"], delay, spec["batch"], spec["frames_per_s"])
    raise ValueError(f"unknown attack {kind!r}")


async def attack(spec: Mapping[str, Any], port: int) -> None:
    """``ready``; then ``start``, ``stop``, ``window`` (answers ``window <json>``), ``quit``."""
    attacker = make_attack(spec, port)
    reader = await stdin_lines()
    say("ready")
    try:
        while True:
            words = (await reader.readline()).decode().split()
            if not words or words[0] == "quit":
                break
            if words[0] == "start":
                attacker.start()
            elif words[0] == "stop":
                await attacker.stop()
            elif words[0] == "window":
                say("window " + json.dumps(attacker.stats()))
    finally:
        await attacker.stop()


def main(spec: Mapping[str, Any], port: int) -> None:
    raise_nofile()
    install_uvloop()
    asyncio.run(attack(spec, port))
