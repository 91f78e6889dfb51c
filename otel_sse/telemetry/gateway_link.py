"""The forwarder's connection to the gateway, and what it says when that goes wrong.

:class:`GatewayLink` is one keep-alive HTTP/1.1 connection (stdlib
``http.client``, TLS for ``https``), used by the forwarder's one sender thread;
any thread may :meth:`~GatewayLink.abort` it, which ends a request in flight at
once. :class:`GatewayHealth` keeps the outage state: the backoff before the
next attempt, and one log line when the gateway goes away or refuses the
token, one when it is back, never one per attempt.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from otel_sse._version import __version__
from otel_sse.telemetry.gateway_config import GatewayConfig, bearer

_log = logging.getLogger("otel_sse.telemetry.gateway")

# Statuses after which the same request is sent again (the OTLP specification's list).
RETRYABLE: Final = frozenset({429, 502, 503, 504})
# Statuses that say this process may not send (or that no gateway is there): the
# request is dropped and the forwarder backs off until one is accepted.
REFUSED: Final = frozenset({401, 403, 404})
_RETRY_AFTER_CAP: Final = 60.0


@dataclass(frozen=True, slots=True)
class Reply:
    """The gateway's answer to one request."""

    status: int
    reason: str
    body: bytes
    retry_after: float | None = None


class GatewayLink:
    """One keep-alive connection to the gateway; one thread posts, any thread aborts."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._headers = {"Content-Type": "application/x-protobuf",
                         "User-Agent": f"otel-sse/{__version__}", **bearer(config)}
        self._context: ssl.SSLContext | None = None
        if config.https:
            self._context = ssl.create_default_context(cafile=config.certificate)
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._aborted = False

    def __repr__(self) -> str:
        return f"GatewayLink({self.config.url!r})"

    def post(self, path: str, body: bytes) -> Reply:
        """POST ``body`` to ``path``; raises OSError or ``http.client.HTTPException``
        when no answer came (the connection is closed then)."""
        reused = self._conn is not None
        try:
            return self._post(path, body)
        except (OSError, http.client.HTTPException):
            self.close()
            # A kept-alive connection the gateway closed while it was idle fails on
            # first use: that says nothing about the gateway, so once more on a new one.
            if not reused or self._aborted:
                raise
        return self._post(path, body)

    def _post(self, path: str, body: bytes) -> Reply:
        conn = self._connection()
        conn.request("POST", path, body, self._headers)
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return Reply(response.status, response.reason, data,
                     _retry_after(response.getheader("Retry-After")))

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._aborted:
                raise ConnectionAbortedError("the forwarder is shutting down")
            if self._conn is None:
                config = self.config
                if self._context is not None:
                    self._conn = http.client.HTTPSConnection(
                        config.host, config.port, timeout=config.timeout, context=self._context)
                else:
                    self._conn = http.client.HTTPConnection(config.host, config.port,
                                                            timeout=config.timeout)
            return self._conn

    def close(self) -> None:
        """Close the connection (the next post opens a new one)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def abort(self) -> None:
        """From any thread: end the request in flight and refuse new ones."""
        with self._lock:
            self._aborted = True
            sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            # The plain socket's shutdown wakes a read blocked on it (TLS too).
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def reset(self) -> None:
        """In a forked child: forget the parent's connection without touching it."""
        self._lock = threading.Lock()
        self._conn = None
        self._aborted = False


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number; an HTTP date is treated as absent)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP)


