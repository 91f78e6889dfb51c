"""``otel_sse.llm_request``: one LLM request around the code that makes it.

::

    with otel_sse.llm_request(provider="openai", model="gpt-4o-mini",
                              messages=messages) as request:
        for chunk in request.wrap(client.chat.completions.create(..., stream=True)):
            ...                                # chunks pass through unchanged

    async with otel_sse.llm_request(provider="anthropic", model="claude-sonnet-4") as request:
        async for event in request.wrap(stream):
            ...

Entering opens the request (``llm:request:started``, a ``chat {model}`` span
whose parent is the current task, agent or span, with ``agentId``/``taskId``
from the decorated call it runs in). :meth:`LLMRequest.wrap` reads each chunk
(see :mod:`otel_sse.instrumentation.chunks`) and emits ``llm:token`` for every chunk
with text or a finish reason; the emitter records the time to the first one.
Leaving completes the request with the text, the tool calls the response asked
for, the usage and the response's id and model when the stream carried them
(``llm:usage``, ``llm:request:completed``), or, when the block raised,
``llm:request:error`` with the exception's type and message (re-raised
unchanged). A decorated tool run inside the block (a child of the request's
span), or afterwards in the same task or agent, answers this request: its
events carry this ``requestId`` and the model's tool-call id.

While the block runs the request's span is current, so spans started inside
(an HTTP client's) nest under it; like OpenTelemetry's own
``start_as_current_span``, the block must not span a ``yield`` of a generator.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from otel_sse.instrumentation.chunks import StreamReader
from otel_sse.instrumentation.context import Origin, current_frame
from otel_sse.instrumentation.runtime import Instrumentation, guarded

T = TypeVar("T")


class LLMRequest:
    """The handle of one LLM request (see the module docstring).

    Besides :meth:`wrap`: :meth:`feed` takes one chunk, :meth:`token` one piece of
    text, :meth:`set_response` a whole (non-streamed) response object or text,
    :meth:`set_usage` token counts. :attr:`response` and :attr:`tool_calls` say what
    has been read so far.
    """

    def __init__(self, instr: Instrumentation, provider: str, model: str, *,
                 request_id: str | None = None, fields: Mapping[str, Any]) -> None:
        self.instr = instr
        self.provider, self.model = provider, model
        self.request_id = request_id or instr.new_id("req")
        self._fields = dict(fields)
        self._reader = StreamReader()
        self._index = 0
        self._usage: dict[str, int] = {}
        self._token: Token[Context] | None = None
        self._open = False

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> LLMRequest:
        """Open the request (what entering the ``with`` block does)."""
        if self._open:
            return self
        frame = current_frame()
        llm = self.instr.llm
        guarded("llm:request:started", llm.emit_request_started, self.request_id,
                provider=self.provider, model=self.model, agent_id=frame.agent_id,
                task_id=frame.task_id, **self._fields)
        self._open = True
        if frame.requests is not None:  # tools run inside the block answer this request
            frame.requests.begin(Origin(self.request_id, self.provider, self.model),
                                 self._calls)
        span_context = llm.request_context(self.request_id)
        if span_context is not None:
            self._token = otel_context.attach(span_context)
        return self

    def finish(self, error: BaseException | None = None) -> None:
        """Complete the request, or end it in error (what leaving the block does)."""
        if not self._open:
            return
        self._open = False
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None
        llm = self.instr.llm
        reader = self._reader
        calls = reader.tool_calls
        if error is not None:
            name = type(error).__name__
            guarded("llm:request:error", llm.emit_request_error, self.request_id,
                    str(error) or name, error_type=name)
        else:
            usage = {**reader.usage, **self._usage}
            completed: dict[str, Any] = {"response": reader.text}
            if usage:
                usage.setdefault("total_tokens", usage.get("prompt_tokens", 0)
                                 + usage.get("completion_tokens", 0))
                completed["usage"] = usage
            if calls:
                completed["tool_calls"] = calls
            guarded("llm:request:completed", llm.emit_request_completed, self.request_id,
                    response_id=reader.response_id, response_model=reader.response_model,
                    **completed)
        requests = current_frame().requests
        if requests is not None:
            requests.record(Origin(self.request_id, self.provider, self.model),
                            self._calls())

    def _calls(self) -> list[tuple[str, str]]:
        return [(c["tool_name"], c["tool_call_id"]) for c in self._reader.tool_calls]

    def __enter__(self) -> LLMRequest:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.finish(error)

    async def __aenter__(self) -> LLMRequest:
        return self.start()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self.finish(error)

    # -- what was read -------------------------------------------------------------
    @property
    def response(self) -> str:
        """The response text read so far."""
        return self._reader.text

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls the response asked for (``tool_call_id``, ``tool_name``,
        ``arguments`` as JSON text, ``is_complete``)."""
        return self._reader.tool_calls

    @property
    def finish_reasons(self) -> list[str]:
        """The finish reasons the response gave."""
        return list(self._reader.finish_reasons)

    # -- input ------------------------------------------------------------------------
    def feed(self, chunk: Any) -> None:
        """Read one chunk of the response; a chunk with text or a finish reason is an
        ``llm:token``."""
        delta = guarded("a response chunk", self._reader.feed, chunk)
        if delta is not None:
            self._emit_token(delta.text, delta.finish_reason)

    def token(self, text: str, finish_reason: str | None = None) -> None:
        """One piece of the response's text (for streams :meth:`feed` cannot read)."""
        self._reader.feed(text)
        self._emit_token(text, finish_reason)

    def _emit_token(self, text: str, finish_reason: str | None) -> None:
        if finish_reason is None:
            guarded("llm:token", self.instr.llm.emit_token, self.request_id, text,
                    self._index)
        else:
            guarded("llm:token", self.instr.llm.emit_token, self.request_id, text,
                    self._index, is_final=True, finish_reason=finish_reason)
        self._index += 1

    def set_response(self, response: Any) -> None:
        """A whole response (an OpenAI chat completion or Responses API response, an
        Anthropic message, or text) instead of a stream: no tokens, the totals only."""
        guarded("a response", self._reader.read_response, response)

    def set_usage(self, prompt_tokens: int | None = None, completion_tokens: int | None = None,
                  total_tokens: int | None = None, **extras: int) -> None:
        """Token counts (over those the stream carried); ``extras``:
        ``cache_read_input_tokens``, ``cache_write_input_tokens``,
        ``reasoning_output_tokens``."""
        counts = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": total_tokens, **extras}
        self._usage.update({k: v for k, v in counts.items() if v is not None})

    # -- streams --------------------------------------------------------------------------
    @overload
    def wrap(self, stream: AsyncIterable[T]) -> AsyncIterator[T]: ...

    @overload
    def wrap(self, stream: Iterable[T]) -> Iterator[T]: ...

    def wrap(self, stream: Iterable[T] | AsyncIterable[T]) -> Iterator[T] | AsyncIterator[T]:
        """Pass ``stream``'s chunks through unchanged, reading each (:meth:`feed`).
        Closing the result early closes ``stream`` when it can be closed."""
        if isinstance(stream, AsyncIterable):
            return self._wrap_async(stream)
        return self._wrap_sync(stream)

    def _wrap_sync(self, stream: Iterable[T]) -> Iterator[T]:
        try:
            for chunk in stream:
                self.feed(chunk)
                yield chunk
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()

    async def _wrap_async(self, stream: AsyncIterable[T]) -> AsyncIterator[T]:
        try:
            async for chunk in stream:
                self.feed(chunk)
                yield chunk
        finally:
            close = getattr(stream, "aclose", None) or getattr(stream, "close", None)
            if callable(close):
                result = close()
                if hasattr(result, "__await__"):
                    await result
