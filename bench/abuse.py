#!/usr/bin/env python
"""Abuse benchmark: what hostile or broken clients cost otel-sse's fast clients and memory.

1,000 fast HTTP/1.1 clients take 200 events/s of 200-byte payloads in every
scenario, while attackers in another process do one thing per scenario:

* ``baseline``: nothing (the reference for the others);
* ``stalled``: 1 % of the clients (10) connect like the fast ones, with a 4 KiB
  receive buffer, and never read;
* ``slow``: 50 readers each read ~160 KB/s while the server also publishes 64 KiB
  events at 20/s (finding 3 of the hardening issue);
* ``zero-window``: one h2c connection with ``SETTINGS_INITIAL_WINDOW_SIZE=0`` holds
  100 ``/events`` streams open while the server also publishes 1 KiB events at
  500/s (finding 2);
* ``flood``: 4 h2c connections send SETTINGS (half of them) or PING frames as fast
  as their sockets take them (finding 6);
* ``flood-paced``: 20 h2c connections each send those frames at 90 % of the
  server's per-connection budget (``h2_control_frame_rate``), so none is ever cut.

The extra events of ``slow`` and ``zero-window`` (type ``bulk``) go to the
attackers only: the fast clients ask for ``/events?filters=bench`` in every
scenario. An attacker the server cuts (slow-client policy, GOAWAY, reset
stream) comes back at once, with a new connection or a new stream on its h2c
connection.

    .venv/bin/python bench/abuse.py --quick               # smoke run, ~3 minutes
    .venv/bin/python bench/abuse.py                       # 30 s of attack per scenario
    .venv/bin/python bench/abuse.py --repeat 3 --write    # medians, into bench/RESULTS.md

Each scenario gets a server of its own. Processes:

* the server (``abuse.py --serve``): ``otel_sse.server.SSEServer`` on uvloop with
  the limits of ``server_options`` (``client_buffer_bytes``, ``history_bytes``
  and ``h2_control_frame_rate`` are options of this script). Before any client
  connects its history is filled with what the scenario's publishers would have
  left in it by then (``history_size`` events or ``history_bytes``, whichever
  they reach first), as in a server that has run for a while, so that memory
  growth later is the load's and the attackers', not the history's. It publishes on timers in its
  own loop (``_peers.publish_loop``) and answers ``stats`` with ``get_stats()``;
* the load client(s) (``abuse.py --client``, ``_loadclient.py``): the fast
  clients, latency sampled on every k-th client (about ``--sample-per-s``
  samples/s in all); ``--load-clients 2`` splits them over two processes;
* the attackers (``abuse.py --attack``, ``_attackers.py``), one asyncio process;
* this driver, which only passes lines and reads ``/proc``.

A scenario runs in phases: ``warm-up`` (one window: publishing has just begun),
``before`` (the same load, the attackers idle), ``attack`` (``--duration``;
``--stalled-duration`` for the stalled readers, whose stream fills the kernel's
socket buffers for about a minute before the server's own buffer), ``after``
(the attackers gone, publishing goes on). The baseline has one ``steady`` phase as
long as those three. Every ``--window`` seconds (2 by default) one row:

* t s: seconds since publishing began, at the end of the window;
* RSS MB: the server's largest VmRSS seen in the window (read every 0.25 s);
* server / load client / attackers CPU %: utime + stime of each process over the
  window, in % of one core (with two load-client processes, one figure each);
* other CPU %: what the machine's cores were busy with besides the benchmark's
  processes (this driver included), from ``/proc/stat``, in % of one core: the
  other work sharing the machine, which the server competes with;
* p50 / p99 ms: the fast clients' latency samples taken in the window (receive
  ``time.time_ns()`` - the publish ``time.time_ns()`` in the payload), merged
  over load-client processes from 1,000 evenly spaced quantiles of each;
* deliveries/s: ``bench`` events all fast clients received in the window, per second;
* fast cut: fast clients the server has closed so far (should stay 0);
* attackers up: connections (HTTP/1.1, floods) or answered streams (zero-window)
  the attackers hold at the end of the window; attackers cut: how many the
  server has closed or reset since the attack began; then the server's own
  counters (``slowDisconnects``, ``floodClosed``).

Per scenario, the medians over ``--repeat`` runs (the scenarios run in turn, so
that a disturbance of the machine hits one run of each rather than all runs of one):

* p50 / p99 before and attack: the median over the phase's windows of each
  window's percentile (not pooled percentiles: the machine is shared and noisy,
  and one disturbed window should not decide);
* p99 vs baseline: the attack phase's p99 over the baseline's (``steady``) p99
  in the same repeat; the issue's target for ``stalled`` is below 1.20x;
* p99 vs before/after: the attack phase's p99 over the median p99 of the same
  run's ``before`` and ``after`` windows (same server, same clients, minutes
  apart at most: the least noisy comparison on a shared machine);
* server CPU % before / attack, load client, attackers and other CPU %: medians
  over the phase's windows (the load client: the busiest process);
* peak RSS: the server's VmHWM at the end of the scenario;
* bound MB (C): what the configuration lets the server hold, checked against the
  peak: C + ``history_bytes`` + clients x ``client_buffer_bytes``, where clients
  counts the fast clients and the attackers' connections and streams, and C is
  the server's RSS once ready, before the history is filled and any client
  connects (measured per scenario, shown in brackets);
* attackers cut: as above, at the end of the attack.

Notes follow the targets (informative): what the attackers did per second of
the attack (connections or streams opened and cut, frames sent, bytes read);
for the floods the server's extra CPU (attack - before, in cores) per frame
sent; and the peak RSS above the ``before`` phase's largest against the
attackers' share of the bound (attackers x ``client_buffer_bytes``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _peers import (  # noqa: E402
    EVENT,
    PAYLOAD_BYTES,
    OtelServer,
    Publish,
    payload,
    publish_loop,
    say,
    stdin_lines,
)
from _proc import (  # noqa: E402
    Child,
    cpu_seconds,
    free_port,
    install_uvloop,
    machine_busy_seconds,
    peak_rss_mb,
    raise_nofile,
    rss_mb,
)
from _results import RESULTS, fmt, machine, write_section  # noqa: E402

SECTION = "## Abuse"
BULK = "bulk"
FAST_PATH = f"/events?filters={EVENT}"
ALL_PATH = "/events"
MIB = 1024 * 1024
HISTORY_SIZE = 10_000  # the server's default, set explicitly: the fill depends on it
# An event's bytes in the history besides its payload (id, event and data lines, timestamp).
FRAME_OVERHEAD = 110
SCENARIOS = ("baseline", "stalled", "slow", "zero-window", "flood", "flood-paced")
# The issue's target: with 1 % of the clients stalled, the others' p99 rises by less than this.
P99_RISE = 1.20


# =========================================================================== the server


def server_options(args: argparse.Namespace, attackers: int) -> dict[str, Any]:
    """The SSEServer options of every scenario (limits are what the bound is made of)."""
    return {
        "max_clients": args.clients + attackers + 100,
        "client_buffer_bytes": args.client_buffer_kib * 1024,
        "history_bytes": args.history_mib * MIB,
        "history_size": HISTORY_SIZE,
        "h2_control_frame_rate": args.control_frame_rate,
        "max_event_bytes": max(4 * MIB, int(2 * args.slow_event_kib * 1024)),
    }


def _publisher(server: OtelServer, event: str) -> Publish:
    def publish(data: dict[str, Any]) -> None:
        server.server.broadcast({"event": event, "data": data})

    return publish


async def serve(port: int, options: dict[str, Any], tick: float) -> None:
    """``ready <port>``; then ``fill EVENT COUNT SIZE`` (publishes that many events at
    once, answers ``filled``), ``publish EVENT RATE SIZE SECONDS`` (starts a publisher),
    ``stats`` (answers ``stats <json>``), ``quit``."""
    extra = dict(options)
    server = OtelServer(port, extra.pop("max_clients"), extra)
    await server.start()
    reader = await stdin_lines()
    say(f"ready {port}")
    publishers: list[asyncio.Task[str]] = []
    try:
        while True:
            words = (await reader.readline()).decode().split()
            if not words or words[0] == "quit":
                break
            if words[0] == "publish":
                event, rate, size, seconds = words[1], float(words[2]), int(words[3]), \
                    float(words[4])
                publishers.append(asyncio.create_task(publish_loop(
                    _publisher(server, event), rate, seconds, tick, size)))
            elif words[0] == "fill":
                fill = _publisher(server, words[1])
                for seq in range(int(words[2])):
                    fill(payload(seq, int(words[3])))
                say("filled")
            elif words[0] == "stats":
                say("stats " + json.dumps(server.server.get_stats(), default=str))
    finally:
        for task in publishers:
            task.cancel()
        try:
            await asyncio.wait_for(server.stop(), 5)
        except Exception as exc:  # the process is about to exit anyway
            print(f"[serve] stop: {exc!r}", file=sys.stderr)


# =========================================================================== the driver


@dataclass(frozen=True)
class Scenario:
    """One scenario: its attack (the attackers process's spec) and extra publisher."""

    name: str
    title: str
    attack: dict[str, Any] | None = None
    # Client buffers the attackers may hold at most (connections and streams).
    attackers: int = 0
    bulk: tuple[float, int] | None = None  # events/s, payload bytes
    seconds: float = 0.0  # of attack (0: --duration)


def scenarios(args: argparse.Namespace) -> dict[str, Scenario]:
    stalled = max(1, round(args.clients * args.stalled_pct / 100))
    per_conn = max(10, int(args.control_frame_rate * args.flood_paced_share))
    return {s.name: s for s in (
        Scenario("baseline", "no attack"),
        Scenario("stalled", f"{stalled} of {args.clients:,} clients "
                 f"({args.stalled_pct:g} %) stalled: never read, receive buffer "
                 f"{args.stalled_rcvbuf:,} bytes",
                 {"kind": "stalled", "count": stalled, "path": FAST_PATH,
                  "rcvbuf": args.stalled_rcvbuf}, stalled, seconds=args.stalled_duration),
        Scenario("slow", f"{args.slow_readers} slow readers read {args.slow_read_kbs:g} KB/s "
                 f"each; {args.slow_event_kib:g} KiB events at {args.slow_event_rate:g}/s",
                 {"kind": "slow", "count": args.slow_readers, "path": ALL_PATH,
                  "rate": args.slow_read_kbs * 1000}, args.slow_readers,
                 (args.slow_event_rate, int(args.slow_event_kib * 1024))),
        Scenario("zero-window", f"1 h2c connection, INITIAL_WINDOW_SIZE=0, "
                 f"{args.h2_streams} streams; {args.zw_event_kib:g} KiB events at "
                 f"{args.zw_event_rate:g}/s",
                 {"kind": "zero-window", "count": 1, "path": ALL_PATH,
                  "streams": args.h2_streams}, args.h2_streams + 1,
                 (args.zw_event_rate, int(args.zw_event_kib * 1024))),
        Scenario("flood", f"{args.flood_conns} h2c connections send "
                 f"SETTINGS / PING frames unpaced, reconnecting when cut",
                 {"kind": "flood", "count": args.flood_conns, "batch": args.flood_batch,
                  "frames_per_s": 0}, args.flood_conns),
        Scenario("flood-paced", f"{args.flood_paced_conns} h2c "
                 f"connections x {per_conn:,} SETTINGS / PING frames/s "
                 f"({args.flood_paced_share:.0%} of the per-connection budget)",
                 {"kind": "flood", "count": args.flood_paced_conns, "batch": 1,
                  "frames_per_s": per_conn}, args.flood_paced_conns),
    )}


@dataclass
class Window:
    """One row: the processes over ``--window`` seconds (see the module docstring)."""

    t: float
    phase: str
    rss_mb: float
    server_cpu: float
    client_cpu: list[float]
    attacker_cpu: float
    other_cpu: float
    samples: int
    p50_ms: float
    p99_ms: float
    deliveries_s: float
    fast_cut: int
    seq_errors: int
    attackers: dict[str, int]
    stats: dict[str, Any]


@dataclass
class Run:
    """One run of one scenario: its windows and the server's memory figures."""

    scenario: str
    repeat: int
    clients: int = 0
    connected: int = 0
    idle_rss_mb: float = float("nan")
    peak_rss_mb: float = float("nan")
    bound_mb: float = float("nan")
    windows: list[Window] = field(default_factory=list)
    error: str = ""

    def phase(self, name: str) -> list[Window]:
        """The windows of phase ``name``."""
        return [w for w in self.windows if w.phase == name]

    def attack_phase(self) -> list[Window]:
        """The windows an attack is judged on (the baseline's steady ones)."""
        return self.phase("attack") or self.phase("steady")

    def median(self, phase: list[Window], name: str) -> float:
        """The median of figure ``name`` over ``phase`` (NaN when it has none)."""
        values = [getattr(w, name) for w in phase]
        values = [v for v in values if v == v]
        return statistics.median(values) if values else float("nan")


def weighted_percentiles(parts: list[tuple[int, list[float]]], qs: tuple[float, ...]
                         ) -> list[float]:
    """Percentiles of the union of samples given as (count, evenly spaced quantiles)."""
    points: list[tuple[float, float]] = []
    for count, quantiles in parts:
        if quantiles:
            weight = count / len(quantiles)
            points += [(value, weight) for value in quantiles]
    if not points:
        return [float("nan")] * len(qs)
    points.sort()
    total = sum(w for _, w in points)
    out = []
    for q in qs:
        target, acc = q * total, 0.0
        value = points[-1][0]
        for v, w in points:
            acc += w
            if acc >= target:
                value = v
                break
        out.append(value)
    return out


class Sampler:
    """Reads the processes of one scenario, one window at a time."""

    def __init__(self, server: Child, clients: list[Child], attacker: Child | None) -> None:
        self.server = server
        self.clients = clients
        self.attacker = attacker
        self.t0 = time.monotonic()
        self.last = self.t0
        self.cpu = self._cpu()
        self.busy = machine_busy_seconds()
        self.received = 0

    def _procs(self) -> list[Child]:
        return [self.server, *self.clients, *([self.attacker] if self.attacker else [])]

    def _cpu(self) -> list[float]:
        return [cpu_seconds(p.pid) for p in self._procs()] + [cpu_seconds(os.getpid())]

    def window(self, phase: str, end: float) -> Window:
        """Wait until ``end`` (reading the server's RSS meanwhile), then read every
        process and return the window's row."""
        pid = self.server.pid
        rss = rss_mb(pid)
        while (now := time.monotonic()) < end:
            time.sleep(min(0.25, end - now))
            rss = max(rss, rss_mb(pid))
        for child in self.clients:
            child.send("window")
        self.server.send("stats")
        if self.attacker is not None:
            self.attacker.send("window")
        now = time.monotonic()
        cpu = self._cpu()
        elapsed = now - self.last
        busy = machine_busy_seconds()
        pct = [(b - a) / elapsed * 100 for a, b in zip(self.cpu, cpu, strict=True)]
        other = (busy - self.busy) / elapsed * 100 - sum(pct)
        self.cpu, self.last, self.busy = cpu, now, busy
        parts = [json.loads(c.expect("window", 30)) for c in self.clients]
        stats: dict[str, Any] = json.loads(self.server.expect("stats", 30))
        attackers: dict[str, int] = {}
        if self.attacker is not None:
            attackers = json.loads(self.attacker.expect("window", 30))
        p50, p99 = weighted_percentiles([(p["samples"], p["points"]) for p in parts],
                                        (0.50, 0.99))
        received = sum(int(p["received"]) for p in parts)
        delivered, self.received = received - self.received, received
        return Window(
            t=now - self.t0, phase=phase, rss_mb=rss, server_cpu=pct[0],
            client_cpu=pct[1 : 1 + len(self.clients)],
            attacker_cpu=pct[-2] if self.attacker is not None else float("nan"),
            other_cpu=other,
            samples=sum(int(p["samples"]) for p in parts), p50_ms=p50, p99_ms=p99,
            deliveries_s=delivered / elapsed,
            fast_cut=sum(int(p["closed"]) for p in parts),
            seq_errors=sum(int(p["seq_errors"]) for p in parts),
            attackers=attackers, stats=stats)


def fill_plan(sc: Scenario, args: argparse.Namespace, history_bytes: int
              ) -> list[tuple[str, int, int]]:
    """(event, count, size) to publish before any client connects: what the scenario's
    publishers leave in the history once it is full, so that it stays about as large."""
    streams = [(EVENT, args.rate, PAYLOAD_BYTES)]
    if sc.bulk is not None:
        streams.append((BULK, sc.bulk[0], sc.bulk[1]))
    count_rate = sum(rate for _, rate, _ in streams)
    byte_rate = sum(rate * (size + FRAME_OVERHEAD) for _, rate, size in streams)
    seconds = min(HISTORY_SIZE / count_rate, history_bytes / byte_rate)
    return [(event, round(rate * seconds), size) for event, rate, size in streams]


def phases(sc: Scenario, args: argparse.Namespace) -> list[tuple[str, float]]:
    warm = [("warm-up", args.window)]
    if sc.attack is None:
        return [*warm, ("steady", args.before + args.duration + args.after)]
    return [*warm, ("before", args.before), ("attack", sc.seconds or args.duration),
            ("after", args.after)]


def run_scenario(sc: Scenario, args: argparse.Namespace, repeat: int) -> Run:
    run = Run(sc.name, repeat, clients=args.clients)
    py, me = sys.executable, str(Path(__file__).resolve())
    port = free_port()
    options = server_options(args, sc.attackers)
    server = Child.spawn("server", [py, me, "--serve", json.dumps(options), "--port", str(port),
                                    "--tick", str(args.tick)])
    children = [server]
    try:
        server.expect("ready", 30)
        time.sleep(0.5)  # let the interpreter settle before reading its size
        run.idle_rss_mb = rss_mb(server.pid)
        for event, count, size in fill_plan(sc, args, options["history_bytes"]):
            server.send(f"fill {event} {count} {size}")
            server.expect("filled", 60)
        client_buffer_mib = options["client_buffer_bytes"] / MIB
        run.bound_mb = (run.idle_rss_mb + options["history_bytes"] / MIB
                        + (args.clients + sc.attackers) * client_buffer_mib)
        k = max(1, args.load_clients)
        clients: list[Child] = []
        for i in range(k):
            n = args.clients // k + (1 if i < args.clients % k else 0)
            clients.append(Child.spawn(f"load client {i + 1}", [
                py, me, "--client", "--port", str(port), "--clients", str(n),
                "--rate", str(args.rate), "--sample-per-s", str(args.sample_per_s / k),
                "--connect-timeout", str(args.connect_timeout), "--lowat", str(args.lowat)]))
            children.append(clients[-1])
        for child in clients:
            run.connected += int(child.expect("connected", args.connect_timeout + 30).split()[0])
        attacker: Child | None = None
        if sc.attack is not None:
            attacker = Child.spawn("attackers", [py, me, "--attack", json.dumps(sc.attack),
                                                 "--port", str(port)])
            children.append(attacker)
            attacker.expect("ready", 30)
        plan = phases(sc, args)
        seconds = sum(s for _, s in plan) + 60
        server.send(f"publish {EVENT} {args.rate} {PAYLOAD_BYTES} {seconds}")
        if sc.bulk is not None:
            server.send(f"publish {BULK} {sc.bulk[0]} {sc.bulk[1]} {seconds}")
        sampler = Sampler(server, clients, attacker)
        end = sampler.t0
        for phase, length in plan:
            if attacker is not None and phase == "attack":
                attacker.send("start")
            elif attacker is not None and phase == "after":
                attacker.send("stop")
            for _ in range(max(1, round(length / args.window))):
                end += args.window
                run.windows.append(sampler.window(phase, end))
                print_window(run.windows[-1], flush=True)
        run.peak_rss_mb = peak_rss_mb(server.pid)
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"  [{sc.name}] {run.error}", flush=True)
    finally:
        for child in reversed(children):
            child.finish()
    return run


