"""The connection to Redis shared by a gateway's log and an application's publisher:
the client, the outage state, and the writer that appends what is published.

The writer takes batches from an :class:`~otel_sse.bus.outbox.Outbox` and
appends each in one round trip and atomically: one script call that runs one
``XADD`` per event (approximate ``MAXLEN``) and sets the batch's number under
the writer's own key (one command instead of ``MULTI``, an ``XADD`` per event,
a ``SET`` and ``EXEC``: the client's work per command is most of what a batch
costs). A batch whose answer was lost (the connection dropped after the
request went out) is not sent twice: the next attempt first reads that key,
and a batch that went in is forgotten instead of appended again. While Redis
is away the outbox holds what is published (bounded, dropping and counting
the newest past its cap), attempts back off, and the batches go in order once
it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from otel_sse.bus.outbox import Outbox, Pending
from otel_sse.bus.redis_config import RedisBusConfig
from otel_sse.errors import ServerError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

logger = logging.getLogger("otel_sse.bus")

# A batch's size in bytes at most (one larger event goes alone).
BATCH_BYTES = 1024 * 1024
# How long a writer's batch number is kept in Redis: the longest outage after which
# a batch whose answer was lost is still recognised.
WRITER_KEY_TTL_MS = 24 * 3600 * 1000
# KEYS: the stream, the writer's key. ARGV: MAXLEN, the batch number, the key's TTL
# (ms), then each entry as its field count and its fields and values.
_APPEND = """
local ids = {}
local i = 4
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local command = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*'}
  for j = 1, 2 * n do command[6 + j] = ARGV[i + j] end
  ids[#ids + 1] = redis.call(unpack(command))
  i = i + 2 * n + 1
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return ids
"""


def errors() -> tuple[type[BaseException], ...]:
    """What an unreachable or failing Redis raises (the ``redis`` package's and the OS's)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


def connect(config: RedisBusConfig, single: bool = False) -> Redis:
    """A client for ``config.url``: no retries of its own (the callers retry with
    backoff and know what a retry means), answers as bytes, and socket timeouts
    longer than the reader's ``XREAD BLOCK``. ``single``: one connection for
    every command (the reader's, which is unblocked by its client id to stop)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(
        config.url, decode_responses=False, retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=config.connect_timeout,
        socket_timeout=config.block + config.connect_timeout,
        max_connections=16, single_connection_client=single)


async def finish(task: asyncio.Task[None], within: float) -> None:
    """Wait for ``task`` to end by itself, then cancel it. A task is not cancelled in
    the middle of a command: the client may then wait on its connection forever."""
    await asyncio.wait({task}, timeout=within)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


async def check_reachable(redis: Redis, config: RedisBusConfig) -> None:
    """PING, or a :class:`ServerError` that names the bus (never its password)."""
    try:
        await redis.ping()
    except errors() as exc:
        raise ServerError(f"cannot reach the Redis bus at {config.display_url}: "
                          f"{describe(exc)}") from None


class BusHealth:
    """Whether Redis answers, with one log line when an outage starts and one when it ends.

    A failure within ``settle`` seconds of the end of an outage belongs to it (a
    connection opened before the outage fails once when first used after it): it
    makes the state degraded again, but is not counted or logged as a new one.
    """

    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic,
                 settle: float = 1.0) -> None:
        self.url = url
        self.clock = clock
        self.settle = settle
        self.down_since: float | None = None
        self.up_since = float("-inf")
        self.outages = 0
        self.last_error = ""
        self._reported = False

    @property
    def ok(self) -> bool:
        return self.down_since is None

    def failed(self, exc: BaseException, doing: str) -> None:
        self.last_error = describe(exc)
        if self.down_since is not None:
            return
        self.down_since = self.clock()
        if self.down_since - self.up_since < self.settle:
            return  # the end of the last outage
        self.outages += 1
        self._reported = True
        logger.warning("Redis bus at %s unreachable while %s (%s): clients stay connected, "
                       "what is published is buffered; retrying", self.url, doing,
                       self.last_error)

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        now = self.clock()
        if self._reported:
            logger.warning("Redis bus at %s reachable again after %.1f s", self.url,
                           now - self.down_since)
            self._reported = False
        self.down_since = None
        self.up_since = now


class Backoff:
    """Delays between attempts: ``initial``, doubling up to ``maximum``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = initial

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.maximum, delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.initial


class StreamWriter:
    """Appends an outbox's entries to the stream, in order, in pipelined batches."""

    def __init__(self, config: RedisBusConfig, writer_id: str, health: BusHealth) -> None:
        self.config = config
        self.writer_id = writer_id
        self.health = health
        self.outbox = Outbox(config.buffer_bytes, self._wake)
        self.appended = 0
        self.batches = 0
        self.unknown_ids = 0
        self._redis: Redis | None = None
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._batch_no = 0
        self._script: AsyncScript | None = None
        self._stopping = False
        # (batch number, items) of a batch whose EXEC answer was lost.
        self._unsure: tuple[int, int] | None = None

    def start(self, redis: Redis) -> None:
        """Start writing on the running loop."""
        self._redis = redis
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._event = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="otel-sse-redis-writer")
        if len(self.outbox):
            self._event.set()

    def put(self, item: Pending) -> bool:
        """Queue one entry (any thread; never blocks); False when the outbox is full."""
        return self.outbox.put(item)

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            return  # not started: start() looks at the outbox
        if threading.get_ident() == self._thread:
            self._event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._event.set)

    async def drain(self, grace: float) -> bool:
        """Wait until the outbox is empty (True) or ``grace`` s passed (False)."""
        deadline = time.monotonic() + grace
        while len(self.outbox):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        """Stop writing (what is still buffered stays in the outbox)."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._event.set()
            await finish(task, self.config.block + self.config.connect_timeout)
            self._stopping = False

    async def _run(self) -> None:
        backoff = Backoff(self.config.retry_initial, self.config.retry_max)
        while not self._stopping:
            batch = self.outbox.peek(self.config.write_batch, BATCH_BYTES)
            if not batch:
                await self._event.wait()
                self._event.clear()
                continue
            try:
                ids = await self._append(batch)
            except errors() as exc:
                self.health.failed(exc, "appending")
                with contextlib.suppress(TimeoutError):  # a stop ends the wait
                    await asyncio.wait_for(self._event.wait(), backoff.next())
                self._event.clear()
                continue
            backoff.reset()
            self.health.succeeded()
            self.outbox.commit(len(ids))
            for item, entry_id in zip(batch, ids, strict=False):
                if item.done is not None:
                    item.done(entry_id)

    async def _append(self, batch: list[Pending]) -> list[str | None]:
        """Append ``batch`` (or learn that its first items already went in); returns
        the ids of the items done, None for those whose ids were not learnt."""
        redis = self._redis
        assert redis is not None
        config = self.config
        marker = config.writer_key(self.writer_id)
        if self._unsure is not None:
            number, count = self._unsure
            stored = await redis.get(marker)
            self._unsure = None
            if stored is not None and int(stored) >= number:
                self.unknown_ids += count
                self.appended += count
                return [None] * count
        self._batch_no += 1
        number = self._batch_no
        args: list[bytes | str | int] = [config.max_len, number, WRITER_KEY_TTL_MS]
        for item in batch:
            args.append(len(item.fields))
            for name, value in item.fields.items():
                args += (name, value)
        if self._script is None:
            self._script = redis.register_script(_APPEND)
        try:
            results = await self._script(keys=[config.stream_key, marker], args=args)
        except errors():
            # The request may have gone in with its answer lost: look before resending.
            self._unsure = (number, len(batch))
            raise
        self.batches += 1
        self.appended += len(batch)
        return [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in results]

    def stats(self) -> dict[str, object]:
        return {
            "busAppended": self.appended,
            "busBufferedEvents": len(self.outbox),
            "busBufferedBytes": self.outbox.nbytes,
            "busDropped": self.outbox.dropped,
        }
