"""What a :class:`~otel_sse.telemetry.Telemetry` handle gives every emitter made
with it: the metric instruments they record to, and the registry of open spans
their ids (``task_id``, ``agent_id``, ...) refer to.

Both live on the handle, so emitters sharing a handle link their spans and
emitters on different handles do not; no module holds either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from opentelemetry.metrics import Meter

import otel_sse.convert.names as n
import otel_sse.telemetry.attrs as attrs

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class GenAIConventions:
    """Which GenAI metric conventions to follow: the released v1.41 names (the
    default) or the newest (``OTEL_SEMCONV_STABILITY_OPT_IN`` lists
    ``gen_ai_latest_experimental``)."""

    latest: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GenAIConventions:
        """Read ``OTEL_SEMCONV_STABILITY_OPT_IN`` (a comma-separated list) from ``env``
        (default: the process environment)."""
        raw = (os.environ if env is None else env).get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
        values = {part.strip().lower() for part in raw.split(",")}
        return cls(latest=attrs.GEN_AI_LATEST_EXPERIMENTAL in values)


class OpenSpans(Generic[E]):
    """(kind, id) -> open span entry, shared by every emitter on a handle so that
    explicit ids link spans made by different emitters and on other threads.
    Bounded: past ``limit`` entries the oldest are forgotten (not ended)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: dict[tuple[str, str], E] = {}
        self._lock = threading.Lock()
        self.limit = limit

    def get(self, kind: str, key: str | None) -> E | None:
        """The open entry of ``kind`` named ``key`` (None for no key or none open)."""
        if key is None:
            return None
        return self._entries.get((kind, key))

    def put(self, kind: str, key: str, entry: E) -> E | None:
        """Register ``entry``; returns the entry it replaces, if any."""
        with self._lock:
            previous = self._entries.pop((kind, key), None)
            self._entries[(kind, key)] = entry
            while len(self._entries) > self.limit:
                del self._entries[next(iter(self._entries))]
        return previous

    def pop(self, kind: str, key: str) -> E | None:
        """Remove and return the open entry, if any."""
        with self._lock:
            return self._entries.pop((kind, key), None)

    def keys(self, kind: str) -> list[str]:
        """The ids of the open entries of ``kind``."""
        with self._lock:
            return [key for k, key in self._entries if k == kind]


def _durations(meter: Meter, name: str, description: str) -> Any:
    return meter.create_histogram(name, unit="s", description=description,
                                  explicit_bucket_boundaries_advisory=list(
                                      attrs.DURATION_BUCKETS))


def _tokens(meter: Meter, name: str, description: str) -> Any:
    return meter.create_histogram(name, unit="{token}", description=description,
                                  explicit_bucket_boundaries_advisory=[
                                      float(b) for b in attrs.TOKEN_BUCKETS])


