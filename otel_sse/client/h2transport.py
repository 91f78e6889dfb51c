"""HTTP/2 stream requests on the ``h2`` state machine over asyncio streams.

One connection per stream: an SSE client holds exactly one long request, so
multiplexing would buy nothing, and a fresh connection per attempt means a
reconnection never lands on a half-dead socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from otel_sse.client.compression import make_decompressor
from otel_sse.client.tls import LazyContext, TLSSettings
from otel_sse.client.transport import HTTP2Mode, StreamResponse, Transport, describe_error
from otel_sse.errors import CertificateError, ConnectError, StreamError

__all__ = ["H2Transport"]

# A generous receive window: the server may push a replay burst without
# waiting for a WINDOW_UPDATE after every 64 KiB.
_WINDOW = 4 * 1024 * 1024
_READ_SIZE = 256 * 1024
# HTTP/2 forbids connection-specific headers (RFC 9113, 8.2.2); Host becomes :authority.
_FORBIDDEN = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "te"}
)


class _H2Response(StreamResponse):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: h2.connection.H2Connection,
        stream_id: int,
        read_timeout: float | None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = conn
        self._stream_id = stream_id
        self._read_timeout = read_timeout
        self._pending: list[bytes] = []
        self._ended = False
        self._error: StreamError | None = None
        self._head: list[tuple[str, str]] | None = None
        self._closed = False
        self._decompress: Callable[[bytes], bytes] | None = None
        self.status = 0
        self.reason = ""
        self.headers = {}
        self.http_version = "2"

    async def _pump(self) -> None:
        """Read once from the socket and run the h2 state machine on it."""
        try:
            if self._read_timeout is None:
                data = await self._reader.read(_READ_SIZE)
            else:
                async with asyncio.timeout(self._read_timeout):
                    data = await self._reader.read(_READ_SIZE)
        except (TimeoutError, OSError) as exc:
            raise StreamError(describe_error(exc, "stream broken")) from exc
        if not data:
            raise StreamError("stream broken: connection closed before the stream ended")
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise StreamError(f"HTTP/2 protocol error: {exc}") from exc
        sid = self._stream_id
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                self._head = [(_text(k), _text(v)) for k, v in event.headers or ()]
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                if event.data:
                    self._pending.append(event.data)
                if event.flow_controlled_length:
                    self._conn.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                self._ended = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
                self._error = StreamError(f"stream reset by the server (code {event.error_code})")
            elif isinstance(event, h2.events.ConnectionTerminated):
                last = event.last_stream_id
                # A graceful GOAWAY still lets streams up to last_stream_id finish.
                if event.error_code or (last is not None and last < sid):
                    self._error = StreamError(
                        f"server closed the HTTP/2 connection (GOAWAY code {event.error_code})"
                    )
        out = self._conn.data_to_send()
        if out:
            self._writer.write(out)

    async def read_head(self) -> None:
        while self._head is None:
            if self._error is not None:
                raise self._error
            await self._pump()
        headers: dict[str, str] = {}
        for name, value in self._head:
            if name == ":status":
                self.status = int(value)
            elif name in headers:
                headers[name] = f"{headers[name]}, {value}"
            else:
                headers[name] = value
        self.headers = headers
        self._decompress = make_decompressor(headers.get("content-encoding"))

    async def chunks(self) -> AsyncIterator[bytes]:
        pending = self._pending
        while True:
            if pending:
                data = pending[0] if len(pending) == 1 else b"".join(pending)
                pending.clear()
                if self._decompress is not None:
                    data = self._decompress(data)
                if data:
                    yield data
                continue
            if self._error is not None:
                raise self._error
            if self._ended:
                return
            await self._pump()

    async def read_excerpt(self, limit: int = 512) -> str:
        body = b""
        with contextlib.suppress(StreamError, TimeoutError):
            async with asyncio.timeout(2.0):
                async for chunk in self.chunks():
                    body += chunk
                    if len(body) >= limit:
                        break
        return body[:limit].decode("utf-8", "replace")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._conn.close_connection()
            self._writer.write(self._conn.data_to_send())
        await _close_writer(self._writer)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError):
        # A peer that never answers the TLS close_notify must not stall the client.
        writer.transport.abort()


class H2Transport(Transport):
    """HTTP/2 over TLS (ALPN ``h2``) or cleartext with prior knowledge.

    ``mode=True``: ``https`` URLs offer ``h2`` and ``http/1.1`` in ALPN and use
    the ``fallback`` transport when the server picks HTTP/1.1 (remembered per
    host); ``http`` URLs go straight to the fallback. ``mode="prior-knowledge"``:
    HTTP/2 only, cleartext (h2c) for ``http`` and ALPN ``h2`` for ``https``.

    A caller's own ``SSLContext`` is used unchanged, so it offers ``h2`` only
    if the caller set its ALPN protocols; without them the server answers
    over HTTP/1.1 (the fallback, or an error in prior-knowledge mode).
    """

    def __init__(
        self,
        *,
        mode: HTTP2Mode,
        read_timeout: float | None,
        connect_timeout: float | None,
        tls: TLSSettings | None = None,
        fallback: Transport | None,
    ) -> None:
        self._mode = mode
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        alpn = ["h2"] if mode == "prior-knowledge" else ["h2", "http/1.1"]
        # Its own context, apart from the fallback's: offering h2 there would
        # let a server pick a protocol the HTTP/1.1 transport does not speak.
        self._tls = LazyContext(tls or TLSSettings(), alpn)
        self._fallback = fallback
        self._http1_hosts: set[str] = set()

    @property
    def tls(self) -> LazyContext:
        """This transport's TLS context holder (ALPN ``h2`` offered)."""
        return self._tls

    async def open(self, url: str, headers: Mapping[str, str]) -> StreamResponse:
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        authority = parts.netloc.rpartition("@")[2]
        prior_knowledge = self._mode == "prior-knowledge"
        if self._fallback is not None and not prior_knowledge and (
            not secure or authority in self._http1_hosts
        ):
            return await self._fallback.open(url, headers)
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port,
                    ssl=self._tls.get() if secure else None,
                    server_hostname=host if secure else None,
                    limit=_READ_SIZE,
                )
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(f"TLS certificate not trusted for {url}: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise ConnectError(f"cannot connect to {url}: {reason}") from exc
        if secure:
            ssl_object = writer.get_extra_info("ssl_object")
            selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if selected != "h2":
                await _close_writer(writer)
                if prior_knowledge or self._fallback is None:
                    raise ConnectError(f"{url} did not negotiate HTTP/2 (ALPN chose {selected!r})")
                self._http1_hosts.add(authority)
                return await self._fallback.open(url, headers)

        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        # Settings only after the preface: update_settings() writes a frame at once.
        conn.initiate_connection()
        conn.update_settings(
            {
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            }
        )
        conn.increment_flow_control_window(_WINDOW)
        stream_id = conn.get_next_available_stream_id()
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        request = [
            (":method", "GET"),
            (":scheme", parts.scheme),
            (":authority", authority),
            (":path", path),
        ]
        request += [(k.lower(), v) for k, v in headers.items() if k.lower() not in _FORBIDDEN]
        conn.send_headers(stream_id, request, end_stream=True)
        writer.write(conn.data_to_send())
        response = _H2Response(reader, writer, conn, stream_id, self._read_timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await response.read_head()
        except (StreamError, TimeoutError) as exc:
            await response.aclose()
            reason = "no response in time" if isinstance(exc, TimeoutError) else str(exc)
            raise ConnectError(f"cannot open {url} over HTTP/2: {reason}") from exc
        except BaseException:
            await response.aclose()
            raise
        return response

    async def aclose(self) -> None:
        if self._fallback is not None:
            await self._fallback.aclose()
