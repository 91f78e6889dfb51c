"""HTTP/1.1 on one connection, on the sans-I/O ``h11`` state machine.

Request heads are cut out of the byte stream here, before ``h11`` sees them,
so that their size and header count are checked however they arrive (one read
or many); each request then gets its own ``h11.Connection`` for parsing the
head and body and framing the answer. Event-stream bodies are written as
chunks straight to the connection (one write per fan-out round), everything
else through ``h11``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

import h11

from otel_sse.server.layer import Conn
from otel_sse.server.request import Headers, Request, Response, text_response
from otel_sse.server.routes import Result, Route
from otel_sse.server.stream import EventStream

SERVER_HEADER = b"otel-sse"
_HEAD_END = re.compile(rb"\r?\n\r?\n")

# States of a connection.
_HEAD = 0  # reading a request head
_BODY = 1  # reading a request body
_ANSWER = 2  # an answer is being written
_STREAM = 3  # an event stream is being written
_CLOSED = 4

_date_cache: tuple[int, bytes] = (0, b"")


def date_header() -> bytes:
    """An HTTP date for now, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def split_target(target: bytes) -> tuple[str, str]:
    """(percent-decoded path, raw query) of a request target; ValueError if unusable."""
    if target.startswith((b"http://", b"https://")):  # absolute form
        target = b"/" + target.split(b"/", 3)[3] if target.count(b"/") >= 3 else b"/"
    raw_path, _, query = target.partition(b"?")
    if not raw_path.startswith(b"/") and raw_path != b"*":
        raise ValueError(f"request target {target[:60]!r} is not a path")
    return unquote_to_bytes(raw_path).decode("utf-8"), query.decode("latin-1")


class H1Body:
    """The body of one event-stream response: chunks straight to the socket."""

    __slots__ = ("chunked", "conn", "handler")

    def __init__(self, handler: H1Handler, chunked: bool) -> None:
        self.handler = handler
        self.conn = handler.conn
        self.chunked = chunked

    def room(self) -> int:
        return self.conn.room()

    def buffered(self) -> int:
        return self.conn.buffered()

    def write(self, data: bytes | memoryview) -> None:
        if self.chunked:
            # The chunk goes out as it is, between its framing: copying it into one
            # bytes object cost a fresh buffer per subscriber and write (the fan-out
            # shares one chunk among every subscriber at the same place).
            self.conn.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.conn.write(data)

    def end(self) -> None:
        self.handler.stream_ended()

    def abort(self) -> None:
        self.handler.stream_aborted()


