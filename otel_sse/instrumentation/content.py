"""What a decorated call's arguments, yields and return value become when content
capture is on: plain, bounded values that the emitters can carry.

Only called when capture is on: with it off nothing of a call's content is
looked at. Values keep their shape (dicts, lists, numbers) rather than
becoming text; objects that know how to describe themselves (dataclasses,
pydantic models) are turned into dicts, anything else is left for the event
encoder, which writes its ``repr``. Bounded: long strings are cut, long
collections truncated and deep nesting summarised, so one huge argument
cannot make an event too large to send.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

MAX_TEXT: Final = 16_384  # characters of one string
MAX_ITEMS: Final = 256  # items of one list or dict
MAX_DEPTH: Final = 8
TRUNCATED: Final = "…"


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-shaped data, bounded (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + TRUNCATED
    if depth >= MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS:
                out[TRUNCATED] = len(value) - MAX_ITEMS
                break
            out[key if isinstance(key, str) else str(key)] = plain(item, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        converted = [plain(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            converted.append(TRUNCATED)
        return converted
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)},
                     depth + 1)
    dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(dump) and not isinstance(value, type):
        try:
            return plain(dump(mode="json"), depth + 1)
        except Exception:  # a model that cannot dump itself is described by its repr
            return repr(value)
    return value


class Arguments:
    """Binds a function's call arguments to their parameter names."""

    __slots__ = ("_signature", "_skip")

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            self._signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature
            self._signature = None
        params = list(self._signature.parameters) if self._signature is not None else []
        # A method's receiver is not an argument anyone wants to see.
        self._skip = params[0] if params and params[0] in ("self", "cls") else None

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``{parameter: plain(value)}`` for one call (positional ones by index when
        the signature cannot bind them)."""
        if self._signature is not None:
            try:
                bound = self._signature.bind_partial(*args, **kwargs)
            except TypeError:
                pass
            else:
                return {name: plain(value) for name, value in bound.arguments.items()
                        if name != self._skip}
        out = {str(index): plain(value) for index, value in enumerate(args)}
        out.update({name: plain(value) for name, value in kwargs.items()})
        return out
