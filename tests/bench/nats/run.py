"""NATS plane benchmark: commands over NATS request/reply and the event relay, in one run.

    .venv/bin/python tests/bench/nats/run.py [--rate 1000] [--low-rate 100] [--seconds 10] [--clients 64]

One process holds the service (EngineService + CommandService + EventRelay, as `Service.run`
wires them, on a durable SQLite file) and the clients, on one event loop; the bundled
nats-server runs as its child in a temp dir. The service and the clients have a connection
each; the echo baseline subscribes on the service's connection.

1. Latency of `rooms.cmd.set_track_enabled` (one event per command, one room with one
   participant and a video track) at `--rate` commands/s offered, open loop: sends are
   scheduled at fixed intervals and none waits for an earlier reply. Latency is measured
   from the send (and, to show the sender's lag, from the scheduled time). Baseline: a raw
   NATS echo responder (replies with the request body) at the same offered rate. The pair is
   measured again at `--low-rate`, a rate the service sustains, to show its unloaded latency.
2. Throughput with `--clients` concurrent requesters, each on its own room and sending its
   next command when the previous reply arrives. Baseline: the echo responder, same clients.
3. Relay lag during (2): for every event, from the engine's commit (`Engine.on_commit`) to
   the moment the relay has JetStream's ack for the batch that carried it (`observe_ack`).
   Baseline: the same payloads in the same batch sizes published with `js.publish_async`
   directly (publish → ack per message), and one at a time with `js.publish`.

Prints a markdown table with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext

from adapters.bootstrap import EngineService, build_engine_service
from adapters.config import load_config
from adapters.nats.command_service import CommandService
from adapters.nats.relay import EventRelay, StreamSettings
from adapters.nats.server import EmbeddedNatsServer
from domain import commands as c

SUBJECT = "rooms.cmd.set_track_enabled"
ECHO = "bench.echo"
BASELINE_STREAM = "BENCH_BASELINE"
ENCODER = msgspec.json.Encoder()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --- relay lag ---------------------------------------------------------------------------------


@dataclass
class LagProbe:
    """Commit time per event (engine thread) → the relay's ack of the batch that carried it."""

    active: bool = False
    committed: dict[str, float] = field(default_factory=dict)
    in_flight: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    bodies: list[tuple[str, bytes, str]] = field(default_factory=list)

    def on_commit(self, events: list[Any]) -> None:
        if self.active:
            now = time.perf_counter()
            for event in events:
                self.committed[f"{event.originator_id}:{event.originator_version}"] = now

    def on_publish(self, subject: str, body: bytes, msg_id: str) -> None:
        self.in_flight.append(msg_id)
        if self.active:
            self.bodies.append((subject, body, msg_id))

    def on_ack(self, seconds: float) -> None:
        now = time.perf_counter()
        matched = 0
        for msg_id in self.in_flight:
            began = self.committed.pop(msg_id, None)
            if began is not None:
                self.lags.append(now - began)
                matched += 1
        if matched:
            self.batches.append(len(self.in_flight))
        self.in_flight.clear()

    def reset(self) -> None:
        self.committed.clear()
        self.lags, self.batches, self.bodies = [], [], []


class ObservedJetStream:
    """The relay's JetStream context, telling the probe which messages each batch carried."""

    def __init__(self, js: JetStreamContext, probe: LagProbe) -> None:
        self.js = js
        self.probe = probe

    async def publish_async(self, subject: str, payload: bytes, **kwargs: Any) -> Any:
        self.probe.on_publish(subject, payload, kwargs["headers"]["Nats-Msg-Id"])
        return await self.js.publish_async(subject, payload, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.js, name)


# --- the service under test --------------------------------------------------------------------


@dataclass
class Bench:
    server: EmbeddedNatsServer
    service: EngineService
    nc: Client
    client: Client
    commands: CommandService
    relay: EventRelay
    probe: LagProbe
    tasks: list[asyncio.Task[None]]
    stopping: asyncio.Event
    unmatched: int = 0


