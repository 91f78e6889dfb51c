"""bench/RESULTS.md: each benchmark script owns one ``## ...`` section of it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

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
