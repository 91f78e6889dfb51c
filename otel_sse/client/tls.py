"""TLS settings for the client's transports; each transport builds its context when it needs one.

Building a verifying context loads the system CA store (about 20 ms), so it
is done at the first ``https`` request of the transport that needs it, never
for ``http://`` URLs, and at most once per transport. A context the caller
passes in is used as given and never changed: it may be shared with other
code that relies on its settings (its ALPN protocols above all).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Sequence

__all__ = ["LazyContext", "TLSSettings", "make_ssl_context"]


@dataclasses.dataclass(frozen=True, slots=True)
class TLSSettings:
    """What the user asked for: ``verify`` (on, off, a CA file or their own
    ``SSLContext``) and ``ca_file`` (a CA bundle trusted besides the system's)."""

    verify: bool | str | ssl.SSLContext = True
    ca_file: str | None = None

    @property
    def caller_context(self) -> ssl.SSLContext | None:
        """The caller's own context, if they gave one."""
        return self.verify if isinstance(self.verify, ssl.SSLContext) else None

    @property
    def is_default(self) -> bool:
        """Verification against the system store only (nothing of the caller's to load)."""
        return self.verify is True and self.ca_file is None


def make_ssl_context(
    settings: TLSSettings, alpn: Sequence[str] | None = None
) -> ssl.SSLContext:
    """A context for ``settings``: the caller's own one unchanged (``alpn`` is then
    not applied: set the ALPN protocols on it yourself), else a new one
    offering ``alpn``."""
    own = settings.caller_context
    if own is not None:
        return own
    if settings.verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        cafile = settings.verify if isinstance(settings.verify, str) else settings.ca_file
        context = ssl.create_default_context(cafile=cafile)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


class LazyContext:
    """One transport's context, built on first use and kept."""

    __slots__ = ("_alpn", "_context", "_settings")

    def __init__(self, settings: TLSSettings, alpn: Sequence[str] | None = None) -> None:
        self._settings = settings
        self._alpn = tuple(alpn or ())
        self._context: ssl.SSLContext | None = None

    @property
    def settings(self) -> TLSSettings:
        """The settings the context is built from."""
        return self._settings

    @property
    def built(self) -> bool:
        """Whether the context exists yet (the CA store was loaded, or the caller's is in use)."""
        return self._context is not None

    def get(self) -> ssl.SSLContext:
        """The context, built now if this is the first ``https`` connection."""
        if self._context is None:
            self._context = make_ssl_context(self._settings, self._alpn)
        return self._context
