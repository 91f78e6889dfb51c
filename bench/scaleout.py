#!/usr/bin/env python
"""Scale-out benchmark: the in-process bus against the Redis bus, one, three and two-worker
deployments, at 3,000 clients. On demand (not in CI): it needs ``redis-server``.

    .venv/bin/python bench/scaleout.py                   # 3,000 clients x 50 events/s, 10 s
    .venv/bin/python bench/scaleout.py --write           # into '## Scale-out' of RESULTS.md
    .venv/bin/python bench/scaleout.py --deployments memory,redis-1 --clients 1000

Deployments (every gateway alone in its process, on uvloop):

* ``memory``: one gateway on the in-process bus, publishing on its own loop (as
  ``bench/fanout.py`` does);
* ``redis-1``: the same gateway on the Redis bus: what it publishes goes to Redis
  (``XADD``) and comes back (``XREAD``) before it is written to the clients, so
  its latency minus ``memory``'s is what the Redis hop adds;
* ``redis-3``: three gateways on one stream, a third of the clients on each; the
  first one publishes, the others only read the stream;
* ``workers-2``: ``otel-sse serve --workers 2 --bus redis://...`` (two processes on
  one port, the kernel spreading the clients), fed by an application process
  publishing straight to Redis (``RedisPublisher``).

Clients: raw HTTP/1.1 SSE connections in ``--load-clients`` processes
(``_loadclient.py``, each connecting to every gateway in turn), 200-byte payloads
carrying their publish time. Per deployment it reports deliveries/s, p50/p99
latency (publish to receive; the larger of the load clients' percentiles),
lost events, the gateways' CPU seconds (all their processes) and CPU µs per
delivery, deliveries per gateway CPU-second (what one core delivers), and the
CPU of Redis and of the publishing application where there is one. The driver
only passes lines and reads ``/proc``. Definitions otherwise as in ``fanout.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _proc import Child, cpu_seconds, free_port, install_uvloop, raise_nofile  # noqa: E402
from _results import RESULTS, fmt, machine, write_section  # noqa: E402

SECTION = "## Scale-out"
DEPLOYMENTS = ("memory", "redis-1", "redis-3", "workers-2")
EVENT = "bench"


@dataclass
class Result:
    deployment: str
    clients: int
    rate: float
    gateways: int = 0
    connected: int = 0
    received: int = 0
    lost: int = 0
    deliveries_s: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    gateway_cpu_s: float = 0.0
    cpu_us: float = float("nan")
    redis_cpu_s: float = float("nan")
    publisher_cpu_s: float = float("nan")
    load_cpu_s: float = 0.0
    wall_s: float = 0.0
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def per_core(self) -> float:
        """Deliveries per gateway CPU-second."""
        return 1e6 / self.cpu_us if self.cpu_us == self.cpu_us and self.cpu_us > 0 else 0.0


# --------------------------------------------------------------------------- child modes


async def serve(port: int, bus: str | None, rate: float, duration: float, tick: float,
                max_clients: int, publish: bool) -> None:
    """A gateway driven like ``_peers.py``: ``ready``, then on ``start`` it publishes
    (when it is the publisher) and says ``done``; ``quit`` stops it."""
    from _peers import EVENT as PEER_EVENT
    from _peers import publish_loop, say, stdin_lines

    from otel_sse.server import SSEServer

    options: dict[str, Any] = {"port": port, "host": "127.0.0.1", "compression": False,
                               "max_clients": max_clients, "backlog": 2048}
    if bus:
        options["bus"] = bus
    server = SSEServer(**options)
    await server.start()
    reader = await stdin_lines()
    say(f"ready {port}")
    task: asyncio.Task[str] | None = None

    def publish_one(data: dict[str, Any]) -> None:
        server.broadcast({"event": PEER_EVENT, "data": data})

    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "start" and publish and task is None:
                task = asyncio.create_task(publish_loop(publish_one, rate, duration, tick))
                task.add_done_callback(lambda t: say(t.result()) if not t.cancelled() else None)
            elif line in ("quit", ""):
                break
    finally:
        if task is not None:
            task.cancel()
        await asyncio.wait_for(server.stop(), 5)


async def publisher(bus: str, rate: float, duration: float, tick: float) -> None:
    """An application publishing straight to Redis (``RedisPublisher``), paced like the
    gateways' publisher."""
    from _peers import publish_loop, say, stdin_lines

    from otel_sse.bus.publisher import RedisPublisher

    app = RedisPublisher(bus).start()
    reader = await stdin_lines()
    say("ready 0")
    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "start":
                def publish_one(data: dict[str, Any]) -> None:
                    app.publish(EVENT, data)

                done = await publish_loop(publish_one, rate, duration, tick)
                await asyncio.to_thread(app.flush, 10.0)
                say(done)
            elif line in ("quit", ""):
                break
    finally:
        await asyncio.to_thread(app.close, 5.0)


