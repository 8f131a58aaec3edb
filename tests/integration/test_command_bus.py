"""The command bus on a real store: group commit, first results for repeats, races, store failures.

Callers await `bus.execute` on one event loop, as the NATS command service and the REST API do;
the bus decides and writes on the event loop. Each test checks what the
callers got and what the log holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from adapters.command_bus import CommandBus
from domain import commands as cmd
from domain import events as ev
from domain.engine import Engine

if TYPE_CHECKING:
    from tests.integration.conftest import StoreLog

OpenEngine = Callable[..., Engine]


@asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[CommandBus]:
    bus = CommandBus(engine)
    runner = asyncio.create_task(bus.run())
    try:
        yield bus
    finally:
        bus.stop()
        await runner


def toggles(room: str, participant: str, track: str, prefix: str, n: int) -> list[cmd.Command]:
    return [
        cmd.SetTrackEnabled(
            command_id=f"{prefix}-{i}", room_sid=room, participant_sid=participant, track_sid=track, enabled=bool(i % 2)
        )
        for i in range(n)
    ]


async def solo_publisher(bus: CommandBus, name: str) -> tuple[str, str, str]:
    room = (await bus.execute(cmd.CreateRoom(command_id=f"{name}-create", unique_name=name))).room_sid
    assert room is not None
    joined = await bus.execute(
        cmd.ConnectParticipant(
            command_id=f"{name}-join", room=room, identity="solo", tracks=[cmd.TrackSpec(name="cam", kind="video")]
        )
    )
    assert joined.participant_sid is not None
    return room, joined.participant_sid, joined.track_sids[0]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_store_url"))


async def test_commands_arriving_together_share_transactions_and_each_caller_gets_its_own_result(
    store_url: str, open_engine: OpenEngine, log: type[StoreLog]
) -> None:
    engine = open_engine(store_url)
    async with running(engine) as bus:
        rooms = [await solo_publisher(bus, f"room-{k}") for k in range(8)]
        before = bus.batches
        commands = [c for k, target in enumerate(rooms) for c in toggles(*target, f"t{k}", 50)]
        results = await asyncio.gather(*(bus.execute(c) for c in commands))
        batches = bus.batches - before

    assert all(r.ok for r in results)
    assert batches < len(commands) / 4  # grouped, not one transaction each
    recorded = [e for e in log.events(engine) if isinstance(e, (ev.TrackEnabled, ev.TrackDisabled))]
    assert Counter(e.command_id for e in recorded) == Counter(c.command_id for c in commands)
    # Per room, the events follow the order the callers sent them in.
    for k, (room, _, _) in enumerate(rooms):
        assert [e.command_id for e in recorded if e.originator_id == room] == [f"t{k}-{i}" for i in range(50)]


async def test_a_command_committed_before_a_restart_is_answered_with_its_first_result_and_records_nothing(
    store_url: str, open_engine: OpenEngine, log: type[StoreLog]
) -> None:
    first = open_engine(store_url)
    async with running(first) as bus:
        created = await bus.execute(cmd.CreateRoom(command_id="create-once"))
        assert created.ok

    # A new process: nothing of the first run in memory. The repeat arrives among new commands,
    # so it is decided in a batch with them.
    second = open_engine(store_url)
    async with running(second) as bus:
        repeat, *fresh = await asyncio.gather(
            bus.execute(cmd.CreateRoom(command_id="create-once")),
            *(bus.execute(cmd.CreateRoom(command_id=f"create-{i}")) for i in range(20)),
        )
        again = await bus.execute(cmd.CreateRoom(command_id="create-once"))

    assert repeat == created and again == created
    assert all(r.ok for r in fresh) and len({r.room_sid for r in fresh} | {created.room_sid}) == 21
    created_events = [e for e in log.events(second) if isinstance(e, ev.RoomCreated)]
    assert Counter(e.command_id for e in created_events) == Counter(
        ["create-once", *(f"create-{i}" for i in range(20))]
    )


async def test_two_engines_racing_through_their_buses_admit_exactly_max_participants(
    store_url: str, open_engine: OpenEngine, log: type[StoreLog]
) -> None:
    first, second = open_engine(store_url), open_engine(store_url)
    async with running(first) as bus_one, running(second) as bus_two:
        room = await bus_one.execute(cmd.CreateRoom(command_id="create", unique_name="hall", max_participants=10))
        assert room.room_sid is not None
        joins = [cmd.ConnectParticipant(command_id=f"join-{i}", room="hall", identity=f"user-{i}") for i in range(40)]
        results = await asyncio.gather(*((bus_one if i % 2 else bus_two).execute(c) for i, c in enumerate(joins)))

    assert sum(r.ok for r in results) == 10
    assert {r.error_code for r in results if not r.ok} == {53105}
    connected = [e for e in log.events(first) if isinstance(e, ev.ParticipantConnected)]
    assert sorted(e.command_id for e in connected) == sorted(
        c.command_id for c, r in zip(joins, results, strict=True) if r.ok
    )
    assert len(log.room(open_engine(store_url), room.room_sid).participants) == 10


async def test_a_failed_write_fails_its_callers_only_and_the_bus_keeps_serving(
    sqlite_store_url: str, open_engine: OpenEngine, log: type[StoreLog]
) -> None:
    engine = open_engine(sqlite_store_url)
    path = sqlite_store_url.removeprefix("sqlite:///")
    async with running(engine) as bus:
        room, participant, track = await solo_publisher(bus, "flaky")
        # The store breaks under the engine (another program dropped a table it writes).
        with sqlite3.connect(path) as admin:
            admin.execute("ALTER TABLE command_results RENAME TO command_results_away")
        failed = await asyncio.gather(
            *(bus.execute(c) for c in toggles(room, participant, track, "lost", 5)), return_exceptions=True
        )
        with sqlite3.connect(path) as admin:
            admin.execute("ALTER TABLE command_results_away RENAME TO command_results")
        served = await asyncio.gather(*(bus.execute(c) for c in toggles(room, participant, track, "kept", 5)))

    assert all(isinstance(f, Exception) for f in failed)
    assert all(r.ok for r in served)
    recorded = [e.command_id for e in log.events(engine) if isinstance(e, (ev.TrackEnabled, ev.TrackDisabled))]
    assert recorded == [f"kept-{i}" for i in range(5)]


async def test_two_engines_taking_turns_on_one_room_decide_on_its_current_state_without_rerunning(
    store_url: str, open_engine: OpenEngine, log: type[StoreLog]
) -> None:
    first, second = open_engine(store_url), open_engine(store_url)
    reruns: list[int] = []
    for engine in (first, second):  # a batch that lost its write would be re-run one command at a time
        rerun = engine.run_alone
        engine.run_alone = lambda commands, rerun=rerun: reruns.append(len(commands)) or rerun(commands)  # type: ignore[method-assign]
    async with running(first) as bus_one, running(second) as bus_two:
        room, participant, track = await solo_publisher(bus_one, "shared")
        # As a NATS queue group does: the next command of the room goes to either engine, each
        # holding the room in memory at the version it last saw.
        commands = toggles(room, participant, track, "turn", 20)
        results = [await (bus_one if i % 2 else bus_two).execute(c) for i, c in enumerate(commands)]

    assert all(r.ok for r in results)
    # Each engine learns of the other from the log (or from the one race it loses), then reads
    # the room's version before deciding: no more re-runs.
    assert len(reruns) <= 2
    recorded = [e.command_id for e in log.events(first) if isinstance(e, (ev.TrackEnabled, ev.TrackDisabled))]
    assert recorded == [c.command_id for c in commands]