class H1Handler:
    """One HTTP/1.1 connection: one request at a time, keep-alive, pipelining."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.layer = layer = conn.layer
        self.config = layer.config
        self.router = layer.router
        self.state = _HEAD
        self.buffer = bytearray()
        self.h11: h11.Connection | None = None
        self.request: Request | None = None
        self.route: Route | None = None
        self.body = bytearray()
        self.stream: EventStream | None = None
        self.stream_body: H1Body | None = None
        conn.set_deadline(self.config.idle_timeout)

    @property
    def idle(self) -> bool:
        return self.state == _HEAD and not self.buffer

    # -- bytes in ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == _HEAD:
            if not self.buffer:  # a head begins: it must be whole in request_timeout
                self.conn.set_deadline(self.config.request_timeout)
            self.buffer += data
            self._next_request()
        elif state == _BODY:
            self._feed_body(data)
        elif state == _ANSWER:
            # Pipelined requests wait (bounded) until this answer is written.
            self.buffer += data
            if len(self.buffer) > self.config.max_head_bytes:
                self.conn.pause_reading()
        # _STREAM: a stream has no end the client could pipeline behind; ignore.

    def eof_received(self) -> None:
        if self.state == _STREAM:
            self._stream_gone()
        if self.state != _ANSWER:
            self.state = _CLOSED
            self.conn.close()

    def connection_lost(self) -> None:
        if self.state == _STREAM:
            self._stream_gone()
        self.state = _CLOSED

    def writable(self) -> None:
        if self.state == _STREAM and self.stream is not None:
            self.stream.writable()

    def expired(self, now: float) -> None:
        self.layer.stats.timed_out += 1
        if self.state == _BODY or (self.state == _HEAD and self.buffer):
            self._reject(408, "request not received in time "
                         f"(request_timeout={self.config.request_timeout:g} s)")
        else:
            self.state = _CLOSED
            self.conn.close()

    def shutdown(self) -> None:
        if self.idle:
            self.state = _CLOSED
            self.conn.close()

    # -- requests -----------------------------------------------------------------

    def _next_request(self) -> None:
        buffer = self.buffer
        if not buffer:
            return
        found = _HEAD_END.search(buffer, 0, self.config.max_head_bytes + 4)
        if found is None:
            if len(buffer) > self.config.max_head_bytes:
                self._head_too_large("request head")
            return
        end = found.end()
        if end > self.config.max_head_bytes:
            self._head_too_large("request head")
            return
        head = bytes(buffer[:end])
        del buffer[:end]
        if head.count(b"\n") - 2 > self.config.max_headers:
            self._head_too_large(f"more than {self.config.max_headers} headers;")
            return
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_head_bytes)
        self.h11 = conn
        conn.receive_data(head)
        try:
            event = conn.next_event()
            if not isinstance(event, h11.Request):
                raise h11.RemoteProtocolError("incomplete request head")
            if event.http_version not in (b"1.0", b"1.1"):
                self._reject(505, f"HTTP/{event.http_version.decode()} is not supported; "
                             "use HTTP/1.1 or HTTP/2")
                return
            names = {name for name, _ in event.headers}
            if b"content-length" in names and b"transfer-encoding" in names:
                # RFC 9112 6.1: a smuggling attempt more often than not; never trusted.
                raise h11.RemoteProtocolError("Content-Length and Transfer-Encoding together")
            path, query = split_target(event.target)
            if not _announces_body(event.headers):
                conn.next_event()  # the request's EndOfMessage
        except h11.RemoteProtocolError as exc:
            self.layer.stats.bad_requests += 1
            self._reject(400, f"malformed request: {exc}")
            return
        except (ValueError, UnicodeDecodeError) as exc:
            self.layer.stats.bad_requests += 1
            self._reject(400, f"malformed request target: {exc}")
            return
        request = Request(
            method=event.method.decode("ascii", "replace"), path=path, query=query,
            headers=list(event.headers), http_version=event.http_version.decode(),
            scheme=self.conn.scheme, client=self.conn.client, server=self.conn.server)
        self.request = request
        self.conn.set_deadline(None)
        admitted = self.router.admit(request)
        if isinstance(admitted, Response):
            self._answer(self.router.finish(request, admitted), discard_body=request.has_body)
            return
        if request.has_body:
            if admitted.max_body <= 0:
                self.layer.stats.bodies_too_large += 1
                self._reject(413, "this route takes no request body")
                return
            self.route = admitted
            self.body = bytearray()
            self.state = _BODY
            self.conn.set_deadline(self.config.request_timeout)
            if conn.they_are_waiting_for_100_continue:
                self.conn.write(conn.send(h11.InformationalResponse(status_code=100,
                                                                    headers=[])))
            rest = bytes(buffer)
            buffer.clear()
            self._feed_body(rest)
            return
        self._dispatch(admitted, request)

    def _feed_body(self, data: bytes) -> None:
        conn, route, request = self.h11, self.route, self.request
        assert conn is not None and route is not None and request is not None
        if data:
            conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.layer.stats.bad_requests += 1
                self._reject(400, f"malformed request body: {exc}")
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > route.max_body:
                    self.layer.stats.bodies_too_large += 1
                    self._reject(413, f"request body larger than {route.max_body} bytes")
                    return
            elif isinstance(event, h11.EndOfMessage):
                # What follows belongs to the next request; its head is checked like this one.
                self.buffer[:0] = conn.trailing_data[0]
                request.body = bytes(self.body)
                self.body = bytearray()
                self.conn.set_deadline(None)
                self._dispatch(route, request)
                return

    def _dispatch(self, route: Route, request: Request) -> None:
        result = self.router.handle(route, request)
        if inspect.isawaitable(result):
            self.state = _ANSWER  # pipelined requests wait, bounded, meanwhile
            task = asyncio.ensure_future(result)
            task.add_done_callback(lambda done: self._answered(done, request))
            return
        self._deliver(request, result)

    def _answered(self, task: asyncio.Future[Result], request: Request) -> None:
        if self.state != _CLOSED and not task.cancelled():
            self._deliver(request, task.result())

    def _deliver(self, request: Request, result: Result) -> None:
        result = self.router.finish(request, result)
        if isinstance(result, EventStream):
            self._start_stream(result)
        else:
            self._answer(result)

    # -- answers --------------------------------------------------------------------

    def _head(self, status: int, headers: Headers) -> h11.Response:
        return h11.Response(status_code=status, headers=[
            *headers, (b"date", date_header()), (b"server", SERVER_HEADER)],
            reason=_reason(status))

    def _answer(self, response: Response, discard_body: bool = False) -> None:
        """Write a whole response; then the next request, or close."""
        conn = self.h11
        if conn is None or conn.their_state is h11.ERROR:
            conn = h11.Connection(h11.SERVER)  # the head never parsed
            response.close = True
        request = self.request
        headers = [(name, value) for name, value in response.headers
                   if name not in (b"content-length", b"connection", b"transfer-encoding")]
        headers.append((b"content-length", str(len(response.body)).encode()))
        if (response.close or discard_body or not self.layer.accepting
                or (response.status >= 500 and response.status != 503)):
            headers.append((b"connection", b"close"))
        self.state = _ANSWER
        try:
            data = conn.send(self._head(response.status, headers)) or b""
            if response.body and (request is None or request.method != "HEAD"):
                data += conn.send(h11.Data(data=response.body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:  # no request to answer (e.g. 431 on the first head)
            data = _raw_response(response.status, headers, response.body)
            conn = None
        self.conn.write(data)
        self._response_done(conn)

    def _response_done(self, conn: h11.Connection | None) -> None:
        if conn is None or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE \
                or not self.layer.accepting:
            self.state = _CLOSED
            self.conn.close()
            return
        self.state = _HEAD
        self.h11 = None
        self.request = None
        self.route = None
        self.conn.resume_reading()
        self.conn.set_deadline(self.config.idle_timeout if not self.buffer
                               else self.config.request_timeout)
        self._next_request()

    def _reject(self, status: int, reason: str) -> None:
        """An error answer, then close: the stream position is no longer trustworthy."""
        self.buffer.clear()
        self._answer(self.router.finish(self.request, text_response(status, reason, close=True)))

    def _head_too_large(self, what: str) -> None:
        self.layer.stats.heads_too_large += 1
        self.request = None
        self._reject(431, f"{what} larger than max_head_bytes={self.config.max_head_bytes} "
                     f"bytes / max_headers={self.config.max_headers}")

    # -- event streams ------------------------------------------------------------------

    def _start_stream(self, stream: EventStream) -> None:
        conn = self.h11
        assert conn is not None
        head = conn.send(self._head(stream.status, stream.headers)) or b""
        self.conn.write(head)
        self.state = _STREAM
        self.stream = stream
        self.stream_body = H1Body(self, chunked=b"transfer-encoding: chunked" in head.lower())
        stream.open(self.stream_body)

    def stream_ended(self) -> None:
        """The fan-out finished the stream cleanly (the server is stopping, say)."""
        conn = self.h11
        self.stream = None
        self.stream_body = None
        if conn is None or self.state != _STREAM:
            return
        self.conn.write(conn.send(h11.EndOfMessage()) or b"")
        self.state = _ANSWER
        self._response_done(conn)

    def stream_aborted(self) -> None:
        self.stream = None
        self.stream_body = None
        self.state = _CLOSED
        self.conn.abort()

    def _stream_gone(self) -> None:
        stream = self.stream
        self.stream = None
        self.stream_body = None
        if stream is not None:
            stream.gone()


def _announces_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _raw_response(status: int, headers: Headers, body: bytes) -> bytes:
    lines = [b"HTTP/1.1 %d %b\r\n" % (status, _reason(status))]
    lines += [b"%b: %b\r\n" % (name, value) for name, value in headers]
    lines.append(b"date: %b\r\nserver: %b\r\n\r\n" % (date_header(), SERVER_HEADER))
    return b"".join(lines) + body
