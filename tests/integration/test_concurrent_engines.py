"""Two engines on one store, racing: the store's version check keeps every room rule.

Each engine has its own RoomsApplication (its own connections and cache), as two processes
would. Engines are synchronous and not thread-safe, so each engine is driven by several threads
that take turns through a lock of that engine, while the two engines run in parallel and contend
on the store; one test runs four engines in four spawned processes instead. The outcome is
checked three ways: the results the callers got, the log, and the state a fresh engine loads.
No sleeps: threads and processes start together at a barrier and are joined.
"""

from __future__ import annotations

import multiprocessing
import runpy
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from domain import commands as cmd
from domain import events as ev
from domain.engine import Engine
from domain.results import CommandResult, result_decoder

if TYPE_CHECKING:
    from tests.integration.conftest import StoreLog

OpenEngine = Callable[..., Engine]
ENGINE_WORKER = Path(__file__).with_name("engine_worker.py")
THREADS_PER_ENGINE = 4
JOIN_TIMEOUT = 120.0


def run_concurrently(
    work: Sequence[tuple[Engine, Sequence[cmd.Command]]], *, batch_size: int = 1
) -> dict[str, CommandResult]:
    """Execute each engine's commands from THREADS_PER_ENGINE threads at once; results by command id.

    The threads of one engine take turns through the engine's lock; all threads start together.
    """
    jobs: list[tuple[Engine, threading.Lock, list[cmd.Command]]] = []
    for engine, commands in work:
        lock = threading.Lock()
        jobs.extend((engine, lock, list(commands[i::THREADS_PER_ENGINE])) for i in range(THREADS_PER_ENGINE))
    start = threading.Barrier(len(jobs), timeout=JOIN_TIMEOUT)
    results: list[dict[str, CommandResult]] = [{} for _ in jobs]
    failures: list[BaseException] = []

    def worker(index: int, engine: Engine, lock: threading.Lock, commands: list[cmd.Command]) -> None:
        try:
            start.wait()
            for i in range(0, len(commands), batch_size):
                batch = commands[i : i + batch_size]
                with lock:
                    answers = engine.execute_batch(batch)
                results[index].update((c.command_id, r) for c, r in zip(batch, answers, strict=True))
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=worker, args=(i, *job), name=f"engine-worker-{i}") for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a worker thread did not finish"
    if failures:
        raise failures[0]
    merged: dict[str, CommandResult] = {}
    for part in results:
        merged.update(part)
    return merged


def run_in_processes(work: Sequence[tuple[str, Sequence[cmd.Command]]]) -> list[dict[str, CommandResult]]:
    """One spawned process per (store URL, commands), all starting their engine at the same moment.

    Returns each process's results by command id (in no particular order of processes).
    """
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(len(work), timeout=JOIN_TIMEOUT)
    out = context.Queue()
    processes = [
        context.Process(
            target=runpy.run_path,
            args=(str(ENGINE_WORKER),),
            kwargs={"init_globals": {"ARGS": (url, list(commands), start, out)}, "run_name": "__engine_worker__"},
            name=f"engine-{i}",
        )
        for i, (url, commands) in enumerate(work)
    ]
    for process in processes:
        process.start()
    try:
        answers = [out.get(timeout=JOIN_TIMEOUT) for _ in processes]
        failures = [answer for answer in answers if isinstance(answer, str)]
        assert not failures, "an engine process failed:\n" + "\n".join(failures)
    finally:
        for process in processes:
            process.join(JOIN_TIMEOUT)
            if process.is_alive():
                process.kill()
                process.join()
        out.close()
        out.join_thread()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return [{command_id: result_decoder.decode(raw) for command_id, raw in answer} for answer in answers]


def connects(room: str, identities: Sequence[str]) -> list[cmd.Command]:
    return [cmd.ConnectParticipant(command_id=f"connect-{i}", room=room, identity=i) for i in identities]