# --------------------------------------------------------------------------- report


def cpu_cell(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values) if values else "-"


def window_row(w: Window) -> list[str]:
    a, s = w.attackers, w.stats
    return [f"{w.t:.0f}", w.phase, fmt(w.rss_mb), f"{w.server_cpu:.0f}", cpu_cell(w.client_cpu),
            "-" if w.attacker_cpu != w.attacker_cpu else f"{w.attacker_cpu:.0f}",
            f"{w.other_cpu:.0f}",
            fmt(w.p50_ms, 2), fmt(w.p99_ms, 2), f"{w.deliveries_s:,.0f}", str(w.fast_cut),
            str(a.get("connected", "-")), str(a.get("cut", "-")),
            str(s.get("slowDisconnects", "-")), str(s.get("floodClosed", "-"))]


WINDOW_HEAD = ["t s", "phase", "RSS MB", "server CPU %", "load client CPU %", "attackers CPU %",
               "other CPU %", "p50 ms", "p99 ms", "deliveries/s", "fast cut", "attackers up",
               "attackers cut", "slow disconnects", "flood closes"]


def print_window(w: Window, flush: bool = False) -> None:
    print("    " + "  ".join(f"{h}={v}" for h, v in zip(WINDOW_HEAD, window_row(w), strict=True)),
          flush=flush)


