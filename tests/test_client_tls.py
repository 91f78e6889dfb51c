"""The client's TLS contexts: a caller's context is never changed; ours are built lazily."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from otel_sse.client import SSEClient
from otel_sse.client import tls as tls_module
from otel_sse.client.tls import TLSSettings
from tests._client_helpers import FAST, SSEApp, collect, hypercorn_server


async def negotiated(base: str, context: ssl.SSLContext) -> str | None:
    """The protocol a server that speaks h2 and HTTP/1.1 picks for ``context``."""
    port = urlsplit(base).port
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    selected = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return selected  # type: ignore[no-any-return]


async def test_a_callers_context_is_used_unchanged(tls_files: dict[str, Path]) -> None:
    app = SSEApp()
    async with hypercorn_server(app, tls_files) as base:
        context = ssl.create_default_context(cafile=str(tls_files["ca"]))
        client = SSEClient(base + "/events", http2=True, verify=context, **FAST)
        async with client:
            await collect(client, 2)
            # It offers no ALPN protocol, so the server speaks HTTP/1.1.
            assert client.get_stats()["http_version"] == "1.1"
        # Still true afterwards: the client did not add h2 to the caller's context.
        assert await negotiated(base, context) is None

        # A caller who wants HTTP/2 with their own context says so on it.
        context.set_alpn_protocols(["h2", "http/1.1"])
        client = SSEClient(base + "/events", http2=True, verify=context, **FAST)
        async with client:
            await collect(client, 2)
            assert client.get_stats()["http_version"] == "2"


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The ALPN list of every context the client builds."""
    calls: list[tuple[str, ...]] = []
    original = tls_module.make_ssl_context

    def spy(settings: TLSSettings, alpn: tuple[str, ...] | None = None) -> ssl.SSLContext:
        calls.append(tuple(alpn or ()))
        return original(settings, alpn)

    monkeypatch.setattr(tls_module, "make_ssl_context", spy)
    return calls


async def test_no_context_for_cleartext(
    tls_files: dict[str, Path], built: list[tuple[str, ...]]
) -> None:
    app = SSEApp()
    async with hypercorn_server(app) as base:
        for mode in (True, "prior-knowledge"):
            client = SSEClient(base + "/events", http2=mode, ca_file=str(tls_files["ca"]), **FAST)
            async with client:
                await collect(client, 1)
    assert built == []


async def test_one_context_per_transport_that_needs_one(
    tls_files: dict[str, Path], built: list[tuple[str, ...]]
) -> None:
    ca = str(tls_files["ca"])
    async with hypercorn_server(SSEApp(), tls_files) as base:
        client = SSEClient(base + "/events", http2=True, ca_file=ca, **FAST)
        async with client:
            await collect(client, 4)  # two connections, one context
            assert client.get_stats()["http_version"] == "2"
    # HTTP/2 was agreed: the HTTP/1.1 fallback never loaded the CA store.
    assert built == [("h2", "http/1.1")]

    built.clear()
    async with hypercorn_server(SSEApp(), tls_files, alpn=["http/1.1"]) as base:
        client = SSEClient(base + "/events", http2=True, ca_file=ca, **FAST)
        async with client:
            await collect(client, 4)
            assert client.get_stats()["http_version"] == "1.1"
    # The fallback has a context of its own, offering no h2.
    assert built == [("h2", "http/1.1"), ()]