def assert_room_admitted_exactly(
    log: type[StoreLog],
    fresh: Engine,
    room_sid: str,
    results: dict[str, CommandResult],
    commands: Sequence[cmd.Command],
    cap: int,
) -> None:
    """Exactly `cap` connects were admitted, the rest refused as full; log and state agree."""
    admitted = {c.command_id: c for c in commands if results[c.command_id].ok}  # type: ignore[misc]
    refused = [results[c.command_id] for c in commands if not results[c.command_id].ok]
    assert len(admitted) == cap
    assert {r.error_code for r in refused} == {53105}
    assert len(refused) == len(commands) - cap
    admitted_identities = {c.identity for c in admitted.values()}  # type: ignore[attr-defined]
    assert all(results[k].room_sid == room_sid for k in admitted)

    connected = [e for e in log.events(fresh) if isinstance(e, ev.ParticipantConnected)]
    assert sorted(e.command_id for e in connected) == sorted(admitted)
    assert {e.identity for e in connected} == admitted_identities
    assert {e.participant_sid for e in connected} == {results[k].participant_sid for k in admitted}

    room = log.room(fresh, room_sid)
    assert len(room.participants) == cap
    assert {p.identity for p in room.participants.values()} == admitted_identities

    # What the callers were told is what the store kept, and asking again changes nothing.
    assert fresh.execute_batch(list(commands)) == [results[c.command_id] for c in commands]
    assert len([e for e in log.events(fresh) if isinstance(e, ev.ParticipantConnected)]) == cap