def md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def window_table(run: Run) -> str:
    return md_table(WINDOW_HEAD, [window_row(w) for w in run.windows])


@dataclass
class Summary:
    """One scenario over its repeats: medians of the per-run figures."""

    name: str
    runs: list[Run]
    figures: dict[str, float] = field(default_factory=dict)


RATES = ("opened", "cut", "frames", "bytes_read")


def attack_rates(run: Run) -> dict[str, float]:
    """What the attackers did per second of the attack phase (``<counter>_s``)."""
    before, attack = run.phase("before"), run.phase("attack")
    if not attack or not before:
        return {f"{name}_s": float("nan") for name in RATES}
    start, end = before[-1], attack[-1]
    span = end.t - start.t
    return {f"{name}_s": (end.attackers.get(name, 0) - start.attackers.get(name, 0)) / span
            for name in RATES}


def run_figures(run: Run, baseline: Run | None) -> dict[str, float]:
    before = run.phase("before")
    attack = run.attack_phase()
    after = run.phase("after")
    final = run.windows[-1] if run.windows else None
    last_attack = attack[-1] if attack else None
    figures = {
        "p50_before": run.median(before, "p50_ms"),
        "p50_attack": run.median(attack, "p50_ms"),
        "p99_before": run.median(before, "p99_ms"),
        "p99_attack": run.median(attack, "p99_ms"),
        "p99_control": run.median(before + after, "p99_ms"),
        "cpu_before": run.median(before, "server_cpu"),
        "cpu_attack": run.median(attack, "server_cpu"),
        "client_cpu": max((statistics.median(w.client_cpu[i] for w in attack)
                           for i in range(len(attack[0].client_cpu))), default=float("nan"))
        if attack else float("nan"),
        "attacker_cpu": run.median(attack, "attacker_cpu"),
        "other_cpu": run.median(attack, "other_cpu"),
        "deliveries_attack": run.median(attack, "deliveries_s"),
        "peak_rss": run.peak_rss_mb,
        "bound": run.bound_mb,
        "idle_rss": run.idle_rss_mb,
        "rss_before": max((w.rss_mb for w in before), default=float("nan")),
        "rss_after": after[-1].rss_mb if after else float("nan"),
        "cut": float(last_attack.attackers.get("cut", 0)) if last_attack else float("nan"),
        "fast_cut": float(final.fast_cut) if final else float("nan"),
        "seq_errors": float(final.seq_errors) if final else float("nan"),
        "connected": float(run.connected),
        **attack_rates(run),
    }
    base = baseline.median(baseline.attack_phase(), "p99_ms") if baseline else float("nan")
    figures["p99_vs_baseline"] = figures["p99_attack"] / base if base == base and base else \
        float("nan")
    figures["p99_vs_control"] = figures["p99_attack"] / figures["p99_control"] \
        if figures["p99_control"] == figures["p99_control"] else float("nan")
    return figures


