"""An OpenAI Agents SDK agent, live on an SSE stream and in Jaeger, with no API key.

    python examples/openai_agent.py
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 python examples/openai_agent.py

It starts a local OpenAI-compatible model (``otel_sse.demo.stub_model``, scripted:
asked about the weather it calls ``get_weather``, then answers), an otel-sse server,
and runs a decorated task in which the agent (instrumented by OpenInference)
answers a question, then streams a summary through ``otel_sse.llm_request`` (live
``llm:token`` events). Watch it with the printed ``curl`` command or the dashboard;
with Jaeger running, open the printed trace link.

Options: ``--port`` (0 picks a free one), ``--wait`` (seconds to wait for a
subscriber before starting; it starts at once when one connects),
``--token-delay`` (seconds per streamed piece), ``--linger`` (seconds to keep the
server up afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import openai
from opentelemetry import trace

import otel_sse
from otel_sse.demo.script import Reply, Rule, Script, ToolCall
from otel_sse.demo.stub_model import StubModelServer
from otel_sse.server import SSEServer

SCRIPT = Script(rules=(
    Rule(Reply(text="In short: sunny, 21 degrees, a light breeze. Enjoy Paris!"),
         contains="summarize"),
    Rule(Reply(text="It is sunny in Paris, 21 degrees."), after_tool=True),
    Rule(Reply(text="Let me look that up.",
               tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)), with_tools=True),
), default=Reply(text="I can only talk about the weather."))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--wait", type=float, default=5.0)
    parser.add_argument("--token-delay", type=float, default=0.05)
    parser.add_argument("--linger", type=float, default=1.0)
    return parser.parse_args(argv)


async def wait_for_subscriber(server: SSEServer, seconds: float) -> None:
    # The server announces no connections, so look for one now and then.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not server.get_clients():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def run_agent(client: openai.AsyncOpenAI) -> str:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}, 21 degrees"

    agent = Agent(name="Weather agent", instructions="Answer weather questions.",
                  tools=[get_weather],
                  model=OpenAIResponsesModel(model="stub-model", openai_client=client))
    run = Runner.run_streamed(agent, "What is the weather in Paris?")
    async for _ in run.stream_events():
        pass
    return str(run.final_output)


@otel_sse.task("weather report", type="demo")
async def weather_report(client: openai.AsyncOpenAI) -> str:
    span = trace.get_current_span().get_span_context()
    print(f"trace:  http://localhost:16686/trace/{span.trace_id:032x}", flush=True)
    answer = await run_agent(client)
    messages: Any = [{"role": "user", "content": f"Summarize: {answer}"}]
    async with otel_sse.llm_request(provider="openai", model="stub-model",
                                    messages=messages) as request:
        stream = await client.chat.completions.create(
            model="stub-model", messages=messages, stream=True,
            stream_options={"include_usage": True})
        async for _ in request.wrap(stream):
            pass
    return request.response


async def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
    except ImportError:
        print("this example needs openai-agents and openinference-instrumentation-openai-agents"
              " (pip install -e '.[test]')", file=sys.stderr)
        return 1
    stub = StubModelServer(SCRIPT, token_delay=args.token_delay)
    server = SSEServer(port=args.port, host="127.0.0.1")
    await stub.start()
    await server.start()
    telemetry = otel_sse.configure(service_name="openai-agent-example", server=server)
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        print(f"model:  {stub.url} (a local stub)", flush=True)
        print(f"watch:  curl -N '{server.url}/events?filters=task:*,agent:*,llm:*'", flush=True)
        print(f"        {server.url}/dashboard", flush=True)
        await wait_for_subscriber(server, args.wait)
        async with openai.AsyncOpenAI(base_url=stub.url, api_key="stub",
                                      max_retries=0) as client:
            summary = await weather_report(client)
        print(f"answer: {summary}", flush=True)
        await telemetry.aforce_flush(5)
        await asyncio.sleep(args.linger)
    finally:
        instrumentor.uninstrument()
        await telemetry.ashutdown()
        await server.stop()
        await stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
