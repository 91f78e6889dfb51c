"""Where ``otel-sse tail`` writes: a live terminal view, plain lines, or JSON lines.

The thin I/O edge of the view: :class:`~otel_sse.cli.tail_view.TailView`
decides what to show; these only write it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from typing import IO, Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from otel_sse.cli.tail_view import TailView
from otel_sse.client import SSEEvent

__all__ = ["LineOutput", "LiveOutput", "Output", "is_terminal", "json_output", "plain_output"]


class Output(Protocol):
    """What the tail loop writes to."""

    def event(self, event: SSEEvent) -> None:
        """Show one server event."""

    def notes(self, lines: list[Text]) -> None:
        """Show news about the connection."""

    async def __aenter__(self) -> Output: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal (whatever FORCE_COLOR says: a pipe gets plain text)."""
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class LineOutput:
    """Text lines, each flushed at once (a pipe reader sees each event when it happens).

    ``render`` turns an event into its lines; news about the connection goes
    to ``news`` (stdout among the events, or stderr beside JSON).
    """

    def __init__(
        self, render: Callable[[SSEEvent], list[str]], stream: IO[str], news: IO[str]
    ) -> None:
        self._render = render
        self._stream = stream
        self._news = news

    @staticmethod
    def _write(stream: IO[str], lines: list[str]) -> None:
        if lines:
            stream.write("\n".join(lines) + "\n")
            stream.flush()

    def event(self, event: SSEEvent) -> None:
        """The event's lines."""
        self._write(self._stream, self._render(event))

    def notes(self, lines: list[Text]) -> None:
        """Connection news, as plain text."""
        self._write(self._news, [text.plain for text in lines])

    async def __aenter__(self) -> LineOutput:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def plain_output(view: TailView, stream: IO[str]) -> LineOutput:
    """No terminal: the view's lines as plain text, no colour, no live region."""
    return LineOutput(lambda e: [t.plain for t in view.event(e.type, e.data)], stream, stream)


def json_output(stream: IO[str], errors: IO[str]) -> LineOutput:
    """``--json``: one ``{"id", "event", "data"}`` object per line; news goes to ``errors``."""

    def render(event: SSEEvent) -> list[str]:
        record: dict[str, Any] = {"id": event.id, "event": event.type, "data": event.data}
        return [json.dumps(record, ensure_ascii=False, separators=(",", ":"))]

    return LineOutput(render, stream, errors)


class LiveOutput:
    """A terminal: lines scroll above a live region redrawn at most ``1/interval`` times a second.

    Everything runs on the event loop (rich's own refresh thread stays off), so
    the view is never read while it changes.
    """

    def __init__(self, view: TailView, console: Console, interval: float = 0.1) -> None:
        self._view = view
        self._console = console
        self._interval = interval
        self._pending: list[Text] = []
        self._live: Live | None = None
        self._ticker: asyncio.Task[None] | None = None
        # Bars and running text share the screen with the scrollback: a third of it each.
        view.max_rows = max(2, (console.height - 4) // 3)

    def event(self, event: SSEEvent) -> None:
        """The event's lines, printed at the next redraw."""
        self._pending += self._view.event(event.type, event.data)

    def notes(self, lines: list[Text]) -> None:
        """Connection news, printed at the next redraw."""
        self._pending += lines

    def flush(self) -> None:
        """Print what is pending above the live region, and redraw it if it changed."""
        live = self._live
        if live is None:
            return
        pending, self._pending = self._pending, []
        if pending:
            live.console.print(Group(*pending))
        if self._view.dirty or pending:
            live.update(self._view.renderable(), refresh=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.flush()

    async def __aenter__(self) -> LiveOutput:
        self._live = Live(
            self._view.renderable(), console=self._console, auto_refresh=False, transient=True,
            redirect_stdout=False, redirect_stderr=False, vertical_overflow="crop",
        )
        self._live.start(refresh=True)
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.flush()
        if self._live is not None:
            self._live.stop()
            self._live = None
