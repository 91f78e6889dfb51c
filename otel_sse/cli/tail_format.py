"""One event, one line: the words and colours of ``otel-sse tail`` (pure functions).

Each family has its colour (tasks cyan, agents magenta, LLM requests green,
spans and logs dim, the stream's own events yellow); failures are bold red
whatever their family. A line is a ``rich.text.Text``: the terminal view
prints it with its styles, the plain view prints ``text.plain``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.text import Text

__all__ = [
    "FAILURE",
    "LABEL_WIDTH",
    "display_url",
    "family_style",
    "format_event",
    "is_failure",
    "jaeger_link",
    "line",
    "progress_words",
    "short",
    "timestamp",
]

FAILURE = "bold red"
LABEL_WIDTH = 22
_FAMILIES = (
    ("task:", "cyan"),
    ("agent:", "magenta"),
    ("llm:", "green"),
    ("span:", "bright_black"),
    ("trace:", "bright_black"),
    ("log", "bright_black"),
    ("stream:", "yellow"),
    ("shutdown", "yellow"),
    ("connected", "yellow"),
)
_SEVERE = frozenset({"error", "fatal", "critical", "alert", "emergency"})

Data = Mapping[str, Any]


def family_style(event_type: str) -> str:
    """The colour of an event type's family (``task:*`` cyan, ...)."""
    for prefix, style in _FAMILIES:
        if event_type.startswith(prefix):
            return style
    return "default"


def short(value: Any, limit: int = 120) -> str:
    """A value as compact one-line text, cut at ``limit`` characters."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
        except ValueError:
            text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def display_url(url: str) -> str:
    """A URL as shown: without the ``filters`` query the client adds (the same every time)."""
    parts = urlsplit(url)
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("filters="))
    return urlunsplit(parts._replace(query=query))


def jaeger_link(base: str, data: Data) -> str | None:
    """``<base>/trace/<traceId>?uiFind=<spanId>`` for an event that carries its span's ids."""
    trace_id, span_id = data.get("traceId"), data.get("spanId")
    if not isinstance(trace_id, str) or not trace_id:
        return None
    link = f"{base.rstrip('/')}/trace/{trace_id}"
    return f"{link}?uiFind={span_id}" if isinstance(span_id, str) and span_id else link


def timestamp(data: Data, tz: tzinfo | None) -> str:
    """The event's ``timestamp`` as ``HH:MM:SS.mmm`` in ``tz`` (local time when None)."""
    value = data.get("timestamp")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return " " * 12
        if moment.tzinfo is not None:
            moment = moment.astimezone(tz)
        return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return " " * 12


def line(when: str, label: str, style: str, *parts: str | tuple[str, str] | Text) -> Text:
    """``when  label  parts...``; a part is plain text, ``(text, style)`` or a Text."""
    text = Text(when, style="bright_black")
    text.append("  ")
    text.append(label.ljust(LABEL_WIDTH), style=style)
    text.append(" ")
    for part in parts:
        if isinstance(part, Text):
            text.append_text(part)
        elif isinstance(part, tuple):
            text.append(part[0], style=part[1])
        else:
            text.append(part)
    return text


