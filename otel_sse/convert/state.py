"""Task and agent state (the seed's ``TaskEventData`` / ``AgentEventData``) as
named attributes, and back.

One table per entity says which attribute carries which field; the emitters
encode with it and the conversion decodes with it, so the two cannot drift
apart. Nested objects (progress, metrics, health) become one attribute per
field under a prefix: ``otel_sse.task.metrics.cpu_usage``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import otel_sse.convert.names as n
from otel_sse.convert.values import (
    error_text,
    error_value,
    from_json_text,
    json_text,
    scalar,
    strings,
)

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _same(value: Any) -> Any:
    return value


SCALAR: Codec = (scalar, _same)
JSON: Codec = (json_text, from_json_text)
ERROR: Codec = (error_text, error_value)
STRINGS: Codec = (strings, list)


def snake(camel: str) -> str:
    """``currentStepNumber`` -> ``current_step_number``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


class StateCodec:
    """Encodes a state dict into attributes and decodes attributes back.

    ``fields``: (payload key, attribute, codec); ``groups``: (payload key,
    attribute prefix, sub-keys) for nested objects whose fields are scalars
    unless ``group_codecs`` names another codec for a sub-key.
    """

    def __init__(self, fields: Iterable[tuple[str, str, Codec]],
                 groups: Iterable[tuple[str, str, Iterable[str]]],
                 group_codecs: Mapping[str, Codec] | None = None) -> None:
        special = dict(group_codecs or {})
        self._fields: dict[str, tuple[str, Callable[[Any], Any]]] = {}
        self._groups: dict[str, dict[str, tuple[str, Callable[[Any], Any]]]] = {}
        # attribute -> (group key or None, payload key, decoder)
        self._by_attribute: dict[str, tuple[str | None, str, Callable[[Any], Any]]] = {}
        for key, attribute, (encode, decode) in fields:
            self._fields[key] = (attribute, encode)
            self._by_attribute[attribute] = (None, key, decode)
        for key, prefix, subkeys in groups:
            table: dict[str, tuple[str, Callable[[Any], Any]]] = {}
            for sub in subkeys:
                encode, decode = special.get(sub, SCALAR)
                attribute = prefix + snake(sub)
                table[sub] = (attribute, encode)
                self._by_attribute[attribute] = (key, sub, decode)
            self._groups[key] = table

    def encode(self, state: Mapping[str, Any], out: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        """``state``'s known fields as attributes (None values and unknown keys skipped)."""
        attributes: dict[str, Any] = {} if out is None else out
        fields, groups = self._fields, self._groups
        for key, value in state.items():
            if value is None:
                continue
            field = fields.get(key)
            if field is not None:
                attributes[field[0]] = field[1](value)
                continue
            group = groups.get(key)
            if group is not None and (type(value) is dict or isinstance(value, Mapping)):
                for sub, sub_value in value.items():
                    entry = group.get(sub)
                    if entry is not None and sub_value is not None:
                        attributes[entry[0]] = entry[1](sub_value)
        return attributes

    def decode(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """The state fields present in ``attributes``."""
        out: dict[str, Any] = {}
        by_attribute = self._by_attribute
        for attribute, value in attributes.items():
            entry = by_attribute.get(attribute)
            if entry is None or value is None:
                continue
            group, key, decode = entry
            if group is None:
                out[key] = decode(value)
            else:
                nested = out.get(group)
                if not isinstance(nested, dict):
                    nested = out[group] = {}
                nested[key] = decode(value)
        return out


PROGRESS_KEYS = ("percentage", "currentStep", "totalSteps", "currentStepNumber",
                 "estimatedTimeRemaining", "timestamp")
TASK_METRICS_KEYS = ("executionTime", "cpuUsage", "memoryUsage", "tokenCount", "costEstimate")
AGENT_METRICS_KEYS = ("tasksCompleted", "tasksFailed", "avgExecutionTime", "cpuUsage",
                      "memoryUsage", "totalTokens", "totalCost", "uptime")
HEALTH_KEYS = ("healthy", "score", "issues", "lastCheck")

_TASK = StateCodec(
    [("taskId", n.TASK_ID, SCALAR), ("status", n.TASK_STATUS, SCALAR),
     ("name", n.TASK_NAME, SCALAR), ("description", n.TASK_DESCRIPTION, SCALAR),
     ("priority", n.TASK_PRIORITY, SCALAR), ("type", n.TASK_TYPE, SCALAR),
     ("agentId", n.AGENT_ID, SCALAR), ("result", n.TASK_RESULT, JSON),
     ("error", n.TASK_ERROR, ERROR), ("dependencies", n.TASK_DEPENDENCIES, STRINGS)],
    [("progress", n.TASK_PROGRESS_PREFIX, PROGRESS_KEYS),
     ("metrics", n.TASK_METRICS_PREFIX, TASK_METRICS_KEYS)],
)
_AGENT = StateCodec(
    [("agentId", n.AGENT_ID, SCALAR), ("status", n.AGENT_STATUS, SCALAR),
     ("name", n.GEN_AI_AGENT_NAME, SCALAR), ("type", n.AGENT_TYPE, SCALAR),
     ("currentTaskId", n.TASK_ID, SCALAR), ("error", n.AGENT_ERROR, ERROR)],
    [("health", n.AGENT_HEALTH_PREFIX, HEALTH_KEYS),
     ("metrics", n.AGENT_METRICS_PREFIX, AGENT_METRICS_KEYS)],
    {"issues": STRINGS},
)
# What a task is created with; what it reports later (status, outcome, progress,
# metrics) is left out of task:created, also when rebuilt from an ended span.
_CREATED_KEYS = frozenset({"taskId", "name", "description", "priority", "type", "agentId",
                           "dependencies"})


def task_attributes(state: Mapping[str, Any], out: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """A task's state as attributes (a bare-number ``progress`` as ``otel_sse.task.progress``)."""
    attributes = _TASK.encode(state, out)
    progress = state.get("progress")
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        attributes[n.TASK_PROGRESS] = progress
    return attributes


def task_state(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The task state in ``attributes`` (a progress object carries its ``taskId``)."""
    state = _TASK.decode(attributes)
    progress = state.get("progress")
    if isinstance(progress, dict):
        state["progress"] = {"taskId": state.get("taskId"), **progress}
    else:
        bare = attributes.get(n.TASK_PROGRESS)
        if bare is not None:
            state["progress"] = bare
    return state


def task_created(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The ``task:created`` payload: what the task was created with, status pending."""
    state = _TASK.decode(attributes)
    payload = {k: v for k, v in state.items() if k in _CREATED_KEYS}
    payload["status"] = "pending"
    return payload


def progress_attributes(progress: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """A progress object alone (a ``task:progress`` record)."""
    return _TASK.encode({"progress": progress}, out)


def metrics_attributes(metrics: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """A task metrics object alone (a ``task:metrics`` record)."""
    return _TASK.encode({"metrics": metrics}, out)


def agent_attributes(state: Mapping[str, Any], out: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """An agent's state as attributes."""
    return _AGENT.encode(state, out)


def agent_state(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The agent state in ``attributes``."""
    return _AGENT.decode(attributes)