async def stream_writer(bus: str, events: int) -> None:
    """One application process appending ``events`` to a stream as fast as it can."""
    from _peers import payload, say, stdin_lines

    from otel_sse.bus.publisher import RedisPublisher

    app = RedisPublisher(bus, max_len=events, buffer_bytes=1 << 30).start()
    reader = await stdin_lines()
    say("ready 0")
    await reader.readline()
    first = time.time_ns()
    accepted = sum(app.publish(EVENT, payload(seq)) for seq in range(events))
    assert accepted == events, "the publisher's buffer dropped events"
    await asyncio.to_thread(app.flush, 60.0)
    say(f"done {events} {first} {time.time_ns()}")
    await reader.readline()
    await asyncio.to_thread(app.close, 5.0)


async def stream_reader(bus: str, events: int) -> None:
    """``XREAD BLOCK`` from the start of the stream until ``events`` entries are read,
    as a gateway's reader does (entries of ``read_count`` at most per call)."""
    from _peers import say
    from redis.asyncio import Redis as Client

    client = Client.from_url(bus)
    say("ready 0")
    last: bytes | str = "0-0"
    read = 0
    first_ns = 0
    while read < events:
        reply = cast(list[Any], await client.xread({"otel-sse:events": last}, count=1024,
                                                   block=1000))
        if not reply:
            continue
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], reply[0][1])
        if not first_ns:
            first_ns = time.time_ns()
        read += len(entries)
        last = entries[-1][0]
    say(f"read {read} {first_ns} {time.time_ns()}")
    await client.aclose()


# --------------------------------------------------------------------------- processes


