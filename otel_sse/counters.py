"""Counters shown by ``get_stats()``: plain dataclasses with camelCase keys."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class Counters:
    """Base of a set of int counters; :meth:`as_dict` names them in camelCase."""

    def as_dict(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        for f in fields(self):
            parts = f.name.split("_")
            head = prefix + parts[0].title() if prefix else parts[0]
            out[head + "".join(p.title() for p in parts[1:])] = getattr(self, f.name)
        return out