class Instruments:
    """The metric instruments the emitters record to, per the GenAI conventions
    chosen (:class:`GenAIConventions`), and the handle's :class:`OpenSpans`."""

    def __init__(self, meter: Meter, conventions: GenAIConventions | None = None) -> None:
        self.conventions = conventions or GenAIConventions.from_env()
        self.open_spans: OpenSpans[Any] = OpenSpans()
        latest = self.conventions.latest
        if latest:
            self.operation_duration = _durations(
                meter, attrs.METRIC_INFERENCE_DURATION, "GenAI client inference duration")
            self.time_to_first_chunk = _durations(
                meter, attrs.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK,
                "Time to receive the first chunk of a streamed response")
            counter = meter.create_counter
            self._usage_counters = {
                key: counter(name, unit="{token}", description=description)
                for key, name, description in (
                    ("input", attrs.METRIC_INFERENCE_INPUT_TOKENS, "Input tokens used"),
                    ("output", attrs.METRIC_INFERENCE_OUTPUT_TOKENS, "Output tokens used"),
                    ("cacheReadInputTokens", attrs.METRIC_INFERENCE_CACHE_READ_TOKENS,
                     "Input tokens served from a provider-managed cache"),
                    ("cacheWriteInputTokens", attrs.METRIC_INFERENCE_CACHE_WRITE_TOKENS,
                     "Input tokens written to a provider-managed cache"),
                    ("reasoningOutputTokens", attrs.METRIC_INFERENCE_REASONING_TOKENS,
                     "Output tokens used for reasoning"))}
            self._operation_tokens = {
                "input": _tokens(meter, attrs.METRIC_OPERATION_INPUT_TOKENS,
                                 "Input tokens used per inference operation"),
                "output": _tokens(meter, attrs.METRIC_OPERATION_OUTPUT_TOKENS,
                                  "Output tokens used per inference operation")}
            self._invocation_duration = _durations(
                meter, attrs.METRIC_INVOCATION_DURATION, "GenAI agent invocation duration")
            self._tool_duration = _durations(
                meter, attrs.METRIC_TOOL_DURATION, "Duration of a tool execution")
        else:
            self.operation_duration = _durations(
                meter, attrs.METRIC_OPERATION_DURATION, "GenAI operation duration")
            self.time_to_first_chunk = _durations(
                meter, attrs.METRIC_TIME_TO_FIRST_CHUNK,
                "Time to receive the first chunk of a streamed response")
            self.token_usage = _tokens(meter, attrs.METRIC_TOKEN_USAGE,
                                       "Number of input and output tokens used")
        self.task_duration = _durations(meter, attrs.METRIC_TASK_DURATION,
                                        "Task duration, created to finished")
        self.task_outcomes = meter.create_counter(
            attrs.METRIC_TASK_OUTCOMES, unit="{task}", description="Finished tasks by outcome")
        self.task_tokens = meter.create_counter(
            attrs.METRIC_TASK_TOKENS, unit="{token}", description="Tokens reported by task metrics")
        self.agent_tokens = meter.create_gauge(
            attrs.METRIC_AGENT_TOKENS, unit="{token}", description="Tokens an agent has processed")
        # Utilization is a ratio (unit 1): the contract's cpuUsage is a percentage.
        self.agent_cpu = meter.create_gauge(
            attrs.METRIC_AGENT_CPU, unit="1", description="Agent CPU utilization (0-1)")
        self.agent_memory = meter.create_gauge(
            attrs.METRIC_AGENT_MEMORY, unit="By", description="Agent memory usage")
        self.agent_health = meter.create_gauge(
            attrs.METRIC_AGENT_HEALTH, unit="1", description="Agent health score")

    def record_inference(self, labels: Mapping[str, Any], duration: float,
                         time_to_first_chunk: float | None, usage: Mapping[str, Any],
                         extras: Mapping[str, Any], error_type: str | None) -> None:
        """One inference operation: its duration (s), time to first chunk (s, streamed
        only), contract ``usage`` (promptTokens, completionTokens) and the token
        counts beyond it (``cacheReadInputTokens``, ...; recorded only when given)."""
        base = dict(labels)
        failed = {**base, n.ERROR_TYPE: error_type} if error_type is not None else base
        self.operation_duration.record(duration, failed)
        if time_to_first_chunk is not None:
            self.time_to_first_chunk.record(time_to_first_chunk, base)
        counts = {kind: usage.get(key) for kind, key in (("input", "promptTokens"),
                                                         ("output", "completionTokens"))}
        if not self.conventions.latest:
            for kind, value in counts.items():
                if isinstance(value, (int, float)):
                    self.token_usage.record(value, {**base, n.GEN_AI_TOKEN_TYPE: kind})
            return
        known = any(isinstance(v, (int, float)) for v in counts.values())
        # The conventions' rule: a 0 with modality "unknown" when no usage came back.
        modality = {**base, n.GEN_AI_TOKEN_MODALITY: "text" if known else "unknown"}
        for kind, value in counts.items():
            number = value if isinstance(value, (int, float)) else 0
            self._usage_counters[kind].add(number, modality)
            if isinstance(value, (int, float)):
                self._operation_tokens[kind].record(value, failed)
        for key, value in extras.items():
            counter = self._usage_counters.get(key)
            if counter is not None and isinstance(value, (int, float)):
                counter.add(value, modality)

    def record_tool(self, duration: float, tool_name: str, error_type: str | None) -> None:
        """One tool execution (newest conventions only)."""
        if not self.conventions.latest:
            return
        labels: dict[str, Any] = {n.GEN_AI_OPERATION_NAME: "execute_tool",
                                  n.GEN_AI_TOOL_NAME: tool_name,
                                  n.GEN_AI_TOOL_TYPE: "function"}
        if error_type is not None:
            labels[n.ERROR_TYPE] = error_type
        self._tool_duration.record(duration, labels)

    def record_invocation(self, duration: float, agent_name: str | None, nested: bool,
                          error_type: str | None) -> None:
        """One agent invocation (newest conventions only)."""
        if not self.conventions.latest:
            return
        labels: dict[str, Any] = {n.GEN_AI_OPERATION_NAME: "invoke_agent",
                                  n.GEN_AI_INVOCATION_IS_NESTED: nested}
        if agent_name:
            labels[n.GEN_AI_AGENT_NAME] = agent_name
        if error_type is not None:
            labels[n.ERROR_TYPE] = error_type
        self._invocation_duration.record(duration, labels)
