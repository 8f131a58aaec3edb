"""NATS plane benchmark: commands over NATS request/reply and the event relay, against `openrooms serve`.

    .venv/bin/python tests/bench/nats/run.py [--rate 1000] [--low-rate 100] [--seconds 10] [--clients 64]
                                             [--procs 2] [--engines 1] [--store URL] [--keep]

The service is `openrooms serve --role engine --state-dir <tmp>/state --http 127.0.0.1:0`, started
as a user starts it (`python -m adapters.cli`, an environment without OPENROOMS_*): its bundled
nats-server as a child, its relay in a process of its own publishing every event to the stream
ROOMS_EVENTS. With `--engines N`, N-1 more `serve --role engine --nats <url>` processes on the same
state dir (same SQLite store) join the `rooms.cmd.*` queue group. The baseline of the round trips
is a raw NATS echo responder (`msg.respond(msg.data)`, in a queue group) in a process of its own
(this file with `--echo`). Every load runs in processes of their own (this file with `--load`),
so no client shares an interpreter with the service; this process only starts, watches and
subscribes.

Set-up over NATS: `--clients` rooms (`rooms.cmd.create_room`), each with one participant
publishing one video track (`rooms.cmd.connect_participant`). The measured command is
`rooms.cmd.set_track_enabled` flipping a track's `enabled` (the benchmark keeps each track's
state, so every command makes exactly one event). A 1 s warm-up at `--rate` (echo, then ours)
comes first; before each phase that follows a command phase, the relay has caught up (the
engine's /healthz `relay_lag_events` is 0). Each phase lasts `--seconds`:

1. Latency, open loop from one load process, all requests on its one connection: sends at fixed
   intervals at `--rate` commands/s, none waiting for an earlier reply, round robin over the
   rooms; latency from the send and (to show the sender's own lag) from the scheduled time.
   Baseline: the echo responder, same process shape, same bodies. Again at `--low-rate`, a rate
   the service sustains.
2. Throughput, closed loop: `--clients` requesters (requester k on room k), each sending its next
   command when its reply arrives, spread over `--procs` load processes (each its own connection
   and event loop); commands/s and the round trip's p50/p99. Baseline: the echo responder, same
   requesters. Also the engines' own `openrooms_command_seconds{command="set_track_enabled"}`
   (`CommandService.reply`: body decoded → reply encoded) over the run, p50/p99 interpolated in
   the histogram's buckets (from /metrics before and after, summed over the engines).
3. Relay lag during (2): a core NATS subscription on `rooms.evt.>` in this process; per event,
   its first arrival minus its `at`. `at` is the engine's decision time, just before the commit;
   a core subscriber gets the relay's publish when nats-server receives it, which the JetStream
   ack follows by the server's store time: so this is commit → JetStream ack, give or take those
   two ends. Baseline: the same number of the same payloads, published by a process of their own
   (`--publish`) with `js.publish_async` to a stream of their own, in batches of the relay's
   average size (messages published / batches acked, the latter from the engines' /metrics),
   paced over the same time, each batch awaiting its acks like the relay; publish → arrival at
   the same core subscriber. Also the engines' `openrooms_relay_ack_seconds` (per batch: the
   relay's read of the batch → its last ack), interpolated as above; its baseline is the
   publisher's first publish → last ack per batch. The relay lag during the `--rate` run of (1)
   is reported too, and with several engines the events delivered twice (each engine runs a
   relay; JetStream keeps one copy, core subscribers get both).

4. The floor, a second baseline for (1) and (2): tests/bench/nats/floor.py, a responder in a process
   of its own with the engine's client library and store and nothing else (decode, one SQLite
   transaction per arrived batch holding an event row and a result row per command, reply). The
   same open-loop rates and closed-loop requesters; what it reaches bounds what any engine on
   this stack and machine can.

CPU over each phase, from /proc: the engine process(es) (and their main threads, which run the
event loop), the relay process(es), nats-server, the echo responder, the load and publisher
processes (their own account), this process, every other process on the machine, idle and
iowait. Prints markdown tables with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import msgspec
import nats
from floor import stop_requested
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from serving import wait_running

SUBJECT = "rooms.cmd.set_track_enabled"
ECHO = "bench.echo"
ECHO_QUEUE = "bench-echo"
FLOOR = "bench.floor"  # tests/bench/nats/floor.py
EVENTS = "rooms.evt.>"
BASELINE_STREAM = "BENCH_BASELINE"
BASELINE_PREFIX = "bench."
REQUEST_TIMEOUT = 10.0
START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[3]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else math.nan


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENROOMS_")}


# --- the load processes (`--load JOB`, `--publish JOB`) ----------------------------------------


class Job(msgspec.Struct):
    url: str
    subject: str
    shape: str  # "open": one sender at `rate`, round robin over `targets`; "closed": a requester per target
    targets: list[list[str]]  # [room, participant, track]
    enabled: list[bool]  # each track's state now: request m to a target sets `not enabled` when m is even
    prefix: str
    seconds: float
    rate: float = 0.0


class LoadResult(msgspec.Struct):
    ok: int = 0
    failures: int = 0
    first_error: str = ""
    from_send: list[float] = []
    from_schedule: list[float] = []
    sent: list[int] = []  # requests sent to each target
    elapsed: float = 0.0
    cpu: float = 0.0  # seconds of this process's CPU while it ran the load


_ENCODE = msgspec.json.Encoder().encode


def body_of(job: Job, t: int, m: int) -> bytes:
    room, participant, track = job.targets[t]
    return _ENCODE(
        {
            "command_id": f"{job.prefix}-{t}-{m}",
            "room_sid": room,
            "participant_sid": participant,
            "track_sid": track,
            "enabled": job.enabled[t] != (m % 2 == 0),
        }
    )


async def wait_for_start() -> float:
    """Tell the benchmark this process is connected; the perf_counter() of the start it sends back."""
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start_at = float(line)
    return start_at + time.perf_counter() - time.time()


async def run_load(job: Job) -> LoadResult:
    nc = await nats.connect(job.url)
    result = LoadResult(sent=[0] * len(job.targets))
    is_command = job.subject in (SUBJECT, FLOOR)

    def answered(reply: bytes, sent: float, scheduled: float) -> None:
        done = time.perf_counter()
        if is_command and not reply.startswith(b'{"ok":true'):
            result.failures += 1
            result.first_error = result.first_error or reply[:300].decode(errors="replace")
            return
        result.ok += 1
        result.from_send.append(done - sent)
        result.from_schedule.append(done - scheduled)

    async def one(t: int, m: int, scheduled: float) -> None:
        sent = time.perf_counter()
        try:
            reply = await nc.request(job.subject, body_of(job, t, m), timeout=REQUEST_TIMEOUT)
        except (TimeoutError, nats.errors.Error) as exc:
            result.failures += 1
            result.first_error = result.first_error or repr(exc)
            return
        answered(reply.data, sent, scheduled)

    async def requester(t: int, deadline: float) -> None:
        m = 0
        while (sent := time.perf_counter()) < deadline:
            result.sent[t] += 1
            try:
                reply = await nc.request(job.subject, body_of(job, t, m), timeout=REQUEST_TIMEOUT)
            except (TimeoutError, nats.errors.Error) as exc:
                result.failures += 1
                result.first_error = result.first_error or repr(exc)
            else:
                answered(reply.data, sent, sent)
            m += 1

    began = await wait_for_start()
    await asyncio.sleep(max(0.0, began - time.perf_counter()))
    cpu = time.process_time()
    if job.shape == "open":
        pending: set[asyncio.Task[None]] = set()
        for n in range(int(job.rate * job.seconds)):
            scheduled = began + n / job.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t, m = n % len(job.targets), n // len(job.targets)
            result.sent[t] += 1
            task = asyncio.create_task(one(t, m, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    else:
        await asyncio.gather(*(requester(t, began + job.seconds) for t in range(len(job.targets))))
    result.elapsed = time.perf_counter() - began
    result.cpu = time.process_time() - cpu
    await nc.close()
    return result


class PublishJob(msgspec.Struct):
    url: str
    bodies: str  # a file: msgpack list of [subject, body]
    batch: int
    seconds: float
    run: str


class PublishResult(msgspec.Struct):
    sent: list[float]  # time.time() of each publish, by index (its Nats-Msg-Id is `<run>-<index>`)
    batch_acks: list[float]  # per batch, first publish → last ack
    elapsed: float = 0.0
    cpu: float = 0.0


async def run_publish(job: PublishJob) -> PublishResult:
    nc = await nats.connect(job.url)
    js = nc.jetstream()
    bodies = msgspec.msgpack.decode(Path(job.bodies).read_bytes(), type=list[tuple[str, bytes]])
    result = PublishResult(sent=[0.0] * len(bodies), batch_acks=[])
    batches = math.ceil(len(bodies) / job.batch) if bodies else 0
    began = await wait_for_start()
    await asyncio.sleep(max(0.0, began - time.perf_counter()))
    cpu = time.process_time()
    for b in range(batches):
        await asyncio.sleep(max(0.0, began + b * job.seconds / batches - time.perf_counter()))
        first = time.perf_counter()
        futures = []
        for i in range(b * job.batch, min(len(bodies), (b + 1) * job.batch)):
            subject, body = bodies[i]
            result.sent[i] = time.time()
            headers = {"Nats-Msg-Id": f"{job.run}-{i}"}
            futures.append(await js.publish_async(BASELINE_PREFIX + subject, body, headers=headers))
        await asyncio.gather(*futures)
        result.batch_acks.append(time.perf_counter() - first)
    result.elapsed = time.perf_counter() - began
    result.cpu = time.process_time() - cpu
    await nc.close()
    return result


async def run_echo(url: str) -> None:
    """The baseline responder: the request body back, from a queue-group subscription."""
    nc = await nats.connect(url)
    stopping = stop_requested()

    async def respond(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(ECHO, queue=ECHO_QUEUE, cb=respond)
    await nc.flush()
    print("ready", flush=True)
    await stopping.wait()
    await nc.drain()


def helper_main(mode: str, argument: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the benchmark's to handle
    if mode == "echo":
        asyncio.run(run_echo(argument))
        return
    if mode == "load":
        result: Any = asyncio.run(run_load(msgspec.json.decode(argument, type=Job)))
    else:
        result = asyncio.run(run_publish(msgspec.json.decode(argument, type=PublishJob)))
    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    sys.stdout.flush()


# --- the service under test --------------------------------------------------------------------


def proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def proc_cpu(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (all its threads), or of one of its threads, seconds; 0 if gone."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(proc_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def machine_idle() -> tuple[float, float]:
    """Idle and iowait seconds of all cores since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return int(fields[3]) / CLOCK_TICKS, int(fields[4]) / CLOCK_TICKS