class GatewayHealth:
    """Whether the gateway takes what is sent, the backoff, and the log lines.

    ``clock`` is monotonic seconds; ``jitter`` gives a number in [0, 1) that
    spreads the retries of many processes.
    """

    def __init__(self, config: GatewayConfig, clock: Callable[[], float] = time.monotonic,
                 jitter: Callable[[], float] = random.random) -> None:
        self.config = config
        self.clock = clock
        self.jitter = jitter
        self.state = "up"  # "down": unreachable; "refused": answers that it will not take it
        self.failures = 0  # consecutive
        self.since = 0.0
        self.next_attempt = 0.0
        self._dropped_before = 0
        self._said: set[int] = set()  # rejection statuses already logged in this episode

    @property
    def waiting(self) -> float:
        """Seconds until the next attempt may be made (0: now)."""
        return max(0.0, self.next_attempt - self.clock())

    def _backoff(self, at_least: float | None = None) -> float:
        config = self.config
        self.failures += 1
        delay = min(config.retry_max, config.retry_initial * 2.0 ** min(self.failures - 1, 30))
        delay *= 0.5 + 0.5 * self.jitter()
        if at_least is not None:
            delay = max(delay, at_least)
        self.next_attempt = self.clock() + delay
        return delay

    def succeeded(self, dropped: int) -> None:
        """A request was accepted; ``dropped`` is the forwarder's drop count so far."""
        self.failures = 0
        self.next_attempt = 0.0
        self._said.clear()
        if self.state == "up":
            return
        url, lost = self.config.url, dropped - self._dropped_before
        if self.state == "down":
            _log.info("otel-sse: the gateway at %s is back after %.1f s; %d live items "
                      "were dropped meanwhile", url, self.clock() - self.since, lost)
        else:
            _log.info("otel-sse: the gateway at %s accepts live telemetry again", url)
        self.state = "up"

    def unreachable(self, detail: str, dropped: int) -> float:
        """No answer (or a retryable one): back off; one warning per outage."""
        if self.state != "down":
            self._enter("down", dropped)
            _log.warning(
                "otel-sse: cannot reach the gateway at %s (%s); the application carries on, "
                "live telemetry waits (up to %d MiB) and is sent when the gateway is back; "
                "this is not logged again until then",
                self.config.url, detail, self.config.max_bytes // (1024 * 1024))
        return self._backoff()

    def throttled(self, retry_after: float | None) -> float:
        """The gateway sheds load (429): wait as it asks, quietly."""
        return self._backoff(retry_after)

    def refused(self, reply: Reply, path: str, dropped: int) -> float:
        """401, 403 or 404: the request is dropped; back off; one line per episode."""
        if self.state != "refused":
            self._enter("refused", dropped)
            url = self.config.url
            if reply.status == 404:
                _log.warning("otel-sse: %s answered 404 to POST %s: is it an otel-sse gateway "
                             "(otel-sse serve)? Live telemetry is dropped until it takes it",
                             url, path)
            else:
                given = "refused this process's token" if self.config.token else \
                    "wants a token and this process sent none"
                _log.warning("otel-sse: the gateway at %s %s (%d %s): set OTEL_SSE_GATEWAY_TOKEN "
                             "(or configure(token=...)) to its producer token; live telemetry "
                             "is dropped until it is accepted", url, given, reply.status,
                             reply.reason)
        return self._backoff()

    def rejected(self, reply: Reply, path: str, items: int) -> None:
        """Another error answer: this request is dropped; one line per status per episode."""
        if reply.status in self._said:
            return
        self._said.add(reply.status)
        _log.warning("otel-sse: the gateway at %s rejected POST %s (%d %s: %s); its %d items "
                     "are dropped", self.config.url, path, reply.status, reply.reason,
                     _detail(reply.body), items)

    def _enter(self, state: str, dropped: int) -> None:
        if self.state == "up":
            self.since = self.clock()
            self._dropped_before = dropped
        self.state = state


def _detail(body: bytes) -> str:
    """The gateway's reason: the message of a ``google.rpc.Status`` (what OTLP/HTTP
    errors carry), else a short printable excerpt of the body."""
    from google.protobuf.message import DecodeError
    from google.rpc.status_pb2 import Status

    text = ""
    with contextlib.suppress(DecodeError):
        text = Status.FromString(body).message
    if not text:
        text = body[:160].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else " " for ch in text[:160]).strip() or \
        "no reason given"
