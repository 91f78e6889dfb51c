"""bench/RESULTS.md: each benchmark script owns one ``## ...`` section of it."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")


def write_section(title: str, text: str, path: Path = RESULTS) -> None:
    """Replace the section headed ``title`` (a ``## ...`` line) with ``text``.

    ``text`` is the whole section, heading included. The section ends at the next
    ``## `` heading; a missing section is appended. Sections are separated by
    exactly one blank line and the file ends with one newline.
    """
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = old.rstrip("\n").splitlines()
    new = text.strip("\n").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == title), None)
    if start is None:
        before, after = lines, []
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        before, after = lines[:start], lines[end:]
    parts = ["\n".join(before).rstrip("\n"), "\n".join(new)]
    if after:
        parts.append("\n".join(after))
    path.write_text("\n\n".join(p for p in parts if p) + "\n")


def machine() -> str:
    """The machine line of a section: CPUs, kernel, Python."""
    return (f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``ordered`` (sorted already); NaN when empty."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def fmt(value: float, digits: int = 1) -> str:
    """A table figure: thousands separated, ``n/a`` for NaN."""
    return "n/a" if value != value else f"{value:,.{digits}f}"


class Measured(Protocol):
    """One measurement of a benchmark: figures by name, an error, and the raw detail."""

    error: str
    detail: dict[str, Any]


def median_into(out: Measured, runs: Sequence[Measured], names: Iterable[str]) -> None:
    """Set the figures ``names`` of ``out`` to their medians over the runs without an
    error (over all of them when every one failed), keeping each figure's type; the
    errors and every run's detail go along."""
    good = [run for run in runs if not run.error] or list(runs)
    for name in names:
        value = statistics.median(getattr(run, name) for run in good)
        setattr(out, name, type(getattr(good[0], name))(value))
    out.error = "; ".join(run.error for run in runs if run.error)
    out.detail = {"repeats": [run.detail for run in runs]}


def report(title: str, table: str, checks: Sequence[str], *, started: datetime, command: str,
           repeat: int, setup: str, checks_heading: str, measurements: Sequence[Measured],
           json_path: Path | None, write: bool) -> None:
    """Print a benchmark's table and its target lines; with ``json_path`` write every
    measurement there; with ``write`` make them the section ``title`` of RESULTS.md,
    under the time, the machine, the exact command and ``setup`` (how it was run)."""
    print()
    print(table)
    if checks:
        print()
        print("\n".join(checks))
    if json_path is not None:
        json_path.write_text(json.dumps([m.__dict__ for m in measurements], indent=2,
                                        default=str))
    if not write:
        return
    section = [
        title,
        "",
        f"{started:%Y-%m-%d %H:%M} UTC; {machine()}.",
        f"Command: `{command}` ({repeat} run(s) per cell" + (", medians" if repeat > 1 else "")
        + ").",
        setup,
        "",
        table,
    ]
    if checks:
        section += ["", checks_heading, "", *checks]
    write_section(title, "\n".join(section))
    print(f"\nwrote '{title}' in {RESULTS}")
