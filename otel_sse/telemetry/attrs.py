"""Attribute and event names shared by the emitters (which write them) and the
processors (which read them back).

Our own spans and log records are recognised by ``otel_sse.event``: any
producer, in any language, that sets these attributes gets its telemetry turned
into the seed events of the contract (section 4), which is what lets a future
OTLP-ingest gateway feed foreign spans through the same converters.
"""

from __future__ import annotations

from typing import Final

# The seed event a span start or a log record stands for ("task:created", ...).
EVENT: Final = "otel_sse.event"
# The seed payload (minus timestamp and ids) as one JSON object string.
PAYLOAD: Final = "otel_sse.payload"
# The seed event a span's end stands for ("task:completed", ...) and its payload.
END_EVENT: Final = "otel_sse.end_event"
END_PAYLOAD: Final = "otel_sse.end_payload"
# Which emitter made the span: task | agent | llm | tool.
KIND: Final = "otel_sse.kind"

TASK_ID: Final = "otel_sse.task.id"
TASK_NAME: Final = "otel_sse.task.name"
TASK_TYPE: Final = "otel_sse.task.type"
TASK_PRIORITY: Final = "otel_sse.task.priority"
TASK_STATUS: Final = "otel_sse.task.status"
TASK_AGENT_ID: Final = "otel_sse.task.agent_id"
LLM_REQUEST_ID: Final = "otel_sse.llm.request_id"

# GenAI semantic conventions (Development status), spelled out so that a
# semconv package rename cannot silently change what we export.
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"

# Metric instruments.
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
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

INSTRUMENTATION_NAME: Final = "otel_sse"
