"""Metric names, bucket advice and our instrumentation scope name.

Attribute and event names live in :mod:`otel_sse.convert.names`, next to the
conversion that reads them.
"""

from __future__ import annotations

from typing import Final

INSTRUMENTATION_NAME: Final = "otel_sse"

# GenAI client metrics as released in semantic conventions v1.41 (the default).
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"

# The current GenAI conventions' metrics (OTEL_SEMCONV_STABILITY_OPT_IN=
# gen_ai_latest_experimental): inference metrics, token counters and per-operation
# histograms, and the durations of agent invocations and tool executions.
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
METRIC_INFERENCE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
METRIC_INFERENCE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"
METRIC_INFERENCE_CACHE_READ_TOKENS: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
METRIC_INFERENCE_CACHE_WRITE_TOKENS: Final = (
    "gen_ai.client.inference.usage.cache_write.input_tokens")
METRIC_INFERENCE_REASONING_TOKENS: Final = (
    "gen_ai.client.inference.usage.reasoning.output_tokens")
METRIC_OPERATION_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"
METRIC_OPERATION_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
METRIC_INVOCATION_DURATION: Final = "gen_ai.invocation.duration"
METRIC_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"

# Ours.
METRIC_TASK_DURATION: Final = "otel_sse.task.duration"
METRIC_TASK_OUTCOMES: Final = "otel_sse.task.outcomes"
METRIC_TASK_TOKENS: Final = "otel_sse.task.tokens"
METRIC_AGENT_TOKENS: Final = "otel_sse.agent.tokens"
METRIC_AGENT_CPU: Final = "otel_sse.agent.cpu.utilization"
METRIC_AGENT_MEMORY: Final = "otel_sse.agent.memory.usage"
METRIC_AGENT_HEALTH: Final = "otel_sse.agent.health.score"

# Bucket advice from the GenAI metric conventions.
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576,
                        4194304, 16777216, 67108864)
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
                           10.24, 20.48, 40.96, 81.92)

# OTEL_SEMCONV_STABILITY_OPT_IN value that switches to the newest GenAI conventions.
GEN_AI_LATEST_EXPERIMENTAL: Final = "gen_ai_latest_experimental"
