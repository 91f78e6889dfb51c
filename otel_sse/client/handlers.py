"""Handler registry and dispatch: ``on``/``once``/``off``, errors and lifecycle events."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from otel_sse.client.events import SSEEvent
from otel_sse.client.options import _Options
from otel_sse.errors import ConfigError
from otel_sse.wire.decoder import SSEDecoder
from otel_sse.wire.filters import EventFilter, FilterError

__all__ = ["Handler"]

logger = logging.getLogger("otel_sse.client")

Handler = Callable[[SSEEvent], Any] | Callable[[SSEEvent], Awaitable[Any]]


@dataclasses.dataclass(slots=True)
class _Entry:
    pattern: str
    handler: Handler
    match: EventFilter
    once: bool


class _HandlerRegistry:
    """The handler half of ``SSEClient``; its state is set up by ``SSEClient.__init__``."""

    _entries: list[_Entry]
    _routes: dict[str, tuple[_Entry, ...]]
    _check_json: bool
    _options: _Options
    _decoder: SSEDecoder[SSEEvent]
    _stats: dict[str, int]

    def on(self, pattern: str, handler: Handler) -> Handler:
        """Call ``handler(event)`` for every event whose type matches ``pattern``.

        ``pattern`` is an event type or a ``*`` pattern (``task:*``, ``*``);
        it sees server events and lifecycle events alike. ``handler`` may be
        sync or async; async handlers are awaited in order, before the next
        event, so a slow handler slows the stream rather than reordering it.
        Returns the handler, so ``on`` works as a decorator factory's core.
        """
        self._add(pattern, handler, once=False)
        return handler

    def once(self, pattern: str, handler: Handler) -> Handler:
        """Like :meth:`on`, removed after its first call."""
        self._add(pattern, handler, once=True)
        return handler

    def off(self, pattern: str, handler: Handler | None = None) -> int:
        """Remove ``handler`` (or every handler) registered for ``pattern``; returns how many."""
        before = len(self._entries)
        self._entries = [
            e
            for e in self._entries
            if not (e.pattern == pattern and (handler is None or e.handler == handler))
        ]
        self._changed_handlers()
        return before - len(self._entries)

    def _add(self, pattern: str, handler: Handler, *, once: bool) -> None:
        if not callable(handler):
            raise ConfigError(f"handler for {pattern!r} must be callable, got {handler!r}")
        try:
            match = EventFilter([pattern])
        except FilterError as exc:
            raise ConfigError(str(exc)) from exc
        if not match.patterns:
            raise ConfigError(f"event pattern must not be empty, got {pattern!r}")
        self._entries.append(_Entry(pattern, handler, match, once))
        self._changed_handlers()

    def _changed_handlers(self) -> None:
        self._routes.clear()
        self._check_json = any(e.match("parse_error") for e in self._entries)

    def _route(self, event_type: str) -> tuple[_Entry, ...]:
        entries = self._routes.get(event_type)
        if entries is None:
            entries = tuple(e for e in self._entries if e.match(event_type))
            if len(self._routes) < 4096:
                self._routes[event_type] = entries
        return entries

    async def _invoke(self, entries: tuple[_Entry, ...], event: SSEEvent) -> None:
        for entry in entries:
            if entry.once:
                if entry not in self._entries:
                    continue
                self._entries.remove(entry)
                self._changed_handlers()
            try:
                result = entry.handler(event)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception as exc:  # a handler's bug must not end the stream
                self._stats["handler_errors"] += 1
                await self._report_error(exc, event=event, handler=entry.handler)

    async def _report_error(
        self,
        exc: BaseException,
        *,
        event: SSEEvent | None = None,
        handler: Handler | None = None,
        fatal: bool = False,
        url: str | None = None,
    ) -> None:
        self._stats["errors"] += 1
        entries = self._route("error")
        if event is not None and event.type == "error" and handler is not None:
            # An error handler that fails is only logged: reporting it to
            # itself would recurse.
            logger.error("SSE 'error' handler %r raised", handler, exc_info=exc)
            return
        if not entries:
            if handler is not None:
                logger.error("SSE handler %r raised on %r", handler, event, exc_info=exc)
            else:
                logger.warning("SSE client %s: %s", url or self._options.urls[0], exc)
            return
        payload = {
            "error": exc,
            "message": str(exc) or type(exc).__name__,
            "fatal": fatal,
            "event": event,
            "handler": getattr(handler, "__qualname__", repr(handler)) if handler else None,
            "url": url,
        }
        event = SSEEvent("error", payload, raw="", id=self._decoder.last_event_id)
        await self._invoke(entries, event)

    async def _lifecycle(self, event_type: str, payload: dict[str, Any]) -> None:
        entries = self._route(event_type)
        if entries:
            event = SSEEvent(event_type, payload, id=self._decoder.last_event_id)
            await self._invoke(entries, event)

    async def _lifecycle_event(self, event: SSEEvent) -> None:
        entries = self._route(event.type)
        if entries:
            await self._invoke(entries, event)

    async def _check_parse(self, event: SSEEvent) -> None:
        # Only done when someone listens to parse_error: otherwise data is
        # parsed lazily, on first access.
        if isinstance(event.data, str):
            self._stats["parse_errors"] += 1
            await self._lifecycle(
                "parse_error",
                {"message": f"data of {event.type!r} looks like JSON but is not", "raw": event.raw},
            )
