"""The event log and fan-out without a server: history ring, reads across the wrap."""

from __future__ import annotations

import gc

import pytest

from otel_sse.bus import History, MemoryEventLog, StoredEvent
from otel_sse.bus.fanout import Fanout, SlowClientPolicy, Subscriber
from otel_sse.wire.decoder import SSEDecoder
from otel_sse.wire.filters import EventFilter


def _frames_types(log: MemoryEventLog, after: int, limit: int) -> tuple[list[bytes], list[str]]:
    first, last = log.history.window(after, limit)
    return log.history.frames(first, last), log.history.types(first, last)


def test_window_reads_across_the_ring_wrap_oldest_first() -> None:
    log = MemoryEventLog(history_size=5, run_id="r")
    for i in range(1, 13):
        log.append(f"t{i}", f'{{"i":{i}}}')
    history = log.history
    assert (history.first_seq, history.last_seq, len(history)) == (8, 12, 5)
    frames, types = _frames_types(log, 0, 100)  # trimmed: starts at the oldest kept
    assert types == ["t8", "t9", "t10", "t11", "t12"]
    assert frames[0].startswith(b"id: r-8\n") and frames[-1].startswith(b"id: r-12\n")
    assert _frames_types(log, 9, 2)[1] == ["t10", "t11"]
    assert _frames_types(log, 12, 10) == ([], [])
    event = history.get(10)
    assert event == StoredEvent(10, "r-10", "t10", frames[2])
    assert history.get(7) is None and history.get(13) is None


def test_byte_cap_evicts_oldest_and_keeps_the_count_right() -> None:
    log = MemoryEventLog(history_size=100, history_bytes=200, run_id="r")
    for i in range(20):
        log.append("t", "x" * 30 + str(i))
    history = log.history
    first, last = history.window(0, 1000)
    assert history.nbytes == sum(len(f) for f in history.frames(first, last)) <= 200
    assert last == 20 and len(history) == last - first + 1 >= 1


def test_history_rejects_bad_sizes_and_out_of_order_appends() -> None:
    with pytest.raises(ValueError, match="history_size"):
        History(0, 10)
    with pytest.raises(ValueError, match="history_bytes"):
        History(10, 0)
    with pytest.raises(ValueError, match="expects seq 1, got 5"):
        History(10, 1000).append(StoredEvent(5, "r-5", "t", b"data: x\n\n"))


def test_retained_events_are_invisible_to_the_garbage_collector() -> None:
    # Every young collection in the process (on the application's threads too)
    # would walk a tracked object per retained event: the ring must hold none.
    log = MemoryEventLog(history_size=5000, run_id="r")
    gc.collect()
    before = len(gc.get_objects())
    for i in range(7000):  # fills the ring, then each append evicts one
        log.append("task:progress", f'{{"i":{i}}}')
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    assert len(log.history) == 5000


class MemorySink:
    """A sink that keeps what it is written, with room set by the test."""

    def __init__(self, room: int = 0) -> None:
        self.free = room
        self.data = bytearray()
        self.ended = self.aborted = False

    def room(self) -> int:
        return self.free

    def buffered(self) -> int:
        return 0

    def write(self, data: bytes | memoryview) -> None:
        self.data += data
        self.free -= len(data)

    def end(self) -> None:
        self.ended = True

    def abort(self) -> None:
        self.aborted = True


def _reader(fanout: Fanout, patterns: list[str], cursor: int = 0,
            sink: MemorySink | None = None) -> Subscriber:
    sub = Subscriber("c", EventFilter(patterns), cursor, {}, sink=sink or MemorySink())
    fanout.attach(sub)
    return sub


def _decode(raw: bytes) -> list[tuple[str, str, str]]:
    return [(e.event, e.data, e.id) for e in SSEDecoder().feed(raw)]