def _sub(data: Data, key: str) -> Data:
    """A nested object of the payload, or an empty one."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _seconds(milliseconds: Any) -> str:
    if isinstance(milliseconds, (int, float)) and not isinstance(milliseconds, bool):
        return f"{milliseconds / 1000:.1f}s" if milliseconds >= 1000 else f"{milliseconds:.0f}ms"
    return ""


def _cost(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"${value:.4f}"
    return ""


def _join(*words: str) -> str:
    return "  ".join(w for w in words if w)


def _link_part(link: str | None) -> tuple[str, str]:
    return (f"  {link}", "blue") if link else ("", "")


# ------------------------------------------------------------------ families


def _task(event_type: str, data: Data, link: str | None) -> list[str | tuple[str, str]]:
    task_id = str(data.get("taskId", "?"))
    kind = event_type.partition(":")[2]
    if kind == "created":
        name = data.get("name")
        about = _join(f'"{name}"' if name else "", str(data.get("type") or ""),
                      f"-> {data['agentId']}" if data.get("agentId") else "")
        return [(task_id, "bold cyan"), f"  {about}" if about else ""]
    if kind == "assigned":
        return [(task_id, "bold cyan"), f"  -> {data.get('agentId', '?')}"]
    if kind == "completed":
        metrics = _sub(data, "metrics")
        about = _join(short(data["result"], 60) if "result" in data else "",
                      _seconds(metrics.get("executionTime")))
        return [(task_id, "bold cyan"), ("  completed", "green"), f"  {about}" if about else "",
                _link_part(link)]
    if kind == "failed":
        return [(task_id, FAILURE), (f"  failed: {short(data.get('error', ''), 100)}", FAILURE),
                _link_part(link)]
    if kind == "cancelled":
        return [(task_id, "bold cyan"), ("  cancelled", "yellow"), _link_part(link)]
    if kind == "progress":
        return [(task_id, "bold cyan"), f"  {progress_words(_sub(data, 'progress'))}"]
    if kind == "intermediate":
        return [(task_id, "bold cyan"),
                f"  {data.get('type', 'partial')} #{data.get('sequence', '?')}: "
                f"{short(data.get('data'), 90)}"]
    if kind == "metrics":
        return [(task_id, "bold cyan"), f"  {short(data.get('metrics'), 100)}"]
    return [(task_id, "bold cyan"), f"  {data.get('status', kind)}"]


def progress_words(progress: Data) -> str:
    """``[#####...............]  25% step (1/3)``: a progress update as plain text."""
    percentage = progress.get("percentage", 0)
    step = progress.get("currentStep") or ""
    number, total = progress.get("currentStepNumber"), progress.get("totalSteps")
    where = f" ({number}/{total})" if number is not None and total is not None else ""
    filled = max(0, min(20, round(float(percentage) / 5))) if _is_number(percentage) else 0
    return f"[{'#' * filled}{'.' * (20 - filled)}] {percentage:>3}% {step}{where}".rstrip()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _agent(event_type: str, data: Data, link: str | None) -> list[str | tuple[str, str]]:
    agent_id = (str(data.get("agentId", "?")), "bold magenta")
    rest = event_type.split(":")[1:]
    kind = rest[0] if rest else ""
    if kind == "output":
        stream = data.get("stream", rest[1] if len(rest) > 1 else "stdout")
        style = "yellow" if stream == "stderr" else ""
        return [agent_id, (f"  | {short(data.get('data', ''), 200)}", style)]
    if kind == "log":
        level = str(data.get("level", rest[1] if len(rest) > 1 else "info"))
        style = FAILURE if level in _SEVERE else "yellow" if level.startswith("warn") else ""
        context = f"  {short(data['context'], 60)}" if data.get("context") else ""
        return [agent_id, (f"  [{level}] {short(data.get('message', ''), 150)}", style), context]
    if kind == "error":
        return [(agent_id[0], FAILURE), (f"  error: {short(data.get('error', ''), 150)}", FAILURE)]
    if kind == "spawned":
        about = _join(str(data.get("name") or ""), f"({data['type']})" if data.get("type") else "")
        return [agent_id, f"  {about}" if about else ""]
    if kind == "started":
        task = data.get("currentTaskId")
        return [agent_id, f"  busy on {task}" if task else "  busy"]
    if kind == "metrics":
        m = _sub(data, "metrics")
        return [agent_id, "  " + _join(
            f"done {m.get('tasksCompleted', '?')}", f"failed {m.get('tasksFailed', '?')}",
            f"tokens {m.get('totalTokens', '?')}", _cost(m.get("totalCost")))]
    if kind == "health":
        health = _sub(data, "health")
        healthy = bool(health.get("healthy", True))
        words = f"  {'healthy' if healthy else 'unhealthy'} score {health.get('score', '?')}"
        if health.get("issues"):
            words += f": {short(health['issues'], 100)}"
        return [agent_id, (words, "" if healthy else FAILURE)]
    return [agent_id, f"  {data.get('status', kind)}"]


def _llm(event_type: str, data: Data, link: str | None) -> list[str | tuple[str, str]]:
    request = (str(data.get("requestId", "?")), "bold green")
    kind = event_type[len("llm:"):]
    if kind == "request:started":
        model = f"{data.get('provider', '?')}/{data.get('model', '?')}"
        messages = data.get("messages")
        prompt = ""
        if isinstance(messages, list) and messages and isinstance(messages[-1], Mapping):
            prompt = f'  "{short(messages[-1].get("content", ""), 80)}"'
        owner = _join(str(data.get("agentId") or ""), str(data.get("taskId") or ""))
        return [request, f"  {model}", f"  {owner}" if owner else "", prompt]
    if kind == "tool:call":
        return [request, (f"  tool {data.get('toolName', '?')}", "bold"),
                f"({short(data.get('arguments', ''), 100)})"]
    if kind == "tool:result":
        error = data.get("error")
        if error:
            return [request, (f"  tool {data.get('toolName', '?')} failed: {short(error, 100)}",
                              FAILURE)]
        return [request, (f"  tool {data.get('toolName', '?')}", "bold"),
                f" -> {short(data.get('result'), 90)}",
                f"  {_seconds(data.get('executionTime'))}"]
    if kind == "usage":
        return [request, ("  " + _usage_words(data.get("usage")), "bright_black")]
    if kind == "request:completed":
        about = _join(_seconds(data.get("duration")), _usage_words(data.get("usage")))
        return [request, ("  completed", "green"), f"  {about}" if about else "", _link_part(link)]
    if kind == "request:error":
        retry = ""
        if data.get("willRetry"):
            retry = f"  (will retry, attempt {data.get('retryAttempt', '?')})"
        code = f" [{data['errorCode']}]" if data.get("errorCode") else ""
        return [(request[0], FAILURE),
                (f"  error{code}: {short(data.get('error', ''), 100)}{retry}", FAILURE),
                _link_part(link)]
    if kind == "token":
        return [request, f"  {short(data.get('token', ''), 100)}"]
    return [request, f"  {short(dict(data), 120)}"]


def _usage_words(usage: Any) -> str:
    if not isinstance(usage, Mapping):
        return ""
    prompt, completion = usage.get("promptTokens"), usage.get("completionTokens")
    total = usage.get("totalTokens")
    words = f"{total} tokens" if total is not None else ""
    if prompt is not None and completion is not None:
        words += f" ({prompt} in, {completion} out)"
    return _join(words, _cost(usage.get("cost")))


def _span(event_type: str, data: Data, link: str | None) -> list[str | tuple[str, str]]:
    name = str(data.get("name", "?"))
    service = f"  [{data['serviceName']}]" if data.get("serviceName") else ""
    if event_type == "span:ended":
        status = str(data.get("status", "unset"))
        if status == "error":
            message = f": {short(data['statusMessage'], 100)}" if data.get("statusMessage") else ""
            return [(name, FAILURE), (f"  error{message}", FAILURE),
                    f"  {_seconds(data.get('durationMs'))}", _link_part(link)]
        return [(name, "bright_black"), (f"  {_seconds(data.get('durationMs'))} {status}",
                                         "bright_black")]
    return [(name, "bright_black"), (service, "bright_black")]


def _log(event_type: str, data: Data, link: str | None) -> list[str | tuple[str, str]]:
    severity = str(data.get("severity", "")).lower()
    style = (FAILURE if any(severity.startswith(s) for s in _SEVERE)
             else "yellow" if severity.startswith("warn") else "")
    event_name = f" {data['eventName']}" if data.get("eventName") else ""
    service = f"  [{data['serviceName']}]" if data.get("serviceName") else ""
    return [(f"[{severity or 'log'}]{event_name} {short(data.get('body', ''), 150)}", style),
            (service, "bright_black")]


def _trace(event_type: str, data: Data, link: str | None) -> list[str | tuple[str, str]]:
    errors = data.get("errorCount") or 0
    style = FAILURE if errors else "bright_black"
    words = _join(str(data.get("name", "?")), f"{data.get('spanCount', '?')} spans",
                  _seconds(data.get("durationMs")), f"{errors} errors" if errors else "")
    return [(words, style), _link_part(link)]


def _stream(event_type: str, data: Data, link: str | None) -> list[str | tuple[str, str]]:
    if event_type == "stream:gap":
        missed = data.get("missed")
        count = f"{missed} events" if missed is not None else "an unknown number of events"
        return [(f"missed {count} (asked to resume after {data.get('requestedId')}, "
                 f"oldest kept {data.get('oldestId')})", "bold yellow")]
    if event_type == "shutdown":
        return [("the server is shutting down", "bold yellow")]
    return [short(dict(data), 150)]


_FORMATTERS: tuple[tuple[str, Callable[[str, Data, str | None],
                                      list[str | tuple[str, str]]]], ...] = (
    ("task:", _task), ("agent:", _agent), ("llm:", _llm), ("span:", _span),
    ("trace:", _trace), ("stream:", _stream), ("shutdown", _stream),
)


def is_failure(event_type: str, data: Data) -> bool:
    """Whether the event reports a failure (drawn in bold red)."""
    if event_type in ("task:failed", "agent:error", "llm:request:error"):
        return True
    if event_type == "span:ended":
        return data.get("status") == "error"
    if event_type.startswith("agent:log:"):
        return event_type.rpartition(":")[2] in _SEVERE
    return False


def format_event(event_type: str, data: Any, jaeger_url: str, tz: tzinfo | None) -> Text:
    """The line for one server event."""
    if not isinstance(data, Mapping):
        return line(" " * 12, event_type, family_style(event_type), short(data, 200))
    link = jaeger_link(jaeger_url, data)
    parts: list[str | tuple[str, str]]
    if event_type == "log":
        parts = _log(event_type, data, link)
    else:
        formatter = next((f for prefix, f in _FORMATTERS if event_type.startswith(prefix)), None)
        parts = formatter(event_type, data, link) if formatter else [short(dict(data), 150)]
    label_style = FAILURE if is_failure(event_type, data) else family_style(event_type)
    return line(timestamp(data, tz), event_type, label_style,
                *(p for p in parts if p and (not isinstance(p, tuple) or p[0])))
