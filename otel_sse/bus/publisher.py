"""Publishing straight to the Redis bus from an application process (no gateway in it).

::

    from otel_sse.bus.publisher import RedisPublisher

    publisher = RedisPublisher("redis://localhost:6379/0").start()
    otel_sse.configure(service_name="my-agents", server=publisher)   # telemetry, live
    tasks = TaskStream(publisher)                                     # emitters
    publisher.publish("deploy:done", {"version": "1.2"})             # plain events

Every gateway on that bus (``otel-sse serve --bus redis://...``) streams what it
publishes to its clients, in the stream's order, with the stream entry ids.
``publish`` may be called from any thread and never blocks or raises for the
bus's sake: events wait in a buffer bounded in bytes (the newest are dropped
and counted past it) for a writer on a thread of the publisher's own, which
appends them in pipelined batches and, while Redis is away, retries with
backoff and sends them in order once it is back. The publisher says that its
process is alive every ``keepalive`` seconds, so that the gateways do not
report its open spans stale while it is quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from otel_sse.bus.ids import new_run_id
from otel_sse.bus.outbox import Pending, size_of
from otel_sse.bus.redis_config import DEFAULT_STREAM_KEY, RedisBusConfig
from otel_sse.bus.redis_link import BusHealth, StreamWriter, connect, errors
from otel_sse.bus.stream_entry import KEEPALIVE, fields_of
from otel_sse.env import Env, positive_seconds
from otel_sse.errors import ConfigError, EventFormatError
from otel_sse.wire.encoder import check_field, data_text

if TYPE_CHECKING:
    from redis.asyncio import Redis

BUS_ENV = "OTEL_SSE_BUS"


class RedisPublisher:
    """An event sink (``publish``, ``broadcast``, ``loop``) writing to a Redis stream.

    ``url`` defaults to ``OTEL_SSE_BUS``; ``stream_key`` must be the gateways'.
    ``max_len`` is the stream's approximate ``MAXLEN`` (the gateways'
    ``history_size``); ``buffer_bytes`` bounds what waits while Redis is away.
    """

    def __init__(self, url: str | None = None, stream_key: str = DEFAULT_STREAM_KEY, *,
                 max_len: int = 10_000, buffer_bytes: int = 16 * 1024 * 1024,
                 max_event_bytes: int = 4 * 1024 * 1024, keepalive: float = 5.0,
                 environ: Mapping[str, str] | None = None) -> None:
        url = url if url is not None else Env(environ).get(BUS_ENV)
        if url is None:
            raise ConfigError(f"RedisPublisher needs a redis:// URL (url= or {BUS_ENV})")
        self.config = RedisBusConfig(url=url, stream_key=stream_key, max_len=max_len,
                                     buffer_bytes=buffer_bytes)
        positive_seconds(keepalive, "keepalive")
        self.max_event_bytes = max_event_bytes
        self.keepalive = keepalive
        self.writer_id = new_run_id()
        # Spans published from here are this source's: stale when it goes silent.
        self.source = f"publisher/{self.writer_id}"
        self.health = BusHealth(self.config.display_url)
        self.writer = StreamWriter(self.config, self.writer_id, self.health)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._redis: Redis | None = None
        self._stopped: asyncio.Event | None = None
        self._last_put = 0.0
        self.published = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The publisher's loop (telemetry processors hand their work to it)."""
        return self._loop

    def start(self) -> RedisPublisher:
        """Start the writer thread (idempotent); Redis need not be up yet."""
        if self._thread is not None:
            return self
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,),
                                        name="otel-sse-redis-publisher", daemon=True)
        self._thread.start()
        started.wait()
        return self

    def _run(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop, started))
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        self._loop = loop
        self._stopped = asyncio.Event()
        redis = self._redis = connect(self.config)
        self.writer.start(redis)
        started.set()
        try:
            while not self._stopped.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), self.keepalive)
                if time.monotonic() - self._last_put >= self.keepalive:
                    self._put({KEEPALIVE: self.source})
        finally:
            await self.writer.stop()
            with contextlib.suppress(*errors()):
                await redis.aclose()

    # -- publishing (any thread) ------------------------------------------------------

    def publish(self, event_type: str, data: Mapping[str, Any] | Any) -> int:
        """Queue one event; 1 when queued, 0 when the buffer was full (counted).
        Raises :class:`~otel_sse.errors.EventFormatError` for an event that cannot
        be sent (a type with CR, LF or NUL; data too large or not encodable)."""
        if not isinstance(event_type, str) or not event_type:
            raise EventFormatError(f"event name must be a non-empty string, "
                                   f"got {event_type!r:.60}")
        check_field("event name", event_type)
        text = data_text(data, self.max_event_bytes)
        if self._put(fields_of(event_type, text, None, self.source)):
            self.published += 1
            return 1
        return 0

    def broadcast(self, message: Mapping[str, Any]) -> int:
        """``publish(message["event"], message["data"])``."""
        if not isinstance(message, Mapping):
            raise EventFormatError(f"an event is a mapping like {{'event': 'type', "
                                   f"'data': {{...}}}}, got {type(message).__name__}")
        return self.publish(message.get("event") or message.get("type") or "message",
                            message.get("data", {}))

    def _put(self, fields: dict[bytes, bytes | str | int]) -> bool:
        self._last_put = time.monotonic()
        return self.writer.put(Pending(fields, size_of(fields)))

    # -- lifecycle (any thread but the publisher's) --------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is in Redis (True), at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while len(self.writer.outbox):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (within ``timeout`` s), then stop the writer thread; True when
        nothing was left behind."""
        flushed = self.flush(timeout)
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is not None and stopped is not None and thread is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
            thread.join(max(1.0, timeout))
        self._thread = None
        return flushed

    def stats(self) -> dict[str, object]:
        """What was published, is buffered, was dropped; whether Redis answers."""
        return {"published": self.published, "busStatus": "ok" if self.health.ok else "degraded",
                "busOutages": self.health.outages, **self.writer.stats()}
