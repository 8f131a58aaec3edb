"""REST benchmark: `/v1/Rooms` creates and fetches per second against a minimal handler, in one run.

    .venv/bin/python tests/bench/rest/run.py [--seconds 10] [--connections 64] [--procs 1] [--profile]

The server is `openrooms serve` itself (`adapters.cli.main`: bundled nats-server, SQLite store
in a temp state dir, generated credentials, the default INFO logging with aiohttp's access log
on stderr), started by this file as a subprocess (`--serve`), with three more routes added to
the same aiohttp app as it is built (`adapters.http.app.build_app` wrapped):

* `POST /v1/Bench/{n}` and `GET /v1/Bench/{n}`: the minimal handler, behind the same middlewares
  (Twilio's errors, Basic auth); it reads the body and answers `n` canned bytes, as many as our
  answer carries. This is the baseline of every ratio.
* `GET /bench/{n}`: the same outside `/v1/`, without the auth middleware.
* `GET /bench-stats`: the command bus's batches so far, and the time `Engine.prepare`, `write`
  and `settle` took (`time_the_bus` wraps them in the server: a few clock reads a batch).

The load comes from `--procs` other processes (so it never shares the server's interpreter
lock), `--connections` keep-alive connections in all, each sending its next request when the
previous answer is complete (closed loop). Requests are the bytes the `twilio` helper library
sends (its headers, HTTP Basic with the API key, form bodies), on a small asyncio HTTP/1.1
client of this file so that the client costs little CPU. Measured, in this order, each for
`--seconds`:

1. `POST /v1/Bench/{n}` (minimal) — 2. `POST /v1/Rooms`, each with its own UniqueName —
3. `GET /v1/Bench/{n}` (minimal) — 4. `GET /v1/Rooms/{sid}` of rooms made in (2), at random —
5. `GET /bench/{n}` (minimal, no auth).

CPU over each phase, from /proc: the server process and each of its threads (named after their
Python names by the server), its nats-server, the load processes, everything else, idle.
With `--profile`, creates, fetches and the minimal GET run once more with py-spy sampling the
thread that holds the server's interpreter lock (`py-spy record --gil --threads --nonblocking`);
the samples are summed by what that thread was doing (`category()` below), in µs per request.
The interpreter lock is what one server process saturates first, so that is the budget the
hot spots share. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from serving import wait_running

TWILIO_VERSION = "9.13.0"
USER_AGENT = (
    f"twilio-python/{TWILIO_VERSION} ({platform.system()} {platform.machine()}) Python/{platform.python_version()}"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the server (`--serve`): `openrooms serve` with the minimal handler on the same app --------


def serve(state_dir: str, log_level: str, extra: list[str]) -> int:
    from aiohttp import web

    import adapters.http.app as http_app
    from adapters.cli import main as openrooms

    canned: dict[int, bytes] = {}

    def body(size: int) -> bytes:
        found = canned.get(size)
        if found is None:
            found = canned[size] = b'{"pad":"' + b"x" * max(0, size - 10) + b'"}'
        return found

    async def minimal_get(request: web.Request) -> web.Response:
        return web.Response(body=body(int(request.match_info["size"])), content_type="application/json")

    async def minimal_post(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body(int(request.match_info["size"])), status=201, content_type="application/json")

    stats = time_the_bus()

    async def bus_stats(_: web.Request) -> web.Response:
        return web.json_response(stats)

    build_app = http_app.build_app

    def with_baseline(**kwargs: Any) -> web.Application:
        app = build_app(**kwargs)
        app.router.add_get("/v1/Bench/{size}", minimal_get)
        app.router.add_post("/v1/Bench/{size}", minimal_post)
        app.router.add_get("/bench/{size}", minimal_get)
        app.router.add_get("/bench-stats", bus_stats)
        return app

    http_app.build_app = with_baseline  # Service.run imports it when it starts
    threading.Thread(target=name_threads, name="bench-names", daemon=True).start()
    return openrooms(["--log-level", log_level, "serve", "--state-dir", state_dir, "--http", "127.0.0.1:0", *extra])


def time_the_bus() -> dict[str, float]:
    """Count the CommandBus's batches and time the engine's steps of each (a few clock reads a
    batch): seconds spent in Engine.prepare / write / settle, batches and commands resolved."""
    from adapters.command_bus import CommandBus
    from domain.engine import Engine

    stats = {"batches": 0.0, "commands": 0.0, "prepare": 0.0, "write": 0.0, "settle": 0.0}

    def timed(name: str) -> None:
        step = getattr(Engine, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return step(*args, **kwargs)
            finally:
                stats[name] += time.perf_counter() - began

        setattr(Engine, name, wrapper)

    for name in ("prepare", "write", "settle"):
        timed(name)
    run_batch = CommandBus._run_batch

    async def counted(self: CommandBus, batch: list[Any]) -> bool:
        committed = await run_batch(self, batch)
        if committed:
            stats["batches"] += 1
            stats["commands"] += len(batch)
        return committed

    CommandBus._run_batch = counted  # type: ignore[method-assign]
    return stats


def name_threads() -> None:
    """Give the server's threads their Python names in /proc (for the CPU split; top shows them too)."""
    named: set[int] = set()
    while True:
        for thread in threading.enumerate():
            if thread.native_id is not None and thread.native_id not in named:
                with contextlib.suppress(OSError):
                    Path(f"/proc/self/task/{thread.native_id}/comm").write_text(thread.name[:15])
                named.add(thread.native_id)
        time.sleep(0.2)


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    authorization: str
    state_dir: Path
    engine: subprocess.Popen[str] | None = None
    """With `--split`: the `--role engine` process (the HTTP process above sends it commands over NATS)."""

    def nats_pid(self) -> int | None:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        for child in children:
            if "nats" in Path(f"/proc/{child}/comm").read_text():
                return int(child)
        return None