def summarise(runs: list[Run], names: list[str]) -> list[Summary]:
    out = []
    baselines = {r.repeat: r for r in runs if r.scenario == "baseline" and not r.error}
    for name in names:
        mine = [r for r in runs if r.scenario == name]
        summary = Summary(name, mine)
        per_run = [run_figures(r, baselines.get(r.repeat)) for r in mine if not r.error]
        if per_run:
            for key in per_run[0]:
                values = [f[key] for f in per_run if f[key] == f[key]]
                summary.figures[key] = statistics.median(values) if values else float("nan")
        out.append(summary)
    return out


def arrow(a: float, b: float, digits: int = 2) -> str:
    return f"{fmt(a, digits)} → {fmt(b, digits)}"


def summary_table(summaries: list[Summary], attackers: dict[str, int]) -> str:
    head = ["scenario", "attacker buffers", "p50 ms before → attack", "p99 ms before → attack",
            "p99 vs baseline", "p99 vs before/after", "server CPU % before → attack",
            "load client CPU %", "attackers CPU %", "other CPU %", "peak RSS MB", "bound MB (C)",
            "attackers cut", "fast cut"]
    rows = []
    for s in summaries:
        f = s.figures
        if not f:
            errors = "; ".join(r.error for r in s.runs if r.error)
            rows.append([s.name, f"error: {errors}"] + [""] * (len(head) - 2))
            continue
        if s.name == "baseline":
            p50, p99, cpu = fmt(f["p50_attack"], 2), fmt(f["p99_attack"], 2), \
                fmt(f["cpu_attack"], 0)
        else:
            p50, p99 = arrow(f["p50_before"], f["p50_attack"]), \
                arrow(f["p99_before"], f["p99_attack"])
            cpu = arrow(f["cpu_before"], f["cpu_attack"], 0)
        ratio, control = (
            "-" if s.name == "baseline" or f[key] != f[key] else f"{f[key]:.2f}x"
            for key in ("p99_vs_baseline", "p99_vs_control"))
        rows.append([
            s.name, str(attackers.get(s.name, 0)), p50, p99, ratio, control, cpu,
            fmt(f["client_cpu"], 0), fmt(f["attacker_cpu"], 0), fmt(f["other_cpu"], 0),
            fmt(f["peak_rss"]),
            f"{fmt(f['bound'], 0)} ({fmt(f['idle_rss'])})",
            "-" if s.name == "baseline" else f"{f['cut']:,.0f}", f"{f['fast_cut']:.0f}"])
    return md_table(head, rows)


