"""``otel-sse tail URL...``: watch a stream in a terminal (or pipe it as plain or JSON lines).

The view (``tail_view``) decides what to show and the outputs (``tail_output``)
write it; this module connects them to an ``SSEClient``: lifecycle
notifications become status news, server events go to the output, and a
stream that cannot be had at all (404, 401, or every URL failing so) is one line on
stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from rich.console import Console

from otel_sse.cli.runner import stop_event
from otel_sse.cli.tail_config import TailConfig, add_tail_arguments
from otel_sse.cli.tail_format import display_url
from otel_sse.cli.tail_output import (
    LiveOutput,
    Output,
    is_terminal,
    json_output,
    plain_output,
)
from otel_sse.cli.tail_view import TailView
from otel_sse.client import SSEClient, SSEEvent
from otel_sse.client.connection import is_permanent
from otel_sse.errors import BadContentTypeError, BadStatusError, CertificateError, ClientError

__all__ = ["add_tail_arguments", "describe_failure", "tail"]

_HINTS = {
    401: "the server wants a token (--token or OTEL_SSE_TOKEN)",
    403: "the token does not give access to this stream",
    404: "no event stream at this URL",
}


def describe_failure(error: BaseException, url: str | None, token_given: bool) -> str:
    """One line saying why the stream cannot be had, and what to do about it."""
    where = f"{display_url(url)}: " if url else ""
    if isinstance(error, BadStatusError):
        hint = _HINTS.get(error.status, "")
        if error.status == 401 and token_given:
            hint = "the token was refused"
        reason = f" {error.reason}" if error.reason else ""
        return f"{where}HTTP {error.status}{reason}" + (f"; {hint}" if hint else "")
    if isinstance(error, BadContentTypeError):
        return f"{where}not an event stream (Content-Type {error.content_type!r})"
    if isinstance(error, CertificateError):
        return f"{error} (--cacert trusts a private CA)"
    return f"{where}{error}"


class _Tail:
    """One run of the command: a client, a view, an output."""

    def __init__(self, config: TailConfig, view: TailView, output: Output) -> None:
        self.config = config
        self.view = view
        self.output = output
        self.client = SSEClient(**config.client_options())
        self.fatal_url: str | None = None
        self.shown = 0
        client = self.client
        client.on("connected", self._connected)
        client.on("disconnected", self._disconnected)
        client.on("reconnecting", self._reconnecting)
        client.on("error", self._error)

    def _connected(self, event: SSEEvent) -> None:
        data = event.data
        self.output.notes(self.view.connected(
            str(data.get("url") or self.client.url), data.get("lastEventId"),
            self.client.get_stats()["http_version"]))

    def _disconnected(self, event: SSEEvent) -> None:
        data = event.data
        self.output.notes(self.view.disconnected(
            str(data.get("url")), str(data.get("reason")), bool(data.get("will_reconnect"))))

    def _reconnecting(self, event: SSEEvent) -> None:
        data = event.data
        self.output.notes(self.view.reconnecting(
            str(data.get("url")), int(data.get("attempt", 0)), float(data.get("delay", 0.0))))

    def _error(self, event: SSEEvent) -> None:
        data: dict[str, Any] = event.data
        if data.get("fatal"):
            # Said once, on stderr, when the iteration ends with it.
            self.fatal_url = data.get("url")
            return
        error = data.get("error")
        permanent = isinstance(error, BaseException) and is_permanent(error)
        self.output.notes(self.view.failed(data.get("url"), str(data.get("message")), permanent))

    async def _read(self) -> None:
        count = self.config.count
        async for event in self.client:
            self.output.event(event)
            self.shown += 1
            if count and self.shown >= count:
                return

    async def run(self) -> int:
        stop = stop_event()
        reader = asyncio.create_task(self._read())
        stopper = asyncio.create_task(stop.wait())
        try:
            async with self.output:
                await asyncio.wait({reader, stopper}, timeout=self.config.duration,
                                   return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if not reader.done():
                    reader.cancel()
                await asyncio.gather(reader, stopper, return_exceptions=True)
        finally:
            await self.client.disconnect()
        error = reader.exception() if not reader.cancelled() else None
        if isinstance(error, ClientError):
            line = describe_failure(error, self.fatal_url, self.config.token is not None)
            print(f"otel-sse tail: {line}", file=sys.stderr, flush=True)
            return 1
        if error is not None:
            raise error
        return 0


async def tail(args: argparse.Namespace) -> int:
    """Run ``otel-sse tail``; 0 when stopped (Ctrl-C, --count, --duration), 1 when
    no stream could be had."""
    config = TailConfig.from_args(args)
    view = TailView(config.jaeger_url, live=False)
    output: Output
    if config.json:
        output = json_output(sys.stdout, sys.stderr)
    elif is_terminal(sys.stdout):
        view.live = True
        output = LiveOutput(view, Console(highlight=False, emoji=False))
    else:
        output = plain_output(view, sys.stdout)
    try:
        return await _Tail(config, view, output).run()
    except BrokenPipeError:
        # The reader went away (`| head`): a normal end, not a traceback.
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
