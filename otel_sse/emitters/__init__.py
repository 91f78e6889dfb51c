"""Task, agent and LLM emitters that record OpenTelemetry telemetry.

Our SSE processors turn that telemetry into the contract's live events, and
the same spans, log records and metrics go out over OTLP.
"""

from otel_sse.emitters.agent import AgentStream
from otel_sse.emitters.enums import AgentStatus, LogLevel, TaskStatus
from otel_sse.emitters.llm import LLMStream
from otel_sse.emitters.task import TaskStream

__all__ = ["AgentStatus", "AgentStream", "LLMStream", "LogLevel", "TaskStatus", "TaskStream"]