def targets(summaries: list[Summary], args: argparse.Namespace,
            attackers: dict[str, int]) -> list[str]:
    """The issue's targets (and two checks of the fast clients), as PASS/FAIL lines."""
    lines: list[str] = []
    by = {s.name: s for s in summaries}
    stalled = by.get("stalled")
    if stalled is not None and stalled.figures and "baseline" in by:
        f = stalled.figures
        ratio = f["p99_vs_baseline"]
        base = by["baseline"].figures.get("p99_attack", float("nan"))
        ok = ratio == ratio and ratio < P99_RISE
        lines.append(
            f"- {'PASS' if ok else 'FAIL'} stalled: the others' p99 rises by less than "
            f"{(P99_RISE - 1):.0%} with {attackers['stalled']} of {args.clients:,} clients "
            f"stalled ({fmt(f['p99_attack'], 2)} ms against the baseline's {fmt(base, 2)} ms: "
            f"{fmt(ratio, 2)}x, median of {len(stalled.runs)} run(s); against the same "
            f"run's windows before and after the attack: {fmt(f['p99_vs_control'], 2)}x)")
    buffer_mib = args.client_buffer_kib / 1024
    for s in summaries:
        good = [r for r in s.runs if not r.error]
        for r in s.runs:
            if r.error:
                lines.append(f"- FAIL {s.name} (run {r.repeat}): {r.error}")
        if not good:
            continue
        held = sum(r.peak_rss_mb <= r.bound_mb for r in good)
        worst = max(good, key=lambda r: r.peak_rss_mb / r.bound_mb)
        lines.append(
            f"- {'PASS' if held == len(good) else 'FAIL'} {s.name}: peak RSS under the "
            f"configured bound in {held}/{len(good)} run(s) (largest share: "
            f"{fmt(worst.peak_rss_mb)} MB of {fmt(worst.bound_mb, 0)} MB = C "
            f"{fmt(worst.idle_rss_mb)} + history {args.history_mib:g} + "
            f"{worst.clients + attackers.get(s.name, 0):,} x {buffer_mib:g} MiB)")
    measured = [r for s in summaries for r in s.runs if r.windows]
    broken = [r for r in measured if r.windows[-1].fast_cut or r.windows[-1].seq_errors
              or r.connected != args.clients]
    if measured:
        detail = "; ".join(
            f"{r.scenario} run {r.repeat}: connected {r.connected}, cut "
            f"{r.windows[-1].fast_cut}, sequence errors {r.windows[-1].seq_errors}"
            for r in broken)
        lines.append(
            f"- {'FAIL' if broken else 'PASS'} fast clients (not a target of the issue): "
            f"in every scenario all {args.clients:,} connected, none was cut and no sampled "
            f"one missed an event" + (f" ({detail})" if detail else ""))
    return lines


