"""The examples run as a user runs them, each in a process of its own: the in-process
app (``agent_run.py``) watched by the subscriber example (``subscribe.py``), and the
curl producer (``publish.sh``) into a gateway behind tokens. The OTLP-only app
(``otlp_app.py``) is run by ``test_gateway_e2e.py`` over gRPC and HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.test_gateway_e2e import gateway

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEX32 = re.compile(r"[0-9a-f]{32}")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none",
               OTEL_LOGS_EXPORTER="none", **extra)
    return env


async def _subscribe(url: str, filters: str, count: int, **env: str
                     ) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "subscribe.py"), url, "--filters", filters,
        "--count", str(count), env=_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def _printed(out: bytes) -> list[tuple[str, str, Any]]:
    """subscribe.py's lines: (id, type, data)."""
    lines = []
    for line in out.decode().splitlines():
        event_id, event_type, data = line.split(" ", 2)
        lines.append((event_id, event_type, json.loads(data)))
    return lines


async def test_the_in_process_app_streams_to_the_subscriber_example() -> None:
    app = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / "agent_run.py"), "--port", "0", "--wait", "30",
        "--token-delay", "0", env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert app.stdout is not None
    try:
        watch = (await asyncio.wait_for(app.stdout.readline(), 30)).decode()
        found = re.search(r"'(http://127\.0\.0\.1:\d+/events)\?", watch)
        assert found is not None, watch
        # 2 agents x 3 tasks: 10 tokens each, then completed or failed.
        subscriber = await _subscribe(found.group(1),
                                      "task:completed,task:failed,llm:token", 66)
        out, err = await asyncio.wait_for(subscriber.communicate(), 60)
        assert subscriber.returncode == 0, err.decode()
        rest, app_err = await asyncio.wait_for(app.communicate(), 60)
        assert app.returncode == 0, app_err.decode()
    finally:
        if app.returncode is None:
            app.kill()
            await app.wait()
    events = _printed(out)
    kinds = [event_type for _, event_type, _ in events]
    assert kinds.count("llm:token") == 60
    assert kinds.count("task:completed") == 5
    failed = [data for _, event_type, data in events if event_type == "task:failed"]
    assert [d["taskId"] for d in failed] == ["agent-2-task-1"]
    assert failed[0]["error"] == "tests failed"
    tokens = [d for _, t, d in events if t == "llm:token"]
    text = "".join(d["token"] for d in tokens if d["requestId"] == "agent-1-task-0-llm")
    assert text == "Here is a small function that does the job . "
    # The trace links the app prints (one per agent invocation) are the traces its
    # events carry.
    printed = {line.rsplit("/", 1)[1] for line in rest.decode().splitlines()
               if line.startswith("trace:")}
    carried = {d["traceId"] for _, _, d in events}
    assert len(printed) == 6 and all(HEX32.fullmatch(t) for t in printed)  # a trace per task
    assert carried == printed


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_curl_producer_reaches_the_subscriber_example_behind_tokens() -> None:
    token, producer = "examples-subscriber-token", "examples-producer-token"
    async with gateway("--token", token, "--producer-token", producer,
                       "--no-grpc") as (url, _, _proc):
        subscriber = await _subscribe(f"{url}/events", "deploy:*", 2, OTEL_SSE_TOKEN=token)
        async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {token}"}) as session:
            while True:  # publish once the subscriber is on
                async with session.get(f"{url}/healthz") as resp:
                    if (await resp.json())["clients"] == 1:
                        break
                await asyncio.sleep(0.05)
        script = str(EXAMPLES / "publish.sh")
        # The subscriber's token does not publish: curl fails with the 401's reason.
        refused = await asyncio.create_subprocess_exec(
            "sh", script, url, env=_env(OTEL_SSE_TOKEN=token),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(refused.communicate(), 30)
        assert refused.returncode != 0 and "token" in out.decode().lower()
        publish = await asyncio.create_subprocess_exec(
            "sh", script, url, env=_env(OTEL_SSE_PRODUCER_TOKEN=producer),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        answer, err = await asyncio.wait_for(publish.communicate(), 30)
        assert publish.returncode == 0, err.decode()
        ids = json.loads(answer)["ids"]
        out, err = await asyncio.wait_for(subscriber.communicate(), 30)
        assert subscriber.returncode == 0, err.decode()
    events = _printed(out)
    assert [(i, t) for i, t, _ in events] == list(zip(ids, ["deploy:started",
                                                            "deploy:finished"], strict=True))
    assert events[1][2]["durationMs"] == 5230 and events[1][2]["version"] == "1.4.2"
