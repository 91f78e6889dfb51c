"""Attribute and event names: ours (``otel_sse.*``), the GenAI semantic
conventions (``gen_ai.*``), OpenInference and OpenLLMetry.

Ours name what the conventions have no word for (a task, an agent's status,
a request id), so that every field of a contract event is a named attribute
someone can search for in a trace viewer. The GenAI names are spelled out
rather than imported from the incubating semconv package, whose renames must
not silently change what we export.
"""

from __future__ import annotations

from typing import Final

# -- ours: tasks ---------------------------------------------------------------------
TASK_ID: Final = "otel_sse.task.id"
TASK_STATUS: Final = "otel_sse.task.status"
TASK_NAME: Final = "otel_sse.task.name"
TASK_DESCRIPTION: Final = "otel_sse.task.description"
TASK_PRIORITY: Final = "otel_sse.task.priority"
TASK_TYPE: Final = "otel_sse.task.type"
TASK_RESULT: Final = "otel_sse.task.result"  # JSON text, as gen_ai.tool.call.result
TASK_ERROR: Final = "otel_sse.task.error"
TASK_DEPENDENCIES: Final = "otel_sse.task.dependencies"
# A bare percentage; a progress object uses the ``otel_sse.task.progress.*`` keys.
TASK_PROGRESS: Final = "otel_sse.task.progress"
TASK_PROGRESS_PREFIX: Final = "otel_sse.task.progress."
TASK_METRICS_PREFIX: Final = "otel_sse.task.metrics."
TASK_INTERMEDIATE_DATA: Final = "otel_sse.task.intermediate.data"  # JSON text
TASK_INTERMEDIATE_TYPE: Final = "otel_sse.task.intermediate.type"
TASK_INTERMEDIATE_SEQUENCE: Final = "otel_sse.task.intermediate.sequence"
TASK_INTERMEDIATE_IS_FINAL: Final = "otel_sse.task.intermediate.is_final"

# -- ours: agents --------------------------------------------------------------------
# The application's id of an agent. Not ``gen_ai.agent.id``: that is a stable
# identifier of an agent definition (an assistant id), not an in-process instance.
AGENT_ID: Final = "otel_sse.agent.id"
AGENT_STATUS: Final = "otel_sse.agent.status"
AGENT_TYPE: Final = "otel_sse.agent.type"
AGENT_ERROR: Final = "otel_sse.agent.error"
AGENT_HEALTH_PREFIX: Final = "otel_sse.agent.health."
AGENT_METRICS_PREFIX: Final = "otel_sse.agent.metrics."
AGENT_LOG_CONTEXT: Final = "otel_sse.agent.log.context"  # JSON text

# -- ours: LLM requests and tool calls -----------------------------------------------------
LLM_REQUEST_ID: Final = "otel_sse.llm.request_id"
LLM_DURATION_MS: Final = "otel_sse.llm.duration_ms"
LLM_USAGE_TOTAL_TOKENS: Final = "otel_sse.llm.usage.total_tokens"
LLM_USAGE_COST: Final = "otel_sse.llm.usage.cost"
LLM_USAGE_PROMPT_COST: Final = "otel_sse.llm.usage.prompt_cost"
LLM_USAGE_COMPLETION_COST: Final = "otel_sse.llm.usage.completion_cost"
LLM_ERROR_CODE: Final = "otel_sse.llm.error.code"
LLM_ERROR_WILL_RETRY: Final = "otel_sse.llm.error.will_retry"
LLM_ERROR_RETRY_ATTEMPT: Final = "otel_sse.llm.error.retry_attempt"
LLM_TOKEN_TEXT: Final = "otel_sse.llm.token.text"
LLM_TOKEN_INDEX: Final = "otel_sse.llm.token.index"
LLM_TOKEN_IS_FINAL: Final = "otel_sse.llm.token.is_final"
LLM_TOKEN_FINISH_REASON: Final = "otel_sse.llm.token.finish_reason"
TOOL_COMPLETE: Final = "otel_sse.llm.tool.complete"
TOOL_EXECUTION_TIME_MS: Final = "otel_sse.llm.tool.execution_time_ms"

