"""HTTP/2 on one connection (h2c prior knowledge, or TLS with ALPN ``h2``), on ``h2``.

``h2`` keeps the protocol state: settings, streams, HPACK, flow-control windows.
What it does not do, this does: a budget for control frames
(:mod:`~otel_sse.server.h2gate`), streams beyond the advertised limit refused
with ``REFUSED_STREAM`` instead of the whole connection failing, deadlines for
request bodies and idle connections, and answers that wait for flow control.

Event-stream bodies take a fast path: a fan-out round writes to every stream of
a connection, and the frames are flushed in one socket write after the round.
The DATA frames are built here (a fixed 9-byte header) and charged to ``h2``'s
flow-control windows directly, which costs a fraction of ``send_data``;
``tests/test_server_h2.py`` checks that the bytes and windows are exactly those
``send_data`` produces.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from urllib.parse import unquote_to_bytes

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from otel_sse.server.h1 import SERVER_HEADER, date_header
from otel_sse.server.h2gate import FloodError, FrameGate
from otel_sse.server.layer import Conn
from otel_sse.server.request import Headers, Request, Response, text_response
from otel_sse.server.routes import Result, Route
from otel_sse.server.stream import EventStream

logger = logging.getLogger("otel_sse.server")

_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection",
                         b"transfer-encoding", b"upgrade"})
# Streams past the advertised limit, up to this many times it, are refused one by
# one (RFC 9113 5.1.2 allows a stream error); beyond, h2 fails the connection.
_REFUSE_UP_TO = 2


class _Stream:
    """One request stream: its body being read, its answer being written."""

    __slots__ = ("body", "deadline", "events", "frame_tail", "id", "outgoing", "request",
                 "route", "sink", "writing")

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.frame_tail = b"\x00\x00" + stream_id.to_bytes(4, "big")
        self.request: Request | None = None
        self.route: Route | None = None
        self.body = bytearray()
        self.deadline: float | None = None
        self.events: EventStream | None = None
        self.sink: H2Body | None = None
        # A whole answer's body still waiting for flow control, and whether to end after it.
        self.outgoing: memoryview | None = None
        self.writing = True


class H2Body:
    """The body of one event-stream response on an HTTP/2 stream."""

    __slots__ = ("handler", "stream")

    def __init__(self, handler: H2Handler, stream: _Stream) -> None:
        self.handler = handler
        self.stream = stream

    def room(self) -> int:
        return self.handler.room(self.stream)

    def buffered(self) -> int:
        return self.handler.buffered()

    def write(self, data: bytes | memoryview) -> None:
        self.handler.send_data(self.stream, data)

    def end(self) -> None:
        self.handler.end_stream(self.stream)

    def abort(self) -> None:
        self.handler.reset_stream(self.stream, ErrorCodes.CANCEL)


class H2Handler:
    """One HTTP/2 connection."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.layer = layer = conn.layer
        self.config = config = layer.config
        self.router = layer.router
        self.h2 = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        limit = config.h2_max_streams
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limit,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: config.max_head_bytes,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        self.h2.initiate_connection()
        # Advertised: ``limit``. Enforced by h2: a multiple of it, so that a client
        # over the limit gets its extra streams refused, not its connection closed.
        self.h2.local_settings.max_concurrent_streams = limit * _REFUSE_UP_TO
        self.h2.local_settings.acknowledge()
        self.gate = FrameGate(config.h2_control_frame_rate, config.max_head_bytes * 2,
                              layer.clock(), layer.control_budget)
        self.streams: dict[int, _Stream] = {}
        # Streams waiting for a WINDOW_UPDATE, and for room in the socket's buffer.
        self.blocked: dict[int, _Stream] = {}
        self.starved: dict[int, _Stream] = {}
        self.out: list[bytes | memoryview] = []
        self.out_bytes = 0
        self.flush_scheduled = False
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.flush()
        conn.set_deadline(config.idle_timeout)

    @property
    def idle(self) -> bool:
        return not self.streams

    # -- bytes in -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.gate.feed(data, self.layer.clock())
        except FloodError as exc:
            self.layer.stats.flood_closed += 1
            logger.info("closing an HTTP/2 connection from %s: %s", self.conn.client, exc)
            self._close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.layer.stats.bad_requests += 1
            logger.debug("HTTP/2 protocol error from %s: %s", self.conn.client, exc)
            self._fail()  # h2 queued the GOAWAY
            return
        for event in events:
            self._on_event(event)
        self._update_deadline()
        self.flush()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.route is not None:
                self._dispatch(stream)
        elif isinstance(event, h2.events.StreamReset):
            self._forget(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                self._offer(self.blocked.pop(event.stream_id, None))
            else:
                self.writable()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                self.writable()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._fail()

    def eof_received(self) -> None:
        self._fail()

    def connection_lost(self) -> None:
        self.closed = True
        for stream_id in list(self.streams):
            self._forget(stream_id)
        self.out.clear()

    def writable(self) -> None:
        """Room again on the socket or the connection window: offer it to waiting streams."""
        waiting = [*self.blocked.values(), *self.starved.values()]
        self.blocked, self.starved = {}, {}
        for stream in waiting:
            self._offer(stream)
        self.flush()

    def _drained(self) -> None:
        """The socket took what was flushed: streams that waited for it go on."""
        starved, self.starved = self.starved, {}
        for stream in starved.values():
            self._offer(stream)
        self.flush()

    def _offer(self, stream: _Stream | None) -> None:
        if stream is None or self.streams.get(stream.id) is not stream:
            return
        if stream.outgoing is not None:
            self._send_answer_body(stream)
        elif stream.events is not None:
            stream.events.writable()

    def expired(self, now: float) -> None:
        late = [s for s in self.streams.values() if s.deadline is not None and s.deadline <= now]
        for stream in late:
            self.layer.stats.timed_out += 1
            stream.route = None
            stream.deadline = None
            self._answer(stream, self.router.finish(stream.request, text_response(
                408, f"request body not received in time "
                f"(request_timeout={self.config.request_timeout:g} s)")))
        if not self.streams:
            self.layer.stats.timed_out += 1
            self._close_connection(ErrorCodes.NO_ERROR)
            return
        self._update_deadline()
        self.flush()

    def shutdown(self) -> None:
        if not self.streams:
            self._close_connection(ErrorCodes.NO_ERROR)

    # -- requests -------------------------------------------------------------------

    def _request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if len(self.streams) >= self.config.h2_max_streams:
            self.layer.stats.refused_streams += 1
            self._reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        stream = _Stream(stream_id)
        self.streams[stream_id] = stream
        pseudo: dict[bytes, bytes] = {}
        headers: Headers = []
        for name, value in event.headers or ():
            name, value = bytes(name), bytes(value)
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                headers.append((name, value))
        authority = pseudo.get(b":authority")
        if authority is not None and not any(name == b"host" for name, _ in headers):
            headers.append((b"host", authority))
        raw_path, _, query = pseudo.get(b":path", b"/").partition(b"?")
        try:
            path = unquote_to_bytes(raw_path).decode("utf-8")
            method = pseudo.get(b":method", b"GET").decode("ascii")
        except UnicodeDecodeError:
            self.layer.stats.bad_requests += 1
            self._answer(stream, self.router.finish(None, text_response(
                400, "malformed request path")))
            return
        request = Request(method=method, path=path, query=query.decode("latin-1"),
                          headers=headers, http_version="2", scheme=self.conn.scheme,
                          client=self.conn.client, server=self.conn.server)
        stream.request = request
        admitted = self.router.admit(request)
        ended = event.stream_ended is not None
        if isinstance(admitted, Response):
            self._answer(stream, self.router.finish(request, admitted))
            return
        stream.route = admitted
        if not ended:
            stream.deadline = self.layer.clock() + self.config.request_timeout
        else:
            self._dispatch(stream)

    def _data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        if stream is None or stream.route is None or stream.request is None:
            return
        stream.body += event.data
        limit = stream.route.max_body
        if len(stream.body) > limit:
            self.layer.stats.bodies_too_large += 1
            stream.route = None
            stream.deadline = None
            self._answer(stream, self.router.finish(stream.request, text_response(
                413, f"request body larger than {limit} bytes" if limit else
                "this route takes no request body")))

    def _dispatch(self, stream: _Stream) -> None:
        route, request = stream.route, stream.request
        assert route is not None and request is not None
        stream.route = None
        stream.deadline = None
        request.body = bytes(stream.body)
        stream.body = bytearray()
        result = self.router.handle(route, request)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda done: self._answered(done, stream, request))
            return
        self._deliver(stream, request, result)

    def _answered(self, task: asyncio.Future[Result], stream: _Stream, request: Request) -> None:
        if not self.closed and not task.cancelled() and self.streams.get(stream.id) is stream:
            self._deliver(stream, request, task.result())
            self.flush()

    def _deliver(self, stream: _Stream, request: Request, result: Result) -> None:
        result = self.router.finish(request, result)
        if isinstance(result, EventStream):
            self._send_headers(stream, result.status, result.headers, end=False)
            stream.events = result
            stream.sink = H2Body(self, stream)
            result.open(stream.sink)
        else:
            self._answer(stream, result)

    # -- answers ----------------------------------------------------------------------

    def _send_headers(self, stream: _Stream, status: int, headers: Headers, end: bool) -> None:
        block = [(b":status", str(status).encode())]
        block += [(name, value) for name, value in headers if name not in _HOP_BY_HOP]
        block += [(b"date", date_header()), (b"server", SERVER_HEADER)]
        self.h2.send_headers(stream.id, block, end_stream=end)

    def _answer(self, stream: _Stream, response: Response) -> None:
        """A whole response; its body waits for flow control as needed."""
        head = stream.request is not None and stream.request.method == "HEAD"
        body = b"" if head else response.body
        response.headers = [h for h in response.headers if h[0] != b"content-length"]
        response.headers.append((b"content-length", str(len(response.body)).encode()))
        try:
            self._send_headers(stream, response.status, response.headers, end=not body)
        except h2.exceptions.ProtocolError:
            self._forget(stream.id)
            return
        if not body:
            self._finish(stream)
            return
        stream.outgoing = memoryview(body)
        self._send_answer_body(stream)

    def _send_answer_body(self, stream: _Stream) -> None:
        outgoing = stream.outgoing
        assert outgoing is not None
        room = self.room(stream)
        if room <= 0:
            return  # room() filed it as blocked or starved
        piece = outgoing[:room]
        self.send_data(stream, piece)
        if len(piece) < len(outgoing):
            stream.outgoing = outgoing[len(piece):]
            self.room(stream)  # files it as waiting
            return
        stream.outgoing = None
        self.end_stream(stream)

    def _finish(self, stream: _Stream) -> None:
        """The answer is complete: a request still sending its body is told to stop."""
        if self.h2.streams.get(stream.id) is not None and \
                not self.h2.streams[stream.id].closed:
            self._reset(stream.id, ErrorCodes.NO_ERROR)
        self._drop(stream.id)
        self._after_stream()

    # -- the sink side (event streams and answer bodies) -----------------------------------

    def room(self, stream: _Stream) -> int:
        """What ``stream`` may send now; a stream with none waits for a WINDOW_UPDATE
        (``blocked``) or for the socket to drain (``starved``)."""
        if not stream.writing or self.closed:
            return 0
        h2_stream = self.h2.streams.get(stream.id)
        if h2_stream is None:
            return 0
        window = min(h2_stream.outbound_flow_control_window,
                     self.h2.outbound_flow_control_window)
        if window <= 0:
            self.blocked[stream.id] = stream
            return 0
        socket_room = self.conn.room() - self.out_bytes
        if socket_room <= 0:
            self.starved[stream.id] = stream
            return 0
        return min(window, socket_room)

    def buffered(self) -> int:
        return self.conn.buffered() + self.out_bytes

    def send_data(self, stream: _Stream, data: bytes | memoryview) -> None:
        """DATA frames for ``data`` (which the caller checked fits the windows)."""
        size = len(data)
        if not size or not stream.writing:
            return
        h2conn = self.h2
        h2_stream = h2conn.streams[stream.id]
        pending = h2conn.data_to_send()
        out = self.out
        if pending:
            out.append(pending)
            self.out_bytes += len(pending)
        limit = h2conn.max_outbound_frame_size
        tail = stream.frame_tail
        if size <= limit:
            out.append(size.to_bytes(3, "big") + tail)
            out.append(data)
        else:
            view = memoryview(data)
            for start in range(0, size, limit):
                piece = view[start : start + limit]
                out.append(len(piece).to_bytes(3, "big") + tail)
                out.append(piece)
        self.out_bytes += size + 9 * (-(-size // limit))
        h2conn.outbound_flow_control_window -= size
        h2_stream.outbound_flow_control_window -= size
        self.gate.credit(size)
        self._schedule_flush()

    def end_stream(self, stream: _Stream) -> None:
        stream.writing = False
        stream.events = None
        stream.sink = None
        try:
            self._merge_pending()
            self.h2.end_stream(stream.id)
        except h2.exceptions.ProtocolError:
            pass
        self._finish(stream)
        self._schedule_flush()

    def reset_stream(self, stream: _Stream, code: ErrorCodes) -> None:
        stream.writing = False
        stream.events = None
        stream.sink = None
        self._reset(stream.id, code)
        self._drop(stream.id)
        self._after_stream()
        self._schedule_flush()

    def _reset(self, stream_id: int, code: ErrorCodes) -> None:
        try:
            self._merge_pending()
            self.h2.reset_stream(stream_id, code)
        except h2.exceptions.ProtocolError:
            pass

    def _drop(self, stream_id: int) -> _Stream | None:
        """Forget every reference this connection holds to a stream that ended."""
        self.blocked.pop(stream_id, None)
        self.starved.pop(stream_id, None)
        return self.streams.pop(stream_id, None)

    def _forget(self, stream_id: int) -> None:
        """The peer reset the stream (or the connection is gone)."""
        stream = self._drop(stream_id)
        if stream is None:
            return
        stream.writing = False
        events = stream.events
        stream.events = stream.sink = None
        if events is not None:
            events.gone()
        self._after_stream()

    def _after_stream(self) -> None:
        if not self.streams:
            if not self.layer.accepting:
                self._close_connection(ErrorCodes.NO_ERROR)
            else:
                self._update_deadline()

    # -- output ------------------------------------------------------------------------

    def _merge_pending(self) -> None:
        """Keep frame order: what h2 queued goes after what this module queued."""
        pending = self.h2.data_to_send()
        if pending:
            self.out.append(pending)
            self.out_bytes += len(pending)

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled and not self.closed:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued in one socket write."""
        self.flush_scheduled = False
        self._merge_pending()
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.out_bytes = 0
            if not self.closed:
                self.conn.write(data)
        if self.starved and not self.conn.write_paused and not self.closed:
            # The socket took it all (no pause, so no resume will come): go on.
            self.loop.call_soon(self._drained)

    def _update_deadline(self) -> None:
        if self.closed:
            return
        deadlines = [s.deadline for s in self.streams.values() if s.deadline is not None]
        if deadlines:
            self.conn.set_deadline(max(0.0, min(deadlines) - self.layer.clock()))
        elif not self.streams:
            self.conn.set_deadline(self.config.idle_timeout)
        else:
            self.conn.set_deadline(None)

    def _close_connection(self, code: ErrorCodes) -> None:
        if self.closed:
            return
        try:
            self._merge_pending()
            self.h2.close_connection(code)
        except h2.exceptions.ProtocolError:
            pass
        self.flush()
        self.closed = True
        for stream_id in list(self.streams):
            self._forget(stream_id)
        self.conn.close()

    def _fail(self) -> None:
        self.flush()
        self.closed = True
        for stream_id in list(self.streams):
            self._forget(stream_id)
        self.conn.close()