@dataclass
class Engine:
    process: subprocess.Popen[str]
    port: int
    relay: int | None = None
    relay_cmdline: str = ""


@dataclass
class Service:
    workdir: Path
    engines: list[Engine] = field(default_factory=list)
    nats_pid: int | None = None
    nats_cmdline: str = ""
    echo: subprocess.Popen[str] | None = None
    floor: subprocess.Popen[str] | None = None
    url: str = ""

    def start(self, count: int, store: str | None = None) -> None:
        state = self.workdir / "state"
        for k in range(count):
            extra = ["--nats", self.url] if k else []
            if store is not None:
                extra += ["--store", store]
            log = self.workdir / f"engine-{k}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "adapters.cli", "serve", "--role", "engine", "--state-dir", str(state),
                 "--http", "127.0.0.1:0", *extra],
                stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=clean_env(), cwd=ROOT,
            )  # fmt: skip
            engine = Engine(process, 0)
            self.engines.append(engine)
            engine.port = wait_running(process, log)
            if k == 0:
                self.url = (state / "nats.url").read_text().strip()
            self.find_children(engine, bundled_nats=k == 0)
        self.echo = self.responder("echo", [__file__, "--echo", self.url])
        floor = Path(__file__).with_name("floor.py")
        self.floor = self.responder("floor", [str(floor), self.url, str(self.workdir / "floor.sqlite")])

    def responder(self, name: str, argv: list[str]) -> subprocess.Popen[str]:
        """A baseline responder's process (`python argv`), once it says it is subscribed."""
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"),
            text=True, env=clean_env(), cwd=ROOT,
        )  # fmt: skip
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {name} responder did not start: {log.read_text()[-3000:]}")
        return process

    def find_children(self, engine: Engine, bundled_nats: bool) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while engine.relay is None or (bundled_nats and self.nats_pid is None):
            for child in children_of(engine.process.pid):
                line = cmdline(child)
                if "spawn_main" in line:
                    engine.relay, engine.relay_cmdline = child, line
                elif bundled_nats and "nats-server" in line:
                    self.nats_pid, self.nats_cmdline = child, line
            if time.monotonic() > deadline:
                raise RuntimeError(f"no relay process or nats-server under engine {engine.process.pid}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to the echo responder, the joined engines, then the first (its nats-server is
        the others'); killed after 30 s. Then their relays and nats-server, should any remain."""
        groups: list[list[subprocess.Popen[str]]] = [[p for p in (self.echo, self.floor) if p is not None]]
        groups += [[e.process for e in self.engines[1:]], [e.process for e in self.engines[:1]]]
        for group in groups:
            for process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in group:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    print(f"warning: process {process.pid} did not stop in 30 s; killing it", file=sys.stderr)
                    process.kill()
                    process.wait()
        leftovers = [(e.relay, e.relay_cmdline) for e in self.engines] + [(self.nats_pid, self.nats_cmdline)]
        deadline = time.monotonic() + 10
        for pid, line in leftovers:
            while pid is not None and line and cmdline(pid) == line and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid is not None and line and cmdline(pid) == line:  # still the process we saw start
                print(f"warning: killing leftover {line[:80]} ({pid})", file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def http_json(self, path: str, engine: int = 0) -> Any:
        url = f"http://127.0.0.1:{self.engines[engine].port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
        return json.loads(body) if path == "/healthz" else body.decode()


# --- events seen by a core subscriber ----------------------------------------------------------


class Stamped(msgspec.Struct):
    at: datetime


_STAMPED = msgspec.json.Decoder(Stamped)


@dataclass
class Arrivals:
    """Every message a core subscription got: (time.time() on arrival, subject, body, Nats-Msg-Id)."""

    seen: list[tuple[float, str, bytes, str]] = field(default_factory=list)

    async def on_message(self, msg: Msg) -> None:
        self.seen.append((time.time(), msg.subject, msg.data, (msg.headers or {}).get("Nats-Msg-Id", "")))

    def first(self, start: int, end: int) -> tuple[dict[str, tuple[float, str, bytes]], int]:
        """The first arrival of each message id in seen[start:end], and how many were repeats."""
        firsts: dict[str, tuple[float, str, bytes]] = {}
        repeats = 0
        for arrived, subject, body, msg_id in self.seen[start:end]:
            if msg_id in firsts:
                repeats += 1
            else:
                firsts[msg_id] = (arrived, subject, body)
        return firsts, repeats


@dataclass
class RelayLag:
    lags: list[float]
    events: int
    repeats: int  # deliveries of an event already delivered (one per extra engine's relay, at most)
    published: int  # deliveries in all


def relay_lag(arrivals: Arrivals, start: int, end: int) -> tuple[RelayLag, list[tuple[str, bytes]]]:
    """Per event, first arrival − its `at`; and the events' (subject, body) in arrival order."""
    firsts, repeats = arrivals.first(start, end)
    lags = [arrived - _STAMPED.decode(body).at.timestamp() for arrived, _, body in firsts.values()]
    bodies = [(subject, body) for _, subject, body in firsts.values()]
    return RelayLag(lags, len(firsts), repeats, end - start), bodies


# --- relay ack histogram (/metrics) ------------------------------------------------------------

RELAY_ACK = ("openrooms_relay_ack_seconds", "")
COMMAND_SECONDS = ("openrooms_command_seconds", 'command="set_track_enabled"')


def histogram(text: str, name: str, labels: str) -> dict[float, float]:
    """A histogram of a /metrics page: cumulative counts by upper bound (+inf included), its sum under -1."""
    bucket = re.compile(rf'^{name}_bucket\{{{labels + "," if labels else ""}le="([^"]+)"\}} (\S+)$', re.M)
    buckets = {float(le): float(count) for le, count in bucket.findall(text)}
    if found := re.search(rf"^{name}_sum{'{' + labels + '}' if labels else ''} (\S+)$", text, re.M):
        buckets[-1.0] = float(found.group(1))
    return buckets


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """As Prometheus does: linear within the bucket holding the rank; the highest finite bound past it."""
    bounds = sorted(le for le in buckets if le >= 0)
    total = buckets.get(math.inf, 0.0)
    if not total:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if le == math.inf:
                return lower
            return lower + (le - lower) * (rank - below) / (count - below) if count > below else le
        lower, below = le, count
    return lower


# --- phases ------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    results: list[Any]
    wall: float
    cpu: dict[str, float]  # cores, by role

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.results)

    @property
    def first_error(self) -> str:
        return next((r.first_error for r in self.results if r.first_error), "")

    @property
    def rate(self) -> float:
        return float(self.ok / max(r.elapsed for r in self.results))

    def latencies(self, scheduled: bool = False) -> list[float]:
        return [x for r in self.results for x in (r.from_schedule if scheduled else r.from_send)]


@dataclass
class Bench:
    service: Service
    args: argparse.Namespace
    nc: Client
    targets: list[list[str]] = field(default_factory=list)
    enabled: list[bool] = field(default_factory=list)
    events: Arrivals = field(default_factory=Arrivals)
    baseline: Arrivals = field(default_factory=Arrivals)
    helpers: list[asyncio.subprocess.Process] = field(default_factory=list)
    runs: int = 0

    def snapshot(self, helpers: list[int]) -> dict[str, float]:
        service = self.service
        engines = [e.process.pid for e in service.engines]
        return {
            "engines": sum(proc_cpu(pid) for pid in engines),
            "event loops": sum(proc_cpu(pid, pid) for pid in engines),
            "relays": sum(proc_cpu(e.relay) for e in service.engines if e.relay is not None),
            "nats-server": proc_cpu(service.nats_pid) if service.nats_pid is not None else 0.0,
            "echo": proc_cpu(service.echo.pid) if service.echo is not None else 0.0,
            "floor": proc_cpu(service.floor.pid) if service.floor is not None else 0.0,
            "helpers": sum(proc_cpu(pid) for pid in helpers),
            "bench": proc_cpu(os.getpid()),
            "idle": machine_idle()[0],
            "iowait": machine_idle()[1],
            "wall": time.perf_counter(),
        }

    async def helper(self, mode: str, job: Any) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, f"--{mode}", msgspec.json.encode(job).decode(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=(self.service.workdir / f"{mode}.log").open("a"), env=clean_env(), cwd=ROOT,
        )  # fmt: skip
        self.helpers.append(process)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        if line.strip() != b"ready":
            raise RuntimeError(
                f"a --{mode} process did not start: {(self.service.workdir / f'{mode}.log').read_text()}"
            )
        return process

    async def phase(self, name: str, jobs: list[tuple[str, Any]], seconds: float) -> Phase:
        """Start the helper processes, start them together, and read /proc over `seconds` from then."""
        processes = await asyncio.gather(*(self.helper(mode, job) for mode, job in jobs))
        start_at = time.time() + 0.2
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start_at}\n".encode())
            await process.stdin.drain()
        pids = [p.pid for p in processes]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        before = self.snapshot(pids)
        await asyncio.sleep(max(0.0, start_at + seconds - time.time()))
        after = self.snapshot(pids)
        results: list[Any] = []
        for (mode, _), process in zip(jobs, processes, strict=True):
            assert process.stdout is not None
            output = await process.stdout.read()
            if await process.wait() != 0:
                raise RuntimeError(f"a --{mode} process failed: {(self.service.workdir / f'{mode}.log').read_text()}")
            results.append(msgspec.json.decode(output, type=LoadResult if mode == "load" else PublishResult))
        wall = after["wall"] - before["wall"]
        cpu = {role: (after[role] - before[role]) / wall for role in after if role != "wall"}
        cpu["helpers"] = sum(r.cpu for r in results) / seconds  # the helpers' own account (some end early)
        return Phase(name, results, wall, cpu)

    def jobs(self, subject: str, shape: str, targets: list[int], seconds: float, rate: float = 0.0) -> Job:
        self.runs += 1
        return Job(
            self.service.url, subject, shape, [self.targets[t] for t in targets], [self.enabled[t] for t in targets],
            f"r{self.runs}", seconds, rate,
        )  # fmt: skip

    def settle(self, job: Job, result: LoadResult, targets: list[int]) -> None:
        """The tracks' states after a run of set_track_enabled (request m flips the state m+1 times)."""
        if job.subject == SUBJECT:
            for t, sent in zip(targets, result.sent, strict=True):
                self.enabled[t] = self.enabled[t] != (sent % 2 == 1)

    async def open_loop(self, name: str, subject: str, rate: float, seconds: float) -> Phase:
        everyone = list(range(len(self.targets)))
        job = self.jobs(subject, "open", everyone, seconds, rate)
        phase = await self.phase(name, [("load", job)], seconds)
        self.settle(job, phase.results[0], everyone)
        return phase

    async def closed_loop(self, name: str, subject: str, seconds: float) -> Phase:
        procs = max(1, min(self.args.procs, len(self.targets)))
        shares = [list(range(p, len(self.targets), procs)) for p in range(procs)]
        jobs = [self.jobs(subject, "closed", share, seconds) for share in shares]
        phase = await self.phase(name, [("load", job) for job in jobs], seconds)
        for job, result, share in zip(jobs, phase.results, shares, strict=True):
            self.settle(job, result, share)
        return phase

    async def command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.nc.request(f"rooms.cmd.{name}", json.dumps(body).encode(), timeout=REQUEST_TIMEOUT)
        decoded: dict[str, Any] = json.loads(reply.data)
        if not decoded["ok"]:
            raise RuntimeError(f"{name}: {decoded}")
        result: dict[str, Any] = decoded["result"]
        return result

    async def make_target(self, k: int) -> None:
        """A room with one participant publishing one video track."""
        room = await self.command("create_room", {"command_id": f"setup-{k}"})
        joined = await self.command(
            "connect_participant",
            {"command_id": f"setup-{k}-join", "room": room["sid"], "identity": "solo",
             "tracks": [{"name": "cam", "kind": "video"}]},
        )  # fmt: skip
        self.targets[k] = [room["sid"], joined["sid"], joined["published_track_sids"][0]]

    async def relay_drained(self) -> None:
        """Until the relay has every committed event acked (the stored position), and a little more
        for the last messages to reach the subscriber."""
        deadline = time.monotonic() + 120
        while (await asyncio.to_thread(self.service.http_json, "/healthz"))["relay_lag_events"] > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the relay did not catch up in 120 s")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)

    async def histograms(self) -> dict[tuple[str, str], dict[float, float]]:
        """The relay's ack times and set_track_enabled's times, summed over the engines' /metrics."""
        total: dict[tuple[str, str], dict[float, float]] = {RELAY_ACK: {}, COMMAND_SECONDS: {}}
        for k in range(len(self.service.engines)):
            text = await asyncio.to_thread(self.service.http_json, "/metrics", k)
            for key, sums in total.items():
                for le, count in histogram(text, *key).items():
                    sums[le] = sums.get(le, 0.0) + count
        return total

    async def publish_baseline(self, bodies: list[tuple[str, bytes]], batch: int, seconds: float) -> Phase:
        js = self.nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=BASELINE_STREAM, subjects=[BASELINE_PREFIX + EVENTS], storage=StorageType.FILE,
                duplicate_window=600,
            )
        )  # fmt: skip
        path = self.service.workdir / "baseline-bodies.msgpack"
        path.write_bytes(msgspec.msgpack.encode(bodies))
        job = PublishJob(self.service.url, str(path), batch, seconds, "b")
        phase = await self.phase("publish_async baseline", [("publish", job)], seconds)
        await asyncio.sleep(0.5)
        return phase


