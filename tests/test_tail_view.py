"""The tail view without I/O: events in, lines and a live region out."""

from __future__ import annotations

import argparse
import io
from datetime import UTC
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text

from otel_sse.cli.tail import describe_failure
from otel_sse.cli.tail_config import TailConfig, add_tail_arguments
from otel_sse.cli.tail_format import FAILURE, LABEL_WIDTH, format_event, jaeger_link
from otel_sse.cli.tail_view import TailView
from otel_sse.errors import BadContentTypeError, BadStatusError, ConfigError

JAEGER = "http://jaeger:16686"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
IDS = {"traceId": TRACE, "spanId": SPAN, "parentSpanId": None,
       "timestamp": "2026-11-29T12:13:06.692Z"}
LINK = f"{JAEGER}/trace/{TRACE}?uiFind={SPAN}"


def view(live: bool = True, **options: Any) -> TailView:
    return TailView(JAEGER, live=live, tz=UTC, **options)


def label_style(text: Text) -> str:
    """The style of the event-type label (after the time and two spaces)."""
    start = 14
    for span in text.spans:
        if span.start == start:
            return str(span.style)
    raise AssertionError(f"no label span in {text!r}")


def screen(renderable: Any, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


# ------------------------------------------------------------------ lines


@pytest.mark.parametrize(
    ("event_type", "data", "style"),
    [
        ("task:created", {"taskId": "t1", "name": "build"}, "cyan"),
        ("agent:spawned", {"agentId": "a1", "name": "coder"}, "magenta"),
        ("llm:tool:call", {"requestId": "r1", "toolName": "grep", "arguments": "{}"}, "green"),
        ("span:started", {"name": "GET /", "serviceName": "api"}, "bright_black"),
        ("log", {"severity": "info", "body": "hello"}, "bright_black"),
        ("stream:gap", {"requestedId": "x-1", "oldestId": "y-5", "missed": 3}, "yellow"),
        ("shutdown", {}, "yellow"),
        ("task:failed", {"taskId": "t1", "error": "boom"}, FAILURE),
        ("agent:error", {"agentId": "a1", "error": "oom"}, FAILURE),
        ("llm:request:error", {"requestId": "r1", "error": "429"}, FAILURE),
        ("span:ended", {"name": "x", "status": "error", "statusMessage": "bad"}, FAILURE),
        ("agent:log:error", {"agentId": "a1", "level": "error", "message": "m"}, FAILURE),
    ],
)
def test_each_family_has_its_colour_and_failures_are_red(
    event_type: str, data: dict[str, Any], style: str
) -> None:
    text = format_event(event_type, {**data, **IDS}, JAEGER, UTC)
    assert label_style(text) == style
    assert text.plain.startswith("12:13:06.692  " + event_type.ljust(LABEL_WIDTH))


@pytest.mark.parametrize(
    "event_type", ["task:completed", "task:failed", "task:cancelled", "llm:request:completed",
                   "llm:request:error"])
def test_ends_link_to_their_span_in_jaeger(event_type: str) -> None:
    data = {"taskId": "t1", "requestId": "r1", "error": "e", **IDS}
    assert format_event(event_type, data, JAEGER, UTC).plain.endswith(LINK)


def test_jaeger_link() -> None:
    assert jaeger_link(JAEGER + "/", IDS) == LINK
    assert jaeger_link(JAEGER, {"traceId": TRACE}) == f"{JAEGER}/trace/{TRACE}"
    assert jaeger_link(JAEGER, {}) is None
    assert LINK not in format_event("task:created", {"taskId": "t", **IDS}, JAEGER, UTC).plain


def test_lines_say_what_happened() -> None:
    def plain(event_type: str, data: Any) -> str:
        return format_event(event_type, data, JAEGER, UTC).plain

    assert "req-1  tool run_tests({\"path\": \"tests/\"})" in plain(
        "llm:tool:call", {"requestId": "req-1", "toolName": "run_tests",
                          "arguments": '{"path": "tests/"}'})
    assert "missed 3 events" in plain(
        "stream:gap", {"requestedId": "a-1", "oldestId": "b-2", "missed": 3})
    assert "an unknown number" in plain("stream:gap", {"requestedId": "a", "missed": None})
    assert "agent-1  | 42 passed" in plain(
        "agent:output:stdout", {"agentId": "agent-1", "stream": "stdout", "data": "42 passed"})
    assert "148 tokens (120 in, 28 out)  $0.0021" in plain(
        "llm:request:completed", {"requestId": "r", "duration": 1120, "usage": {
            "promptTokens": 120, "completionTokens": 28, "totalTokens": 148, "cost": 0.0021}})
    assert "not json" in plain("custom:thing", "not json")
    long = plain("agent:output:stdout", {"agentId": "a", "data": "x" * 500})
    assert len(long) < 300 and long.endswith("…")


# -------------------------------------------------------------- live view


def task_event(kind: str, percentage: int | None = None, step: str = "thinking") -> dict[str, Any]:
    data: dict[str, Any] = {"taskId": "task-1", "status": "running", "name": "build it", **IDS}
    if percentage is not None:
        data["progress"] = {"taskId": "task-1", "percentage": percentage, "currentStep": step,
                            "totalSteps": 3, "currentStepNumber": 1}
    return data


def test_a_progress_bar_per_running_task_removed_when_it_ends() -> None:
    tail = view()
    assert len(tail.event("task:started", task_event("started"))) == 1
    assert tail.event("task:progress", task_event("progress", 40)) == []
    assert tail.running_tasks == ("task-1",)
    drawn = screen(tail.renderable())
    (row,) = [r for r in drawn.splitlines() if r.startswith("task-1")]
    assert "build it" in row and "40%" in row and "thinking (1/3)" in row and "━" in row
    assert not tail.dirty
    lines = tail.event("task:completed", {"taskId": "task-1", "result": {"ok": True}, **IDS})
    assert tail.dirty and tail.running_tasks == ()
    assert LINK in lines[-1].plain
    assert "task-1" not in screen(tail.renderable())


def test_tokens_run_as_text_then_the_answer_is_printed_with_its_link() -> None:
    tail = view()
    started = {"requestId": "req-1", "provider": "anthropic", "model": "claude", **IDS}
    tail.event("llm:request:started", started)
    for index, token in enumerate(["Hel", "lo ", "world"]):
        assert tail.event("llm:token", {**started, "token": token, "index": index}) == []
    assert "req-1 claude ▸ Hello world" in screen(tail.renderable())
    tail.event("llm:token", {**started, "token": "!", "index": 3})
    assert "▸ Hello world!" in screen(tail.renderable())

    lines = tail.event("llm:request:completed", {**started, "response": "Hello world!"})
    assert [t.plain.split()[1] for t in lines] == ["llm:text", "llm:request:completed"]
    assert lines[0].plain.endswith("req-1  Hello world!")
    assert lines[1].plain.endswith(LINK)
    assert tail.open_requests == ()
    assert "▸" not in screen(tail.renderable())


def test_running_text_keeps_its_end_within_two_lines() -> None:
    tail = view()
    data = {"requestId": "r", "model": "m", **IDS}
    words = [f"w{i} " for i in range(200)]
    for index, word in enumerate(words):
        tail.event("llm:token", {**data, "token": word, "index": index})
    drawn = [row for row in screen(tail.renderable(), width=60).splitlines() if row.strip()]
    text_rows = drawn[:-1]  # the last row is the status line
    assert len(text_rows) == 2
    joined = "".join(text_rows)
    assert joined.startswith("r m ▸ …") and joined.rstrip().endswith("w199")


def test_bounded_tracking() -> None:
    tail = view(max_tracked=3, max_text=10)
    for n in range(5):
        tail.event("task:started", {"taskId": f"t{n}"})
    assert tail.running_tasks == ("t2", "t3", "t4")
    data = {"requestId": "r", "model": "m"}
    tail.event("llm:token", {**data, "token": "0123456789abcdef"})
    lines = tail.event("llm:request:error", {**data, "error": "cut"})
    assert lines[0].plain.endswith("r  …6789abcdef")


def test_rows_are_capped_in_the_live_region() -> None:
    tail = view(max_rows=2)
    for n in range(5):
        tail.event("task:progress", {"taskId": f"t{n}", "progress": {"percentage": 10}})
    drawn = screen(tail.renderable())
    assert "t3" in drawn and "t4" in drawn and "t0" not in drawn
    assert "and 3 more tasks" in drawn


# -------------------------------------------------------------- plain view


def test_without_a_terminal_progress_is_a_line_now_and_then() -> None:
    tail = view(live=False)
    shown = []
    for percentage in (0, 3, 5, 12, 15, 21, 100):
        for text in tail.event("task:progress", task_event("progress", percentage)):
            shown.append(text.plain)
    assert [line.split("%")[0].split()[-1] for line in shown] == ["0", "12", "100"]
    assert tail.event("task:progress", task_event("progress", 100, step="testing"))


def test_without_a_terminal_the_text_comes_when_the_request_ends() -> None:
    tail = view(live=False)
    data = {"requestId": "r", "model": "m", **IDS}
    assert tail.event("llm:token", {**data, "token": "partial "}) == []
    lines = tail.event("llm:request:error", {**data, "error": "timeout", "willRetry": True,
                                             "retryAttempt": 2})
    assert lines[0].plain.endswith("r  partial")
    assert "error: timeout  (will retry, attempt 2)" in lines[1].plain
    assert label_style(lines[1]) == FAILURE


# ------------------------------------------------------------ connection


def test_reconnection_is_two_lines_however_many_attempts() -> None:
    tail = view()
    url = "http://a:1/events?filters=task:*"
    lines = tail.connected(url, None, "1.1")
    assert len(lines) == 1
    assert lines[0].plain.endswith("connected to http://a:1/events (HTTP/1.1)")
    assert lines[0].plain.split()[0] == "tail"
    quiet: list[Text] = []
    lines = tail.disconnected(url, "stream ended by the server", will_reconnect=True)
    assert len(lines) == 1 and "lost (stream ended by the server)" in lines[0].plain
    for attempt in range(1, 6):
        quiet += tail.failed(url, "cannot connect: refused", permanent=False)
        quiet += tail.reconnecting(url, attempt, 2.0)
    assert quiet == []
    status = screen(tail.renderable())
    assert "reconnecting to http://a:1/events (attempt 5 in 2.0s)" in status
    assert "refused" in status
    lines = tail.connected("http://b:2/events", "run-41", "2")
    assert len(lines) == 1
    assert "reconnected to http://b:2/events (HTTP/2), resumed after run-41" in lines[0].plain
    assert "● connected to http://b:2/events" in screen(tail.renderable())


def test_waiting_for_a_server_that_is_not_up_yet_is_one_line() -> None:
    tail = view()
    lines = tail.failed("http://a/events", "cannot connect: refused", permanent=False)
    lines += tail.reconnecting("http://a/events", 1, 1.0)
    lines += tail.failed("http://a/events", "cannot connect: refused", permanent=False)
    lines += tail.reconnecting("http://a/events", 2, 2.0)
    assert len(lines) == 1 and "waiting for cannot connect: refused" in lines[0].plain


def test_a_permanent_failure_on_one_url_is_said_once() -> None:
    tail = view()
    lines = tail.failed("http://a/events", "unexpected HTTP status 404", permanent=True)
    assert len(lines) == 1 and "skipping http://a/events" in lines[0].plain
    assert tail.failed("http://a/events", "unexpected HTTP status 404", permanent=True) == []


def test_failure_descriptions() -> None:
    url = "http://h:1/events?filters=task:*"
    no_token = describe_failure(BadStatusError(401, "Unauthorized"), url, token_given=False)
    assert no_token == ("http://h:1/events: HTTP 401 Unauthorized; the server wants a token "
                        "(--token or OTEL_SSE_TOKEN)")
    assert describe_failure(BadStatusError(401), url, True).endswith("the token was refused")
    assert "no event stream at this URL" in describe_failure(BadStatusError(404), url, False)
    assert "not an event stream" in describe_failure(BadContentTypeError("text/html"), url, False)


# ---------------------------------------------------------------- config


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_tail_arguments(parser)
    return parser.parse_args(argv)


def test_config_from_flags_then_environment() -> None:
    env = {"OTEL_SSE_TOKEN": "from-env", "OTEL_SSE_PORT": "4000",
           "OTEL_SSE_JAEGER_URL": "http://j:1"}
    config = TailConfig.from_args(parse([]), env)
    assert config.urls == ("http://localhost:4000/events",)
    assert config.token == "from-env" and config.jaeger_url == "http://j:1"
    assert "from-env" not in repr(config)
    assert config.client_options()["headers"] == {"Authorization": "Bearer from-env"}
    config = TailConfig.from_args(parse(["http://a/e", "http://b/e", "--token", "flag",
                                         "--filters", "task:*, llm:*", "--http2"]), env)
    assert config.urls == ("http://a/e", "http://b/e")
    assert config.token == "flag" and config.filters == ("task:*", "llm:*")
    assert config.http2_mode == "prior-knowledge"
    assert TailConfig(urls=("https://a/e", "http://b/e"), http2=True).http2_mode is True
    assert TailConfig.from_args(parse([]), {}).client_options()["headers"] is None


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [(["ftp://x"], {}, "url"), (["--count", "-1"], {}, "--count"),
     (["--duration", "0"], {}, "--duration"), (["--jaeger-url", "jaeger"], {}, "--jaeger-url"),
     (["--cacert", "/nonexistent.pem"], {}, "--cacert"), ([], {"OTEL_SSE_PORT": "x"}, "PORT"),
     (["--token", "a\nb"], {}, "--token")],
)
def test_config_errors_name_the_bad_value(argv: list[str], env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as info:
        TailConfig.from_args(parse(argv), env)
    assert "a\nb" not in str(info.value)
