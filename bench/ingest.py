#!/usr/bin/env python
"""Ingest benchmark: OTLP spans into the gateway, events out to 100 subscribers.

For each transport (OTLP/HTTP protobuf, OTLP/HTTP JSON, OTLP/gRPC), each
subscription (what the subscribers ask for) and each offered rate (spans/s, or
``max``: unpaced, as fast as the gateway answers) it prints spans/s accepted,
events/s delivered to the subscribers, p50/p99 ingest-to-subscriber latency,
answers shed (429 / UNAVAILABLE), events lost on the way to a subscriber, the
gateway's CPU per span, peak RSS, and how busy every process and the whole
machine were; then PASS/FAIL lines for the target (>= 20,000 spans/s over
OTLP/HTTP protobuf with p99 <= 50 ms).

    .venv/bin/python bench/ingest.py                     # every transport, 20,000/s and max, 10 s
    .venv/bin/python bench/ingest.py --quick             # a smoke run of a few seconds
    .venv/bin/python bench/ingest.py --transports http-protobuf --rates 20000,30000,max
    .venv/bin/python bench/ingest.py --subscriptions all # every subscriber takes every event
    .venv/bin/python bench/ingest.py --repeat 3 --write  # medians, into bench/RESULTS.md
    .venv/bin/python bench/ingest.py --profile /tmp/prof # the gateway under cProfile

Processes per measurement, so that each one's CPU and memory are its own:

* the gateway, ``python -m otel_sse serve`` on free ports (HTTP and OTLP/gRPC), as
  a user runs it: uvloop, default limits, no token (loopback);
* the subscribers (``ingest.py --subscribe``, see ``_spanclient.py``): ``--clients``
  raw HTTP/1.1 streams of ``GET /events``; ``--sampled`` of them take every event
  and time every span, the others take every event too (``all``) or ask for a
  ``?filters=`` value (``--subscriptions``, one run each);
* one or more senders (``ingest.py --send``, see ``_otlpsender.py``): export
  requests of ``--batch`` spans as an SDK exporter sends them, ``--connections``
  at a time per sender;
* this driver, which only passes lines between them and reads ``/proc``.

What it costs to carry: a span becomes about 1 KB of events (``span:started``,
``span:ended`` and an eighth of a ``trace:completed``), so 20,000 spans/s to 100
subscribers that take every event are about 2 GB/s through loopback TCP, sent
by the gateway and received by the subscribers. By default every measurement is
made twice: with every subscriber taking every event (``all``), and with the
subscribers that are not sampled asking for ``trace:completed`` (one event per
trace, what a viewer of finished traces takes), which leaves the gateway's
ingest, conversion and fan-out to 100 subscribers without the 2 GB/s.

Definitions:

* spans/s accepted: spans in answers 200 / OK (less any partial-success rejections)
  after the first one, over the time from the first answer to the last (a paced
  run that keeps up shows the rate offered, whatever the latency of one answer);
* events/s delivered: events (``span:started``, ``span:ended``, ``trace:completed``:
  a plain OTLP exporter sends ended spans only, so the gateway rebuilds each span's
  start) received by all subscribers / (last receive - first request sent);
* latency: receive ``time.time_ns()`` - the span's ``bench.t`` attribute (the time
  its batch was due to leave the sender), every ``span:ended`` event of the
  sampled subscribers; offered rates are paced, so a batch that waited for a free
  connection has waited in the latency too;
* shed: answers 429 or ``UNAVAILABLE`` (not retried; their spans are not accepted);
* lost: events a subscriber had not received by the end of the drain (``--drain``
  s after the senders finished): for one that takes every event, the gateway's
  last event id - the last one it received; for a filtered one, the most any
  filtered subscriber received - what it received;
* CPU: utime + stime from the start signal to the end of the drain; busy is that
  over the wall time, in % of one core; gateway us/span is its CPU over the spans
  accepted; machine busy is the whole machine's (``/proc/stat``) in % of all its
  cores, and *others* is what was busy beyond our processes (other work sharing
  the machine), in cores;
* peak RSS: VmHWM of the gateway at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _otlpsender import TRANSPORTS  # noqa: E402
from _proc import Child, cpu_times, free_port, machine_cpu, peak_rss_mb  # noqa: E402
from _results import RESULTS, fmt, median_into, report  # noqa: E402

SECTION = "## Ingest"
TARGET_TRANSPORT = "http-protobuf"
TARGET_RATE = 20_000
TARGET_P99_MS = 50.0
LABELS = {"http-protobuf": "OTLP/HTTP protobuf", "http-json": "OTLP/HTTP JSON",
          "grpc": "OTLP/gRPC"}


@dataclass
class Cell:
    transport: str
    filters: str  # what the subscribers that are not sampled ask for ("": every event)
    rate: float  # offered spans/s; 0: unpaced
    accepted_s: float = 0.0
    events_s: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    spans: int = 0
    shed: int = 0
    rejected: int = 0
    failed: int = 0
    lost: int = 0
    dropped: int = 0
    cpu_us: float = float("nan")
    server_busy: float = float("nan")
    subscribers_busy: float = float("nan")
    senders_busy: float = float("nan")
    machine_busy: float = float("nan")
    others_cores: float = float("nan")
    rss_mb: float = float("nan")
    lag_p99_ms: float = float("nan")
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- one cell


def _healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            stats: dict[str, Any] = json.loads(answer.read())
            return stats
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}


def _cpu(pids: dict[str, list[int]]) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of each group of processes."""
    out = {}
    for name, group in pids.items():
        times = [cpu_times(pid) for pid in group]
        out[name] = (sum(t[0] for t in times), sum(t[1] for t in times))
    return out