def start_server(workdir: Path, log_level: str, split: bool = False) -> Server:
    state = workdir / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROOMS_")}
    root = Path(__file__).resolve().parents[3]
    engine = None
    extra: list[str] = []
    if split:
        engine_log = workdir / "engine.log"
        engine = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "--log-level", log_level, "serve", "--state-dir", str(state),
             "--http", "127.0.0.1:0", "--role", "engine"],
            stdout=subprocess.PIPE, stderr=engine_log.open("w"), text=True, env=env, cwd=root,
        )  # fmt: skip
        wait_running(engine, engine_log)
        extra = ["--role", "http", "--nats", (state / "nats.url").read_text().strip()]
    stderr = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(state), "--server-log-level", log_level, "--", *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        cwd=root,
    )
    port = wait_running(process, workdir / "server.log")
    credentials = json.loads((state / "credentials.json").read_text())
    pair = f"{credentials['api_key_sid']}:{credentials['api_key_secret']}".encode()
    return Server(process, port, "Basic " + base64.b64encode(pair).decode(), state, engine)


def stop_server(server: Server) -> None:
    for process in (server.process, server.engine):
        if process is None:
            continue
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the load: keep-alive HTTP/1.1 connections in other processes -----------------------------


def request_bytes(method: str, path: str, port: int, authorization: str, body: bytes = b"") -> bytes:
    """The request as the twilio library sends it (requests' default headers, then Twilio's)."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"User-Agent: {USER_AGENT}",
        "Accept-Encoding: gzip, deflate",
        "Accept: application/json",
        "Connection: keep-alive",
        f"X-Twilio-Client: python-{TWILIO_VERSION}",
        "Accept-Charset: utf-8",
    ]
    if method == "POST":
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; answers need a Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.status = 0
        self.body_at = -1
        self.end = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.end < 0:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buffer[:head_end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.fail(ConnectionError(f"no content-length: {head[:300]!r}"))
                return
            stop = head.find(b"\r\n", at + 2)
            self.body_at = head_end + 4
            self.end = self.body_at + int(head[at + 17 : stop if stop > 0 else None])
        if len(self.buffer) >= self.end:
            body = bytes(self.buffer[self.body_at : self.end])
            del self.buffer[: self.end]
            self.end = -1
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self.status, body))

    def fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"connection lost: {exc}"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


@dataclass
class Load:
    """One phase for one load process."""

    mode: str  # create | fetch | post-minimal | get-minimal | get-bare
    port: int
    authorization: str
    connections: int
    start_at: float  # time.time() of the first request (the same for every process)
    seconds: float
    label: str
    size: int = 0  # bytes the minimal handler answers
    sids: list[str] = field(default_factory=list)


@dataclass
class LoadResult:
    count: int = 0
    errors: int = 0
    first_error: str = ""
    latencies: array = field(default_factory=lambda: array("d"))  # type: ignore[type-arg]
    elapsed: float = 0.0
    cpu: float = 0.0
    sids: list[str] = field(default_factory=list)


def requests_for(load: Load, index: int) -> tuple[Callable[[int], bytes], int]:
    """(request n of connection `index`, the status it should answer)."""
    port, auth = load.port, load.authorization
    if load.mode == "create":
        prefix = f"UniqueName=bench-{load.label}-{index}-"
        return lambda n: request_bytes("POST", "/v1/Rooms", port, auth, f"{prefix}{n}".encode()), 201
    if load.mode == "post-minimal":
        prefix = f"UniqueName=bench-{load.label}-{index}-"
        path = f"/v1/Bench/{load.size}"
        return lambda n: request_bytes("POST", path, port, auth, f"{prefix}{n}".encode()), 201
    if load.mode == "fetch":
        pick = random.Random(f"{load.label}-{index}").choice
        sids = load.sids
        return lambda n: request_bytes("GET", f"/v1/Rooms/{pick(sids)}", port, auth), 200
    path = f"/v1/Bench/{load.size}" if load.mode == "get-minimal" else f"/bench/{load.size}"
    fixed = request_bytes("GET", path, port, auth)
    return lambda n: fixed, 200


async def drive(load: Load) -> LoadResult:
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(load.connections):
        _, protocol = await loop.create_connection(HttpConnection, "127.0.0.1", load.port)
        connections.append(protocol)
    result = LoadResult()
    keep_sids = load.mode == "create"
    offset = time.perf_counter() - time.time()
    began = load.start_at + offset
    deadline = began + load.seconds
    await asyncio.sleep(max(0.0, began - time.perf_counter()))
    cpu = time.process_time()

    async def client(index: int) -> None:
        make, expected = requests_for(load, index)
        connection = connections[index]
        latencies, n = result.latencies, 0
        while (sent := time.perf_counter()) < deadline:
            status, body = await connection.request(make(n))
            latencies.append(time.perf_counter() - sent)
            n += 1
            if status != expected:
                result.errors += 1
                result.first_error = result.first_error or f"{status} {body[:300]!r}"
            elif keep_sids:
                at = body.find(b'"sid":"RM')
                result.sids.append(body[at + 7 : at + 41].decode())

    await asyncio.gather(*(client(k) for k in range(load.connections)))
    result.elapsed = time.perf_counter() - began
    result.cpu = time.process_time() - cpu
    result.count = len(result.latencies)
    for connection in connections:
        assert connection.transport is not None
        connection.transport.close()
    return result


def load_process(load: Load, pipe: Connection) -> None:
    pipe.send(asyncio.run(drive(load)))


# --- phases ------------------------------------------------------------------------------------


def proc_cpu(pid: int | None) -> float:
    """utime + stime of a process (all its threads), seconds."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """utime + stime of each thread of a process: tid → (name without its pool number, seconds)."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name, _, rest = task.joinpath("stat").read_text().partition(" (")[2].rpartition(")")
            fields = rest.split()
            threads[int(task.name)] = (re.sub(r"_\d+$", "", name), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return threads


def machine_idle() -> float:
    """Idle + iowait seconds of all cores since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / CLOCK_TICKS


@dataclass
class Phase:
    name: str
    rate: float
    p50: float
    p99: float
    count: int
    errors: int
    first_error: str
    server_cpu: float  # cores
    nats_cpu: float
    load_cpu: float
    idle: float
    threads: dict[str, float]  # cores, by thread name (pool threads together)
    bus: dict[str, float]  # the command bus over the phase (time_the_bus), differences
    sids: list[str]


def bus_stats(server: Server) -> dict[str, float]:
    async def get() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(HttpConnection, "127.0.0.1", server.port)
        status, body = await connection.request(request_bytes("GET", "/bench-stats", server.port, ""))
        assert status == 200 and connection.transport is not None, body
        connection.transport.close()
        stats: dict[str, float] = json.loads(body)
        return stats

    return asyncio.run(get())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def run_phase(
    server: Server,
    name: str,
    mode: str,
    args: argparse.Namespace,
    *,
    seconds: float | None = None,
    size: int = 0,
    sids: list[str] | None = None,
    during: Callable[[float], Any] | None = None,
) -> Phase:
    seconds = seconds if seconds is not None else args.seconds
    time.sleep(1)  # let the previous phase's background work (relay, follower, webhooks) settle
    context = multiprocessing.get_context("fork")
    start_at = time.time() + 0.5
    label = f"{mode}-{int(start_at * 1000)}"
    share, extra = divmod(args.connections, args.procs)
    workers = []
    for p in range(args.procs):
        load = Load(
            mode, server.port, server.authorization, share + (p < extra), start_at, seconds, f"{label}-{p}", size,
            sids or [],
        )  # fmt: skip
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=load_process, args=(load, send), daemon=True)
        process.start()
        workers.append((process, receive))
    nats = server.nats_pid()
    time.sleep(max(0.0, start_at - time.time()))
    bus0 = bus_stats(server)
    threads0 = thread_cpu(server.process.pid)
    cpu0, nats0, idle0, wall0 = proc_cpu(server.process.pid), proc_cpu(nats), machine_idle(), time.perf_counter()
    if during is not None:
        during(seconds)
    time.sleep(max(0.0, start_at + seconds - time.time()))
    cpu1, nats1, idle1, wall1 = proc_cpu(server.process.pid), proc_cpu(nats), machine_idle(), time.perf_counter()
    bus1 = bus_stats(server)
    by_thread: Counter[str] = Counter()
    for tid, (thread, used) in thread_cpu(server.process.pid).items():
        by_thread[thread] += used - threads0.get(tid, ("", 0.0))[1]
    results: list[LoadResult] = []
    for process, receive in workers:
        results.append(receive.recv())
        process.join()
    latencies = [x for r in results for x in r.latencies]
    count = sum(r.count for r in results)
    wall = wall1 - wall0
    threads = {thread: used / wall for thread, used in by_thread.items()}
    return Phase(
        name=name,
        rate=count / max(r.elapsed for r in results),
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        count=count,
        errors=sum(r.errors for r in results),
        first_error=next((r.first_error for r in results if r.first_error), ""),
        server_cpu=(cpu1 - cpu0) / wall,
        nats_cpu=(nats1 - nats0) / wall,
        load_cpu=sum(r.cpu for r in results) / seconds,
        idle=(idle1 - idle0) / wall,
        threads=threads,
        bus={k: (bus1[k] - bus0[k]) for k in bus1},
        sids=[s for r in results for s in r.sids],
    )


# --- profile -----------------------------------------------------------------------------------

PROFILE_HZ = 100
# What a sample of the thread holding the GIL was doing: the innermost frame matching a SUBTREE
# rule names it (that frame and everything it called), else the thread's own name (THREADS),
# else the innermost frame matching a LIBRARY rule; frames look like `func (path:line)`.
DECIDE = "engine: decide a batch (Engine.prepare: idempotency lookup, prefetch, decide, encode)"
WRITE = "event store write (Engine.write: SQLite insert + commit, on the event loop)"
HAND_OFF = "thread hand-off (to_thread / run_in_executor, futures, wake-ups)"
SCHEDULER = "scheduler: deadline queries + read-model refresh (its thread)"
SUBTREE: list[tuple[str, str]] = [
    (r"aiohttp/web_log\.py", "access log (aiohttp AccessLogger + logging to stderr)"),
    (r"adapters/http/auth\.py|adapters/keyring\.py", "auth: Basic header + KeyRing"),
    (r"RestApi\._form |params\.py:", "form: read body, parse, Twilio params"),
    (r"^json_response \(adapters/http/rest", "response: msgspec encode + web.Response"),
    (r"adapters/http/(rest|errors)\.py", "REST handler glue (rest.py, errors middleware)"),
    (r"adapters/http/gateway\.py", "gateway: msgspec encode/decode of body and reply"),
    (r"CommandService\.resource |twilio_shapes\.py", "Twilio JSON shaping (room_json)"),
    (r"recent_rows\.py", "recent rows: project at commit, read by the reply"),
    (
        r"command_service\.py|envelope\.py|adapters/metrics\.py|prometheus_client/",
        "command service: decode, envelope, metrics",
    ),
    (r"query_service\.py", "query service: decode, envelope"),
    (r"Queries\.(next_deadline|due) |adapters/scheduler\.py", SCHEDULER),
    (r"adapters/store/queries\.py", "read-model query (SQLite, pool thread)"),
    (r"EngineService\.read_your_writes", "read-your-writes wait"),
    (r"Follower\.refresh ", "read-model refresh (Queries that refresh)"),
    (r"read_model\.py|EngineService\._follow", "follower: project events into the read model"),
    (r"adapters/command_bus\.py", "command bus: queue, batch, resolve futures"),
    (r"Engine\.(prepare|run_alone|_decide) ", DECIDE),
    (r"Engine\.write ", WRITE),
    (r"Engine\.settle ", "engine: settle a committed batch"),
    (r"adapters/webhooks/", "webhooks: status-callback follower + delivery (their threads)"),
    (r"\(relay\.py|nats/", "relay: read the log, publish to JetStream, acks"),
    (r"asyncio/threads\.py|run_in_executor |ThreadPoolExecutor\.submit |_write_to_self ", HAND_OFF),
]
THREADS: list[tuple[str, str]] = [("scheduler", SCHEDULER)]
LIBRARY: list[tuple[str, str]] = [
    (r"_SelectorSocketTransport\.(write|_read_ready) ", "socket send/recv"),
    (r"aiohttp/|multidict/|yarl/", "aiohttp: parse, route, middlewares, write"),
    (r"concurrent/futures/|asyncio/futures\.py|_read_from_self |_process_self_data ", HAND_OFF),
    (r"asyncio/|selectors\.py", "event loop: select, callbacks, task steps"),
]
_SUBTREE = [(re.compile(p), c) for p, c in SUBTREE]
_LIBRARY = [(re.compile(p), c) for p, c in LIBRARY]


def category(stack: list[str]) -> str:
    for frame in reversed(stack):
        for pattern, name in _SUBTREE:
            if pattern.search(frame):
                return name
    thread = stack[0].split(": ", 1)[-1] if stack and stack[0].startswith("thread (") else ""
    for prefix, name in THREADS:
        if thread.startswith(prefix):
            return name
    for frame in reversed(stack):
        for pattern, name in _LIBRARY:
            if pattern.search(frame):
                return name
    return "other"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


def record(server: Server, seconds: float, output: Path, *flags: str) -> subprocess.Popen[bytes]:
    command = [py_spy(), "record", "--pid", str(server.process.pid), "--duration", str(int(seconds))]
    command += ["--rate", str(PROFILE_HZ), "--format", "raw", "--output", str(output), "--nonblocking", "--threads"]
    return subprocess.Popen([*command, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def categories(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            counts[category(stack.split(";"))] += int(count)
    return counts


@dataclass
class Profile:
    phase: Phase
    window: float
    gil: Counter[str]  # samples of the thread holding the GIL, by what it was doing
    spy_cpu: float  # cores py-spy itself used


def profile_phase(
    server: Server, name: str, mode: str, args: argparse.Namespace, workdir: Path, **kwargs: Any
) -> Profile:
    output = workdir / f"{mode}-gil.txt"
    window = max(1, int(args.profile_seconds) - 1)
    spy_cpu = 0.0

    def during(_: float) -> None:
        nonlocal spy_cpu
        spy = record(server, window, output, "--gil")
        _, status, usage = os.wait4(spy.pid, 0)
        spy.returncode = os.waitstatus_to_exitcode(status)
        spy_cpu = (usage.ru_utime + usage.ru_stime) / window

    phase = run_phase(server, name, mode, args, seconds=args.profile_seconds, during=during, **kwargs)
    return Profile(phase, window, categories(output), spy_cpu)


# --- the run -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def row(what: str, ours: Phase, base: Phase) -> None:
    print(
        f"| {what} | {ours.rate:,.0f}/s, p50 {ms(ours.p50)}, p99 {ms(ours.p99)} "
        f"| {base.rate:,.0f}/s, p50 {ms(base.p50)}, p99 {ms(base.p99)} | {ours.rate / base.rate:.2f}x |"
    )


def check(phase: Phase) -> None:
    if phase.errors:
        print(f"warning: {phase.name}: {phase.errors} unexpected answers, first: {phase.first_error}", file=sys.stderr)


def measure(args: argparse.Namespace, workdir: Path) -> None:
    server = start_server(workdir, args.server_log_level, args.split)
    try:
        # warm up (and learn the sizes of our answers, for the minimal handler to match)
        warm = run_phase(server, "warm creates", "create", args, seconds=2)
        check(warm)
        create_size, fetch_size = measure_sizes(server, warm.sids[0])
        run_phase(server, "warm fetches", "fetch", args, seconds=1, sids=warm.sids)
        run_phase(server, "warm minimal", "get-minimal", args, seconds=1, size=fetch_size)

        phases = {
            "post-minimal": run_phase(server, "minimal POST", "post-minimal", args, size=create_size),
            "create": run_phase(server, "creates", "create", args),
        }
        sids = phases["create"].sids + warm.sids
        phases["get-minimal"] = run_phase(server, "minimal GET", "get-minimal", args, size=fetch_size)
        phases["fetch"] = run_phase(server, "fetches", "fetch", args, sids=sids)
        phases["get-bare"] = run_phase(server, "minimal GET, no auth", "get-bare", args, size=fetch_size)
        for phase in phases.values():
            check(phase)
        profiles = []
        if args.profile:
            profiles.append(profile_phase(server, "creates", "create", args, workdir))
            profiles.append(profile_phase(server, "fetches", "fetch", args, workdir, sids=sids))
            profiles.append(profile_phase(server, "minimal GET", "get-minimal", args, workdir, size=fetch_size))
    finally:
        stop_server(server)
    log_lines = sum(1 for _ in (workdir / "server.log").open())
    report(args, phases, create_size, fetch_size, log_lines)
    for profile in profiles:
        report_profile(profile)


def measure_sizes(server: Server, sid: str) -> tuple[int, int]:
    """Bytes of a create's answer and of a fetch's answer (one request each)."""

    async def once() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(HttpConnection, "127.0.0.1", server.port)
        created = await connection.request(
            request_bytes("POST", "/v1/Rooms", server.port, server.authorization, b"UniqueName=bench-size")
        )
        fetched = await connection.request(request_bytes("GET", f"/v1/Rooms/{sid}", server.port, server.authorization))
        assert created[0] == 201 and fetched[0] == 200, (created, fetched)
        assert connection.transport is not None
        connection.transport.close()
        return len(created[1]), len(fetched[1])

    return asyncio.run(once())


THREAD_ORDER = ("MainThread", "asyncio", "relay", "scheduler", "webhooks-follow")


def cpu_table(phases: list[Phase]) -> None:
    busy: set[str] = {t for p in phases for t, used in p.threads.items() if used >= 0.01}
    columns = [t for t in THREAD_ORDER if t in busy] + sorted(busy - set(THREAD_ORDER))
    named = {"MainThread": "event loop", "asyncio": "asyncio pool"}
    print(
        "| phase (cores) | server | "
        + " | ".join(named.get(t, t) for t in columns)
        + " | its nats-server | load | other processes | idle | server CPU per request |"
    )
    print("|---" * (len(columns) + 7) + "|")
    cores = os.cpu_count() or 1
    for p in phases:
        others = max(0.0, cores - p.server_cpu - p.nats_cpu - p.load_cpu - p.idle)
        threads = " | ".join(f"{p.threads.get(t, 0.0):.2f}" for t in columns)
        print(
            f"| {p.name} | {p.server_cpu:.2f} | {threads} | {p.nats_cpu:.2f} | {p.load_cpu:.2f} | {others:.2f} "
            f"| {p.idle:.2f} | {p.server_cpu / p.rate * 1e6:.0f} µs |"
        )


def bus_line(phase: Phase) -> None:
    """How the command bus spent the creates phase (from time_the_bus)."""
    bus = phase.bus
    batches = bus["batches"]
    if not batches:
        return
    wall = bus["commands"] / phase.rate  # ≈ the phase's length
    print(
        f"Command bus during the creates: {batches / wall:,.0f} batches/s of {bus['commands'] / batches:.1f} "
        f"commands on average, one every {wall / batches * 1000:.1f} ms; per batch, Engine.prepare "
        f"{bus['prepare'] / batches * 1000:.1f} ms, Engine.write "
        f"{bus['write'] / batches * 1000:.1f} ms, Engine.settle "
        f"{bus['settle'] / batches * 1000:.1f} ms, all on the event loop; the rest of each cycle is "
        f"the requests' own work (HTTP, decoding, replies)."
    )


def report(args: argparse.Namespace, phases: dict[str, Phase], create_size: int, fetch_size: int, logs: int) -> None:
    sqlite = sqlite3.sqlite_version
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    print(
        f"## REST benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, commit {commit or '?'}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite {sqlite}, {platform.machine()}; "
        f"`openrooms serve` in its own process, {args.connections} keep-alive connections from "
        f"{args.procs} load process(es), {args.seconds:.0f} s a phase"
    )
    print()
    print("| measure | ours | baseline: minimal handler, same server | ratio |")
    print("|---|---|---|---|")
    row(f"`POST /v1/Rooms` creates (answer {create_size} B)", phases["create"], phases["post-minimal"])
    row(f"`GET /v1/Rooms/{{sid}}` fetches (answer {fetch_size} B)", phases["fetch"], phases["get-minimal"])
    row("minimal `GET` with the auth middleware vs without", phases["get-minimal"], phases["get-bare"])
    errors = sum(p.errors for p in phases.values())
    print(f"| unexpected answers (all phases) | {errors} | | |")
    print()
    cpu_table(list(phases.values()))
    print()
    bus_line(phases["create"])
    print()
    print(f"Server log at {args.server_log_level} (aiohttp's access log is INFO): {logs:,} lines over the run.")
    sys.stdout.flush()


def report_profile(profile: Profile) -> None:
    phase = profile.phase
    requests = phase.rate * profile.window
    total = sum(profile.gil.values())
    print()
    print(
        f"### Where the GIL goes: {phase.name} ({phase.rate:,.0f}/s under py-spy, which used "
        f"{profile.spy_cpu:.2f} cores; GIL held {total / PROFILE_HZ / profile.window:.0%} of the time, "
        f"{total / PROFILE_HZ / requests * 1e6:.0f} µs per request; {total:,} samples)"
    )
    print()
    print("| what the thread holding the GIL was doing | share | µs per request |")
    print("|---|---|---|")
    for name, samples in profile.gil.most_common():
        print(f"| {name} | {samples / total:.1%} | {samples / PROFILE_HZ / requests * 1e6:.0f} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--procs", type=int, default=1, help="load processes")
    parser.add_argument("--profile", action="store_true", help="run creates and fetches again under py-spy")
    parser.add_argument("--profile-seconds", type=float, default=15)
    parser.add_argument("--server-log-level", default="INFO", help="`openrooms --log-level` of the server")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log, profiles)")
    parser.add_argument(
        "--split", action="store_true", help="two processes: `--role engine` and `--role http` over NATS"
    )
    parser.add_argument("--serve", metavar="STATE_DIR", help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sys.exit(serve(args.serve, args.server_log_level, args.extra))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(4096, hard)), hard))
    workdir = Path(tempfile.mkdtemp(prefix="openrooms-rest-bench-"))
    try:
        measure(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