@dataclass
class Results:
    latency: dict[str, Phase]
    relay_during_rate: RelayLag
    throughput: dict[str, Phase]
    relay: RelayLag
    batches: float
    acks: dict[float, float]
    command_seconds: dict[float, float]
    baseline: Phase
    baseline_lags: list[float]


async def measure(service: Service, args: argparse.Namespace) -> Results:
    nc = await nats.connect(service.url)
    bench = Bench(service, args, nc, [[]] * args.clients, [True] * args.clients)
    try:
        await nc.subscribe(EVENTS, cb=bench.events.on_message)
        await nc.subscribe(BASELINE_PREFIX + EVENTS, cb=bench.baseline.on_message)
        await asyncio.gather(*(bench.make_target(k) for k in range(args.clients)))
        await bench.relay_drained()
        rate, low, seconds = args.rate, args.low_rate, args.seconds
        await bench.open_loop("warm-up echo", ECHO, rate, 1.0)
        await bench.open_loop("warm-up", SUBJECT, rate, 1.0)
        await bench.relay_drained()
        latency = {"echo": await bench.open_loop(f"echo, {rate:,.0f}/s open loop", ECHO, rate, seconds)}
        mark = len(bench.events.seen)
        latency["ours"] = await bench.open_loop(f"set_track_enabled, {rate:,.0f}/s open loop", SUBJECT, rate, seconds)
        await bench.relay_drained()
        during_rate, _ = relay_lag(bench.events, mark, len(bench.events.seen))
        latency["floor"] = await bench.open_loop(f"floor, {rate:,.0f}/s open loop", FLOOR, rate, seconds)
        latency["echo low"] = await bench.open_loop(f"echo, {low:,.0f}/s open loop", ECHO, low, seconds)
        latency["ours low"] = await bench.open_loop(f"set_track_enabled, {low:,.0f}/s open loop", SUBJECT, low, seconds)
        await bench.relay_drained()
        latency["floor low"] = await bench.open_loop(f"floor, {low:,.0f}/s open loop", FLOOR, low, seconds)
        procs = f"{args.clients} requesters in {args.procs} processes"
        throughput = {"echo": await bench.closed_loop(f"echo, {procs}", ECHO, seconds)}
        throughput["floor"] = await bench.closed_loop(f"floor, {procs}", FLOOR, seconds)
        metrics0, mark = await bench.histograms(), len(bench.events.seen)
        throughput["ours"] = await bench.closed_loop(f"set_track_enabled, {procs}", SUBJECT, seconds)
        await bench.relay_drained()
        metrics1, end = await bench.histograms(), len(bench.events.seen)
        relay, bodies = relay_lag(bench.events, mark, end)
        acks, command_seconds = (
            {le: metrics1[key][le] - metrics0[key].get(le, 0.0) for le in metrics1[key]}
            for key in (RELAY_ACK, COMMAND_SECONDS)
        )
        batches = acks.get(math.inf, 0.0)
        size = max(1, round(relay.published / batches)) if batches else 1
        baseline = await bench.publish_baseline(bodies, size, throughput["ours"].results[0].elapsed)
        sent = baseline.results[0].sent
        firsts, _ = bench.baseline.first(0, len(bench.baseline.seen))
        baseline_lags = [firsts[f"b-{i}"][0] - at for i, at in enumerate(sent) if f"b-{i}" in firsts]
        return Results(latency, during_rate, throughput, relay, batches, acks, command_seconds, baseline, baseline_lags)
    finally:
        for process in bench.helpers:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await nc.close()