class Redis:
    """A redis-server without persistence on a free port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (make system-deps installs it)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def workers_of(pid: int) -> list[int]:
    """The worker processes a supervisor started (its children; spawn adds a tracker)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        return []
    out = []
    for kid in kids:
        try:
            with open(f"/proc/{kid}/cmdline", "rb") as f:
                if b"resource_tracker" not in f.read():
                    out.append(kid)
        except OSError:
            pass
    return out


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def run_deployment(kind: str, args: argparse.Namespace, clients: int, rate: float,
                   load_clients: int) -> Result:
    result = Result(kind, clients, rate)
    py, me = sys.executable, str(Path(__file__).resolve())
    redis = Redis() if kind != "memory" else None
    gateways: list[Child] = []
    extra: list[Child] = []
    supervisor: subprocess.Popen[bytes] | None = None
    loads: list[Child] = []
    try:
        ports: list[int] = []
        gateway_pids: list[int] = []
        publisher: Child | None = None
        common = ["--rate", str(rate), "--duration", str(args.duration),
                  "--tick", str(args.tick)]
        if kind == "workers-2":
            assert redis is not None
            port = free_port()
            supervisor = subprocess.Popen(
                [py, "-m", "otel_sse", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--no-grpc", "--no-compression", "--workers", "2", "--bus", redis.url,
                 "--max-clients", str(clients + 100)],
                stdout=subprocess.PIPE, start_new_session=True)
            assert supervisor.stdout is not None
            deadline = time.monotonic() + 60
            while b"workers:" not in supervisor.stdout.readline():
                if time.monotonic() > deadline or supervisor.poll() is not None:
                    raise RuntimeError("otel-sse serve --workers 2 did not start")
            ports = [port]
            gateway_pids = workers_of(supervisor.pid)
            publisher = Child.spawn("publisher", [py, me, "--publisher", "--bus", redis.url,
                                                  *common])
            publisher.expect("ready", 30)
            extra.append(publisher)
        else:
            count = {"memory": 1, "redis-1": 1, "redis-3": 3}[kind]
            for index in range(count):
                port = free_port()
                argv = [py, me, "--serve", "--port", str(port), *common,
                        "--max-clients", str(clients // count + 100)]
                if redis is not None:
                    argv += ["--bus", redis.url]
                if index == 0:
                    argv.append("--publish")
                child = Child.spawn(f"gateway {index}", argv)
                gateways.append(child)
            for child in gateways:
                ports.append(int(child.expect("ready", 30)))
            gateway_pids = [g.pid for g in gateways]
            publisher = gateways[0]
        result.gateways = len(gateway_pids)
        per_load = [clients // load_clients + (i < clients % load_clients)
                    for i in range(load_clients)]
        for index, n in enumerate(per_load):
            loads.append(Child.spawn(f"load client {index}", [
                py, me, "--client", "--ports", ",".join(map(str, ports)), "--clients", str(n),
                "--rate", str(rate), "--drain", str(args.drain),
                "--connect-timeout", str(args.connect_timeout),
                "--sample-per-s", str(args.sample_per_s / load_clients)]))
        connected = 0
        for load in loads:
            ok, _failed, _secs = load.expect("connected", args.connect_timeout + 30).split()
            connected += int(ok)
        result.connected = connected
        time.sleep(0.5)
        redis_pids = [redis.proc.pid] if redis is not None else []
        gw0, rd0 = cpu_of(gateway_pids), cpu_of(redis_pids)
        pub0 = cpu_seconds(extra[0].pid) if extra else 0.0
        ld0 = cpu_of([load.pid for load in loads])
        wall0 = time.monotonic()
        publisher.send("start")
        published, first_ns, _last_ns = map(int, publisher.expect(
            "done", args.duration * 4 + 30).split())
        results = []
        for load in loads:
            load.send(f"expect {published}")
        for load in loads:
            results.append(json.loads(load.expect("result", args.drain + 30)))
        result.wall_s = time.monotonic() - wall0
        result.gateway_cpu_s = cpu_of(gateway_pids) - gw0
        if redis is not None:
            result.redis_cpu_s = cpu_of(redis_pids) - rd0
        if extra:
            result.publisher_cpu_s = cpu_seconds(extra[0].pid) - pub0
        result.load_cpu_s = cpu_of([load.pid for load in loads]) - ld0
        result.received = sum(int(r["received"]) for r in results)
        result.lost = sum(int(r["lost"]) for r in results)
        last = max(int(r["last_receive_ns"]) for r in results)
        span = (last - first_ns) / 1e9
        result.deliveries_s = result.received / span if span > 0 else 0.0
        result.p50_ms = max(float(r["p50_ms"]) for r in results)
        result.p99_ms = max(float(r["p99_ms"]) for r in results)
        result.cpu_us = (result.gateway_cpu_s / result.received * 1e6
                         if result.received else float("nan"))
        result.detail = {"published": published, "loads": results,
                         "gateway_pids": gateway_pids}
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for child in loads + gateways + extra:
            child.finish()
        if supervisor is not None:
            supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(15)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.wait(5)
            if supervisor.stdout is not None:
                supervisor.stdout.close()
        if redis is not None:
            redis.stop()
    return result


@dataclass
class Throughput:
    events: int
    append_s: float = float("nan")
    read_s: float = float("nan")
    redis_cpu_s: float = float("nan")
    writer_cpu_s: float = float("nan")
    error: str = ""


def run_throughput(args: argparse.Namespace) -> Throughput:
    """One writer process appending ``--stream-events`` to a stream while one reader
    reads them: events/s through one stream, and Redis's CPU for them."""
    out = Throughput(args.stream_events)
    py, me = sys.executable, str(Path(__file__).resolve())
    redis = Redis()
    children: list[Child] = []
    try:
        reader = Child.spawn("stream reader", [py, me, "--stream-reader", "--bus", redis.url,
                                               "--events", str(args.stream_events)])
        writer = Child.spawn("stream writer", [py, me, "--stream-writer", "--bus", redis.url,
                                               "--events", str(args.stream_events)])
        children = [reader, writer]
        reader.expect("ready", 30)
        writer.expect("ready", 30)
        redis0, writer0 = cpu_seconds(redis.proc.pid), cpu_seconds(writer.pid)
        writer.send("start")
        _, first, appended = map(int, writer.expect("done", 300).split())
        _, _, last_read = map(int, reader.expect("read", 300).split())
        out.append_s = (appended - first) / 1e9
        out.read_s = (last_read - first) / 1e9
        out.redis_cpu_s = cpu_seconds(redis.proc.pid) - redis0
        out.writer_cpu_s = cpu_seconds(writer.pid) - writer0
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        for child in children:
            child.finish()
        redis.stop()
    return out


# --------------------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    rows = ["| deployment | gateway processes | clients | events/s | connected | deliveries/s "
            "| p50 ms | p99 ms | lost | gateway CPU s | CPU us/delivery | deliveries per "
            "gateway CPU-second | Redis CPU s | publisher CPU s |",
            "|" + "---|" * 14]
    for r in results:
        if r.error and not r.received:
            rows.append(f"| {r.deployment} | {r.gateways} | {r.clients:,} | {r.rate:,.0f} | "
                        f"error: {r.error} |" + " |" * 9)
            continue
        rows.append(
            f"| {r.deployment} | {r.gateways} | {r.clients:,} | {r.rate:,.0f} | {r.connected:,} "
            f"| {r.deliveries_s:,.0f} | {fmt(r.p50_ms, 2)} | {fmt(r.p99_ms, 2)} | {r.lost:,} "
            f"| {fmt(r.gateway_cpu_s, 2)} | {fmt(r.cpu_us, 2)} | {r.per_core:,.0f} "
            f"| {fmt(r.redis_cpu_s, 2)} | {fmt(r.publisher_cpu_s, 2)} |")
    return "\n".join(rows)


def median(values: list[float]) -> float:
    good = sorted(v for v in values if v == v)
    return statistics.median(good) if good else float("nan")


def hop_table(pairs: list[tuple[Result, Result]]) -> str:
    rows = ["| pair | memory p50 ms | memory p99 ms | redis-1 p50 ms | redis-1 p99 ms "
            "| added at p50 ms | added at p99 ms | lost |", "|" + "---|" * 8]
    for index, (memory, redis1) in enumerate(pairs, 1):
        rows.append(f"| {index} | {fmt(memory.p50_ms, 2)} | {fmt(memory.p99_ms, 2)} "
                    f"| {fmt(redis1.p50_ms, 2)} | {fmt(redis1.p99_ms, 2)} "
                    f"| {redis1.p50_ms - memory.p50_ms:+.2f} "
                    f"| {redis1.p99_ms - memory.p99_ms:+.2f} "
                    f"| {memory.lost + redis1.lost:,} |")
    return "\n".join(rows)


def throughput_lines(t: Throughput) -> list[str]:
    if t.error:
        return [f"- stream throughput: error: {t.error}"]
    return [
        f"- one stream: one writer process appended {t.events:,} events of 200 bytes in "
        f"{t.append_s:.2f} s ({t.events / t.append_s:,.0f}/s, its CPU {t.writer_cpu_s:.2f} s), "
        f"one reader had them all {t.read_s:.2f} s after the first was published "
        f"({t.events / t.read_s:,.0f}/s); Redis used {t.redis_cpu_s:.2f} s of CPU "
        f"({t.redis_cpu_s / t.events * 1e6:.2f} us per event appended and read)",
    ]


def targets(results: list[Result], pairs: list[tuple[Result, Result]]) -> list[str]:
    by = {r.deployment: r for r in results if not r.error}
    lines = []
    good = [(m, r) for m, r in pairs if not m.error and not r.error]
    if good:
        hop50 = median([r.p50_ms - m.p50_ms for m, r in good])
        hop99 = median([r.p99_ms - m.p99_ms for m, r in good])
        lines.append(
            f"- {'PASS' if hop99 <= 5 else 'FAIL'} the Redis hop adds <= 5 ms at p99: "
            f"{hop99:+.2f} ms (median of {len(good)} pairs at light load; at p50 {hop50:+.2f} ms)")
    memory, redis1 = by.get("memory"), by.get("redis-1")
    if memory is not None and redis1 is not None:
        ratio = redis1.cpu_us / memory.cpu_us
        lines.append(
            f"- {'PASS' if ratio <= 1.2 else 'FAIL'} CPU per delivery on the Redis bus within "
            f"1.2x of the in-process bus: {ratio:.2f}x ({fmt(redis1.cpu_us, 2)} us against "
            f"{fmt(memory.cpu_us, 2)} us, {memory.clients:,} clients); at "
            f"{redis1.clients:,} clients the p99 moved by {redis1.p99_ms - memory.p99_ms:+.2f} ms")
    for r in results:
        if not r.error:
            lines.append(f"- {r.deployment}: {r.per_core:,.0f} deliveries per gateway "
                         f"CPU-second, {r.gateways} gateway process(es), lost {r.lost:,}")
    return lines


# --------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deployments", default=",".join(DEPLOYMENTS),
                   help="comma-separated, from: " + ", ".join(DEPLOYMENTS))
    p.add_argument("--clients", type=int, default=3000)
    p.add_argument("--rate", type=float, default=50.0, help="events/s published")
    p.add_argument("--duration", type=float, default=10.0, help="publishing seconds")
    p.add_argument("--tick", type=float, default=0.005, help="publisher tick, seconds")
    p.add_argument("--drain", type=float, default=5.0)
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--load-clients", type=int, default=2, help="load client processes")
    p.add_argument("--sample-per-s", type=float, default=20000.0)
    p.add_argument("--hop-pairs", type=int, default=3,
                   help="memory / redis-1 pairs at light load for the Redis hop (0: none)")
    p.add_argument("--hop-clients", type=int, default=100)
    p.add_argument("--hop-rate", type=float, default=200.0)
    p.add_argument("--stream-events", type=int, default=200_000,
                   help="events through one stream for its throughput (0: skip)")
    p.add_argument("--write", action="store_true", help=f"update '{SECTION}' in {RESULTS.name}")
    p.add_argument("--json", type=Path, help="also write every measurement as JSON here")
    # internal modes
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stream-writer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stream-reader", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bus", default=None, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--ports", default="", help=argparse.SUPPRESS)
    p.add_argument("--max-clients", type=int, default=4000, help=argparse.SUPPRESS)
    return p