async def start(workdir: Path) -> Bench:
    server = EmbeddedNatsServer(workdir / "nats")
    server.start()
    config = load_config(state_dir=str(workdir / "state"), env={})
    service = build_engine_service(config)
    nc = await nats.connect(server.url)
    client = await nats.connect(server.url)
    probe = LagProbe()
    service.engine.on_commit.append(probe.on_commit)
    js: Any = ObservedJetStream(nc.jetstream(), probe)
    relay = EventRelay(service.app, js, service.read_model, StreamSettings(), observe_ack=probe.on_ack)
    service.bus.after_batch.append(relay.wake.set)
    await relay.ensure_stream()
    commands = CommandService(
        nc,
        service.bus,
        service.fresh_queries,
        config.public_url or "http://127.0.0.1:8080",
        ready=service.read_your_writes,
        recent=service.recent,
    )
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(service.run(stopping)), asyncio.create_task(relay.run())]
    await commands.start()

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(ECHO, cb=echo)
    await nc.flush()
    return Bench(server, service, nc, client, commands, relay, probe, tasks, stopping)


async def stop(bench: Bench) -> None:
    await bench.commands.stop()
    bench.stopping.set()
    await bench.tasks[0]
    bench.tasks[1].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await bench.tasks[1]
    await bench.client.close()
    await bench.nc.close()
    bench.service.close()
    bench.server.stop()


async def make_target(bench: Bench, k: int) -> tuple[str, str, str]:
    """A room with one participant publishing one video track: (room, participant, track)."""
    bus = bench.service.bus
    room = (await bus.execute(c.CreateRoom(command_id=f"setup-{k}"))).room_sid
    assert room is not None
    joined = await bus.execute(
        c.ConnectParticipant(
            command_id=f"setup-{k}-join", room=room, identity="solo", tracks=[c.TrackSpec(name="cam", kind="video")]
        )
    )
    assert joined.ok and joined.participant_sid is not None, joined
    return room, joined.participant_sid, joined.track_sids[0]


def toggles(target: tuple[str, str, str], prefix: str) -> Callable[[int], bytes]:
    room, participant, track = target

    def body(n: int) -> bytes:
        return ENCODER.encode(
            {
                "command_id": f"{prefix}-{n}",
                "room_sid": room,
                "participant_sid": participant,
                "track_sid": track,
                "enabled": bool(n % 2),
            }
        )

    return body


def check(reply: bytes, subject: str) -> None:
    if subject == SUBJECT and not reply.startswith(b'{"ok":true'):
        raise AssertionError(reply[:300])


# --- load shapes -------------------------------------------------------------------------------


@dataclass
class OpenLoop:
    from_send: list[float]
    from_schedule: list[float]
    failures: int