# --- the report --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}x" if base and not math.isnan(base) and not math.isnan(ours) else ""


def latency_rows(ours: Phase, echo: Phase, rate: float, what: str = "set_track_enabled") -> None:
    p50, p99 = percentile(ours.latencies(), 50), percentile(ours.latencies(), 99)
    e50, e99 = percentile(echo.latencies(), 50), percentile(echo.latencies(), 99)
    s99, es99 = percentile(ours.latencies(True), 99), percentile(echo.latencies(True), 99)
    shape = f"{rate:,.0f}/s offered, open loop, {ours.ok + ours.failures:,} requests"
    print(f"| {what} p50, {shape} | {ms(p50)} | {ms(e50)} (echo responder) | {ratio(p50, e50)} |")
    print(f"| set_track_enabled p99, same run | {ms(p99)} | {ms(e99)} (echo responder) | {ratio(p99, e99)} |")
    print(f"| p99 from the scheduled send time (sender lag included) | {ms(s99)} | {ms(es99)} | {ratio(s99, es99)} |")
    print(f"| failed or timed-out requests | {ours.failures} | {echo.failures} | |")


def report(args: argparse.Namespace, r: Results) -> None:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    engines = f"{args.engines} engine processes, each" if args.engines > 1 else "one engine process"
    print(
        f"## NATS plane benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, commit {commit or '?'}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.machine()}; `openrooms serve --role engine` ({engines} with its relay process; "
        f"bundled nats-server), store {args.store.split(':', 1)[0] if args.store else 'SQLite in the state dir'}, "
        f"echo responder and loads in processes of their own, {args.seconds:.0f} s a phase"
    )
    print()
    print("| measure | ours | baseline | ratio |")
    print("|---|---|---|---|")
    latency_rows(r.latency["ours"], r.latency["echo"], args.rate)
    latency_rows(r.latency["ours low"], r.latency["echo low"], args.low_rate)
    ours, echo = r.throughput["ours"], r.throughput["echo"]
    o50, o99 = percentile(ours.latencies(), 50), percentile(ours.latencies(), 99)
    e50, e99 = percentile(echo.latencies(), 50), percentile(echo.latencies(), 99)
    print(
        f"| commands/s, {args.clients} requesters in {args.procs} load processes, closed loop, one event each "
        f"| {ours.rate:,.0f} (p50 {ms(o50)}, p99 {ms(o99)}) | {echo.rate:,.0f} (echo responder; p50 {ms(e50)}, "
        f"p99 {ms(e99)}) | {ratio(ours.rate, echo.rate)} |"
    )
    print(f"| failed or timed-out requests | {ours.failures} | {echo.failures} | |")
    c50, c99 = histogram_quantile(r.command_seconds, 0.5), histogram_quantile(r.command_seconds, 0.99)
    print(
        f'| of which in the engine: `openrooms_command_seconds{{command="set_track_enabled"}}` p50 / p99 '
        f"(engines' /metrics: `CommandService.reply`, the body decoded → the reply encoded; interpolated in buckets) "
        f"| {ms(c50)} / {ms(c99)} | | |"
    )
    lag, base = r.relay, r.baseline_lags
    l50, l99, b50, b99 = percentile(lag.lags, 50), percentile(lag.lags, 99), percentile(base, 50), percentile(base, 99)
    batch = lag.published / r.batches if r.batches else math.nan
    print(
        f"| relay lag p50: the event's `at` (the engine's decision, just before its commit) → its arrival at a "
        f"core subscriber (nats-server has the relay's publish; the JetStream ack follows by the store time), "
        f"throughput run, {lag.events:,} events "
        f"({lag.events / max(1, ours.ok):.2f} per command), {r.batches:,.0f} batches of {batch:.0f} on average "
        f"| {ms(l50)} | {ms(b50)} (`publish_async` → arrival, {len(base):,} same payloads, batches of "
        f"{round(batch) if r.batches else 1}, paced over the same time) | {ratio(l50, b50)} |"
    )
    print(f"| relay lag p99, same | {ms(l99)} | {ms(b99)} | {ratio(l99, b99)} |")
    a50, a99 = histogram_quantile(r.acks, 0.5), histogram_quantile(r.acks, 0.99)
    acks = r.baseline.results[0].batch_acks
    q50, q99 = percentile(acks, 50), percentile(acks, 99)
    mean = r.acks.get(-1.0, 0.0) / r.batches if r.batches else math.nan
    print(
        f"| `openrooms_relay_ack_seconds` p50 / p99 (engines' /metrics, per batch: read → last ack; "
        f"interpolated in its buckets; mean {ms(mean)}) | {ms(a50)} / {ms(a99)} "
        f"| {ms(q50)} / {ms(q99)} (baseline per batch: first publish → last ack) | {ratio(a50, q50)} / "
        f"{ratio(a99, q99)} |"
    )
    d = r.relay_during_rate
    print(
        f"| relay lag p50 / p99 during the {args.rate:,.0f}/s latency run ({d.events:,} events) "
        f"| {ms(percentile(d.lags, 50))} / {ms(percentile(d.lags, 99))} | | |"
    )
    print(f"| events delivered again (one relay per engine process; JetStream keeps one) | {lag.repeats:,} | | |")
    print()
    floor_rows(args, r)
    print()
    phases = [*r.latency.values(), *r.throughput.values(), r.baseline]
    cpu_table(phases, {r.throughput["ours"].name, r.latency["ours"].name, r.latency["ours low"].name})
    sys.stdout.flush()


