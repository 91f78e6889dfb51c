"""The event-stream route: the handshake (filters, resume point, greeting) and the
:class:`EventStream` a connection feeds to its client."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from otel_sse.bus.fanout import Fanout, Sink, Subscriber, control_frame
from otel_sse.bus.ids import parse_id
from otel_sse.bus.log import Located
from otel_sse.errors import FilterError, InvalidEventId
from otel_sse.hub import EventHub
from otel_sse.server.compression import make_compressor, negotiate
from otel_sse.server.config import ServerConfig
from otel_sse.server.request import Headers, Request, Response, text_response
from otel_sse.wire.encoder import encode_retry, iso_ms_now
from otel_sse.wire.filters import EventFilter, parse_filters

STREAM_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
STREAM_PATHS = frozenset({"/events", "/events/"})
RETRY_AFTER_SECONDS = 5


def is_stream_request(request: Request) -> bool:
    """``/events``, or ``/`` asked for as ``text/event-stream`` (what EventSource sends)."""
    path = request.path
    if path in STREAM_PATHS:
        return True
    return path == "/" and "text/event-stream" in (request.header(b"accept") or "")


class EventStream:
    """An SSE response: its status line headers, and the subscriber behind its body.

    The connection sends the headers, then calls :meth:`open` with the sink that
    writes the body; the fan-out writes to it from then on. :meth:`writable`
    and :meth:`gone` are the sink's way back.
    """

    __slots__ = ("fanout", "headers", "subscriber")

    def __init__(self, fanout: Fanout, subscriber: Subscriber, headers: Headers) -> None:
        self.fanout = fanout
        self.subscriber = subscriber
        self.headers = headers

    @property
    def status(self) -> int:
        return 200

    def open(self, sink: Sink) -> None:
        self.subscriber.sink = sink
        self.fanout.attach(self.subscriber)

    def writable(self) -> None:
        self.fanout.writable(self.subscriber)

    def gone(self) -> None:
        """The client went away (or the stream was reset)."""
        self.fanout.detach(self.subscriber)


class StreamRoute:
    """``GET``/``HEAD`` of the stream: validate, subscribe, greet."""

    max_body = 0

    def __init__(self, hub: EventHub, config: ServerConfig,
                 accepting: Callable[[], bool]) -> None:
        self.hub = hub
        self.config = config
        self.accepting = accepting
        self.opened = 0
        self.rejected_full = 0
        self.rejected_bad_request = 0

    def __call__(self, request: Request) -> Response | EventStream | Awaitable[EventStream]:
        fanout = self.hub.fanout
        try:
            patterns: list[str] = []
            requested: str | None = None
            for key, value in parse_qsl(request.query, keep_blank_values=True,
                                        max_num_fields=256):
                if key in ("filters", "filter"):
                    patterns.extend(parse_filters(value))
                elif key == "lastEventId":
                    requested = value
            requested = request.header(b"last-event-id") or requested
            event_filter = EventFilter(patterns)
            resume = parse_id(requested) if requested else None
        except (FilterError, InvalidEventId) as exc:
            self.rejected_bad_request += 1
            return text_response(400, str(exc))
        except ValueError as exc:  # parse_qsl: too many fields
            self.rejected_bad_request += 1
            return text_response(400, f"malformed query string: {exc}")
        if not self.accepting():
            return text_response(503, "server is shutting down", [(b"retry-after", b"1")])
        if len(fanout.subscribers) >= self.config.max_clients:
            self.rejected_full += 1
            return text_response(
                503, f"too many clients (max_clients={self.config.max_clients})",
                [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
        headers = list(STREAM_HEADERS)
        compress = None
        if self.config.compression:
            encoding = negotiate(request.header(b"accept-encoding") or "")
            if encoding is not None:
                compress = make_compressor(encoding, self.config.compression_level).compress
                headers += [(b"content-encoding", encoding.encode()),
                            (b"vary", b"Accept-Encoding")]
        if request.method == "HEAD":
            return Response(200, headers)

        log = fanout.log
        if resume is not None and log.shared:
            # A shared log may have to wait for its reader or ask its store.
            return self._located(request, requested, log.locate(resume), event_filter,
                                 compress, headers)
        resume_seq = log.resolve(resume) if requested else log.history.last_seq
        return self._open(request, requested, Located(resume_seq), event_filter, compress,
                          headers)

    async def _located(self, request: Request, requested: str | None,
                       locating: Awaitable[Located], event_filter: EventFilter,
                       compress: Callable[[bytes], bytes] | None,
                       headers: Headers) -> EventStream:
        return self._open(request, requested, await locating, event_filter, compress, headers)

    def _open(self, request: Request, requested: str | None, located: Located,
              event_filter: EventFilter, compress: Callable[[bytes], bytes] | None,
              headers: Headers) -> EventStream:
        fanout = self.hub.fanout
        history = fanout.log.history
        client = request.client or ("?", 0)
        sub = Subscriber(
            client_id=f"client-{secrets.token_hex(6)}",
            event_filter=event_filter,
            cursor=history.last_seq if located.cursor is None else located.cursor,
            info={"remote": f"{client[0]}:{client[1]}",
                  "protocol": f"HTTP/{request.http_version}",
                  "userAgent": request.header(b"user-agent") or ""},
            compress=compress,
        )
        greeting = b""
        if self.config.retry is not None:
            greeting += encode_retry(self.config.retry)
        now = iso_ms_now()
        greeting += control_frame("connected", {
            "clientId": sub.client_id, "serverTime": now, "lastEventId": requested,
            "timestamp": now,
        })
        gap = bool(requested) and (located.cursor is None or located.gap)
        if gap:
            greeting += fanout.gap_frame(requested, None)
        if bool(requested) and located.cursor is None:
            # Another run's id, or one past what this log holds: replay it all.
            sub.cursor = history.first_seq - 1
        if not requested or gap:
            # What is running now, for a client that does not resume from a known point.
            greeting += self._snapshot(event_filter)
        # Events older than the history (a shared log's store still held them).
        greeting += b"".join(located.backlog)
        # Queued before everything after its cursor, so it is written first.
        sub.direct.append((sub.cursor, greeting))
        sub.direct_bytes = len(greeting)
        self.opened += 1
        return EventStream(fanout, sub, headers)

    def _snapshot(self, event_filter: EventFilter) -> bytes:
        spans = self.hub.spans
        if not spans.spans:
            return b""
        snapshot = spans.snapshot()
        if not event_filter.matches_all:
            snapshot["events"] = [e for e in snapshot["events"] if event_filter(e["event"])]
            if not snapshot["events"] and not event_filter("snapshot"):
                return b""
        return control_frame("snapshot", snapshot)