async def open_loop(
    client: Client, subject: str, body: Callable[[int], bytes], rate: float, seconds: float
) -> OpenLoop:
    """Send at fixed intervals whatever the replies do; latency of every request."""
    loop = asyncio.get_running_loop()
    result = OpenLoop([], [], 0)
    pending: set[asyncio.Task[None]] = set()

    async def one(n: int, scheduled: float) -> None:
        sent = time.perf_counter()
        try:
            reply = await client.request(subject, body(n), timeout=10)
        except (TimeoutError, nats.errors.TimeoutError):
            result.failures += 1
            return
        done = time.perf_counter()
        check(reply.data, subject)
        result.from_send.append(done - sent)
        result.from_schedule.append(done - scheduled)

    origin = time.perf_counter() + 0.05
    for n in range(int(rate * seconds)):
        scheduled = origin + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(n, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return result


async def closed_loop(client: Client, subject: str, bodies: list[Callable[[int], bytes]], seconds: float) -> float:
    """Each requester sends its next request when its reply arrives; requests/s over `seconds`."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def requester(body: Callable[[int], bytes]) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < deadline:
            reply = await client.request(subject, body(n), timeout=10)
            check(reply.data, subject)
            n += 1
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(requester(b) for b in bodies))
    return done / (time.perf_counter() - began)


async def relay_drained(bench: Bench) -> None:
    while await asyncio.to_thread(bench.relay.lag) > 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)


async def publish_baseline(
    js: JetStreamContext, bodies: list[tuple[str, bytes, str]], batches: list[int]
) -> list[float]:
    """The relay's payloads in its batch sizes, published directly: publish → ack per message."""
    latencies: list[float] = []
    position = 0
    for size in batches:
        batch = bodies[position : position + size]
        position += size
        sent = []
        for subject, body, msg_id in batch:
            began = time.perf_counter()
            future = await js.publish_async("bench." + subject, body, headers={"Nats-Msg-Id": "b" + msg_id})

            def acked(_: object, began: float = began) -> None:
                latencies.append(time.perf_counter() - began)

            future.add_done_callback(acked)
            sent.append(future)
        await asyncio.gather(*sent)
        await asyncio.sleep(0)
    return latencies


async def publish_one_by_one(js: JetStreamContext, bodies: list[tuple[str, bytes, str]]) -> list[float]:
    latencies = []
    for subject, body, msg_id in bodies:
        began = time.perf_counter()
        await js.publish("bench." + subject, body, headers={"Nats-Msg-Id": "s" + msg_id})
        latencies.append(time.perf_counter() - began)
    return latencies


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Results:
    ours_latency: OpenLoop
    echo_latency: OpenLoop
    ours_low: OpenLoop
    echo_low: OpenLoop
    latency_lags: list[float]
    ours_rate: float = 0.0
    echo_rate: float = 0.0
    relay_lags: list[float] = field(default_factory=list)
    relay_batches: list[int] = field(default_factory=list)
    direct_async: list[float] = field(default_factory=list)
    direct_sync: list[float] = field(default_factory=list)
    unmatched: int = 0


async def phase(bench: Bench, run: Callable[[], Awaitable[Any]]) -> tuple[Any, list[float], list[int]]:
    """Run a load with the lag probe on; returns its result and the relay lags it caused."""
    bench.probe.reset()
    bench.probe.active = True
    outcome = await run()
    bench.probe.active = False
    await relay_drained(bench)
    bench.unmatched += len(bench.probe.committed)  # committed, but published before on_commit ran
    return outcome, list(bench.probe.lags), list(bench.probe.batches)


async def latency_runs(bench: Bench, args: argparse.Namespace, target: tuple[str, str, str]) -> Results:
    client, seconds = bench.client, args.seconds
    await open_loop(client, ECHO, toggles(target, "warm-echo"), args.rate, 1.0)
    await open_loop(client, SUBJECT, toggles(target, "warm"), args.rate, 1.0)
    await relay_drained(bench)
    echo = await open_loop(client, ECHO, toggles(target, "echo"), args.rate, seconds)
    ours, lags, _ = await phase(bench, lambda: open_loop(client, SUBJECT, toggles(target, "lat"), args.rate, seconds))
    echo_low = await open_loop(client, ECHO, toggles(target, "echo-low"), args.low_rate, seconds)
    ours_low = await open_loop(client, SUBJECT, toggles(target, "low"), args.low_rate, seconds)
    await relay_drained(bench)
    return Results(ours, echo, ours_low, echo_low, lags)


async def throughput(bench: Bench, args: argparse.Namespace, targets: list[tuple[str, str, str]], r: Results) -> None:
    client = bench.client
    r.echo_rate = await closed_loop(
        client, ECHO, [toggles(t, f"echo-{k}") for k, t in enumerate(targets)], args.seconds
    )
    bodies = [toggles(t, f"thr-{k}") for k, t in enumerate(targets)]
    r.ours_rate, r.relay_lags, r.relay_batches = await phase(
        bench, lambda: closed_loop(client, SUBJECT, bodies, args.seconds)
    )
    published = list(bench.probe.bodies)
    js = bench.nc.jetstream()
    config = StreamConfig(
        name=BASELINE_STREAM, subjects=["bench.rooms.evt.>"], storage=StorageType.FILE, duplicate_window=600
    )
    await js.add_stream(config)
    r.direct_async = await publish_baseline(js, published, r.relay_batches)
    r.direct_sync = await publish_one_by_one(js, published[: args.sync_publishes])
    r.unmatched = bench.unmatched


async def measure(args: argparse.Namespace, workdir: Path) -> Results:
    bench = await start(workdir)
    try:
        targets = [await make_target(bench, k) for k in range(args.clients)]
        results = await latency_runs(bench, args, targets[0])
        await throughput(bench, args, targets, results)
        return results
    finally:
        await stop(bench)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def latency_rows(rate: float, ours: OpenLoop, echo: OpenLoop) -> None:
    p50, p99 = percentile(ours.from_send, 50), percentile(ours.from_send, 99)
    e50, e99 = percentile(echo.from_send, 50), percentile(echo.from_send, 99)
    s99, es99 = percentile(ours.from_schedule, 99), percentile(echo.from_schedule, 99)
    shape = f"{rate:,.0f}/s offered, open loop, {len(ours.from_send):,} requests"
    print(f"| set_track_enabled p50, {shape} | {ms(p50)} | {ms(e50)} (echo responder) | {p50 / e50:.2f}x |")
    print(f"| set_track_enabled p99, same run | {ms(p99)} | {ms(e99)} (echo responder) | {p99 / e99:.2f}x |")
    print(f"| p99 from the scheduled send time (sender lag included) | {ms(s99)} | {ms(es99)} | {s99 / es99:.2f}x |")
    print(f"| failed or timed-out requests | {ours.failures} | {echo.failures} | |")


def report(args: argparse.Namespace, r: Results) -> None:
    l50, l99 = percentile(r.relay_lags, 50), percentile(r.relay_lags, 99)
    a50, a99 = percentile(r.direct_async, 50), percentile(r.direct_async, 99)
    q50, q99 = percentile(r.direct_sync, 50), percentile(r.direct_sync, 99)
    ll50, ll99 = percentile(r.latency_lags, 50), percentile(r.latency_lags, 99)
    print(
        f"## NATS plane benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}; "
        f"service and clients in one Python process (one event loop), nats-server as its child"
    )
    print()
    print("| measure | ours | baseline | ratio |")
    print("|---|---|---|---|")
    latency_rows(args.rate, r.ours_latency, r.echo_latency)
    latency_rows(args.low_rate, r.ours_low, r.echo_low)
    print(
        f"| commands/s, {args.clients} concurrent requesters, one event each | {r.ours_rate:,.0f} "
        f"| {r.echo_rate:,.0f} (echo responder) | {r.ours_rate / r.echo_rate:.2f}x |"
    )
    events = f"{len(r.relay_lags):,} events, batches of {statistics.mean(r.relay_batches):.0f} on average"
    print(
        f"| relay lag commit → JetStream ack p50, during the throughput run ({events}) | {ms(l50)} "
        f"| {ms(a50)} (publish_async → ack, same payloads and batches) | {l50 / a50:.1f}x |"
    )
    print(f"| relay lag p99, same | {ms(l99)} | {ms(a99)} | {l99 / a99:.1f}x |")
    print(
        f"| relay lag p50 / p99 during the {args.rate:,.0f}/s latency run | {ms(ll50)} / {ms(ll99)} "
        f"| {ms(q50)} / {ms(q99)} (`js.publish` one at a time, {len(r.direct_sync):,} messages) | "
        f"{ll50 / q50:.1f}x / {ll99 / q99:.1f}x |"
    )
    print(f"| events whose commit → ack could not be matched (left out) | {r.unmatched} | | |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--low-rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--sync-publishes", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="openrooms-nats-bench-"))
    try:
        results = asyncio.run(measure(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, results)


if __name__ == "__main__":
    main()
