"""One root exception for everything otel-sse raises on purpose."""

from __future__ import annotations


class OtelSSEError(Exception):
    """Root of every error otel-sse raises deliberately."""


class ConfigError(OtelSSEError, ValueError):
    """A configuration value is invalid; the message names the value."""


class EventFormatError(OtelSSEError, ValueError):
    """An event cannot be written to the wire as given (CR, LF or NUL in a name or id)."""


class InvalidEventId(OtelSSEError, ValueError):
    """A Last-Event-ID that no server could have sent (too long, control characters)."""


class FilterError(OtelSSEError, ValueError):
    """A filter pattern is malformed; the message says which and why."""


class ServerError(OtelSSEError):
    """The server cannot start or is not in a state to do what was asked."""


class ClientError(OtelSSEError):
    """Base for SSE client failures."""


class ConnectError(ClientError):
    """The client could not establish the stream (network, status, content type)."""


class BadStatusError(ConnectError):
    """The server answered the stream request with an unexpected HTTP status."""

    def __init__(self, status: int, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"unexpected HTTP status {status}{': ' + reason if reason else ''}")


class BadContentTypeError(ConnectError):
    """The server answered with a Content-Type other than text/event-stream."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        super().__init__(f"expected Content-Type text/event-stream, got {content_type!r}")


class CertificateError(ConnectError):
    """The server's TLS certificate could not be verified (not retried: it will not heal)."""


class StreamError(ClientError):
    """An open stream broke: connection lost, read timeout, or a protocol error."""


class ReconnectExhaustedError(ClientError):
    """``max_reconnect_attempts`` reconnection attempts in a row failed."""

    def __init__(self, attempts: int, last_error: BaseException | None) -> None:
        self.attempts = attempts
        self.last_error = last_error
        detail = f": {last_error}" if last_error is not None else ""
        super().__init__(f"gave up after {attempts} reconnection attempts{detail}")