def notes(summaries: list[Summary], args: argparse.Namespace,
          catalogue: dict[str, Scenario]) -> list[str]:
    """What each attack did and cost, beyond the targets (informative)."""
    lines = []
    buffer_mib = args.client_buffer_kib / 1024
    for s in summaries:
        f = s.figures
        sc = catalogue[s.name]
        if not f or sc.attack is None:
            continue
        extra = (f["cpu_attack"] - f["cpu_before"]) / 100  # cores
        did = f"{f['opened_s']:,.1f} opened/s, {f['cut_s']:,.1f} cut/s"
        if sc.attack["kind"] == "flood" and sc.attack["frames_per_s"]:
            did = (f"{f['frames_s']:,.0f} frames/s, none cut; the server's CPU "
                   f"{extra:+.0%} of a core: {extra / f['frames_s'] * 1e6:.1f} us per frame")
        elif sc.attack["kind"] == "flood":
            did = (f"{f['cut_s']:,.1f} connections/s opened, flooded and closed by the server; "
                   f"its CPU {extra:+.0%} of a core: "
                   f"{extra / f['cut_s'] * 1e3 if f['cut_s'] else float('nan'):.1f} ms per "
                   "connection")
        elif f["bytes_read_s"] > 0:
            did += f", {f['bytes_read_s'] / 1e6:,.1f} MB/s read in all"
        share = sc.attackers * buffer_mib
        lines.append(
            f"- {s.name}: {did}. Peak RSS {fmt(f['peak_rss'])} MB, "
            f"{fmt(f['peak_rss'] - f['rss_before'])} MB above the before phase's largest "
            f"({fmt(f['rss_before'])} MB), against the attackers' share of the bound "
            f"({sc.attackers} x {buffer_mib:g} MiB = {fmt(share)} MB); "
            f"{fmt(f['rss_after'])} MB at the end of the after phase.")
    figures = [s for s in summaries if s.figures]
    if figures:
        client = max(figures, key=lambda s: s.figures["client_cpu"])
        attacker = max((s for s in figures if s.figures["attacker_cpu"] == s.figures[
            "attacker_cpu"]), key=lambda s: s.figures["attacker_cpu"], default=None)
        line = (f"- Helper processes, medians over the attack windows: the busiest load client "
                f"{fmt(client.figures['client_cpu'], 0)} % of a core ({client.name})")
        if attacker is not None:
            line += (f", the attackers at most {fmt(attacker.figures['attacker_cpu'], 0)} % "
                     f"({attacker.name})")
        lines.append(line + ".")
    return lines


