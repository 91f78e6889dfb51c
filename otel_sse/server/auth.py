"""Who may ask what: bearer tokens, the browser session cookie, allowed host names.

* A route is public, for subscribers (the stream, stats, the dashboard's data) or
  for producers (OTLP ingest, publish). With a token configured, subscribers
  present ``Authorization: Bearer <token>``; producers the producer token (the
  same one unless a separate one is set). Tokens are compared in constant time.
* Browsers' ``EventSource`` cannot send headers. A page of the gateway's own
  exchanges the token (``POST /v1/session`` with the header) for a session
  cookie: ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (other
  sites' pages cannot make the browser send it), signed with a key derived from
  the token (changing the token ends every session) and expiring after
  ``session_ttl``. It is accepted on ``GET``/``HEAD`` of subscriber routes only,
  so it can read the stream but never publish.
* A server bound to loopback answers only requests naming a loopback host (or
  one listed in ``allowed_hosts``): a web page that rebinds its own DNS name to
  127.0.0.1 is refused (DNS rebinding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from enum import StrEnum

from otel_sse.server.config import ServerConfig, is_loopback
from otel_sse.server.request import Request, Response, text_response

SESSION_COOKIE = "otel_sse_session"


class Access(StrEnum):
    PUBLIC = "public"
    SUBSCRIBE = "subscribe"
    PRODUCE = "produce"


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:3000
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Gate:
    """The checks every request passes before it reaches a route."""

    def __init__(self, config: ServerConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.loopback_bind = is_loopback(config.host)
        self.allowed_hosts = frozenset(h.lower() for h in config.allowed_hosts)
        self._subscribe = config.token.encode() if config.token else None
        self._produce = config.ingest_token.encode() if config.ingest_token else None
        self._session_key = (hashlib.sha256(b"otel-sse session\0" + self._subscribe).digest()
                             if self._subscribe else None)

    @property
    def auth_required(self) -> bool:
        return self._subscribe is not None

    # -- hosts -----------------------------------------------------------------

    def host_refused(self, request: Request) -> Response | None:
        """A 403 when the request names a host this server must not answer for."""
        if not self.loopback_bind and not self.allowed_hosts:
            return None
        raw = request.header(b"host")
        if raw is None:
            return text_response(400, "a Host header is required")
        name = _host_name(raw)
        if name in self.allowed_hosts or (self.loopback_bind and is_loopback(name)):
            return None
        return text_response(
            403, f"host {name[:100]!r} is not served here: a loopback server answers only "
            "loopback names (this protects against DNS rebinding); add it with --allowed-host")

    # -- credentials -------------------------------------------------------------

    def refused(self, request: Request, access: Access) -> Response | None:
        """A 401 when ``request`` may not use a route of this ``access``."""
        if access is Access.PUBLIC:
            return None
        expected = self._produce if access is Access.PRODUCE else self._subscribe
        if expected is None:
            return None
        presented = self._bearer(request)
        if presented is not None:
            if hmac.compare_digest(presented, expected):
                return None
            return self._unauthorized('error="invalid_token"',
                                      "the token is not valid for this route")
        if access is Access.SUBSCRIBE and request.method in ("GET", "HEAD") \
                and self.session_valid(request):
            return None
        what = "producer token" if access is Access.PRODUCE and self.config.producer_token \
            else "token"
        return self._unauthorized("", f"this route needs Authorization: Bearer <{what}>")

    @staticmethod
    def _unauthorized(detail: str, reason: str) -> Response:
        challenge = 'Bearer realm="otel-sse"' + (f", {detail}" if detail else "")
        return text_response(401, reason, [(b"www-authenticate", challenge.encode())])

    @staticmethod
    def _bearer(request: Request) -> bytes | None:
        value = request.header(b"authorization")
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return b""  # presented, and not valid
        return token.strip().encode("latin-1")

    # -- sessions ------------------------------------------------------------------

    def _sign(self, expiry: int) -> str:
        assert self._session_key is not None
        digest = hmac.new(self._session_key, f"v1.{expiry}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def session_cookie(self) -> bytes:
        """``Set-Cookie`` value of a new session (the token was just checked)."""
        expiry = int(self.clock() + self.config.session_ttl)
        secure = "; Secure" if self.config.tls else ""
        return (f"{SESSION_COOKIE}=v1.{expiry}.{self._sign(expiry)}; Path=/; HttpOnly; "
                f"SameSite=Strict; Max-Age={int(self.config.session_ttl)}{secure}").encode()

    @staticmethod
    def clear_cookie() -> bytes:
        return f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0".encode()

    def session_valid(self, request: Request) -> bool:
        if self._session_key is None:
            return False
        for name, value in request.headers:
            if name != b"cookie":
                continue
            for part in value.decode("latin-1").split(";"):
                key, _, cookie = part.strip().partition("=")
                if key == SESSION_COOKIE and self._cookie_valid(cookie):
                    return True
        return False

    def _cookie_valid(self, cookie: str) -> bool:
        version, _, rest = cookie.partition(".")
        expiry_text, _, signature = rest.partition(".")
        if version != "v1" or not expiry_text.isdigit():
            return False
        expiry = int(expiry_text)
        return expiry > self.clock() and hmac.compare_digest(signature, self._sign(expiry))