def floor_rows(args: argparse.Namespace, r: Results) -> None:
    """The floor responder (tests/bench/nats/floor.py: decode, one durable write per batch, reply;
    nothing of the engine's domain, relay or read model) against the echo, then against ours."""
    print("The floor (tests/bench/nats/floor.py), same runs' shape: what the client library and the store alone allow")
    print()
    print("| measure | floor | echo responder | floor / echo | ours / floor |")
    print("|---|---|---|---|---|")
    for key, rate in (("", args.rate), (" low", args.low_rate)):
        floor, echo, ours = (r.latency[name + key] for name in ("floor", "echo", "ours"))
        for p in (50, 99):
            f, e, o = (percentile(phase.latencies(), p) for phase in (floor, echo, ours))
            print(
                f"| p{p}, {rate:,.0f}/s offered, open loop, {floor.ok + floor.failures:,} requests "
                f"({floor.failures} failed) | {ms(f)} | {ms(e)} | {ratio(f, e)} | {ratio(o, f)} |"
            )
    floor, echo, ours = (r.throughput[name] for name in ("floor", "echo", "ours"))
    print(
        f"| commands/s, {args.clients} requesters in {args.procs} load processes ({floor.failures} failed) "
        f"| {floor.rate:,.0f} | {echo.rate:,.0f} | {ratio(floor.rate, echo.rate)} | {ratio(ours.rate, floor.rate)} |"
    )