# --------------------------------------------------------------------------- main


QUICK = {"before": 4.0, "duration": 8.0, "stalled_duration": 8.0, "after": 2.0}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated, from: " + ", ".join(SCENARIOS))
    p.add_argument("--quick", action="store_true",
                   help="smoke run: " + ", ".join(f"--{k.replace('_', '-')} {v:g}"
                                                  for k, v in QUICK.items()))
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of every scenario, in turn; medians reported")
    p.add_argument("--window", type=float, default=2.0, help="seconds per row")
    p.add_argument("--before", type=float, default=6.0, help="seconds before the attack")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of attack")
    p.add_argument("--stalled-duration", type=float, default=90.0,
                   help="seconds of attack for the stalled readers: the kernel's socket "
                   "buffers take a minute of their stream before the server's own fills")
    p.add_argument("--after", type=float, default=6.0, help="seconds after the attack")
    p.add_argument("--clients", type=int, default=1000, help="fast clients")
    p.add_argument("--rate", type=float, default=200.0,
                   help=f"events/s to the fast clients ({PAYLOAD_BYTES}-byte payloads)")
    p.add_argument("--load-clients", type=int, default=1,
                   help="load-client processes the fast clients are split over")
    p.add_argument("--sample-per-s", type=float, default=20000.0,
                   help="latency samples per second to aim for (in all)")
    p.add_argument("--lowat", type=int, default=4096,
                   help="SO_RCVLOWAT of the fast clients not sampled (see _loadclient.py)")
    p.add_argument("--connect-timeout", type=float, default=20.0)
    p.add_argument("--tick", type=float, default=0.005, help="publisher tick, seconds")
    # server limits
    p.add_argument("--client-buffer-kib", type=int, default=1024,
                   help="the server's client_buffer_bytes, KiB (default: the server's)")
    p.add_argument("--history-mib", type=int, default=16, help="the server's history_bytes, MiB")
    p.add_argument("--control-frame-rate", type=int, default=1000,
                   help="the server's h2_control_frame_rate (default: the server's)")
    # attacks
    p.add_argument("--stalled-pct", type=float, default=1.0,
                   help="stalled readers, in %% of --clients")
    p.add_argument("--stalled-rcvbuf", type=int, default=4096, help="their SO_RCVBUF, bytes")
    p.add_argument("--slow-readers", type=int, default=50)
    p.add_argument("--slow-read-kbs", type=float, default=160.0,
                   help="what each slow reader reads, KB/s")
    p.add_argument("--slow-event-kib", type=float, default=64.0)
    p.add_argument("--slow-event-rate", type=float, default=20.0)
    p.add_argument("--h2-streams", type=int, default=100, help="zero-window streams")
    p.add_argument("--zw-event-kib", type=float, default=1.0)
    p.add_argument("--zw-event-rate", type=float, default=500.0)
    p.add_argument("--flood-conns", type=int, default=4)
    p.add_argument("--flood-batch", type=int, default=1000, help="frames per write, unpaced")
    p.add_argument("--flood-paced-conns", type=int, default=20)
    p.add_argument("--flood-paced-share", type=float, default=0.9,
                   help="paced flood: frames/s per connection, as a share of the budget")
    p.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {RESULTS.name}")
    p.add_argument("--json", type=Path, help="also write every window as JSON here")
    # internal modes
    p.add_argument("--serve", metavar="OPTIONS", help=argparse.SUPPRESS)
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--attack", metavar="SPEC", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return p


