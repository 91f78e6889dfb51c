"""What ``otel-sse tail`` shows, sans I/O: events and connection news in, lines out.

Lines go to the scrollback (one per event that is news on its own). The live
region, drawn below them on a terminal, holds what changes in place: a
progress bar per running task, the running text of each open LLM request
(tokens appended as they come), and one status line about the connection.
Without a terminal (``live=False``) there is no live region: progress comes
as occasional lines, and an LLM request's text as one line when it ends.

Everything here is bounded: at most ``max_tracked`` tasks and requests are
followed (the oldest forgotten first) and a request keeps at most
``max_text`` characters of its text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any, TypeVar

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from otel_sse.cli.tail_format import (
    FAILURE,
    display_url,
    format_event,
    line,
    progress_words,
    short,
    timestamp,
)

__all__ = ["TailView"]

_TASK_ENDS = frozenset({"task:completed", "task:failed", "task:cancelled"})
_REQUEST_ENDS = frozenset({"llm:request:completed", "llm:request:error"})
_BLANK_TIME = " " * 12
_T = TypeVar("_T")


@dataclasses.dataclass(slots=True)
class _Task:
    task_id: str
    name: str = ""
    percentage: float = 0.0
    step: str = ""
    # What the plain view printed last, so it prints only real moves.
    printed: tuple[float, str] | None = None


@dataclasses.dataclass(slots=True)
class _Request:
    request_id: str
    model: str
    pieces: list[str] = dataclasses.field(default_factory=list)
    size: int = 0
    cut: bool = False

    def add(self, token: str, limit: int) -> None:
        self.pieces.append(token)
        self.size += len(token)
        if self.size > limit:
            text = "".join(self.pieces)[-limit:]
            self.pieces = [text]
            self.size = len(text)
            self.cut = True

    @property
    def text(self) -> str:
        if len(self.pieces) > 1:
            self.pieces = ["".join(self.pieces)]
        return ("…" if self.cut else "") + (self.pieces[0] if self.pieces else "")


class _RunningText:
    """``prefix`` then the end of ``text``, as much as fits in ``lines`` terminal lines."""

    def __init__(self, prefix: Text, text: str, lines: int = 2) -> None:
        self.prefix = prefix
        self.text = " ".join(text.split("\n"))
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        budget = max(options.max_width * self.lines - cell_len(self.prefix.plain) - 1, 8)
        text = self.text
        if cell_len(text) > budget:
            kept: list[str] = []
            used = 1  # the ellipsis
            for char in reversed(text):
                used += cell_len(char)
                if used > budget:
                    break
                kept.append(char)
            text = "…" + "".join(reversed(kept))
        yield self.prefix + Text(text)


class TailView:
    """The terminal view's state. Feed it with :meth:`event` and the
    connection methods; each returns the lines to print now.
    :meth:`renderable` is the live region (terminal only); :attr:`dirty`
    says whether it changed since :meth:`renderable` was last called."""

    def __init__(
        self,
        jaeger_url: str,
        *,
        live: bool,
        tz: tzinfo | None = None,
        max_tracked: int = 1000,
        max_text: int = 16_384,
        max_rows: int = 8,
    ) -> None:
        self.jaeger_url = jaeger_url
        self.live = live
        self.tz = tz
        self.max_tracked = max_tracked
        self.max_text = max_text
        self.max_rows = max_rows
        self.dirty = True
        self.events = 0
        self._tasks: dict[str, _Task] = {}
        self._requests: dict[str, _Request] = {}
        self._status = Text("connecting…", style="yellow")
        self._ever_connected = False
        self._outage = False
        self._last_error = ""
        self._skipped: set[str] = set()

    # ---------------------------------------------------------------- events

    def event(self, event_type: str, data: Any) -> list[Text]:
        """One server event; returns the lines to print."""
        self.events += 1
        payload: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        if event_type == "task:progress":
            return self._progress(payload)
        if event_type == "llm:token":
            self._token(payload)
            return []
        lines: list[Text] = []
        if event_type in ("task:created", "task:started", "task:assigned", "task:queued"):
            self._task(payload)
        elif event_type in _TASK_ENDS:
            self._forget_task(payload)
        elif event_type == "llm:request:started":
            self._request(payload)
        elif event_type in _REQUEST_ENDS:
            lines += self._end_request(payload)
        lines.append(format_event(event_type, data, self.jaeger_url, self.tz))
        return lines

    def _track(self, items: dict[str, _T], key: object, make: Callable[[str], _T]) -> _T | None:
        """The item for ``key``, added (and the oldest forgotten past the bound) when new."""
        if not isinstance(key, str):
            return None
        item = items.get(key)
        if item is None:
            item = items[key] = make(key)
            while len(items) > self.max_tracked:
                del items[next(iter(items))]
            self.dirty = True
        return item

    def _task(self, data: Mapping[str, Any]) -> _Task | None:
        task = self._track(self._tasks, data.get("taskId"), _Task)
        name = data.get("name")
        if task is not None and isinstance(name, str) and name:
            task.name = name
        return task

    def _forget_task(self, data: Mapping[str, Any]) -> None:
        if self._tasks.pop(str(data.get("taskId")), None) is not None:
            self.dirty = True

    def _progress(self, data: Mapping[str, Any]) -> list[Text]:
        task = self._task(data)
        progress = data.get("progress")
        if task is None or not isinstance(progress, Mapping):
            return []
        percentage = progress.get("percentage")
        if isinstance(percentage, (int, float)) and not isinstance(percentage, bool):
            task.percentage = max(0.0, min(100.0, float(percentage)))
        number, total = progress.get("currentStepNumber"), progress.get("totalSteps")
        where = f" ({number}/{total})" if number is not None and total is not None else ""
        task.step = f"{progress.get('currentStep') or ''}{where}".strip()
        self.dirty = True
        if self.live:
            return []
        # Without a live region: a line when the step changes, every 10
        # points, and at 100 %, not one per update.
        printed = task.printed
        if (printed is not None and printed[1] == task.step
                and abs(task.percentage - printed[0]) < 10 and not (
                    task.percentage == 100 and printed[0] != 100)):
            return []
        task.printed = (task.percentage, task.step)
        return [line(timestamp(data, self.tz), "task:progress", "cyan",
                     (task.task_id, "bold cyan"), f"  {progress_words(progress)}")]

    def _request(self, data: Mapping[str, Any]) -> _Request | None:
        model = str(data.get("model") or data.get("provider") or "")
        return self._track(self._requests, data.get("requestId"),
                           lambda request_id: _Request(request_id, model))

    def _token(self, data: Mapping[str, Any]) -> None:
        request = self._request(data)
        token = data.get("token")
        if request is not None and isinstance(token, str) and token:
            request.add(token, self.max_text)
            self.dirty = True

    def _end_request(self, data: Mapping[str, Any]) -> list[Text]:
        request = self._requests.pop(str(data.get("requestId")), None)
        self.dirty = True
        # The response is the whole text; the tokens seen may be only its end
        # (joined mid-request) or an error's partial answer.
        response = data.get("response")
        if isinstance(response, str) and response:
            text = response if len(response) <= self.max_text else "…" + response[-self.max_text:]
        else:
            text = request.text if request is not None and request.size else ""
        text = " ".join(text.split("\n")).strip()
        if not text:
            return []
        failed = "error" in data
        prefix = line(timestamp(data, self.tz), "llm:text", FAILURE if failed else "green",
                      (str(data.get("requestId", "?")), "bold green"), "  ")
        return [prefix + Text(text)]

    # ------------------------------------------------------------ connection

    def connected(self, url: str, resumed_from: str | None, http_version: str | None) -> list[Text]:
        """A stream is open on ``url``."""
        url = display_url(url)
        version = f" (HTTP/{http_version})" if http_version else ""
        self._status = Text(f"● connected to {url}{version}", style="green")
        self.dirty = True
        again = self._ever_connected
        self._ever_connected = True
        self._outage = False
        self._last_error = ""
        if again:
            resumed = f", resumed after {resumed_from}" if resumed_from else ""
            return [self._note(f"reconnected to {url}{version}{resumed}", "green")]
        return [self._note(f"connected to {url}{version}", "green")]

    def disconnected(self, url: str, reason: str, will_reconnect: bool) -> list[Text]:
        """The stream on ``url`` ended."""
        url = display_url(url)
        self.dirty = True
        if not will_reconnect:
            self._status = Text(f"stream ended: {reason}", style="yellow")
            return [self._note(f"stream from {url} ended: {reason}", "yellow")]
        self._status = Text(f"◌ connection to {url} lost: {reason}", style="yellow")
        if self._outage:
            return []
        self._outage = True
        return [self._note(f"connection to {url} lost ({reason}); reconnecting", "yellow")]

    def reconnecting(self, url: str, attempt: int, delay: float) -> list[Text]:
        """Another attempt is coming: the status line says so, quietly."""
        url = display_url(url)
        when = f" in {delay:.1f}s" if delay >= 0.05 else ""
        error = f" — {self._last_error}" if self._last_error else ""
        self._status = Text(f"◌ reconnecting to {url} (attempt {attempt}{when}){error}",
                            style="yellow")
        self.dirty = True
        if self._outage:
            return []
        self._outage = True
        if self._ever_connected:
            return [self._note(f"connection lost; reconnecting to {url}", "yellow")]
        return [self._note(f"waiting for {self._last_error or url}", "yellow")]

    def failed(self, url: str | None, message: str, permanent: bool) -> list[Text]:
        """An attempt on ``url`` failed; a permanent failure is said once per URL."""
        self._last_error = short(message, 160)
        self.dirty = True
        if not permanent or url is None or url in self._skipped:
            return []
        self._skipped.add(url)
        return [self._note(f"skipping {display_url(url)}: {self._last_error}", FAILURE)]

    def _note(self, text: str, style: str) -> Text:
        return line(_BLANK_TIME, "tail", style, (text, style))

    # ------------------------------------------------------------ live region

    def renderable(self) -> RenderableType:
        """The live region: task progress bars, running LLM text, the status line."""
        self.dirty = False
        parts: list[RenderableType] = []
        tasks = list(self._tasks.values())[-self.max_rows:]
        if tasks:
            table = Table.grid(padding=(0, 1))
            table.add_column(no_wrap=True, style="bold cyan")
            table.add_column(no_wrap=True, max_width=28, overflow="ellipsis")
            table.add_column(no_wrap=True)
            table.add_column(no_wrap=True, justify="right")
            table.add_column(no_wrap=True, overflow="ellipsis")
            for task in tasks:
                table.add_row(task.task_id, task.name,
                              ProgressBar(total=100.0, completed=task.percentage, width=30,
                                          complete_style="cyan", finished_style="green"),
                              f"{task.percentage:.0f}%", task.step)
            parts.append(table)
            hidden = len(self._tasks) - len(tasks)
            if hidden > 0:
                parts.append(Text(f"… and {hidden} more tasks", style="bright_black"))
        requests = [r for r in self._requests.values() if r.size][-self.max_rows:]
        for request in requests:
            prefix = Text(request.request_id, style="bold green")
            prefix.append(f" {request.model}" if request.model else "", style="green")
            prefix.append(" ▸ ", style="green")
            parts.append(_RunningText(prefix, request.text))
        parts.append(self._status)
        return Group(*parts)

    @property
    def running_tasks(self) -> tuple[str, ...]:
        """Ids of the tasks with a live progress bar."""
        return tuple(self._tasks)

    @property
    def open_requests(self) -> tuple[str, ...]:
        """Ids of the LLM requests whose text is running."""
        return tuple(self._requests)
