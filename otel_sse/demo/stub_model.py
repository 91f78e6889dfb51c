"""A local OpenAI-compatible model server with scripted, deterministic replies.

::

    stub = StubModelServer(Script.tool_then_answer(
        "get_weather", {"city": "Paris"}, "It is sunny in Paris."), token_delay=0.02)
    await stub.start()
    client = openai.AsyncOpenAI(base_url=stub.url, api_key="stub")
    ...
    await stub.stop()

Routes (aiohttp, on 127.0.0.1 by default):

- ``POST /v1/chat/completions``: whole or streamed (``stream: true``: SSE
  ``data:`` chunks, then ``data: [DONE]``); tool calls stream as the API streams
  them (id and name first, then the arguments in pieces) when the script says so
  and the request offers the tool; ``stream_options.include_usage`` adds the
  usage chunk;
- ``POST /v1/responses``: the Responses API (what the OpenAI Agents SDK uses),
  whole or streamed as ``event:``/``data:`` events ending in
  ``response.completed``;
- ``GET /v1/models``.

A bad request gets 400 with an OpenAI-style error body naming the bad value.
Each text piece (and tool-argument piece) of a streamed reply waits
``token_delay`` seconds (the reply's own delay wins), through the injected
``sleep``. :attr:`StubModelServer.requests` keeps the last request bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from otel_sse.demo import openai_wire as wire
from otel_sse.demo.script import Script
from otel_sse.errors import ConfigError, ServerError
from otel_sse.wire.encoder import dumps

__all__ = ["StubModelServer"]

Sleep = Callable[[float], Awaitable[Any]]
_MAX_BODY = 4 * 1024 * 1024
_KEPT_REQUESTS = 256


class StubModelServer:
    """An OpenAI-compatible HTTP server answering from a :class:`Script`.

    ``url`` (after :meth:`start`) is the base URL an OpenAI client takes
    (``http://127.0.0.1:PORT/v1``). ``models`` are what ``GET /v1/models`` lists.
    """

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, token_delay: float = 0.0,
                 models: tuple[str, ...] = ("stub-model",), sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        if token_delay < 0:
            raise ConfigError(f"StubModelServer: token_delay={token_delay!r} must be >= 0")
        if not 0 <= port <= 65535:
            raise ConfigError(f"StubModelServer: port={port!r} is not a TCP port")
        self.script = script or Script()
        self.host, self.port = host, port
        self.token_delay = token_delay
        self.models = models
        self.requests: deque[dict[str, Any]] = deque(maxlen=_KEPT_REQUESTS)
        self._sleep, self._clock = sleep, clock
        self._serial = 0
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        """The API's base URL (``.../v1``)."""
        if self._runner is None:
            raise ServerError("StubModelServer is not started")
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        """Listen (``port=0`` picks a free port; :attr:`port` then tells it)."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise ServerError(f"StubModelServer cannot listen on {self.host}:{self.port}: "
                              f"{error}") from error
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and close open streams."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> StubModelServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- routes ----------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError) as error:
            raise wire.StubRequestError(f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise wire.StubRequestError(f"the body must be a JSON object, not {body!r:.60}")
        self.requests.append(body)
        return body

    def _answer(self, parsed: wire.Parsed) -> tuple[wire.Answer, float]:
        reply = self.script.reply_to(parsed.request)
        self._serial += 1
        answer = wire.Answer.of(reply, parsed, self._serial, int(self._clock()))
        delay = self.token_delay if reply.token_delay is None else reply.token_delay
        return answer, delay

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(
            request, wire.parse_chat, lambda answer, body, parsed: wire.chat_completion(answer),
            lambda answer, body, parsed: wire.chat_chunks(answer, parsed.include_usage),
            named=False, last=b"data: [DONE]\n\n")

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(
            request, wire.parse_responses, lambda answer, body, parsed: wire.response(answer, body),
            lambda answer, body, parsed: wire.response_events(answer, body), named=True, last=b"")

    async def _serve(self, request: web.Request,
                     parse: Callable[[dict[str, Any]], wire.Parsed],
                     whole: Callable[[wire.Answer, dict[str, Any], wire.Parsed], wire.Json],
                     streamed: Callable[[wire.Answer, dict[str, Any], wire.Parsed],
                                        Iterator[tuple[wire.Json, bool]]],
                     *, named: bool, last: bytes) -> web.StreamResponse:
        """Answer one request of either API: the whole response, or its stream
        (``named``: each event with its ``event:`` line; ``last``: what ends it)."""
        try:
            body = await self._body(request)
            parsed = parse(body)
        except wire.StubRequestError as error:
            return _bad_request(error)
        answer, delay = self._answer(parsed)
        if not parsed.stream:
            return web.json_response(whole(answer, body, parsed), dumps=dumps)
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                             "Cache-Control": "no-cache"})
        await stream.prepare(request)
        for data, paced in streamed(answer, body, parsed):
            if paced and delay > 0:
                await self._sleep(delay)
            head = f"event: {data['type']}\n" if named else ""
            await stream.write(f"{head}data: {dumps(data)}\n\n".encode())
        if last:
            await stream.write(last)
        await stream.write_eof()
        return stream

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(wire.models(self.models, int(self._clock())), dumps=dumps)


def _bad_request(error: Exception) -> web.Response:
    return web.json_response(wire.error_body(str(error)), status=400, dumps=dumps)


def main(argv: list[str] | None = None) -> int:
    """``python -m otel_sse.demo.stub_model``: serve a weather agent's script until Ctrl-C
    (asked with ``get_weather`` offered, call it for Paris; given its result, answer)."""
    import argparse

    parser = argparse.ArgumentParser(description="A local OpenAI-compatible stub model.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token-delay", type=float, default=0.05,
                        help="seconds between streamed pieces")
    args = parser.parse_args(argv)
    script = Script.tool_then_answer("get_weather", {"city": "Paris"},
                                     "It is sunny in Paris, 21 degrees.",
                                     preamble="Let me check.")

    async def serve() -> None:
        async with StubModelServer(script, host=args.host, port=args.port,
                                   token_delay=args.token_delay) as stub:
            print(f"stub model at {stub.url} (OPENAI_BASE_URL={stub.url})", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