def internal(args: argparse.Namespace) -> bool:
    """The child processes' modes; False when this is the driver."""
    if args.serve:
        raise_nofile()
        install_uvloop()
        asyncio.run(serve(args.port, json.loads(args.serve), args.tick))
        return True
    if args.client:
        import _loadclient

        _loadclient.main("127.0.0.1", args.port, FAST_PATH, args.clients, 256,
                         args.connect_timeout, 0.0, args.sample_per_s, args.rate, args.lowat)
        return True
    if args.attack:
        import _attackers

        _attackers.main(json.loads(args.attack), args.port)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if internal(args):
        return 0
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    catalogue = scenarios(args)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    for name in names:
        if name not in catalogue:
            raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    command = "python bench/abuse.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = datetime.now(UTC)
    attackers = {name: sc.attackers for name, sc in catalogue.items()}
    runs: list[Run] = []
    for repeat in range(1, args.repeat + 1):
        for name in names:
            sc = catalogue[name]
            print(f"== {name}: {sc.title} (run {repeat}/{args.repeat})", flush=True)
            runs.append(run_scenario(sc, args, repeat))
    summaries = summarise(runs, names)
    overview = summary_table(summaries, attackers)
    checks = targets(summaries, args, attackers)
    excess = notes(summaries, args, catalogue)
    print()
    for name in names:
        for run in runs:
            if run.scenario == name and run.windows:
                print(f"{name}: {catalogue[name].title} (run {run.repeat}):\n")
                print(window_table(run))
                print()
    print(overview)
    print()
    print("\n".join(checks))
    if excess:
        print()
        print("Notes (not targets):")
        print("\n".join(excess))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=2,
                                        default=lambda o: o.__dict__))
    if args.write:
        write_section(SECTION, section(args, command, started, catalogue, names, runs,
                                       overview, checks, excess))
        print(f"\nwrote '{SECTION}' in {RESULTS}")
    return 0 if all(not r.error for r in runs) else 1


def section(args: argparse.Namespace, command: str, started: datetime,
            catalogue: dict[str, Scenario], names: list[str], runs: list[Run], overview: str,
            checks: list[str], excess: list[str]) -> str:
    others = [w.other_cpu for r in runs for w in r.windows]
    other = (f" Other work on the machine kept its cores busy a median "
             f"{statistics.median(others):.0f} % of a core during the windows, up to "
             f"{max(others):.0f} % (column other CPU %)." if others else "")
    lines = [
        SECTION,
        "",
        f"{started:%Y-%m-%d %H:%M} UTC; {machine()}.",
        f"Command: `{command}` ({args.repeat} run(s) of each scenario, in turn"
        + (", medians" if args.repeat > 1 else "") + ").",
        f"{args.clients:,} fast HTTP/1.1 clients (`GET {FAST_PATH}`) take {args.rate:g} "
        f"events/s of {PAYLOAD_BYTES}-byte payloads in every scenario; the server (its own "
        f"process on uvloop, a new one per scenario) has client_buffer_bytes "
        f"{args.client_buffer_kib:,} KiB, history_bytes {args.history_mib} MiB, "
        f"h2_control_frame_rate {args.control_frame_rate:,}; the fast clients in "
        f"{args.load_clients} load-client process(es), the attackers in another. Phases: "
        f"{args.window:g} s warm-up, {args.before:g} s before, {args.duration:g} s attack "
        f"({args.stalled_duration:g} s for the stalled readers), "
        f"{args.after:g} s after; one row per {args.window:g} s. Definitions in the "
        "docstring of `bench/abuse.py`.",
        "",
        "The machine (2 cores) is shared with other work and noisy: figures are medians "
        "over windows (and over runs), and the fast clients' latency is judged as a ratio "
        "to the baseline measured in the same invocation and to the same run's windows "
        "before and after the attack." + other,
        "",
        "Scenarios: " + "; ".join(f"**{n}**: {catalogue[n].title}" for n in names) + ".",
        "",
        overview,
        "",
        "Targets:",
        "",
        *checks,
    ]
    if excess:
        lines += ["", "Notes (not targets of the issue):", "", *excess]
    for name in names:
        first = next((r for r in runs if r.scenario == name and r.windows), None)
        if first is not None:
            lines += ["", f"### {name} (run {first.repeat})", "", window_table(first)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