def _seq(event_id: Any) -> int:
    """The sequence number in an event id ``<run>-<seq>`` (-1: none)."""
    try:
        return int(str(event_id).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _stop(child: Child) -> None:
    """SIGTERM first: the gateway stops cleanly on it (and writes its profile)."""
    if child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
    child.finish(timeout=10.0)


def run_cell(transport: str, filters: str, rate: float, args: argparse.Namespace,
             run: int) -> Cell:
    cell = Cell(transport, filters, rate)
    port, grpc_port = free_port(), free_port()
    py = sys.executable
    me = str(Path(__file__).resolve())
    gateway = [py, "-m", "otel_sse", "serve", "--port", str(port), "--grpc-port",
               str(grpc_port), "--max-clients", str(args.clients + 50)]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        rate_name = f"{rate:.0f}" if rate else "max"
        subscription = filters.replace(":", "").replace(",", "+").replace("*", "all") or "all"
        out = args.profile / f"gateway-{transport}-{subscription}-{rate_name}-{run}.prof"
        gateway[1:3] = ["-m", "cProfile", "-o", str(out), "-m", "otel_sse"]
    server = Child.spawn("gateway", gateway)
    subscribers: Child | None = None
    senders: list[Child] = []
    try:
        server.expect("otel-sse serving", 30)
        subscribers = Child.spawn("subscribers", [
            py, me, "--subscribe", "--port", str(port), "--clients", str(args.clients),
            "--sampled", str(args.sampled), "--drain", str(args.drain),
            "--lowat", str(args.lowat), "--filters", filters])
        ok, failed, _ = subscribers.expect("connected", 60).split()
        if int(ok) != args.clients:
            raise RuntimeError(f"{ok} of {args.clients} subscribers connected ({failed} failed)")
        target = grpc_port if transport == "grpc" else port
        per_sender = rate / args.senders
        for index in range(args.senders):
            senders.append(Child.spawn(f"sender {index}", [
                py, me, "--send", transport, "--port", str(target), "--sender", str(index),
                "--connections", str(args.connections), "--batch", str(args.batch),
                "--rate", str(per_sender), "--duration", str(args.duration)]))
        for sender in senders:
            sender.expect("ready", 60)
        time.sleep(0.3)  # let the last subscriber settle before the clock starts
        pids = {"server": [server.pid], "subscribers": [subscribers.pid],
                "senders": [s.pid for s in senders]}
        times0 = _cpu(pids)
        before = _healthz(port)
        busy0, all0 = machine_cpu()
        wall0 = time.monotonic()
        subscribers.send("start")
        for sender in senders:
            sender.send("start")
        results = [json.loads(s.expect("result", args.duration * 3 + 60)) for s in senders]
        spans = sum(r["spans_ok"] for r in results)
        # Every accepted span is published before its answer: the last id is final.
        published = _healthz(port)
        subscribers.send(f"expect {spans} {_seq(published.get('lastEventId'))}")
        received: dict[str, Any] = json.loads(subscribers.expect("result", args.drain + 30))
        wall = time.monotonic() - wall0
        times1 = _cpu(pids)
        busy1, all1 = machine_cpu()
        cell.rss_mb = peak_rss_mb(server.pid)
        stats = _healthz(port)
        stats["eventsPublished"] = (published.get("eventsPublished", 0)
                                    - before.get("eventsPublished", 0))

        first = min(r["first_send_ns"] for r in results if r["first_send_ns"])
        answered = [r for r in results if r["first_answer_ns"]]
        earliest = min(answered, key=lambda r: r["first_answer_ns"], default=None)
        last_answer = max(r["last_answer_ns"] for r in results)
        cell.spans = spans
        if earliest is not None and last_answer > earliest["first_answer_ns"]:
            # What was answered after the first answer, over the time it took: a paced
            # run that keeps up shows the rate offered, whatever one answer's latency.
            cell.accepted_s = (spans - earliest["first_answer_spans"]) / (
                (last_answer - earliest["first_answer_ns"]) / 1e9)
        last_receive = int(received["last_receive_ns"])
        cell.events_s = (received["events"] / ((last_receive - first) / 1e9)
                         if last_receive > first else 0.0)
        cell.p50_ms = float(received["p50_ms"])
        cell.p99_ms = float(received["p99_ms"])
        cell.shed = sum(r["shed"] for r in results)
        cell.rejected = sum(r["rejected"] for r in results)
        cell.failed = sum(sum(r["errors"].values()) for r in results)
        cell.lost = int(received["lost"])
        cell.dropped = int(received["dropped"])
        user = {name: times1[name][0] - times0[name][0] for name in pids}
        used = {name: sum(times1[name]) - sum(times0[name]) for name in pids}
        cell.cpu_us = used["server"] / spans * 1e6 if spans else float("nan")
        cell.server_busy = used["server"] / wall * 100
        cell.subscribers_busy = used["subscribers"] / wall * 100
        cell.senders_busy = used["senders"] / wall * 100
        cell.machine_busy = (busy1 - busy0) / (all1 - all0) * 100 if all1 > all0 else 0.0
        cell.others_cores = max(0.0, (busy1 - busy0) - sum(used.values())) / wall
        cell.lag_p99_ms = max(float(r["lag_p99_ms"]) for r in results)
        if cell.failed:
            errors: dict[str, int] = {}
            for r in results:
                for status, count in r["errors"].items():
                    errors[status] = errors.get(status, 0) + count
            cell.error = f"answers {errors}"
        cell.detail = {
            "senders": results, "subscribers": received, "wall_s": wall, "cpu_s": used,
            "user_s": user,
            "gateway": {k: stats.get(k) for k in (
                "eventsPublished", "slowDisconnects", "gapsSent", "ingestRequests",
                "ingestSpans", "ingestRejected", "ingestShed", "openSpans", "tracesCompleted",
                "error") if k in stats},
        }
    except Exception as exc:
        cell.error = f"{type(exc).__name__}: {exc}"
    finally:
        for sender in senders:
            sender.finish()
        if subscribers is not None:
            subscribers.finish()
        _stop(server)
    return cell


_MEDIANS = ("accepted_s", "events_s", "p50_ms", "p99_ms", "spans", "shed", "rejected", "failed",
            "lost", "dropped", "cpu_us", "server_busy", "subscribers_busy", "senders_busy",
            "machine_busy", "others_cores", "rss_mb", "lag_p99_ms")


def median_cell(cells: list[Cell]) -> Cell:
    if len(cells) == 1:
        return cells[0]
    out = Cell(cells[0].transport, cells[0].filters, cells[0].rate)
    median_into(out, cells, _MEDIANS)
    return out


# --------------------------------------------------------------------------- report


def offered(cell: Cell) -> str:
    return f"{cell.rate:,.0f}" if cell.rate else "max (unpaced)"


def taking(filters: str, sampled: int) -> str:
    """What the subscribers ask for, as the table says it."""
    if not filters:
        return "every event"
    return f"`{filters}` ({sampled} sampled: every event)"


def table(cells: list[Cell], sampled: int) -> str:
    head = ("| transport | subscribers take | offered spans/s | accepted spans/s "
            "| events/s delivered | p50 ms | p99 ms | shed | lost | gateway CPU us/span "
            "| gateway busy | subscribers busy | senders busy | machine busy (others) "
            "| peak RSS MB |")
    rows = [head, "|---|---|" + "---:|" * 13]
    for c in cells:
        first = f"| {LABELS[c.transport]} | {taking(c.filters, sampled)} | {offered(c)} |"
        if c.error and not c.spans:
            rows.append(f"{first} error: {c.error} |" + " |" * 11)
            continue
        rows.append(
            f"{first} {c.accepted_s:,.0f} | {c.events_s:,.0f} "
            f"| {fmt(c.p50_ms, 2)} | {fmt(c.p99_ms, 2)} | {c.shed:,} | {c.lost:,} "
            f"| {fmt(c.cpu_us, 1)} | {fmt(c.server_busy, 0)} % | {fmt(c.subscribers_busy, 0)} % "
            f"| {fmt(c.senders_busy, 0)} % | {fmt(c.machine_busy, 0)} % "
            f"({fmt(c.others_cores, 2)} cores) | {fmt(c.rss_mb)} |")
    return "\n".join(rows)


def targets(cells: list[Cell], sampled: int) -> list[str]:
    """The issue's target as PASS/FAIL lines, for each paced OTLP/HTTP protobuf run
    offered >= 20,000 spans/s: accepted at that rate (within 1 %), p99 <= 50 ms, nothing shed or
    lost; and the unpaced runs' saturation, not judged."""
    lines: list[str] = []
    judged = [c for c in cells if c.transport == TARGET_TRANSPORT]
    for c in judged:
        where = f"{LABELS[c.transport]}, subscribers take {taking(c.filters, sampled)}"
        if not c.rate:
            lines.append(f"- saturation ({where}; unpaced, not judged): {c.accepted_s:,.0f} "
                         f"spans/s accepted, p99 {fmt(c.p99_ms, 2)} ms, gateway busy "
                         f"{fmt(c.server_busy, 0)} %")
            continue
        if c.rate < TARGET_RATE:
            continue
        if c.error:
            lines.append(f"- FAIL {where}, {c.rate:,.0f}/s offered: {c.error}")
            continue
        checks = [
            # Pacing and the first-to-last-answer window make a run that keeps up
            # measure a hair under what it was offered: within 1% is keeping up.
            ("accepted at the rate offered (>= 99 %)", c.accepted_s >= 0.99 * c.rate,
             f"{c.accepted_s:,.0f}/s"),
            (f"p99 <= {TARGET_P99_MS:g} ms", c.p99_ms <= TARGET_P99_MS,
             f"{fmt(c.p99_ms, 2)} ms"),
            ("none shed, none lost", c.shed == 0 and c.lost == 0 and c.dropped == 0,
             f"shed {c.shed}, lost {c.lost}, subscribers dropped {c.dropped}"),
        ]
        for name, ok, value in checks:
            lines.append(f"- {'PASS' if ok else 'FAIL'} {where}, {c.rate:,.0f}/s offered: "
                         f"{name} ({value})")
    if judged and not any(c.rate >= TARGET_RATE for c in judged):
        lines.append(f"- FAIL no paced {LABELS[TARGET_TRANSPORT]} run at >= {TARGET_RATE:,}/s")
    return lines


def progress_line(c: Cell) -> str:
    gateway = c.detail.get("gateway", {})
    return (f"  {c.transport:13} {c.filters or 'every event':>16} {offered(c):>13}: "
            f"{c.accepted_s:,.0f} spans/s accepted, "
            f"{c.events_s:,.0f} events/s delivered, p50 {fmt(c.p50_ms, 2)} ms, "
            f"p99 {fmt(c.p99_ms, 2)} ms, shed {c.shed}, lost {c.lost}, "
            f"gateway {fmt(c.cpu_us, 1)} us/span, busy: gateway {fmt(c.server_busy, 0)} %, "
            f"subscribers {fmt(c.subscribers_busy, 0)} %, senders {fmt(c.senders_busy, 0)} %, "
            f"machine {fmt(c.machine_busy, 0)} % (others {fmt(c.others_cores, 2)} cores), "
            f"send lag p99 {fmt(c.lag_p99_ms, 1)} ms, slow disconnects "
            f"{gateway.get('slowDisconnects', 'n/a')}"
            + (f"  [{c.error}]" if c.error else ""))


# --------------------------------------------------------------------------- main


def parse_rates(text: str) -> list[float]:
    """``20000,30000,max``: spans/s offered, ``max`` for an unpaced run."""
    out: list[float] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part:
            out.append(0.0 if part == "max" else float(part))
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--transports", default=",".join(TRANSPORTS),
                   help="comma-separated, from: " + ", ".join(TRANSPORTS)
                   + " (default: %(default)s)")
    p.add_argument("--rates", default=f"{TARGET_RATE},max",
                   help="comma-separated spans/s to offer; max: unpaced (default: %(default)s)")
    p.add_argument("--subscriptions", default="all;trace:completed",
                   help="semicolon-separated: what the subscribers that are not sampled "
                   "ask for, each one a run: all (every event) or a ?filters= value, "
                   "e.g. 'all;trace:completed' (default: %(default)s)")
    p.add_argument("--duration", type=float, default=10.0, help="sending seconds (default: 10)")
    p.add_argument("--drain", type=float, default=5.0,
                   help="seconds after the senders finish to wait for deliveries (default: 5)")
    p.add_argument("--clients", type=int, default=100, help="subscribers (default: 100)")
    p.add_argument("--sampled", type=int, default=2,
                   help="subscribers that take every event and time every span (default: 2)")
    p.add_argument("--lowat", type=int, default=65536,
                   help="SO_RCVLOWAT of the subscribers that only follow ids (1: off) "
                   "(default: 65536)")
    p.add_argument("--senders", type=int, default=1, help="sender processes (default: 1)")
    p.add_argument("--connections", type=int, default=2,
                   help="requests in flight at once per sender (default: 2)")
    p.add_argument("--batch", type=int, default=512, help="spans per request (default: 512)")
    p.add_argument("--repeat", type=int, default=1, help="runs per cell; medians reported")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 s per cell, 1 s drain, one run, nothing written")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="run the gateway under cProfile, one .prof file per run in DIR")
    p.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {RESULTS.name}")
    p.add_argument("--json", type=Path, help="also write every measurement as JSON here")
    # internal modes
    p.add_argument("--subscribe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--filters", default="", help=argparse.SUPPRESS)
    p.add_argument("--send", choices=TRANSPORTS, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--sender", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.subscribe:
        import _spanclient

        _spanclient.main("127.0.0.1", args.port, args.clients, args.sampled, 256, 30.0,
                         args.drain, args.lowat, args.filters)
        return 0
    if args.send:
        import _otlpsender

        _otlpsender.main(args.send, "127.0.0.1", args.port, args.sender, args.connections,
                         args.batch, args.rate, args.duration)
        return 0
    if args.quick:
        args.duration, args.drain, args.repeat, args.write = 2.0, 1.0, 1, False
    # SIGTERM unwinds like Ctrl-C, so that every child is stopped in run_cell's finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    for transport in transports:
        if transport not in TRANSPORTS:
            raise SystemExit(f"unknown transport {transport!r}; choose from "
                             + ", ".join(TRANSPORTS))
    subscriptions = ["" if part.strip().lower() in ("all", "*") else part.strip()
                     for part in args.subscriptions.split(";") if part.strip()]
    rates = parse_rates(args.rates)
    command = "python bench/ingest.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = datetime.now(UTC)
    cells: list[Cell] = []
    for filters in subscriptions:
        for transport in transports:
            for rate in rates:
                runs: list[Cell] = []
                for run in range(args.repeat):
                    cell = run_cell(transport, filters, rate, args, run)
                    print(progress_line(cell), flush=True)
                    runs.append(cell)
                cells.append(median_cell(runs))
    report(SECTION, table(cells, args.sampled), targets(cells, args.sampled), started=started,
           command=command, repeat=args.repeat, setup=(
               f"{args.duration:g} s of sending per run, drain {args.drain:g} s. The gateway "
               "(`otel-sse serve`, default limits, uvloop) alone in its own process; "
               f"{args.clients} subscribers over HTTP/1.1 in another; {args.senders} sender "
               f"process(es) with {args.connections} request(s) in flight each, {args.batch} "
               "spans per request (traces of 8 spans, 5 attributes each). Every span becomes "
               "`span:started` and `span:ended` (a plain exporter sends ended spans only), "
               "every trace a `trace:completed`: about 1 KB of events per span for each "
               "subscriber that takes every event (2 GB/s through loopback TCP at 20,000 "
               "spans/s to 100 of them). Busy: CPU time over wall time, in % of one "
               "core; the machine's in % of all its cores, with what other work used beside "
               "ours. Definitions in the docstring of `bench/ingest.py`."),
           checks_heading="Target:", measurements=cells, json_path=args.json, write=args.write)
    return 0 if all(not c.error for c in cells) else 1


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    sys.exit(main())
