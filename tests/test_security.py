"""Security by default: tokens, the browser session, loopback binds, Host checks, CORS,
and tokens never shown."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from otel_sse.errors import ConfigError
from otel_sse.server import ServerConfig, SSEServer
from otel_sse.server.auth import SESSION_COOKIE, Gate
from otel_sse.server.request import Request
from tests.sse_helpers import running_server, stream

TOKEN = "s3cret-subscriber-token"
PRODUCER = "s3cret-producer-token"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_route_but_liveness_needs_the_token() -> None:
    async with running_server(token=TOKEN) as server, aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/events") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == 'Bearer realm="otel-sse"'
            assert (await resp.text()).count("\n") == 1
        async with session.get(f"{server.url}/events", headers=_bearer("wrong-token-x")) as resp:
            assert resp.status == 401
            assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
        async with session.get(f"{server.url}/healthz") as resp:  # liveness: status only
            assert resp.status == 200 and await resp.json() == {"status": "ok"}
        async with session.get(f"{server.url}/healthz", headers=_bearer(TOKEN)) as resp:
            assert "clients" in await resp.json()
        async with session.get(f"{server.url}/", headers=_bearer(TOKEN)) as resp:
            assert resp.status == 200
        for path in ("/v1/traces", "/v1/events"):
            async with session.post(f"{server.url}{path}", data=b"{}",
                                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 401
        async with stream(f"{server.url}/events", headers=_bearer(TOKEN)) as (resp, reader):
            assert resp.status == 200
            await reader.until("connected")


async def test_a_separate_producer_token() -> None:
    async with running_server(token=TOKEN, producer_token=PRODUCER) as server, \
            aiohttp.ClientSession() as session:
        body = json.dumps({"event": "deploy:done", "data": {"v": 1}})
        headers = {"Content-Type": "application/json"}
        async with session.post(f"{server.url}/v1/events", data=body,
                                headers={**headers, **_bearer(TOKEN)}) as resp:
            assert resp.status == 401  # the subscriber token does not publish
        async with session.post(f"{server.url}/v1/events", data=body,
                                headers={**headers, **_bearer(PRODUCER)}) as resp:
            assert resp.status == 202
        async with session.get(f"{server.url}/events", headers=_bearer(PRODUCER)) as resp:
            assert resp.status == 401  # and the producer token does not subscribe


async def test_browser_session_cookie_reads_the_stream_and_nothing_else() -> None:
    async with running_server(token=TOKEN) as server:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.post(f"{server.url}/v1/session", headers=_bearer(TOKEN)) as resp:
                assert resp.status == 204
                cookie = resp.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                assert TOKEN not in cookie
            async with stream(f"{server.url}/events", session=session) as (resp, reader):
                assert resp.status == 200
                await reader.until("connected")
            async with session.post(f"{server.url}/v1/events", data=b"{}",
                                    headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 401  # a cookie never publishes (no CSRF)
            async with session.delete(f"{server.url}/v1/session", headers=_bearer(TOKEN)) as r:
                assert r.status == 204
            async with session.get(f"{server.url}/events") as resp:
                assert resp.status == 401


def test_session_cookies_expire_and_cannot_be_forged() -> None:
    now = [1000.0]
    config = ServerConfig.build(token=TOKEN, session_ttl=60, environ={})
    gate = Gate(config, clock=lambda: now[0])
    value = gate.session_cookie().decode().split(";", 1)[0]

    def request(cookie: str) -> Request:
        return Request("GET", "/events", "", [(b"cookie", cookie.encode())], "1.1")

    assert gate.session_valid(request(value))
    name, _, signed = value.partition("=")
    version, expiry, signature = signed.split(".")
    assert not gate.session_valid(request(f"{name}={version}.{int(expiry) + 9999}.{signature}"))
    assert not gate.session_valid(request(f"{SESSION_COOKIE}=v1.99999999999.AAAA"))
    other = Gate(ServerConfig.build(token="another-token-1", environ={}),
                 clock=lambda: now[0])
    assert not other.session_valid(request(value))  # a new token ends old sessions
    now[0] += 61
    assert not gate.session_valid(request(value))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "gateway.example"])
def test_a_non_loopback_bind_needs_a_token_or_an_explicit_opt_out(host: str) -> None:
    with pytest.raises(ConfigError, match="insecure-no-auth"):
        ServerConfig.build(host=host, environ={})
    assert ServerConfig.build(host=host, token=TOKEN, environ={}).host == host
    assert ServerConfig.build(host=host, insecure_no_auth=True, environ={}).host == host


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/relative", "localhost:16686", ""])
def test_the_dashboards_jaeger_url_must_be_an_absolute_http_url(url: str) -> None:
    # The page builds a link from it for every trace: no script or relative URLs.
    with pytest.raises(ConfigError, match="jaeger_url must be an absolute http"):
        ServerConfig.build(jaeger_url=url, environ={})
    assert ServerConfig.build(jaeger_url="https://jaeger.example/", environ={}).jaeger_url \
        == "https://jaeger.example/"


async def test_loopback_server_refuses_foreign_host_names() -> None:
    async with running_server(allowed_hosts=["my-dev.box"]) as server, \
            aiohttp.ClientSession() as session:
        for host, status in (("attacker.example", 403), (f"attacker.example:{server.port}", 403),
                             (f"localhost:{server.port}", 200), ("[::1]", 200),
                             ("my-dev.box", 200), (f"127.0.0.1:{server.port}", 200)):
            async with session.get(f"{server.url}/healthz", headers={"Host": host}) as resp:
                assert resp.status == status, host


async def test_the_token_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    config = ServerConfig.build(token=TOKEN, producer_token=PRODUCER, environ={})
    assert TOKEN not in repr(config) and PRODUCER not in repr(config)
    with pytest.raises(ConfigError) as info:
        ServerConfig.build(token="short", environ={})
    assert "short" not in str(info.value)
    with caplog.at_level(logging.DEBUG):
        async with running_server(token=TOKEN, producer_token=PRODUCER) as server, \
                aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/events", headers=_bearer("nope-nope")):
                pass
            async with session.get(f"{server.url}/healthz", headers=_bearer(TOKEN)) as resp:
                text = await resp.text()
            stats = json.dumps(server.get_stats())
    for shown in (text, stats, caplog.text):
        assert TOKEN not in shown and PRODUCER not in shown


def test_token_file_and_environment(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "token"  # type: ignore[operator]
    path.write_text(TOKEN + "\n")
    assert ServerConfig.build(token_file=str(path), environ={}).token == TOKEN
    env = {"OTEL_SSE_TOKEN_FILE": str(path), "OTEL_SSE_PORT": "4000"}
    config = ServerConfig.build(environ=env, file={"port": 5000, "max_clients": 7})
    assert (config.token, config.port, config.max_clients) == (TOKEN, 4000, 7)
    assert ServerConfig.build(environ=env, port=6000).port == 6000  # options win
    server = SSEServer(config=config)
    assert server.config is config
