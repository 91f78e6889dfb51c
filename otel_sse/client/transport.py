"""How the client gets a stream of bytes: HTTP/1.1 on aiohttp, HTTP/2 on h2.

A transport opens one streaming GET and hands back the status, headers and
an async iterator of body chunks (already decompressed). Status and
content-type policy live in the client, so every transport behaves the same.
"""

from __future__ import annotations

import abc
import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Literal
from urllib.parse import urlsplit

import aiohttp

from otel_sse.client.tls import LazyContext, TLSSettings
from otel_sse.errors import CertificateError, ConnectError, StreamError

__all__ = [
    "AiohttpTransport",
    "HTTP2Mode",
    "StreamResponse",
    "Transport",
    "describe_error",
]

HTTP2Mode = bool | Literal["prior-knowledge"]


class StreamResponse(abc.ABC):
    """An answered stream request. ``headers`` keys are lower-case."""

    status: int
    reason: str
    headers: Mapping[str, str]
    http_version: str

    @abc.abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """The body, decompressed, as it arrives. Ends when the server ends the stream."""

    @abc.abstractmethod
    async def read_excerpt(self, limit: int = 512) -> str:
        """The start of a (non-stream) body, for error messages."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Drop the connection (a stream is never read to its end to be reused)."""


class Transport(abc.ABC):
    """Opens stream requests; owns whatever pools or sessions that takes."""

    @abc.abstractmethod
    async def open(self, url: str, headers: Mapping[str, str]) -> StreamResponse:
        """Send the GET; return once the response head has arrived."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release every connection and session."""


class _AiohttpResponse(StreamResponse):
    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.reason = response.reason or ""
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        version = response.version
        self.http_version = f"{version.major}.{version.minor}" if version else "1.1"

    async def chunks(self) -> AsyncIterator[bytes]:
        readany = self._response.content.readany
        try:
            while True:
                chunk = await readany()
                if not chunk:
                    return
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StreamError(describe_error(exc, "stream broken")) from exc

    async def read_excerpt(self, limit: int = 512) -> str:
        try:
            async with asyncio.timeout(2.0):
                body = await self._response.content.read(limit)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return ""
        return body.decode("utf-8", "replace")

    async def aclose(self) -> None:
        self._response.close()


def describe_error(exc: BaseException, what: str) -> str:
    """``what: reason`` for a failed read or connect (shared by both transports)."""
    if isinstance(exc, TimeoutError):
        return f"{what}: read timeout (no data, not even a keep-alive)"
    text = str(exc) or type(exc).__name__
    return f"{what}: {text}"


class AiohttpTransport(Transport):
    """HTTP/1.1 (and TLS) on one aiohttp session, kept for the client's life.

    No total timeout (a stream lasts as long as it lasts); ``read_timeout``
    bounds the silence between two reads, which the server's keep-alive
    comments keep short, so a dead peer is noticed.

    TLS: with default verification (or none) aiohttp's own prebuilt contexts
    serve; a CA file or the caller's context is loaded at the first ``https``
    request (see :mod:`otel_sse.client.tls`).
    """

    def __init__(
        self,
        *,
        read_timeout: float | None,
        connect_timeout: float | None,
        tls: TLSSettings | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._tls = LazyContext(tls or TLSSettings())
        self._session: aiohttp.ClientSession | None = None

    @property
    def tls(self) -> LazyContext:
        """This transport's TLS context holder."""
        return self._tls

    def _ssl_for(self, url: str) -> ssl.SSLContext | bool:
        settings = self._tls.settings
        if urlsplit(url).scheme != "https" or settings.is_default:
            return True
        if settings.verify is False:
            return False
        return self._tls.get()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                # One stream at a time: pooling would only keep dead sockets.
                force_close=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                auto_decompress=True,
                # The client sets Accept-Encoding itself (br only when it can decode it).
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
            )
        return self._session

    async def open(self, url: str, headers: Mapping[str, str]) -> StreamResponse:
        session = self._get_session()
        try:
            response = await session.get(
                url, headers=dict(headers), allow_redirects=True, ssl=self._ssl_for(url)
            )
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CertificateError(f"TLS certificate not trusted for {url}: {exc}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ConnectError(describe_error(exc, f"cannot connect to {url}")) from exc
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