CPU_COLUMNS = [
    ("engines", "engine process(es)"),
    ("event loops", "their main threads (event loop)"),
    ("relays", "relay process(es)"),
    ("nats-server", "nats-server"),
    ("echo", "echo responder"),
    ("floor", "floor responder"),
    ("helpers", "load / publisher processes"),
    ("bench", "this process (subscriber)"),
]


def cpu_table(phases: list[Phase], commands: set[str]) -> None:
    print(
        "| phase (cores) | "
        + " | ".join(label for _, label in CPU_COLUMNS)
        + " | other processes | idle | iowait | engine + relay CPU per command |"
    )
    print("|---" * (len(CPU_COLUMNS) + 5) + "|")
    cores = os.cpu_count() or 1
    for p in phases:
        used = sum(p.cpu[role] for role, _ in CPU_COLUMNS if role != "event loops")
        others = max(0.0, cores - used - p.cpu["idle"] - p.cpu["iowait"])
        cells = " | ".join(f"{p.cpu[role]:.2f}" for role, _ in CPU_COLUMNS)
        per = f"{(p.cpu['engines'] + p.cpu['relays']) / p.rate * 1e6:.0f} µs" if p.name in commands and p.ok else ""
        print(f"| {p.name} | {cells} | {others:.2f} | {p.cpu['idle']:.2f} | {p.cpu['iowait']:.2f} | {per} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000, help="open-loop commands/s of the latency run")
    parser.add_argument("--low-rate", type=float, default=100, help="open-loop commands/s of the second one")
    parser.add_argument("--seconds", type=float, default=10, help="length of each phase")
    parser.add_argument("--clients", type=int, default=64, help="rooms, and concurrent requesters")
    parser.add_argument("--procs", type=int, default=2, help="load processes of the throughput runs")
    parser.add_argument("--engines", type=int, default=1, help="`serve --role engine` processes in the queue group")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (state, logs)")
    parser.add_argument("--store", help="the engines' event store URL (default: SQLite in the temp state dir)")
    parser.add_argument("--echo", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--load", metavar="JOB", help=argparse.SUPPRESS)
    parser.add_argument("--publish", metavar="JOB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for mode in ("echo", "load", "publish"):
        if getattr(args, mode):
            helper_main(mode, getattr(args, mode))
            return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the children are stopped below
    workdir = Path(tempfile.mkdtemp(prefix="openrooms-nats-bench-"))
    service = Service(workdir)
    failed = True
    try:
        service.start(args.engines, args.store)
        results = asyncio.run(measure(service, args))
        failed = False
    finally:
        service.stop()
        for k in range(len(service.engines)):
            log = (workdir / f"engine-{k}.log").read_text()
            if failed or "Traceback" in log:
                print(f"--- engine {k} log (tail) ---\n{log[-3000:]}", file=sys.stderr)
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(args, results)


if __name__ == "__main__":
    main()
