"""The seed's status and level enums (str enums: they compare equal to their values)."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """A task's ``status`` in task events."""

    PENDING = "pending"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AgentStatus(StrEnum):
    """An agent's ``status`` in agent events."""

    IDLE = "idle"
    BUSY = "busy"
    PAUSED = "paused"
    STOPPED = "stopped"
    ERROR = "error"


class LogLevel(StrEnum):
    """The level of ``AgentStream.emit_log`` (the ``agent:log:<level>`` events)."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    FATAL = "fatal"