def test_collect_filters_by_type_and_orders_direct_messages_by_sequence() -> None:
    log = MemoryEventLog(history_size=4, run_id="r")
    fanout = Fanout(log, max_lag=100, policy=SlowClientPolicy.DISCONNECT)
    sub = _reader(fanout, ["task:*"])
    log.append("task:created", "1")
    log.append("agent:started", "2")
    fanout.send_direct(sub, b"event: note\ndata: after-2\n\n")
    for i in range(3, 7):  # wraps the 4-slot ring; 1 and 2 fall out
        log.append("task:progress" if i % 2 else "llm:token", str(i))
    got = _decode(fanout.collect(sub))
    assert got[0][0] == "stream:gap"  # the reader was behind what the ring keeps
    assert got[1:] == [("note", "after-2", ""), ("task:progress", "3", "r-3"),
                       ("task:progress", "5", "r-5")]
    assert sub.cursor == 6 and sub.events_sent == 2
    assert fanout.collect(sub) == b""


def test_subscribers_at_one_place_with_one_filter_share_the_bytes_they_are_due() -> None:
    log = MemoryEventLog(history_size=100, run_id="r")
    fanout = Fanout(log, max_lag=100, policy=SlowClientPolicy.DISCONNECT)
    everything = [_reader(fanout, []) for _ in range(2)]
    tasks = [_reader(fanout, ["task:*"]) for _ in range(2)]
    for i in range(1, 7):
        log.append("task:progress" if i % 2 else "span:ended", str(i))
    first, second = (fanout.collect(sub) for sub in everything)
    assert first is second  # one join for both, not a copy each
    assert [e[1] for e in _decode(first)] == ["1", "2", "3", "4", "5", "6"]
    mine, theirs = (fanout.collect(sub) for sub in tasks)
    assert mine is theirs
    assert [(e[0], e[1]) for e in _decode(mine)] == [("task:progress", "1"),
                                                     ("task:progress", "3"),
                                                     ("task:progress", "5")]
    assert all(sub.cursor == 6 for sub in everything + tasks)
    assert [sub.events_sent for sub in everything + tasks] == [6, 6, 3, 3]


def test_a_shared_run_larger_than_the_room_is_cut_as_before() -> None:
    log = MemoryEventLog(history_size=100, run_id="r")
    fanout = Fanout(log, max_lag=100, policy=SlowClientPolicy.DISCONNECT)
    roomy = _reader(fanout, ["task:*"])
    for i in range(1, 5):
        log.append("task:progress", "x" * 20 + str(i))
    whole = fanout.collect(roomy)
    tight = _reader(fanout, ["task:*"])
    cut = fanout.collect(tight, limit=len(whole) // 2)
    assert 0 < len(cut) <= len(whole) // 2 and whole.startswith(cut)
    assert tight.cursor == tight.events_sent == len(_decode(cut))
    rest = fanout.collect(tight)  # from where it stopped: its own run
    assert cut + rest == whole and tight.cursor == 4


def test_the_shared_runs_kept_are_few_and_none_larger_than_a_client_buffer() -> None:
    from otel_sse.bus.fanout import SHARED_RUNS

    log = MemoryEventLog(history_size=100, run_id="r")
    fanout = Fanout(log, max_lag=100, policy=SlowClientPolicy.DISCONNECT, buffer_bytes=1024)
    readers = [_reader(fanout, [f"t{i}:*"]) for i in range(3 * SHARED_RUNS)]
    for i in range(3 * SHARED_RUNS):
        log.append(f"t{i}:x", str(i))
    for i, sub in enumerate(readers):  # a run of its own for each filter
        assert [e[1] for e in _decode(fanout.collect(sub))] == [str(i)]
    assert len(fanout._runs) == SHARED_RUNS
    big = [_reader(fanout, ["big"], cursor=log.history.last_seq) for _ in range(2)]
    for _ in range(4):
        log.append("big", "x" * 600)
    first, second = (fanout.collect(sub) for sub in big)
    assert first == second and first is not second  # delivered whole, but not kept
    assert len(first) > 1024
    assert all(len(run) <= 1024 for run, _ in fanout._runs.values())
