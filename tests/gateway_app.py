"""An application in a process of its own that streams live through a gateway.

    python -m tests.gateway_app '{"gateway": URL, "token": T, "otlp": ENDPOINT,
                                  "rate": 5000, "tokens": 10000}'

It calls ``configure(gateway=..., token=..., otlp_endpoint=...)`` (the OTLP
export goes to ``otlp`` over gRPC), with no SSE server of its own, then:

1. runs the multi-agent scenario (tests/agent_scenario.py) concurrently; when
   task-0's LLM request has streamed its last token, the thread working on it
   prints ``holding`` and waits for a line on stdin before it goes on (so its
   task, agent and request spans are still open while the test looks at the
   gateway's stream); prints ``scenario done``;
2. for each line ``rate W`` on stdin, streams ``tokens`` tokens at ``rate`` per
   second, round robin over one LLM request per agent (``rateW-0`` ...), each
   token's text being the time it was emitted (``time.time_ns()``), and prints
   ``rate done W <count>``; until the line ``stop``;
3. shuts the telemetry down and prints ``stats <json>``: the forwarder's
   stats and whether the shutdown delivered everything.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from otel_sse.emitters import LLMStream
from otel_sse.telemetry import Telemetry, configure
from tests.agent_scenario import AGENTS, Workload


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def hold_at_last_token_of_task_0(work: Workload) -> None:
    def on_token(payload: dict[str, Any]) -> None:
        if payload.get("requestId") == "req-0" and payload.get("isFinal"):
            say("holding")
            sys.stdin.readline()

    work.llm.on("token", on_token)


def stream_tokens(tel: Telemetry, window: str, rate: float, count: int) -> int:
    """``count`` tokens at ``rate`` per second over one request per agent."""
    llm = LLMStream(telemetry=tel)
    requests = [f"rate{window}-{i}" for i in range(len(AGENTS))]
    for request_id, agent_id in zip(requests, AGENTS, strict=True):
        llm.emit_request_started(request_id, provider="stub", model="stub-1", agent_id=agent_id,
                                 messages=[{"role": "user", "content": "stream"}])
    start = time.perf_counter()
    sent = 0
    while sent < count:
        due = start + sent / rate
        now = time.perf_counter()
        if now < due:
            time.sleep(min(due - now, 0.001))
            continue
        # Every token that is due now, each stamped with its own emission time.
        while sent < count and start + sent / rate <= now:
            llm.emit_token(requests[sent % len(requests)], str(time.time_ns()),
                           sent // len(requests))
            sent += 1
    for request_id in requests:
        llm.emit_request_completed(request_id, response="streamed",
                                   usage={"prompt_tokens": 1, "completion_tokens": count,
                                          "total_tokens": count + 1}, duration=1)
    return sent


def main(options: dict[str, Any]) -> None:
    tel = configure(service_name="gateway-app", gateway=options["gateway"],
                    token=options.get("token"), otlp_endpoint=options["otlp"],
                    otlp_protocol="grpc", otlp_timeout=5, export_schedule_delay=0.2,
                    metrics_exporter="none", capture_content=True)
    say("ready")
    work = Workload(tel, None)
    hold_at_last_token_of_task_0(work)
    asyncio.run(work.run())
    say("scenario done")
    while (command := sys.stdin.readline().split()) and command[0] == "rate":
        sent = stream_tokens(tel, command[1], float(options.get("rate", 5000)),
                             int(options.get("tokens", 0)))
        say(f"rate done {command[1]} {sent}")
    delivered = tel.shutdown(10)
    gateway = tel.gateway
    assert gateway is not None
    say("stats " + json.dumps({**gateway.stats(), "shutdown_ok": delivered}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
