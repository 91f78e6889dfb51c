"""The documentation under docs/ agrees with the code.

- every event type with a schema has a section in docs/events.md whose JSON
  example validates against that schema (a snapshot's inner events too);
- every ServerConfig field is in docs/configuration.md with its default and its
  ``OTEL_SSE_*`` variable, and every CLI flag is there;
- every route the server's router serves is in docs/http.md's route table;
- every name of ``otel_sse.__all__`` has a heading in docs/api.md, and the public
  classes and functions it describes have docstrings;
- every link between the documents lands on a heading that exists; every Python
  block compiles, and the ones marked ``<!-- run -->`` run.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

import otel_sse
from otel_sse.cli import build_parser
from otel_sse.server import ServerConfig, SSEServer
from otel_sse.server.config import _NOT_FROM_ENV
from tests.event_schemas import SCHEMAS, validate_event

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCUMENTS = sorted(DOCS.glob("*.md"))


# --------------------------------------------------------------------------- markdown


@dataclass
class Section:
    """A heading and the text under it, up to the next heading."""

    level: int
    title: str
    body: str


@dataclass
class Block:
    """A fenced code block and the line before it (a ``<!-- run -->`` marker)."""

    language: str
    code: str
    marker: str


_FENCE = re.compile(r"^(```+)(\w*)\s*$")


def _lines_outside_code(text: str) -> Iterator[tuple[str, bool]]:
    """Each line, and whether it is outside a fenced code block."""
    fence = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match and (fence is None or match.group(1) == fence):
            fence = match.group(1) if fence is None else None
            yield line, False
            continue
        yield line, fence is None


def sections(text: str) -> list[Section]:
    out: list[Section] = []
    for line, outside in _lines_outside_code(text):
        heading = re.match(r"^(#{1,6}) (.+)$", line) if outside else None
        if heading:
            out.append(Section(len(heading.group(1)), heading.group(2).strip(), ""))
        elif out:
            out[-1].body += line + "\n"
    return out


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    previous = ""
    language: str | None = None
    code: list[str] = []
    marker = ""
    for line in text.splitlines():
        match = _FENCE.match(line)
        if language is None and match:
            language, code, marker = match.group(2), [], previous
        elif language is not None and match and not match.group(2):
            found.append(Block(language, "\n".join(code) + "\n", marker.strip()))
            language = None
        elif language is not None:
            code.append(line)
        previous = line if line.strip() else previous
    return found


def slug(title: str) -> str:
    """The anchor GitHub gives a heading."""
    text = title.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for section in sections(text):
        base = slug(section.title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row (header and separator rows included)."""
    rows = []
    for line, outside in _lines_outside_code(text):
        if outside and line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_the_documents_exist() -> None:
    names = {path.name for path in DOCUMENTS}
    assert {"README.md", "events.md", "http.md", "security.md", "configuration.md",
            "api.md"} <= names
    index = read("README.md")
    for name in names - {"README.md"}:
        assert f"]({name})" in index, f"docs/README.md does not link {name}"


# --------------------------------------------------------------------------- events


def _type_sections() -> dict[str, list[Section]]:
    found: dict[str, list[Section]] = {}
    for section in sections(read("events.md")):
        match = re.fullmatch(r"`([^`]+)`", section.title)
        if match:
            found.setdefault(match.group(1), []).append(section)
    return found


def _example(section: Section) -> Any:
    examples = [b for b in blocks(section.body) if b.language == "json"]
    assert examples, f"no JSON example under {section.title}"
    return json.loads(examples[0].code)


def test_every_event_type_has_a_section() -> None:
    found = _type_sections()
    missing = sorted(set(SCHEMAS) - set(found))
    assert not missing, f"docs/events.md has no section for {missing}"
    unknown = sorted(set(found) - set(SCHEMAS))
    assert not unknown, f"docs/events.md has sections for types without a schema: {unknown}"
    doubled = sorted(t for t, s in found.items() if len(s) > 1)
    assert not doubled, f"more than one section for {doubled}"


