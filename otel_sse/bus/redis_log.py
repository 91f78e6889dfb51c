"""A Redis Streams event log shared by several gateways (``bus="redis://..."``).

Publishing appends to the stream (:class:`~otel_sse.bus.redis_link.StreamWriter`:
pipelined, bounded while Redis is away) and returns at once. Each replica
reads the stream in one task (``XREAD BLOCK``), encodes each event once into
its local history ring (the entry id is the event id) and tells the hub, whose
fan-out writes to its own clients exactly as with the in-process log. So every
replica's clients see every event, once, in the stream's order, whichever
replica or application published it.

The ring mirrors the stream's tail: it is loaded at start (``XREVRANGE``), and a
``Last-Event-ID`` from any replica is found in it; an id older than the ring
is looked up in Redis (what is still there is sent first, ``stream:gap`` says
when the id itself was trimmed away); an id newer than the ring (a client
moving from a replica that had read further) waits for the reader to get
there.

When Redis is lost the replica keeps its clients, reports ``degraded``,
retries with backoff and resumes reading after the last entry it read. If that
entry is gone when Redis is back (restarted without its data), the clients are
sent ``stream:gap``.

One replica at a time holds a lease (a key with a TTL, renewed by its reader):
it publishes the events derived from the open-work state (``trace:completed``,
``span:heartbeat``, ``span:stale``), which every replica keeps from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from otel_sse.bus.history import History, StoredEvent
from otel_sse.bus.ids import EventId, new_run_id
from otel_sse.bus.log import Located, LogListener
from otel_sse.bus.outbox import Pending, size_of
from otel_sse.bus.redis_config import RedisBusConfig
from otel_sse.bus.redis_link import (
    Backoff,
    BusHealth,
    StreamWriter,
    check_reachable,
    connect,
    describe,
    errors,
    finish,
)
from otel_sse.bus.stream_entry import (
    KEEPALIVE,
    ZERO,
    Decoder,
    Entry,
    StreamId,
    fields_of,
    format_stream_id,
    frame_of,
    parse_stream_id,
    stream_id_of,
)
from otel_sse.errors import ServerError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

# Renew the lease if it is held by us, take it if nobody holds it.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""

RawEntry = tuple[bytes, dict[bytes, bytes]]


class RedisEventLog:
    """The :class:`~otel_sse.bus.log.EventLog` of a gateway on the Redis bus.

    ``history_size`` / ``history_bytes`` bound the local ring (``history_size``
    is also the stream's approximate ``MAXLEN``, set in ``config.max_len``);
    ``backlog_bytes`` bounds what one resuming client is sent from Redis beyond
    the ring. Runs on the server's loop.
    """

    shared = True

    def __init__(self, config: RedisBusConfig, history_size: int = 10_000,
                 history_bytes: int = 64 * 1024 * 1024, *, backlog_bytes: int = 512 * 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.history = History(history_size, history_bytes)
        self.run_id = new_run_id()  # this replica, as a writer and a lease holder
        self.leader = False
        self.backlog_bytes = backlog_bytes
        self.clock = clock
        self.health = BusHealth(config.display_url, clock)
        self.writer = StreamWriter(config, self.run_id, self.health)
        self._decoder = Decoder()
        self._redis: Redis | None = None
        # The reader's own connection, and its client id (to unblock it).
        self._reading: Redis | None = None
        self._reader_id: int | None = None
        self._stopping = asyncio.Event()
        self._lease: AsyncScript | None = None
        self._lease_due = 0.0
        self._listener: LogListener | None = None
        self._reader: asyncio.Task[None] | None = None
        # The last entry read (events and keepalives alike): reading resumes after it.
        self._last = b"0-0"
        self._last_key: StreamId = ZERO
        self._cycle = 0
        self._waiters: list[tuple[StreamId, int, asyncio.Future[None]]] = []
        self.read = 0
        self.loaded = 0
        self.gaps = 0

    # -- publishing (the hub, on the loop) -------------------------------------------

    def append(self, event_type: str, data: str, retry: int | None = None,
               source: str = "") -> None:
        """Hand one event to the writer; it enters the history when read back."""
        fields = fields_of(event_type, data, retry, source)
        self.writer.put(Pending(fields, size_of(fields)))

    def append_all(self, events: list[tuple[str, str, int | None]]
                   ) -> asyncio.Future[list[str | None]] | None:
        """Hand ``events`` to the writer together; the future gets their ids once
        appended. None (nothing queued) when the buffer cannot take them all."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str | None]] = loop.create_future()
        ids: list[str | None] = [None] * len(events)
        left = [len(events)]

        def done_at(index: int) -> Callable[[str | None], None]:
            def done(entry_id: str | None) -> None:
                ids[index] = entry_id
                left[0] -= 1
                if left[0] == 0 and not future.done():
                    future.set_result(ids)
            return done

        items = []
        for index, (event_type, data, retry) in enumerate(events):
            fields = fields_of(event_type, data, retry, "")
            items.append(Pending(fields, size_of(fields), done_at(index)))
        if not self.writer.outbox.put_all(items):
            return None
        if not events:
            future.set_result([])
        return future

    def touch(self, source: str) -> None:
        """Tell every replica that ``source`` is alive (a producer's keepalive)."""
        fields: dict[bytes, bytes | str | int] = {KEEPALIVE: source}
        self.writer.put(Pending(fields, size_of(fields)))

    # -- ids -------------------------------------------------------------------------

    def id_of(self, seq: int) -> str | None:
        event = self.history.get(seq)
        return event.id if event is not None else None

    def direct_id(self, seq: int, sub: int) -> str:
        return f"{self.id_of(seq) or format_stream_id(ZERO)}.{sub}"

    def _key_at(self, seq: int) -> StreamId:
        event = self.history.get(seq)
        key = parse_stream_id(event.id) if event is not None else None
        return key if key is not None else ZERO

    def _find(self, key: StreamId) -> tuple[int, bool]:
        """The last retained seq whose id is <= ``key`` (``first_seq - 1`` when none),
        and whether its id is ``key``."""
        history = self.history
        lo, hi = history.first_seq, history.last_seq
        found = history.first_seq - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._key_at(mid) <= key:
                found = mid
                lo = mid + 1
            else:
                hi = mid - 1
        return found, found >= history.first_seq and self._key_at(found) == key

    def resolve(self, event_id: EventId | None) -> int | None:
        """The retained seq of exactly this id, else None (see :meth:`locate`)."""
        key = stream_id_of(event_id) if event_id is not None else None
        if key is None:
            return None
        seq, exact = self._find(key)
        return seq if exact else None

    async def locate(self, event_id: EventId) -> Located:
        """Where a client resuming after ``event_id`` starts (see the module docstring)."""
        key = stream_id_of(event_id)
        history = self.history
        if key is None:
            return Located(None)
        if key > self._last_key:
            # Read on another replica that was ahead of this one: wait for the reader.
            await self._reach(key, 2 * self.config.block + 1.0)
            if key > self._last_key:
                # Not in the stream as far as it can be read now: live from here.
                return Located(history.last_seq, gap=True)
        if len(history) and key >= self._key_at(history.first_seq):
            seq, exact = self._find(key)
            return Located(seq, gap=not exact)
        return await self._older(key)

    async def _older(self, key: StreamId) -> Located:
        """A resume point older than the ring: what Redis still holds between it and
        the ring, newest first up to ``backlog_bytes`` (a gap when it does not reach)."""
        history = self.history
        redis = self._redis
        cursor = history.first_seq - 1
        if redis is None:
            return Located(cursor, gap=True)
        upper = f"({self.id_of(history.first_seq)}" if len(history) else "+"
        limit = self.history.capacity
        try:
            raw = await redis.xrevrange(self.config.stream_key, max=upper,
                                        min=format_stream_id(key), count=limit + 1)
        except errors():
            return Located(cursor, gap=True)
        entries = cast(list[RawEntry], raw or [])
        frames: list[bytes] = []
        size = 0
        reached = key == ZERO
        truncated = False
        for raw_id, fields in entries:
            if parse_stream_id(raw_id) == key:
                reached = True
                break
            entry = self._decoder.decode(fields)
            if not isinstance(entry, Entry):
                continue
            frame = frame_of(raw_id.decode(), entry)
            if len(frames) >= limit or size + len(frame) > self.backlog_bytes:
                truncated = True
                break
            frames.append(frame)
            size += len(frame)
        frames.reverse()
        return Located(cursor, tuple(frames), gap=truncated or not reached)

    async def _reach(self, key: StreamId, within: float) -> None:
        """Until the reader passed ``key``, or read to the stream's end without
        finding it in a read that started after this call, or ``within`` s."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (key, self._cycle, future)
        self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, within)
        finally:
            self._waiters.remove(waiter)

    def _settle(self, cycle: int, at_end: bool) -> None:
        for key, since, future in self._waiters:
            if not future.done() and (self._last_key >= key or (at_end and cycle > since)):
                future.set_result(None)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, listener: LogListener) -> None:
        """Connect (a :class:`~otel_sse.errors.ServerError` naming the bus when Redis
        does not answer), load the stream's tail into the ring, start reading and
        writing."""
        if self._reader is not None:
            return
        self._listener = listener
        redis = self._redis = connect(self.config)
        self._reading = connect(self.config, single=True)
        self._stopping = asyncio.Event()
        try:
            await check_reachable(redis, self.config)
            if self._last == b"0-0":
                raw = await redis.xrevrange(self.config.stream_key, count=self.history.capacity)
                entries = cast(list[RawEntry], raw or [])
                entries.reverse()
                self._take(entries, live=False)
                self.loaded = len(entries)
            else:  # started again: go on after the last entry read
                await self._recover(redis)
        except errors() as exc:
            await self._close_clients()
            raise ServerError(f"cannot read the stream {self.config.stream_key!r} on the Redis "
                              f"bus at {self.config.display_url}: {describe(exc)}") from None
        except BaseException:
            await self._close_clients()
            raise
        self._lease = redis.register_script(_LEASE)
        with contextlib.suppress(*errors()):
            await self._renew_lease()
        self.writer.start(redis)
        self._reader = asyncio.get_running_loop().create_task(
            self._read_loop(), name="otel-sse-redis-reader")

    async def stop(self, grace: float) -> None:
        """Send what is buffered (within ``grace`` s, while Redis answers), then stop."""
        if self.health.ok:
            await self.writer.drain(grace)
        reader, self._reader = self._reader, None
        redis = self._redis
        if reader is not None:
            self._stopping.set()
            if redis is not None and self._reader_id is not None:
                # Ends the reader's XREAD BLOCK at once (a nil reply, as at its timeout).
                with contextlib.suppress(*errors()):
                    await redis.client_unblock(self._reader_id)
            await finish(reader, self.config.block + self.config.connect_timeout)
        await self.writer.stop()
        if redis is not None and self.leader:
            with contextlib.suppress(*errors()):
                if await redis.get(self.config.lease_key) == self.run_id.encode():
                    await redis.delete(self.config.lease_key)
        self.leader = False
        await self._close_clients()

    async def _close_clients(self) -> None:
        for client in (self._redis, self._reading):
            if client is not None:
                with contextlib.suppress(*errors()):
                    await client.aclose()
        self._redis = self._reading = None
        self._reader_id = None

    # -- reading ---------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reading = self._reading
        assert reading is not None
        config = self.config
        backoff = Backoff(config.retry_initial, config.retry_max)
        block_ms = max(1, int(config.block * 1000))
        lost = False
        while not self._stopping.is_set():
            try:
                if lost:
                    await self._recover(reading)
                    lost = False
                if self._reader_id is None:
                    self._reader_id = int(await reading.client_id())
                self._cycle += 1
                cycle = self._cycle
                reply = await reading.xread({config.stream_key: self._last},
                                            count=config.read_count, block=block_ms)
                self.health.succeeded()
                entries = cast(list[Any], reply)[0][1] if reply else []
                self._take(entries, live=True)
                self._settle(cycle, at_end=len(entries) < config.read_count)
                if self.clock() >= self._lease_due:
                    await self._renew_lease()
                backoff.reset()
            except errors() as exc:
                if self._stopping.is_set():
                    return
                self.health.failed(exc, "reading")
                self.leader = False
                self._reader_id = None  # a new connection has a new id
                lost = True
                with contextlib.suppress(TimeoutError):  # a stop ends the wait
                    await asyncio.wait_for(self._stopping.wait(), backoff.next())

    async def _recover(self, redis: Redis) -> None:
        """Back after an outage: if the last entry read is gone, events after it may
        be lost too (Redis restarted without its data, or trimmed past this replica)."""
        if self._redis is not None:
            # Connections opened before the outage would each fail once: drop them.
            with contextlib.suppress(*errors()):
                await self._redis.connection_pool.disconnect(inuse_connections=False)
        if self._last == b"0-0":
            return
        last = self._last.decode()
        found = await redis.xrange(self.config.stream_key, min=last, max=last, count=1)
        if not found:
            self.gaps += 1
            if self._listener is not None:
                self._listener.lost(last)

    def _take(self, entries: list[RawEntry], live: bool) -> None:
        """Entries read from the stream, oldest first, into the ring."""
        if not entries:
            return
        listener = self._listener
        assert listener is not None
        history = self.history
        decode = self._decoder.decode
        types: set[str] = set()
        for raw_id, fields in entries:
            entry = decode(fields)
            if entry is None:
                continue
            if isinstance(entry, str):
                listener.touched(entry)
                continue
            listener.observed(entry.type, entry.data, entry.source, live)
            event_id = raw_id.decode()
            history.append(StoredEvent(history.last_seq + 1, event_id, entry.type,
                                       frame_of(event_id, entry)))
            types.add(entry.type)
        self.read += len(entries)
        self._last = entries[-1][0]
        self._last_key = parse_stream_id(self._last) or self._last_key
        if types:
            listener.appended(types)

    async def _renew_lease(self) -> None:
        lease = self._lease
        if lease is None:
            return
        self._lease_due = self.clock() + self.config.lease_ttl / 3
        held = await lease(keys=[self.config.lease_key],
                           args=[self.run_id, int(self.config.lease_ttl * 1000)])
        self.leader = bool(held)

    # -- introspection -----------------------------------------------------------------

    def status(self) -> str:
        return "ok" if self.health.ok else "degraded"

    def stats(self) -> dict[str, object]:
        return {
            "bus": self.config.display_url,
            "busStreamKey": self.config.stream_key,
            "busStatus": self.status(),
            "busOutages": self.health.outages,
            "busLastError": self.health.last_error or None,
            "busLeader": self.leader,
            "busRead": self.read,
            "busLoaded": self.loaded,
            "busGaps": self.gaps,
            "busInvalid": self._decoder.invalid,
            "busLastReadId": self._last.decode(),
            **self.writer.stats(),
        }
