"""A plain OpenAI tool-calling agent: no OpenTelemetry and no otel-sse in its code.

Run it under ``opentelemetry-instrument`` and its model calls stream live and reach
Jaeger, unchanged (``pip install 'otel-sse[auto]' opentelemetry-instrumentation-openai-v2``)::

    python -m otel_sse.demo.stub_model --port 8000        # a local model (or a real key)
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=stub \\
    OTEL_SSE_PORT=3000 OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 \\
        opentelemetry-instrument python examples/plain_agent.py

and watch ``curl -N http://127.0.0.1:3000/events`` (``OTEL_SSE_GATEWAY=URL`` streams
to a gateway instead). The client reads ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``;
``MODEL`` names the model (default ``stub-model``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai

WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "sunny", "celsius": 21}


def ask(client: openai.OpenAI, model: str, question: str) -> str:
    """One question: a streamed reply that may call the tool, then the answer."""
    messages: list[Any] = [{"role": "user", "content": question}]
    stream = client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER_TOOL], stream=True,
        stream_options={"include_usage": True})
    text, calls = "", dict[int, dict[str, str]]()
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or ():
            entry = calls.setdefault(call.index, {"id": "", "name": "", "args": ""})
            entry["id"] = call.id or entry["id"]
            if call.function:
                entry["name"] = call.function.name or entry["name"]
                entry["args"] += call.function.arguments or ""
    if not calls:
        return text
    messages.append({"role": "assistant", "content": text, "tool_calls": [
        {"id": c["id"], "type": "function",
         "function": {"name": c["name"], "arguments": c["args"]}} for c in calls.values()]})
    for made in calls.values():
        result = get_weather(**json.loads(made["args"]))
        messages.append({"role": "tool", "tool_call_id": made["id"],
                         "content": json.dumps(result)})
    answer = client.chat.completions.create(model=model, messages=messages,
                                            tools=[WEATHER_TOOL])
    return answer.choices[0].message.content or ""


def main() -> None:
    client = openai.OpenAI(max_retries=0)
    print(ask(client, os.environ.get("MODEL", "stub-model"), "What is the weather in Paris?"),
          flush=True)


if __name__ == "__main__":
    main()