@pytest.mark.parametrize("event_type", sorted(SCHEMAS))
def test_each_example_validates_against_its_schema(event_type: str) -> None:
    section = _type_sections()[event_type][0]
    validate_event(event_type, _example(section))


def test_snapshot_example_holds_valid_events() -> None:
    snapshot = _example(_type_sections()["snapshot"][0])
    kinds = set()
    for entry in snapshot["events"]:
        kinds.add(entry["event"])
        if entry["event"] == "llm:text":
            assert set(entry["data"]) == {"requestId", "traceId", "spanId", "text",
                                          "truncated"}
        else:
            validate_event(entry["event"], entry["data"])
    assert {"span:started", "llm:text"} <= kinds


def test_the_wire_example_is_what_the_encoder_writes() -> None:
    from otel_sse.wire.encoder import encode_checked

    text = read("events.md")
    wire = next(b for b in blocks(text) if b.language == "" and b.code.startswith("id: "))
    head, data = wire.code.split("data: ", 1)
    event_id = re.search(r"^id: (.+)$", head, re.M)
    event_type = re.search(r"^event: (.+)$", head, re.M)
    assert event_id and event_type
    payload = data.split("\n", 1)[0]
    validate_event(event_type.group(1), json.loads(payload))
    expected = encode_checked(event_id.group(1), event_type.group(1), payload).decode()
    assert wire.code.rstrip("\n") + "\n\n" == expected


# --------------------------------------------------------------------------- configuration