# -- ours: span lifecycle --------------------------------------------------------------
# A task or agent span our emitters opened for an entity the application never
# announced (an update for an unknown task): it starts without task:created.
IMPLICIT: Final = "otel_sse.implicit"
# A span our emitters ended because its entity was dropped (superseded, or the
# emitter stopped), not because the application reported an outcome.
ABANDONED: Final = "otel_sse.abandoned"

# -- GenAI semantic conventions ------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated: gen_ai.provider.name
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"  # deprecated
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"  # deprecated
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
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
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
GEN_AI_INVOCATION_IS_NESTED: Final = "gen_ai.invocation.is_nested"
ERROR_TYPE: Final = "error.type"

INFERENCE_OPERATIONS: Final = frozenset({"chat", "text_completion", "generate_content",
                                         "embeddings"})

# -- OpenInference (Arize) -------------------------------------------------------------------
OI_SPAN_KIND: Final = "openinference.span.kind"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_REQUEST_MODEL_NAME: Final = "llm.request.model_name"
OI_LLM_PROVIDER: Final = "llm.provider"
OI_LLM_SYSTEM: Final = "llm.system"
OI_LLM_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"  # JSON text
OI_LLM_INPUT_MESSAGES: Final = "llm.input_messages."
OI_LLM_OUTPUT_MESSAGES: Final = "llm.output_messages."
OI_LLM_TOOLS: Final = "llm.tools."
OI_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OI_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OI_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
OI_COST_TOTAL: Final = "llm.cost.total"
OI_COST_PROMPT: Final = "llm.cost.prompt"
OI_COST_COMPLETION: Final = "llm.cost.completion"
OI_EMBEDDING_MODEL_NAME: Final = "embedding.model_name"
OI_INPUT_VALUE: Final = "input.value"
OI_OUTPUT_VALUE: Final = "output.value"
OI_TOOL_NAME: Final = "tool.name"
OI_TOOL_ID: Final = "tool.id"
OI_TOOL_CALL_ID: Final = "tool_call.id"
OI_AGENT_NAME: Final = "agent.name"

# -- OpenLLMetry (Traceloop) ---------------------------------------------------------------
TL_SPAN_KIND: Final = "traceloop.span.kind"
TL_WORKFLOW_NAME: Final = "traceloop.workflow.name"
TL_ENTITY_NAME: Final = "traceloop.entity.name"
TL_ENTITY_INPUT: Final = "traceloop.entity.input"  # JSON text
TL_ENTITY_OUTPUT: Final = "traceloop.entity.output"  # JSON text
TL_LLM_REQUEST_TYPE: Final = "llm.request.type"
TL_LLM_USAGE_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
TL_LLM_TOP_K: Final = "llm.top_k"
TL_LLM_STOP_SEQUENCES: Final = "llm.chat.stop_sequences"
TL_LLM_REQUEST_FUNCTIONS: Final = "llm.request.functions."
TL_PROMPT: Final = "gen_ai.prompt."
TL_COMPLETION: Final = "gen_ai.completion."

# -- log record event names of our events -----------------------------------------------------
# ``task:progress`` is the record ``otel_sse.task.progress``, and so on.
RECORD_EVENT_TYPES: Final = (
    "task:queued", "task:assigned", "task:started", "task:progress", "task:intermediate",
    "task:metrics",
    "agent:stopped", "agent:paused", "agent:error", "agent:metrics", "agent:health",
    "agent:output:stdout", "agent:output:stderr",
    "agent:log:debug", "agent:log:info", "agent:log:warn", "agent:log:error",
    "agent:log:fatal",
    "llm:token", "llm:tool:call", "llm:usage", "llm:request:error",
)
EVENT_NAMES: Final = {t: "otel_sse." + t.replace(":", ".") for t in RECORD_EVENT_TYPES}
EVENT_TYPES: Final = {name: t for t, name in EVENT_NAMES.items()}
