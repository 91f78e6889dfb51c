"""The HTTP/2 DATA fast path against h2's own ``send_data``: same bytes, same windows."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.settings
import pytest

from otel_sse.server.h2 import H2Handler, _Stream
from otel_sse.server.h2gate import FloodError, FrameGate, server_budget
from otel_sse.server.layer import ConnectionLayer
from otel_sse.server.routes import Router
from otel_sse.server.server import SSEServer


class _Conn:
    """What H2Handler needs of a connection, collecting what it writes."""

    def __init__(self, layer: ConnectionLayer) -> None:
        self.layer = layer
        self.client: tuple[str, int] | None = ("127.0.0.1", 1)
        self.server: tuple[str, int] | None = ("127.0.0.1", 2)
        self.write_paused = False
        self.written = bytearray()
        self.scheme = "http"

    def write(self, data: Any) -> None:
        self.written += data

    def writelines(self, parts: Any) -> None:
        for part in parts:
            self.written += part

    def buffered(self) -> int:
        return 0

    def room(self) -> int:
        return 1 << 30

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def set_deadline(self, seconds: float | None) -> None: ...


def _client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                  header_encoding=None))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384})
    return client


@pytest.mark.parametrize("size", [1, 300, 16384, 16385, 50_000])
async def test_fast_path_frames_equal_send_data(size: int) -> None:
    server = SSEServer(port=0)
    router: Router = server.router
    layer = ConnectionLayer(server.config, router)
    conn = _Conn(layer)
    handler = H2Handler(conn)
    reference = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                     header_encoding=None))
    reference.initiate_connection()
    client = _client()
    opening = client.data_to_send()
    handler.data_received(opening)
    reference.receive_data(opening)
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, [(":method", "GET"), (":path", "/nope"),
                                    (":scheme", "http"), (":authority", "x")], end_stream=False)
    request = client.data_to_send()
    reference.receive_data(request)
    # Straight to the handler's h2 state (not through its routes): only DATA is compared.
    handler.h2.receive_data(request)
    handler.h2.data_to_send()
    reference.data_to_send()
    for h in (handler.h2, reference):
        h.send_headers(stream_id, [(b":status", b"200")])
        h.data_to_send()
    stream = _Stream(stream_id)
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    conn.written.clear()
    handler.send_data(stream, payload)
    handler.flush()
    limit = reference.max_outbound_frame_size
    for start in range(0, size, limit):
        reference.send_data(stream_id, payload[start:start + limit])
    assert bytes(conn.written) == reference.data_to_send()
    assert handler.h2.outbound_flow_control_window == reference.outbound_flow_control_window
    assert (handler.h2.local_flow_control_window(stream_id)
            == reference.local_flow_control_window(stream_id))


def test_frame_gate_budget_credit_and_header_blocks() -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"\x00" * 8
    gate = FrameGate(rate=10, max_header_block=100, now=0.0)
    gate.feed(preface + ping * 20, now=0.0)  # the burst: 2 x rate
    with pytest.raises(FloodError):
        gate.feed(ping, now=0.0)
    gate = FrameGate(rate=10, max_header_block=100, now=0.0)
    gate.feed(preface, now=0.0)
    for second in range(1, 20):  # the rate itself is always fine
        gate.feed(ping * 10, now=float(second))
    gate.credit(8192 * 20)  # data sent earns acknowledgements
    gate.feed(ping * 20, now=19.0)
    # Frames split across reads are counted once each.
    split = FrameGate(rate=10, max_header_block=100, now=0.0)
    data = preface + ping * 20
    for i in range(len(data)):
        split.feed(data[i:i + 1], now=0.0)
    with pytest.raises(FloodError):
        split.feed(ping, now=0.0)
    headers = FrameGate(rate=10, max_header_block=100, now=0.0)
    with pytest.raises(FloodError, match="header block"):
        headers.feed(preface + b"\x00\x00\x50\x01\x00\x00\x00\x00\x01" + b"\x00" * 80
                     + b"\x00\x00\x50\x09\x00\x00\x00\x00\x01" + b"\x00" * 80, now=0.0)


def test_connections_within_their_own_budget_share_the_servers() -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"\x00" * 8
    shared = server_budget(10, now=0.0)  # 200/s for all, bursts of 400
    gates = [FrameGate(rate=10, max_header_block=100, now=0.0, shared=shared)
             for _ in range(30)]
    for gate in gates[:20]:  # each at its own burst: 20 x 20 = the shared 400
        gate.feed(preface + ping * 20, now=0.0)
    with pytest.raises(FloodError, match="shared by all connections"):
        gates[20].feed(preface + ping, now=0.0)
    gates[21].feed(preface + ping * 10, now=1.0)  # a second later there is room again
