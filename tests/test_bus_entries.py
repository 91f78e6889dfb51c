"""The Redis bus's sans-I/O parts: the outbox's bounds and order, events as stream entries,
stream ids as event ids."""

from __future__ import annotations

import threading

from otel_sse.bus.ids import parse_id
from otel_sse.bus.outbox import Outbox, Pending, size_of
from otel_sse.bus.stream_entry import (
    Decoder,
    Entry,
    fields_of,
    frame_of,
    parse_stream_id,
    stream_id_of,
)
from otel_sse.wire.decoder import SSEDecoder


def item(n: int, pad: int = 0) -> Pending:
    fields = fields_of("job:step", f'{{"n":{n},"pad":"{"x" * pad}"}}', None, "")
    return Pending(fields, size_of(fields))


def test_the_outbox_keeps_order_is_bounded_in_bytes_and_counts_what_it_drops() -> None:
    woken: list[int] = []
    outbox = Outbox(max_bytes=4 * item(0, 100).size, wake=lambda: woken.append(1))
    assert outbox.peek(10, 1 << 20) == []  # idle: the next put wakes the writer
    assert all(outbox.put(item(n, 100)) for n in range(4))
    assert len(woken) == 1  # once, not per put
    assert not outbox.put(item(4, 100))
    assert (outbox.dropped, len(outbox)) == (1, 4)
    assert not outbox.put_all([item(5), item(6)])  # all or none
    assert (outbox.dropped, len(outbox)) == (3, 4)

    batch = outbox.peek(3, 1 << 20)
    assert [p.fields[b"d"] for p in batch] == [item(n, 100).fields[b"d"] for n in range(3)]
    assert len(outbox) == 4  # taken, not removed: what fails is sent again, first
    outbox.commit(3)
    assert len(outbox) == 1 and outbox.nbytes == item(3, 100).size
    assert len(outbox.peek(10, 1)) == 1  # at least one, however large
    outbox.commit(1)
    assert outbox.peek(10, 1 << 20) == [] and outbox.nbytes == 0
    outbox.put(item(7))
    assert len(woken) == 2


def test_the_outbox_takes_puts_from_many_threads() -> None:
    outbox = Outbox(max_bytes=1 << 30)

    def produce(base: int) -> None:
        for n in range(1000):
            outbox.put(item(base + n))

    threads = [threading.Thread(target=produce, args=(i * 1000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outbox) == 4000 and outbox.dropped == 0
    assert outbox.nbytes == sum(p.size for p in outbox.peek(10_000, 1 << 30))


def test_an_entry_becomes_the_frame_a_client_decodes() -> None:
    decoder = Decoder()
    fields = {b"t": b"job:step", b"d": b'{"n":1}', b"s": b"svc/1"}
    entry = decoder.decode(fields)
    assert entry == Entry("job:step", b"job:step", b'{"n":1}', None, "svc/1")
    frame = frame_of("1764251234567-3", entry)
    assert frame == b'id: 1764251234567-3\nevent: job:step\ndata: {"n":1}\n\n'
    # Data with line breaks, and a retry, go through the full encoder.
    multi = decoder.decode({b"t": b"note", b"d": b"a\nb", b"r": b"250"})
    assert isinstance(multi, Entry) and multi.retry == 250
    (event,) = SSEDecoder().feed(frame_of("5-0", multi))
    assert (event.id, event.event, event.data, event.retry) == ("5-0", "note", "a\nb", 250)


def test_entries_that_are_not_events_are_told_apart() -> None:
    decoder = Decoder()
    assert decoder.decode({b"k": b"svc/1"}) == "svc/1"  # a producer's keepalive
    assert decoder.decode({b"t": b"bad\nname", b"d": b"{}"}) is None
    assert decoder.decode({b"other": b"field"}) is None
    assert decoder.decode({b"t": b"\xff\xfe", b"d": b"{}"}) is None
    assert decoder.invalid == 3


def test_stream_ids_and_the_ids_clients_send_back() -> None:
    assert parse_stream_id(b"1764251234567-12") == (1764251234567, 12)
    assert parse_stream_id("0-0") == (0, 0)
    for bad in ("abc-1", "1-", "-1", "1-2-3", "1.5-2"):
        assert parse_stream_id(bad) is None
    event_id = parse_id("1764251234567-12")
    assert event_id is not None and stream_id_of(event_id) == (1764251234567, 12)
    direct = parse_id("1764251234567-12.3")  # a message sent to one client after it
    assert direct is not None and stream_id_of(direct) == (1764251234567, 12)
    memory = parse_id("a1b2c3d4-7")  # an in-process log's id
    assert memory is not None and stream_id_of(memory) is None
