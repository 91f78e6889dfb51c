"""SSEDecoder against the WHATWG "Interpreting an event stream" rules."""

from __future__ import annotations

import random

import pytest

from otel_sse.wire import RawEvent, SSEDecoder, encode_event


def parse(stream: bytes, decoder: SSEDecoder[RawEvent] | None = None) -> list[RawEvent]:
    decoder = decoder or SSEDecoder()
    return decoder.feed(stream) + decoder.end()


def parse_split(stream: bytes, sizes: list[int]) -> list[RawEvent]:
    decoder = SSEDecoder()
    events: list[RawEvent] = []
    pos = 0
    for size in sizes:
        events += decoder.feed(stream[pos : pos + size])
        pos += size
    events += decoder.feed(stream[pos:])
    return events + decoder.end()


def reference(stream: bytes) -> tuple[list[RawEvent], str, int | None]:
    """The standard's algorithm written as plainly as possible (one line at a time)."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\r":
            lines.append("".join(current))
            current = []
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif ch == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    events: list[RawEvent] = []
    data, event_type, id_buffer, last_id = "", "", "", ""
    retry: int | None = None
    block_retry: int | None = None
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data == "":
                event_type = ""
                block_retry = None
                continue
            if data.endswith("\n"):
                data = data[:-1]
            events.append(RawEvent(event_type or "message", data, last_id, block_retry))
            data, event_type, block_retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\0" not in value:
                id_buffer = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = block_retry = int(value)
    return events, last_id, retry


# ----------------------------------------------------------------- basics


def test_basic_event_and_default_type() -> None:
    assert parse(b"data: hello\n\n") == [RawEvent("message", "hello", "", None)]
    assert parse(b"event: task:created\ndata: {}\n\n") == [RawEvent("task:created", "{}", "")]
    assert parse(b"event:\ndata: x\n\n") == [RawEvent("message", "x", "")]


def test_multiline_data_joined_with_lf_and_one_trailing_lf_removed() -> None:
    assert parse(b"data: a\ndata: b\n\n")[0].data == "a\nb"
    assert parse(b"data: a\ndata\n\n")[0].data == "a\n"
    assert parse(b"data\ndata\n\n")[0].data == "\n"
    assert parse(b"data:\n\n")[0].data == ""


def test_one_leading_space_only() -> None:
    assert parse(b"data:x\n\n")[0].data == "x"
    assert parse(b"data: x\n\n")[0].data == "x"
    assert parse(b"data:  x\n\n")[0].data == " x"
    assert parse(b"data:\tx\n\n")[0].data == "\tx"
    assert parse(b"event:  spaced\ndata: 1\n\n")[0].event == " spaced"
    assert parse(b"data: a: b\n\n")[0].data == "a: b"


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert parse(b"data\n\n") == [RawEvent("message", "", "")]
    assert parse(b"id: 5\nid\ndata: x\n\n")[0].id == ""
    assert parse(b"event: x\nevent\ndata: y\n\n")[0].event == "message"


def test_comments_ignored() -> None:
    assert parse(b": keep-alive 123\n\n") == []
    assert parse(b":\ndata: a\n: comment in block\ndata: b\n\n")[0].data == "a\nb"
    assert parse(b": only comments\n: and more\n") == []


def test_unknown_fields_ignored() -> None:
    assert parse(b"foo: bar\ndata: x\nDATA: y\nData: z\n\n") == [RawEvent("message", "x", "")]
    assert parse(b"foo: bar\n\n") == []
    assert parse(b" data: x\n\n") == []


def test_empty_data_dispatches_nothing() -> None:
    assert parse(b"event: x\n\n") == []
    assert parse(b"\n\n\n") == []
    assert parse(b"event: x\n\ndata: y\n\n") == [RawEvent("message", "y", "")]


def test_unfinished_block_dropped_at_end() -> None:
    assert parse(b"data: a\n\ndata: b\n") == [RawEvent("message", "a", "")]
    assert parse(b"data: a\n\ndata: b") == [RawEvent("message", "a", "")]
    assert parse(b"data: a") == []
    decoder = SSEDecoder()
    decoder.feed(b"data: b\n")
    assert decoder.end() == []
    assert decoder.feed(b"data: c\n\n") == [RawEvent("message", "c", "")]


# -------------------------------------------------------------------- ids


def test_id_carries_over_and_empty_id_resets() -> None:
    events = parse(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 7\ndata: d\n\n")
    assert [e.id for e in events] == ["1", "1", "", "7"]


def test_id_with_nul_ignored() -> None:
    assert parse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")[1].id == "1"
    assert parse(b"id: \x00\ndata: b\n\n")[0].id == ""
    assert parse(b"id: a\x00b\nevent: e\ndata: b\n\n") == [RawEvent("e", "b", "")]


def test_last_event_id_updated_even_without_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 42\n\n") == []
    assert decoder.last_event_id == "42"
    assert decoder.feed(b"data: x\n\n") == [RawEvent("message", "x", "42")]


def test_id_of_unfinished_block_not_committed() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert decoder.last_event_id == "1"
    decoder.end()
    assert decoder.last_event_id == "1"
    assert decoder.feed(b"data: c\n\n") == [RawEvent("message", "c", "1")]


def test_last_event_id_kept_across_reset_and_initial_value() -> None:
    decoder = SSEDecoder("resume-9")
    assert decoder.last_event_id == "resume-9"
    assert decoder.feed(b"data: x\n\n")[0].id == "resume-9"
    decoder.feed(b"id: 10\ndata: y\n\n")
    decoder.reset()
    assert decoder.last_event_id == "10"
    assert decoder.feed(b"data: z\n\n")[0].id == "10"
    with pytest.raises(ValueError):
        SSEDecoder("bad\nid")


def test_set_last_event_id_keeps_a_partly_fed_event() -> None:
    decoder = SSEDecoder()
    # A half-fed block: a whole field line, a partial line and a split
    # multi-byte character (é is C3 A9), all pending when the id changes.
    assert decoder.feed(b"\xef\xbb\xbfevent: note\ndata: caf\xc3") == []
    decoder.set_last_event_id("resume-7")
    assert decoder.last_event_id == "resume-7"
    assert decoder.feed(b"\xa9\n\n") == [RawEvent("note", "caf\u00e9", "resume-7")]
    # An id later in the block still wins, as usual.
    decoder.feed(b"data: x\n")
    decoder.set_last_event_id("8")
    assert decoder.feed(b"id: 9\n\n") == [RawEvent("message", "x", "9")]
    assert decoder.last_event_id == "9"
    with pytest.raises(ValueError):
        decoder.set_last_event_id("bad\rid")
    assert decoder.last_event_id == "9"


# ------------------------------------------------------------------ retry


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"retry: 5000", 5000),
        (b"retry:0", 0),
        (b"retry: 0012", 12),
        (b"retry: 5s", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry: ", None),
        (b"retry:  10", None),
        (b"retry: \xd9\xa3", None),  # ARABIC-INDIC DIGIT THREE: a digit, not ASCII
        (b"retry: \xc2\xb2", None),  # SUPERSCRIPT TWO
    ],
)
def test_retry_only_ascii_digits(line: bytes, expected: int | None) -> None:
    decoder = SSEDecoder()
    events = decoder.feed(line + b"\ndata: x\n\n")
    assert decoder.retry == expected
    assert events[0].retry == expected


def test_retry_applies_without_dispatch_and_persists() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 2500\n\n") == []
    assert decoder.retry == 2500
    decoder.feed(b"retry: 300\n")  # unfinished block: the field still applies
    assert decoder.retry == 300
    decoder.reset()
    assert decoder.retry == 300
    assert decoder.feed(b"data: x\n\n")[0].retry is None


# ------------------------------------------------------------- line ends


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_every_line_end(eol: bytes) -> None:
    stream = eol.join([b"id: 1", b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert parse(stream) == [RawEvent("e", "a\nb", "1"), RawEvent("message", "c", "1")]


def test_mixed_line_ends() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    assert parse(stream) == [RawEvent("message", "a\nb\nc", ""), RawEvent("message", "d", "")]


def test_crlf_split_across_feeds_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r") == [RawEvent("message", "a", "")]
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [RawEvent("message", "b", "")]


def test_cr_cr_is_a_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [RawEvent("message", "a", "")]


# ------------------------------------------------------------ BOM, UTF-8


def test_one_leading_bom_stripped() -> None:
    bom = b"\xef\xbb\xbf"
    assert parse(bom + b"data: a\n\n") == [RawEvent("message", "a", "")]
    # A second BOM is part of the first line: field name "\ufeffdata", unknown.
    assert parse(bom + bom + b"data: a\n\n") == []
    # Not at the start: an ordinary character.
    assert parse(b"data: " + bom + b"x\n\n")[0].data == "\ufeffx"


def test_bom_split_across_feeds() -> None:
    assert parse_split(b"\xef\xbb\xbfdata: a\n\n", [1, 1, 1]) == [RawEvent("message", "a", "")]


def test_bom_again_after_reset() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"\xef\xbb\xbfdata: a\n\n")
    decoder.reset()
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [RawEvent("message", "b", "")]


def test_multibyte_split_across_feeds() -> None:
    stream = "data: é€😀 naïve\n\n".encode()
    expected = [RawEvent("message", "é€😀 naïve", "")]
    for cut in range(len(stream) + 1):
        assert parse_split(stream, [cut]) == expected, cut


def test_invalid_utf8_replaced_and_counted() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"data: a\xffb\n\ndata: \xc3\n\n")
    assert [e.data for e in events] == ["a\ufffdb", "\ufffd"]
    assert decoder.invalid_sequences == 2


# ------------------------------------------------- splits, bytes, fuzzing

STREAM = (
    "\ufeff: hello\r\n"
    "retry: 1500\n"
    "id: 1\nevent: task:created\ndata: {\"taskId\":\"t-é\"}\n\n"
    "data: line1\rdata: line2\r\r"
    "id: 2\r\nevent: agent:spawned\r\ndata: 😀\r\n\r\n"
    "id: bad\x00id\ndata: keeps id 2\n\n"
    "id\ndata:x\n\n"
    "event: only-type\n\n"
    "data: tail"
).encode()


def test_reference_agrees_on_the_sample() -> None:
    expected, last_id, retry = reference(STREAM)
    assert expected[0] == RawEvent("task:created", '{"taskId":"t-é"}', "1", 1500)
    decoder = SSEDecoder()
    assert parse(STREAM, decoder) == expected
    assert (decoder.last_event_id, decoder.retry) == (last_id, retry)


def test_one_byte_at_a_time() -> None:
    decoder = SSEDecoder()
    events: list[RawEvent] = []
    for i in range(len(STREAM)):
        events += decoder.feed(STREAM[i : i + 1])
    events += decoder.end()
    assert events == reference(STREAM)[0]


def test_every_split_point() -> None:
    expected = reference(STREAM)[0]
    for cut in range(len(STREAM) + 1):
        assert parse_split(STREAM, [cut]) == expected, cut


def test_every_pair_of_split_points() -> None:
    expected = reference(STREAM)[0]
    n = len(STREAM)
    for first in range(0, n + 1, 3):
        for second in range(0, n + 1 - first, 5):
            assert parse_split(STREAM, [first, second]) == expected, (first, second)


_PIECES = [
    "data: x", "data:y", "data:  z", "data", "event: e", "event:", "id: 1", "id: 2", "id",
    "id: a\x00b", "retry: 100", "retry: x1", ": c", ":", "foo: bar", "data: é😀", "\ufeffdata: q",
    "", "", "",
]


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_against_reference(seed: int) -> None:
    rng = random.Random(seed)
    eols = ["\n", "\r", "\r\n"]
    text = ("\ufeff" if rng.random() < 0.3 else "") + "".join(
        rng.choice(_PIECES) + rng.choice(eols) for _ in range(rng.randrange(1, 40))
    )
    stream = text.encode()
    expected, last_id, retry = reference(stream)
    sizes = [rng.randrange(0, 8) for _ in range(len(stream))]
    decoder = SSEDecoder()
    events: list[RawEvent] = []
    pos = 0
    for size in sizes:
        events += decoder.feed(stream[pos : pos + size])
        pos += size
    events += decoder.end()
    assert events == expected
    assert decoder.retry == retry
    # last_event_id is only committed at dispatch; the reference commits the same way.
    assert decoder.last_event_id == last_id


def test_encoder_round_trip() -> None:
    stream = b"".join(
        encode_event(data, event, event_id)
        for data, event, event_id in [
            ('{"a":1}', "task:created", "1"),
            ("two\nlines", None, "2"),
            ("", "empty", None),
            ("cr\r\nlf", "x", "3"),
        ]
    )
    assert parse(stream) == [
        RawEvent("task:created", '{"a":1}', "1"),
        RawEvent("message", "two\nlines", "2"),
        RawEvent("empty", "", "2"),
        RawEvent("x", "cr\nlf", "3"),
    ]


def test_large_canonical_stream_in_uneven_chunks() -> None:
    stream = b"".join(encode_event(f'{{"n":{i}}}', "tick", str(i)) for i in range(2000))
    rng = random.Random(7)
    sizes = [rng.randrange(1, 700) for _ in range(len(stream) // 300)]
    events = parse_split(stream, sizes)
    assert [e.id for e in events] == [str(i) for i in range(2000)]
    assert all(e.event == "tick" for e in events)


def test_factory_builds_custom_events() -> None:
    decoder = SSEDecoder(factory=lambda t, d, i, r: (t.upper(), d, i, r))
    assert decoder.feed(b"id: 1\nevent: a\ndata: x\n\ndata: y\nretry: 5\n\n") == [
        ("A", "x", "1", None),
        ("MESSAGE", "y", "1", 5),
    ]