def _default_text(value: Any) -> str:
    """How configuration.md writes a default: a Python literal in a code span."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def test_every_server_option_is_documented_with_its_default_and_variable() -> None:
    table = next(s.body for s in sections(read("configuration.md")) if s.title == "Server options")
    rows = {code_spans(row[0])[0]: row for row in table_rows(table) if row and code_spans(row[0])}
    for field in dataclasses.fields(ServerConfig):
        row = rows.get(field.name)
        assert row is not None, f"ServerConfig.{field.name} is not in configuration.md"
        variable = ServerConfig.env_name(field.name)
        if field.name in _NOT_FROM_ENV:
            assert variable not in " ".join(row), f"{field.name} is not read from {variable}"
        else:
            assert f"`{variable}`" in row[1], f"{field.name}: {variable} not in its row"
        if field.default is not dataclasses.MISSING:
            default = f"`{_default_text(field.default)}`"
            assert default in row[2], f"{field.name}: default {default} not in {row[2]!r}"


def _flags(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for _, flag in _flags(sub):
                    yield name, flag
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                yield "otel-sse", flag


def test_every_cli_flag_is_documented() -> None:
    text = read("configuration.md")
    missing = sorted({f"{command} {flag}" for command, flag in _flags(build_parser())
                      if f"`{flag}" not in text})
    assert not missing, f"configuration.md does not mention {missing}"


def test_every_telemetry_argument_is_documented() -> None:
    text = read("configuration.md")
    for name in inspect.signature(otel_sse.configure).parameters:
        assert f"`{name}`" in text, f"configure({name}=...) is not in configuration.md"


# --------------------------------------------------------------------------- HTTP


def test_every_route_is_in_the_route_table() -> None:
    server = SSEServer(config=ServerConfig.build(token="a-long-token", environ={}))
    router = server.router
    served: list[tuple[str, frozenset[str], bool]] = [
        (path, entry.methods, False) for path, entry in router.routes.items()]
    served += [(path, entry.methods, True) for path, entry in router.prefixes.items()]
    served += [("/events", frozenset({"GET", "HEAD"}), False)]
    rows = [(code_spans(row[0]), code_spans(row[1])) for row in table_rows(read("http.md"))
            if len(row) > 2]
    for path, methods, prefix in served:
        matching = [m for m, paths in rows if any(
            p.split(" ")[0] == path or (prefix and p.startswith(path) and p != path)
            for p in paths)]
        assert matching, f"{sorted(methods)} {path} is not in http.md's route table"
        documented = {m for group in matching for m in group}
        assert methods <= documented, f"{path}: {sorted(methods - documented)} undocumented"


# --------------------------------------------------------------------------- API


def test_every_export_has_a_heading_in_the_api_reference() -> None:
    titles = [s.title for s in sections(read("api.md"))]
    for name in otel_sse.__all__:
        assert any(f"`{name}" in title for title in titles), f"api.md has no heading for {name}"


def _public_members(cls: type) -> Iterator[tuple[str, Any]]:
    for klass in cls.__mro__:
        if not klass.__module__.startswith("otel_sse"):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or isinstance(value, (Enum, str, int, float, tuple)):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value) or isinstance(value, property):
                yield f"{klass.__name__}.{name}", value


def test_the_public_api_has_docstrings() -> None:
    from otel_sse import errors
    from otel_sse.asgi import SSEApp
    from otel_sse.bus.publisher import RedisPublisher
    from otel_sse.hub import EventHub, HubLimits
    from otel_sse.telemetry import Telemetry, current, resolve

    classes: list[type] = [getattr(otel_sse, name) for name in otel_sse.__all__
                           if inspect.isclass(getattr(otel_sse, name))]
    classes += [ServerConfig, SSEApp, EventHub, HubLimits, Telemetry, RedisPublisher]
    classes += [value for value in vars(errors).values()
                if inspect.isclass(value) and issubclass(value, errors.OtelSSEError)]
    # SSEEvent documents its read-only properties in the class docstring.
    skip = {"SSEEvent.type", "SSEEvent.raw", "SSEEvent.id", "SSEEvent.retry", "SSEEvent.data"}
    missing = [cls.__name__ for cls in classes if not (cls.__doc__ or "").strip()]
    for cls in classes:
        for name, member in _public_members(cls):
            if name not in skip and not (inspect.getdoc(member) or "").strip():
                missing.append(name)
    for function in (otel_sse.configure, current, resolve):
        if not (function.__doc__ or "").strip():
            missing.append(function.__name__)
    assert not missing, f"no docstring: {sorted(set(missing))}"


# --------------------------------------------------------------------------- links and code


def test_links_between_documents_land_on_headings() -> None:
    targets = {path.name: anchors(path.read_text(encoding="utf-8")) for path in DOCUMENTS}
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([\w.-]*\.md|)(?:#([\w-]+))?\)", text):
            name = target or path.name
            if target.startswith("../"):
                continue
            assert name in targets, f"{path.name} links to {name}, which does not exist"
            if anchor:
                assert anchor in targets[name], f"{path.name} links to {name}#{anchor}"


def _python_blocks() -> list[tuple[str, int, Block]]:
    return [(path.name, index, block) for path in DOCUMENTS
            for index, block in enumerate(blocks(path.read_text(encoding="utf-8")))
            if block.language == "python"]


@pytest.mark.parametrize(("name", "index", "block"), _python_blocks(),
                         ids=lambda v: v if isinstance(v, str) else str(v) if
                         isinstance(v, int) else "")
def test_python_blocks_compile(name: str, index: int, block: Block) -> None:
    import ast

    compile(block.code, f"{name}[{index}]", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


RUNNABLE = [(name, index, block) for name, index, block in _python_blocks()
            if block.marker == "<!-- run -->"]


def test_some_examples_are_run() -> None:
    assert len(RUNNABLE) >= 3


@pytest.mark.parametrize(("name", "index", "block"), RUNNABLE,
                         ids=lambda v: v if isinstance(v, str) else str(v) if
                         isinstance(v, int) else "")
def test_marked_examples_run(name: str, index: int, block: Block, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, f"{name}[{index}] failed:\n{result.stdout}\n{result.stderr}"
