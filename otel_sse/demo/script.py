"""What the stub model answers: deterministic, scripted replies.

A :class:`Script` is a list of :class:`Rule` s; the first rule that matches a
request gives its :class:`Reply` (the script's ``default`` otherwise). A rule
looks at what an agent loop needs to tell its steps apart: whether the
conversation ends with a tool result, whether the request offers tools, the
text of the last user message and the model asked for. A reply is text to
stream (in the pieces given, or word by word), at a pace, and the tool calls to
make, each with its JSON arguments; a tool call is made only when the request
offers that tool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_sse.errors import ConfigError
from otel_sse.wire.encoder import dumps

_WORDS = re.compile(r"\s*\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asks for, with its arguments (an object, or JSON text)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError(f"ToolCall: name={self.name!r} must not be empty")

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text a model streams."""
        return self.arguments if isinstance(self.arguments, str) else dumps(self.arguments)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer.

    ``text`` is streamed in ``chunks`` when given (they must join to the text),
    else word by word; ``token_delay`` (seconds between chunks) overrides the
    server's; ``tool_calls`` are made when the request offers those tools.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    chunks: tuple[str, ...] | None = None
    token_delay: float | None = None

    def __post_init__(self) -> None:
        if self.chunks is not None and "".join(self.chunks) != self.text:
            raise ConfigError(f"Reply: chunks={self.chunks!r} do not join to text={self.text!r}")
        if self.token_delay is not None and self.token_delay < 0:
            raise ConfigError(f"Reply: token_delay={self.token_delay!r} must be >= 0")

    def pieces(self) -> list[str]:
        """The text as streamed: the chunks given, else one piece per word (with the
        spaces before it)."""
        if self.chunks is not None:
            return [chunk for chunk in self.chunks if chunk]
        return _WORDS.findall(self.text)

    def calls_for(self, offered: Sequence[str]) -> list[ToolCall]:
        """The tool calls to make when the request offers the tools ``offered``."""
        return [call for call in self.tool_calls if call.name in offered]


@dataclass(frozen=True, slots=True)
class Request:
    """What a rule can look at in a request, whatever API it came through."""

    model: str
    last_user_text: str
    after_tool: bool
    tools: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """A reply and when it applies: every condition given must hold.

    ``after_tool``: the conversation ends with a tool result (True) or not
    (False); ``with_tools``: the request offers tools; ``contains``: the last
    user message contains this text (case-insensitive); ``model``: the model
    asked for.
    """

    reply: Reply
    after_tool: bool | None = None
    with_tools: bool | None = None
    contains: str | None = None
    model: str | None = None

    def matches(self, request: Request) -> bool:
        """Whether this rule answers ``request``."""
        if self.after_tool is not None and request.after_tool != self.after_tool:
            return False
        if self.with_tools is not None and bool(request.tools) != self.with_tools:
            return False
        if self.contains is not None and (
                self.contains.lower() not in request.last_user_text.lower()):
            return False
        return self.model is None or self.model == request.model


@dataclass(frozen=True, slots=True)
class Script:
    """Rules tried in order; ``default`` answers what none matches."""

    rules: tuple[Rule, ...] = ()
    default: Reply = Reply(text="OK.")

    def reply_to(self, request: Request) -> Reply:
        """The reply for ``request``."""
        for rule in self.rules:
            if rule.matches(request):
                return rule.reply
        return self.default

    @classmethod
    def tool_then_answer(cls, tool: str, arguments: Mapping[str, Any], answer: str, *,
                         preamble: str = "") -> Script:
        """The usual agent loop: asked with ``tool`` offered, call it with ``arguments``
        (saying ``preamble`` first); given its result, answer with ``answer``."""
        return cls(rules=(
            Rule(Reply(text=answer), after_tool=True),
            Rule(Reply(text=preamble, tool_calls=(ToolCall(tool, arguments),)),
                 with_tools=True),
        ), default=Reply(text=answer))
