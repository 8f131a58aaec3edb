"""Engine benchmark: our command path against a naive eventsourcing loop, in one run.

    .venv/bin/python tests/bench/engine/run.py [--rooms 2000] [--naive-rooms 300] [--clients 64]
                                               [--rates 10000 12000] [--seconds 10]

1. commands/s through the engine (CommandBus group commit + in-memory active rooms) on a
   SQLite file (WAL, synchronous=NORMAL: the store's default), `--clients` rooms driven concurrently;
   baseline: the naive eventsourcing load → change → save loop (standard `Aggregate` with
   `@event` methods, default JSON mapper, one transaction per command) on the same kind of
   file, same command mix.
2. `replay --verify` events/s on the log of (1) against a raw read of the notifications
   (eventsourcing's `select_notifications`, no decoding).
3. commands/s sustained: one-event commands offered open loop at each `--rates` rate for
   `--seconds` (sent on schedule whatever the replies do); the rate is sustained when every
   command is answered right after the sending ends. Latency from the scheduled send.
4. memory per active room (4 participants with an audio and a video track each).

Each room runs the same session: create, 4 connects publishing audio+video, 8 mute/unmute
toggles, 4 disconnects (17 commands). Prints a markdown table with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from adapters.bootstrap import open_application, open_read_model, random_sid
from adapters.clock import SystemClock
from adapters.command_bus import CommandBus
from adapters.replay import verify_store
from adapters.store import wal
from adapters.store.read_model import Follower
from adapters.store.sqlite import CommandLogSQLiteRecorder
from domain import commands as c
from domain.engine import Engine
from domain.settings import AccountPolicy

ACCOUNT = "AC" + "0" * 32
POLICY = AccountPolicy(account_sid=ACCOUNT)
COMMANDS_PER_ROOM = 17


def checkpointing(engine: Engine) -> asyncio.Task[None]:
    """The log's WAL checkpoints in the background, as the engine service runs them."""
    recorder = engine.app.recorder
    assert isinstance(recorder, CommandLogSQLiteRecorder)
    return asyncio.create_task(wal.keep_checkpointed([recorder.checkpoint], lambda: engine.last_written_position))


async def drive_room(bus: CommandBus, index: int) -> int:
    prefix = f"r{index}"
    created = await bus.execute(c.CreateRoom(command_id=f"{prefix}-create", unique_name=f"bench-{index}"))
    room = created.room_sid
    assert room is not None, created
    people = []
    for p in range(4):
        result = await bus.execute(
            c.ConnectParticipant(
                command_id=f"{prefix}-connect-{p}",
                room=room,
                identity=f"user{p}",
                tracks=[c.TrackSpec(name="mic", kind="audio"), c.TrackSpec(name="cam", kind="video")],
            )
        )
        assert result.ok, result
        people.append((result.participant_sid, result.track_sids[1]))
    for p, (participant, video) in enumerate(people):
        for n, enabled in enumerate((False, True)):
            await bus.execute(
                c.SetTrackEnabled(
                    command_id=f"{prefix}-toggle-{p}-{n}",
                    room_sid=room,
                    participant_sid=participant,
                    track_sid=video,
                    enabled=enabled,
                )
            )
    for p, (participant, _) in enumerate(people):
        await bus.execute(
            c.DisconnectParticipant(command_id=f"{prefix}-leave-{p}", room_sid=room, participant_sid=participant)
        )
    return COMMANDS_PER_ROOM


async def run_ours(store_url: str, rooms: int, clients: int) -> tuple[float, int, int]:
    app = open_application(store_url)
    engine = Engine(app, policy=POLICY, sids=random_sid, clock=SystemClock().now)
    bus = CommandBus(engine)
    runner = asyncio.create_task(bus.run())
    checkpoints = checkpointing(engine)
    queue = iter(range(rooms))
    done = 0

    async def client() -> None:
        nonlocal done
        for index in queue:
            finished = await drive_room(bus, index)
            done += finished

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    bus.stop()
    await runner
    checkpoints.cancel()
    events = app.recorder.max_notification_id() or 0
    app.close()
    return elapsed, done, events


async def run_toggles(store_url: str, clients: int, per_client: int) -> tuple[float, int]:
    """Single-event commands (mute/unmute of a published track), `clients` at a time."""
    app = open_application(store_url)
    engine = Engine(app, policy=POLICY, sids=random_sid, clock=SystemClock().now)
    bus = CommandBus(engine)
    runner = asyncio.create_task(bus.run())
    checkpoints = checkpointing(engine)
    targets = [await publisher(bus, f"t{k}") for k in range(clients)]

    async def client(k: int) -> None:
        for n in range(per_client):
            await bus.execute(toggle(targets[k], f"t{k}-{n}", bool(n % 2)))

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    bus.stop()
    await runner
    checkpoints.cancel()
    app.close()
    return elapsed, clients * per_client