class ConcurrentEnginesContract:
    """Subclasses provide `store_url`."""

    @pytest.fixture
    def store_url(self) -> str:
        raise NotImplementedError

    @pytest.mark.parametrize("batch_size", [1, 5], ids=["one-by-one", "batches-of-5"])
    def test_concurrent_connects_from_two_engines_admit_exactly_max_participants(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog], batch_size: int
    ) -> None:
        first, second = open_engine(store_url), open_engine(store_url)
        room_sid = first.execute(
            cmd.CreateRoom(command_id="create", unique_name="town-hall", max_participants=10)
        ).room_sid
        assert room_sid is not None
        commands = connects("town-hall", [f"user-{i:02d}" for i in range(40)])

        results = run_concurrently([(first, commands[0::2]), (second, commands[1::2])], batch_size=batch_size)

        assert_room_admitted_exactly(log, open_engine(store_url), room_sid, results, commands, cap=10)

    def test_engine_processes_starting_together_on_a_new_store_admit_exactly_max_participants(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        # Four processes start at the same moment on an empty store (each creates or checks the
        # schema), all send the same create command, then their share of 40 connects.
        create = cmd.CreateRoom(command_id="create", unique_name="town-hall", max_participants=10)
        commands = connects("town-hall", [f"user-{i:02d}" for i in range(40)])

        answers = run_in_processes([(store_url, [create, *commands[i::4]]) for i in range(4)])

        creates = [answer.pop("create") for answer in answers]
        assert creates[0].ok and creates.count(creates[0]) == 4, creates
        results = {k: v for answer in answers for k, v in answer.items()}
        fresh = open_engine(store_url)
        assert [e.command_id for e in log.events(fresh) if isinstance(e, ev.RoomCreated)] == ["create"]
        assert_room_admitted_exactly(log, fresh, creates[0].room_sid, results, commands, cap=10)  # type: ignore[arg-type]

    def test_concurrent_creates_of_one_unique_name_make_exactly_one_room(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        first, second = open_engine(store_url), open_engine(store_url)
        creates = [cmd.CreateRoom(command_id=f"create-{i}", unique_name="all-hands") for i in range(24)]

        results = run_concurrently([(first, creates[0::2]), (second, creates[1::2])])

        winners = [r for r in results.values() if r.ok]
        assert len(winners) == 1
        assert Counter(r.error_code for r in results.values() if not r.ok) == {53113: 23}
        fresh = open_engine(store_url)
        recorded = log.events(fresh)
        assert [e.originator_id for e in recorded if isinstance(e, ev.RoomCreated)] == [winners[0].room_sid]
        assert [(e.originator_id, e.room_sid) for e in recorded if isinstance(e, ev.RoomNameClaimed)] == [
            ("name:all-hands", winners[0].room_sid)
        ]
        joined = fresh.execute(cmd.ConnectParticipant(command_id="join", room="all-hands", identity="alice"))
        assert joined.room_sid == winners[0].room_sid

    def test_a_command_replayed_to_the_other_engine_returns_the_first_result(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        first, second = open_engine(store_url), open_engine(store_url)
        commands: list[cmd.Command] = [
            cmd.CreateRoom(command_id="create", unique_name="demo", max_participants=2),
            cmd.ConnectParticipant(command_id="connect-alice", room="demo", identity="alice"),
            cmd.ConnectParticipant(command_id="connect-bob", room="demo", identity="bob"),
            cmd.ConnectParticipant(command_id="connect-carol", room="demo", identity="carol"),  # 53105
        ]
        first_results = [first.execute(c) for c in commands]
        assert [r.ok for r in first_results] == [True, True, True, False]
        log_before = log.events(first)

        # The other engine has nothing cached and would decide differently (new SIDs; carol
        # would fit after bob leaves): it must answer with what was decided first.
        room_sid, bob = first_results[0].room_sid, first_results[2].participant_sid
        assert room_sid is not None and bob is not None
        assert first.execute(
            cmd.DisconnectParticipant(command_id="bob-leaves", room_sid=room_sid, participant_sid=bob)
        ).ok
        assert [second.execute(c) for c in commands] == first_results
        assert second.execute_batch(commands) == first_results
        log_after = log.events(second)
        assert log_after[: len(log_before)] == log_before
        assert [(type(e), e.command_id) for e in log_after[len(log_before) :]] == [
            (ev.ParticipantDisconnected, "bob-leaves")
        ]

    def test_the_same_commands_sent_to_both_engines_at_once_are_decided_and_recorded_once(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        first, second = open_engine(store_url), open_engine(store_url)
        room_sid = first.execute(cmd.CreateRoom(command_id="create", unique_name="twice")).room_sid
        # Creates without a unique name touch no shared aggregate: only the stored command id
        # keeps the second engine from creating a second room.
        commands: list[cmd.Command] = [
            *(cmd.CreateRoom(command_id=f"create-{i}") for i in range(10)),
            *connects("twice", [f"user-{i}" for i in range(10)]),
        ]
        # Same commands, opposite order, in batches: each engine's batch holds ids the other is
        # committing at the same moment.
        results_first: dict[str, CommandResult] = {}
        results_second: dict[str, CommandResult] = {}
        start = threading.Barrier(2, timeout=JOIN_TIMEOUT)
        failures: list[BaseException] = []

        def drive(engine: Engine, ordered: list[cmd.Command], into: dict[str, CommandResult]) -> None:
            try:
                start.wait()
                for i in range(0, len(ordered), 4):
                    batch = ordered[i : i + 4]
                    into.update((c.command_id, r) for c, r in zip(batch, engine.execute_batch(batch), strict=True))
            except BaseException as exc:
                failures.append(exc)
                start.abort()

        threads = [
            threading.Thread(target=drive, args=(first, commands, results_first)),
            threading.Thread(target=drive, args=(second, commands[::-1], results_second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
        if failures:
            raise failures[0]

        assert results_first == results_second
        assert all(r.ok for r in results_first.values())
        recorded = log.events(open_engine(store_url))
        per_command = Counter(e.command_id for e in recorded)
        assert all(per_command[f"create-{i}"] == 1 for i in range(10))  # RoomCreated only
        assert all(per_command[f"connect-user-{i}"] == 1 for i in range(10))  # ParticipantConnected only
        created = {e.originator_id for e in recorded if isinstance(e, ev.RoomCreated)}
        assert created == {room_sid} | {results_first[f"create-{i}"].room_sid for i in range(10)}
        assert len(log.room(open_engine(store_url), room_sid).participants) == 10  # type: ignore[arg-type]


class TestSQLiteEngines(ConcurrentEnginesContract):
    @pytest.fixture
    def store_url(self, sqlite_store_url: str) -> str:
        return sqlite_store_url


@pytest.mark.postgres
class TestPostgresEngines(ConcurrentEnginesContract):
    @pytest.fixture
    def store_url(self, postgres_store_url: str) -> str:
        return postgres_store_url