def report(r: Result) -> None:
    print(f"  {r.deployment:10} {r.gateways} gateway(s), {r.clients} clients x {r.rate:g}/s: "
          f"connected {r.connected}, "
          f"{r.deliveries_s:,.0f} deliveries/s, p50 {fmt(r.p50_ms, 2)} ms, "
          f"p99 {fmt(r.p99_ms, 2)} ms, lost {r.lost:,}, gateway CPU {r.gateway_cpu_s:.2f} s "
          f"({fmt(r.cpu_us, 2)} us/delivery), Redis CPU {fmt(r.redis_cpu_s, 2)} s, "
          f"load clients CPU {r.load_cpu_s:.2f} s"
          + (f"  [{r.error}]" if r.error else ""), flush=True)


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.serve:
        raise_nofile()
        install_uvloop()
        asyncio.run(serve(args.port, args.bus, args.rate, args.duration, args.tick,
                          args.max_clients, args.publish))
        return 0
    if args.publisher:
        install_uvloop()
        asyncio.run(publisher(args.bus, args.rate, args.duration, args.tick))
        return 0
    if args.stream_writer or args.stream_reader:
        install_uvloop()
        asyncio.run(stream_writer(args.bus, args.events) if args.stream_writer
                    else stream_reader(args.bus, args.events))
        return 0
    if args.client:
        import _loadclient

        ports = [int(p) for p in args.ports.split(",")]
        _loadclient.main("127.0.0.1", ports[0], "/events", args.clients, 256,
                         args.connect_timeout, args.drain, args.sample_per_s, args.rate, 4096,
                         0, ports)
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = [k.strip() for k in args.deployments.split(",") if k.strip()]
    for kind in kinds:
        if kind not in DEPLOYMENTS:
            raise SystemExit(f"unknown deployment {kind!r}; choose from {', '.join(DEPLOYMENTS)}")
    command = "python bench/scaleout.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = datetime.now(UTC)
    load_before = load_average()
    results = []
    for kind in kinds:
        r = run_deployment(kind, args, args.clients, args.rate, args.load_clients)
        report(r)
        results.append(r)
    pairs = []
    for _ in range(args.hop_pairs):
        pair = (run_deployment("memory", args, args.hop_clients, args.hop_rate, 1),
                run_deployment("redis-1", args, args.hop_clients, args.hop_rate, 1))
        for r in pair:
            report(r)
        pairs.append(pair)
    stream = run_throughput(args) if args.stream_events else None
    load_after = load_average()
    out = table(results)
    checks = targets(results, pairs)
    hops = hop_table(pairs) if pairs else ""
    stream_lines = throughput_lines(stream) if stream is not None else []
    print()
    print(out)
    if hops:
        print()
        print(hops)
    print()
    print("\n".join(checks + stream_lines))
    if args.json:
        args.json.write_text(json.dumps({
            "deployments": [r.__dict__ for r in results],
            "hop_pairs": [[m.__dict__, r.__dict__] for m, r in pairs],
            "stream": stream.__dict__ if stream is not None else None}, indent=2, default=str))
    if args.write:
        section = [
            SECTION,
            "",
            f"{started:%Y-%m-%d %H:%M} UTC; {machine()}; load average {load_before} before "
            f"the run, {load_after} after (1, 5, 15 min).",
            f"Command: `{command}`.",
            f"{args.clients:,} clients x {args.rate:g} events/s for {args.duration:g} s, "
            f"200-byte payloads, {args.load_clients} load-client processes, drain "
            f"{args.drain:g} s; redis-server {redis_version()} on loopback without "
            "persistence; every process (gateways, Redis, publisher, load clients) on the "
            "same 2 cores, so the latencies include waiting for a core. Deployments and "
            "definitions in the docstring of `bench/scaleout.py`.",
            "",
            out,
        ]
        if hops:
            section += [
                "",
                f"The Redis hop: {args.hop_clients:,} clients x {args.hop_rate:g} events/s "
                f"(one load client), `memory` and `redis-1` run in turn, {len(pairs)} pairs: "
                "at 3,000 clients the cores are saturated and the percentiles measure the "
                "wait for a core more than the bus.",
                "",
                hops,
            ]
        section += ["", "Targets and throughput:", "", *checks, *stream_lines]
        write_section(SECTION, "\n".join(section))
        print(f"\nwrote '{SECTION}' in {RESULTS}")
    errors = [r.error for r in results] + [r.error for pair in pairs for r in pair]
    return 0 if not any(errors) and not (stream is not None and stream.error) else 1


def redis_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "?"
    text = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    for part in text.split():
        if part.startswith("v="):
            return part[2:]
    return "?"


if __name__ == "__main__":
    sys.exit(main())