@dataclass
class Offered:
    rate: float
    seconds: float
    achieved: float
    drain: float
    latencies: list[float]


async def run_offered(store_url: str, rate: float, seconds: float, rooms: int) -> Offered:
    """Open loop: one-event commands sent at `rate`/s whatever the replies do, for `seconds`.

    The engine sustains the rate if it has answered everything when the sending ends (plus a
    short drain); latency is from each command's scheduled send time to its answer."""
    app = open_application(store_url)
    engine = Engine(app, policy=POLICY, sids=random_sid, clock=SystemClock().now)
    bus = CommandBus(engine)
    runner = asyncio.create_task(bus.run())
    checkpoints = checkpointing(engine)
    targets = [await publisher(bus, f"o{k}") for k in range(rooms)]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(n: int, scheduled: float) -> None:
        await bus.execute(toggle(targets[n % rooms], f"o-{n}", bool((n // rooms) % 2)))
        latencies.append(time.perf_counter() - scheduled)

    total = int(rate * seconds)
    began = time.perf_counter()
    sent = 0
    while sent < total:  # every millisecond, send what is due by now
        due = min(total, int((time.perf_counter() - began) * rate) + 1)
        for n in range(sent, due):
            task = loop.create_task(one(n, began + n / rate))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sent = due
        await asyncio.sleep(0.001)
    sending = time.perf_counter() - began
    while pending:
        await asyncio.wait(set(pending))
    elapsed = time.perf_counter() - began
    bus.stop()
    await runner
    checkpoints.cancel()
    app.close()
    return Offered(rate, seconds, total / elapsed, elapsed - sending, sorted(latencies))


async def publisher(bus: CommandBus, name: str) -> tuple[str, str, str]:
    """A room with one participant publishing one video track: (room, participant, track)."""
    room = (await bus.execute(c.CreateRoom(command_id=f"{name}-create"))).room_sid
    assert room is not None
    joined = await bus.execute(
        c.ConnectParticipant(
            command_id=f"{name}-join", room=room, identity="solo", tracks=[c.TrackSpec(name="cam", kind="video")]
        )
    )
    assert joined.participant_sid is not None
    return room, joined.participant_sid, joined.track_sids[0]


def toggle(target: tuple[str, str, str], command_id: str, enabled: bool) -> c.Command:
    """Mute or unmute the published track of `target` (room, participant, track): one event."""
    room, participant, track = target
    return c.SetTrackEnabled(
        command_id=command_id, room_sid=room, participant_sid=participant, track_sid=track, enabled=enabled
    )


class NaiveRoom(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.participants: dict[str, str] = {}
        self.tracks: dict[str, bool] = {}

    @event("Connected")
    def connect(self, sid: str, identity: str, tracks: list[str]) -> None:
        self.participants[sid] = identity
        for track in tracks:
            self.tracks[track] = True

    @event("Toggled")
    def set_enabled(self, track: str, enabled: bool) -> None:
        self.tracks[track] = enabled

    @event("Disconnected")
    def disconnect(self, sid: str) -> None:
        del self.participants[sid]


def synchronous(app: Application, mode: str | None = None) -> int:
    """The pooled connection's `PRAGMA synchronous` (after setting it to `mode`)."""
    with app.recorder.datastore.get_connection(commit=False) as conn:  # type: ignore[attr-defined]
        cursor = conn.cursor()
        if mode is not None:
            cursor.execute(f"PRAGMA synchronous={mode}")
        cursor.execute("PRAGMA synchronous")
        return int(cursor.fetchone()[0])


def run_naive(db: Path, rooms: int) -> tuple[float, int]:
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)})
    # Commits as durable as ours (WAL, synchronous=NORMAL, the store's default): the comparison is
    # of the command path. One thread, so the pool keeps handing out this one connection.
    synchronous(app, "NORMAL")
    done = 0
    start = time.perf_counter()
    for index in range(rooms):
        room = NaiveRoom(name=f"bench-{index}")
        app.save(room)
        room_id = room.id
        people = [(random_sid("PA"), random_sid("MT")) for _ in range(4)]
        for sid, video in people:
            r = app.repository.get(room_id)
            r.connect(sid, "user", [random_sid("MT"), video])
            app.save(r)
        for _, video in people:
            for enabled in (False, True):
                r = app.repository.get(room_id)
                r.set_enabled(video, enabled)
                app.save(r)
        for sid, _ in people:
            r = app.repository.get(room_id)
            r.disconnect(sid)
            app.save(r)
        done += COMMANDS_PER_ROOM
    assert synchronous(app) == 1, "the naive loop's connection is at synchronous=NORMAL"
    return time.perf_counter() - start, done


def raw_read(store_url: str) -> tuple[float, int]:
    app = open_application(store_url)
    start, count, began = 0, 0, time.perf_counter()
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=10_000, inclusive_of_start=False)
        if not notifications:
            break
        count += len(notifications)
        start = notifications[-1].id
    return time.perf_counter() - began, count


def memory_per_room(rooms: int) -> float:
    app = open_application("memory://")
    engine = Engine(app, policy=POLICY, sids=random_sid, clock=SystemClock().now)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(rooms):
        room = engine.execute(c.CreateRoom(command_id=f"m{index}", unique_name=f"mem-{index}")).room_sid
        assert room is not None
        for p in range(4):
            engine.execute(
                c.ConnectParticipant(
                    command_id=f"m{index}-{p}",
                    room=room,
                    identity=f"user{p}",
                    tracks=[c.TrackSpec(name="mic", kind="audio"), c.TrackSpec(name="cam", kind="video")],
                )
            )
    app.recorder._stored_events.clear()  # the in-memory log is not part of the engine's cache
    app.recorder._stored_events_index.clear()
    app.recorder._results.clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / rooms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--naive-rooms", type=int, default=300)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rates", type=float, nargs="+", default=[10_000, 12_000], help="open-loop offered rates")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration per rate")
    parser.add_argument("--memory-rooms", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="openrooms-bench-"))
    store_url = f"sqlite:///{workdir / 'events.db'}"

    ours_s, ours_n, events = asyncio.run(run_ours(store_url, args.rooms, args.clients))
    toggle_s, toggle_n = asyncio.run(run_toggles(f"sqlite:///{workdir / 'toggles.db'}", args.clients, 100))
    offered = [
        asyncio.run(run_offered(f"sqlite:///{workdir / f'offered-{rate}.db'}", rate, args.seconds, args.clients))
        for rate in args.rates
    ]
    naive_s, naive_n = run_naive(workdir / "naive.db", args.naive_rooms)

    app = open_application(store_url)
    read_model = open_read_model(store_url)
    Follower(app, read_model, ACCOUNT).catch_up()
    raw_s, raw_n = raw_read(store_url)
    began = time.perf_counter()
    report = verify_store(store_url, ACCOUNT)
    verify_s = time.perf_counter() - began
    assert report.consistent, (report.problems[:5], report.differences[:5])
    per_room = memory_per_room(args.memory_rooms)

    ours_rate, naive_rate = ours_n / ours_s, naive_n / naive_s
    verify_rate, raw_rate = report.events / verify_s, raw_n / raw_s
    print(
        f"## Engine benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    )
    print()
    print("| measure | ours | baseline | ratio |")
    print("|---|---|---|---|")
    print(
        f"| commands/s (SQLite at synchronous=NORMAL, {args.clients} concurrent rooms; "
        f"{events / ours_n:.1f} events/command) "
        f"| {ours_rate:,.0f} | {naive_rate:,.0f} (naive load-change-save) | {ours_rate / naive_rate:.1f}x |"
    )
    print(f"| events/s written | {events / ours_s:,.0f} | | |")
    print(
        f"| commands/s, one event each (mute/unmute, {args.clients} concurrent) | {toggle_n / toggle_s:,.0f} "
        f"| {naive_rate:,.0f} (naive load-change-save) | {toggle_n / toggle_s / naive_rate:.1f}x |"
    )
    for o in offered:
        p50, p99 = o.latencies[len(o.latencies) // 2], o.latencies[int(len(o.latencies) * 0.99)]
        print(
            f"| commands/s sustained, one event each, {o.rate:,.0f}/s offered for {o.seconds:.0f} s (open loop, "
            f"{args.clients} rooms; all answered {o.drain * 1e3:.0f} ms after the last send; latency p50 "
            f"{p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms) | {o.achieved:,.0f} "
            f"| {naive_rate:,.0f} (naive load-change-save) | {o.achieved / naive_rate:.1f}x |"
        )
    print(
        f"| replay --verify events/s ({report.events:,} events) | {verify_rate:,.0f} | {raw_rate:,.0f} (raw read) "
        f"| {verify_rate / raw_rate:.2f}x |"
    )
    print(f"| memory per active room (4 participants, 8 tracks) | {per_room / 1024:.1f} KiB | | |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()  # verify_store forks its workers: keep the module importable without side effects
