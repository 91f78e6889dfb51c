"""HTTP/1.1, HTTP/2 over TLS (ALPN) and h2c prior knowledge, with curl and an h2 client."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest

from otel_sse.errors import ServerError
from otel_sse.server import SSEServer
from tests.sse_helpers import parse_block, running_server

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


async def curl_events(args: list[str], server: SSEServer, count: int) -> tuple[str, list[str]]:
    """Run curl on the stream, publish ``count`` events once connected, return head and events."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-N", "-i", "--max-time", "10", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    text = ""
    try:
        while "event: connected" not in text:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), 10)
            assert chunk, f"curl ended early: {text!r}"
            text += chunk.decode()
        for i in range(count):
            server.publish("task:progress", {"taskId": "t", "i": i})
        while text.count("event: task:progress") < count:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), 10)
            assert chunk, f"curl ended early: {text!r}"
            text += chunk.decode()
    finally:
        proc.kill()
        await proc.wait()
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    events = [parse_block(b).event for b in body.split("\n\n") if b.strip()]
    return head, events


async def test_curl_http1() -> None:
    async with running_server() as server:
        head, events = await curl_events(["--http1.1", f"{server.url}/events"], server, 3)
    assert head.startswith("HTTP/1.1 200")
    assert events == ["connected", "task:progress", "task:progress", "task:progress"]


async def test_curl_h2c_prior_knowledge() -> None:
    async with running_server() as server:
        head, events = await curl_events(
            ["--http2-prior-knowledge", f"{server.url}/events"], server, 3)
    assert head.startswith("HTTP/2 200")
    assert "connection:" not in head.lower()
    assert events[0] == "connected" and events.count("task:progress") == 3


async def test_curl_http2_over_tls(tls_files: dict[str, Path]) -> None:
    async with running_server(http2=True, cert_path=str(tls_files["cert"]),
                              key_path=str(tls_files["key"])) as server:
        assert server.url.startswith("https://")
        head, events = await curl_events(
            ["--http2", "--cacert", str(tls_files["ca"]), f"{server.url}/events"], server, 2)
        head1, events1 = await curl_events(
            ["--http1.1", "--cacert", str(tls_files["ca"]), f"{server.url}/events"], server, 1)
    assert head.startswith("HTTP/2 200")
    assert "connection:" not in head.lower()
    assert events.count("task:progress") == 2
    assert head1.startswith("HTTP/1.1 200") and events1[0] == "connected"


async def test_tls_problems_are_clear_at_start(tmp_path: Path,
                                               tls_files: dict[str, Path]) -> None:
    missing = SSEServer(port=0, host="127.0.0.1", http2=True,
                        cert_path=str(tmp_path / "none.pem"), key_path=str(tls_files["key"]))
    with pytest.raises(ServerError, match=r"cert_path .*none\.pem"):
        await missing.start()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    broken = SSEServer(port=0, host="127.0.0.1", http2=True,
                       cert_path=str(garbage), key_path=str(tls_files["key"]))
    with pytest.raises(ServerError, match="cannot load TLS certificate"):
        await broken.start()


class H2Client:
    """A minimal h2 client: many streams on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**24})
        self.conn.increment_flow_control_window(2**30)
        self.headers: dict[int, dict[str, str]] = {}
        self.bodies: dict[int, str] = {}

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> H2Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
        client = cls(reader, writer)
        writer.write(client.conn.data_to_send())
        return client

    def open(self, path: str) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [
            (":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
            (":path", path), ("accept", "text/event-stream")], end_stream=True)
        self.bodies[stream_id] = ""
        self.writer.write(self.conn.data_to_send())
        return stream_id

    async def pump_until(self, done: object, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not done():  # type: ignore[operator]
                data = await self.reader.read(65536)
                assert data, "connection closed"
                for event in self.conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        self.headers[event.stream_id] = {
                            k.decode(): v.decode() for k, v in event.headers}
                    elif isinstance(event, h2.events.DataReceived):
                        self.bodies[event.stream_id] += event.data.decode()
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id)
                self.writer.write(self.conn.data_to_send())
        await asyncio.wait_for(loop(), timeout)

    async def close(self) -> None:
        self.conn.close_connection()
        self.writer.write(self.conn.data_to_send())
        self.writer.close()
        await self.writer.wait_closed()


async def test_fifty_streams_multiplexed_on_one_h2c_connection() -> None:
    async with running_server() as server:
        client = await H2Client.connect(server.port)
        streams = [client.open(f"/events?filters=task:*&n={i}") for i in range(50)]
        await client.pump_until(lambda: all("event: connected" in client.bodies[s]
                                            for s in streams))
        assert len(server.get_clients()) == 50
        assert all(c["protocol"] == "HTTP/2" for c in server.get_clients())
        for i in range(20):
            server.publish("task:progress", {"i": i})
            server.publish("agent:spawned", {"i": i})
        await client.pump_until(lambda: all(client.bodies[s].count("task:progress") == 20
                                            for s in streams))
        for stream_id in streams:
            head = client.headers[stream_id]
            assert head[":status"] == "200" and "connection" not in head
            blocks = [parse_block(b) for b in client.bodies[stream_id].split("\n\n") if b]
            assert [b.data["i"] for b in blocks if b.event == "task:progress"] == list(range(20))
            assert all(b.event != "agent:spawned" for b in blocks)
        await client.close()


async def test_h2_over_tls_alpn(tls_files: dict[str, Path]) -> None:
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    context.set_alpn_protocols(["h2"])
    async with running_server(http2=True, cert_path=str(tls_files["cert"]),
                              key_path=str(tls_files["key"])) as server:
        client = await H2Client.connect(server.port, context)
        ssl_object = client.writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "h2"
        stream_id = client.open("/events")
        await client.pump_until(lambda: "event: connected" in client.bodies[stream_id])
        server.publish("llm:token", {"token": "hi"})
        await client.pump_until(lambda: "llm:token" in client.bodies[stream_id])
        assert "connection" not in client.headers[stream_id]
        data = json.loads(client.bodies[stream_id].split("event: llm:token\ndata: ")[1]
                          .split("\n")[0])
        assert data["token"] == "hi"
        await client.close()
