"""The event store port, against each real backend: one abstract contract, one subclass per store.

`StoreContract` says what the engine relies on from a store: the log outlives the process that
wrote it (rooms, participants and command results come back in a new application), notification
ids grow in commit order, the command-log queries (`select_command_results`,
`select_events_for`) answer from the log, and snapshots are written and read back into the same
room. `TestSQLiteStore` and `TestPostgresStore` run it on a SQLite file and on the embedded
PostgreSQL server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eventsourcing.persistence import StoredEvent

from adapters.store.sqlite import CommandLogSQLiteRecorder
from domain import commands as cmd
from domain import events as ev
from domain.engine import Engine
from domain.results import CommandResult, result_decoder

if TYPE_CHECKING:
    from tests.integration.conftest import StoreLog

OpenEngine = Callable[..., Engine]


def create(engine: Engine, command_id: str, name: str | None, **fields: object) -> CommandResult:
    return engine.execute(cmd.CreateRoom(command_id=command_id, unique_name=name, **fields))  # type: ignore[arg-type]


def connect(engine: Engine, command_id: str, room: str, identity: str) -> CommandResult:
    return engine.execute(cmd.ConnectParticipant(command_id=command_id, room=room, identity=identity))


def disconnect(engine: Engine, command_id: str, room_sid: str, participant: str) -> CommandResult:
    return engine.execute(
        cmd.DisconnectParticipant(command_id=command_id, room_sid=room_sid, participant_sid=participant)
    )


class StoreContract:
    """What every event store must do for the engine. Subclasses provide `store_url`."""

    @pytest.fixture
    def store_url(self) -> str:
        raise NotImplementedError

    # --- restart -------------------------------------------------------------------------------

    def test_rooms_and_participants_come_back_in_a_new_engine_on_the_same_store(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        first = open_engine(store_url)
        room = create(first, "create-standup", "standup", max_participants=3)
        alice = connect(first, "connect-alice", "standup", "alice")
        bob = connect(first, "connect-bob", "standup", "bob")
        first.app.close()

        second = open_engine(store_url)
        restored = log.room(second, room.room_sid)  # type: ignore[arg-type]
        assert restored.unique_name == "standup"
        assert restored.in_progress
        assert restored.settings.max_participants == 3
        assert {p.sid: p.identity for p in restored.participants.values()} == {
            alice.participant_sid: "alice",
            bob.participant_sid: "bob",
        }
        # The name is still claimed, the cap counts the restored participants,
        # and a known identity replaces its earlier connection.
        assert create(second, "create-standup-again", "standup").error_code == 53113
        carol = connect(second, "connect-carol", "standup", "carol")
        assert carol.ok and carol.room_sid == room.room_sid
        assert connect(second, "connect-dave", "standup", "dave").error_code == 53105
        alice_again = connect(second, "connect-alice-again", "standup", "alice")
        assert alice_again.ok
        assert alice_again.replaced_participant_sid == alice.participant_sid

    def test_a_command_seen_before_returns_its_first_result_after_a_restart_and_records_nothing(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        first = open_engine(store_url)
        commands: list[cmd.Command] = [
            cmd.CreateRoom(command_id="create", unique_name="retro"),
            cmd.ConnectParticipant(command_id="connect", room="retro", identity="alice"),
            cmd.CreateRoom(command_id="create-taken", unique_name="retro"),  # refused: 53113
            cmd.ConnectParticipant(command_id="connect-bad", room="RM" + "f" * 32, identity="bob"),  # 53106
        ]
        first_results = [first.execute(c) for c in commands]
        assert [r.ok for r in first_results] == [True, True, False, False]
        log_before = [(n.id, n.originator_id, n.originator_version) for n in log.notifications(first)]
        first.app.close()

        second = open_engine(store_url)
        assert [second.execute(c) for c in commands] == first_results
        # Also as one batch, each command twice.
        assert second.execute_batch([*commands, *reversed(commands)]) == [*first_results, *reversed(first_results)]
        log_after = [(n.id, n.originator_id, n.originator_version) for n in log.notifications(second)]
        assert log_after == log_before
        room = log.room(second, first_results[0].room_sid)  # type: ignore[arg-type]
        assert [p.identity for p in room.participants.values()] == ["alice"]

    # --- the log -------------------------------------------------------------------------------

    def test_notification_ids_increase_in_commit_order_across_engines_and_restarts(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        first = open_engine(store_url)
        room = create(first, "create", "lobby").room_sid
        connect(first, "connect-1", "lobby", "alice")
        first.app.close()
        second = open_engine(store_url)
        connect(second, "connect-2", "lobby", "bob")
        third = open_engine(store_url)
        disconnect(third, "leave-1", room, "alice")  # type: ignore[arg-type]
        connect(second, "connect-3", "lobby", "carol")

        entries = log.notifications(third)
        ids = [n.id for n in entries]
        assert ids == sorted(set(ids)), "notification ids must be unique and increasing"
        assert ids[0] >= 1
        assert third.app.recorder.max_notification_id() == ids[-1]
        decoded = [third.app.mapper.to_domain_event(n) for n in entries]
        assert [
            e.command_id for e in decoded if isinstance(e, (ev.ParticipantConnected, ev.ParticipantDisconnected))
        ] == [
            "connect-1",
            "connect-2",
            "leave-1",
            "connect-3",
        ]
        # Each aggregate's versions appear in order, without gaps, in the log.
        versions: dict[str, list[int]] = {}
        for n in entries:
            versions.setdefault(n.originator_id, []).append(n.originator_version)
        for originator_id, seen in versions.items():
            assert seen == list(range(1, len(seen) + 1)), originator_id

    def test_select_command_results_returns_exactly_the_stored_results(
        self, store_url: str, open_engine: OpenEngine
    ) -> None:
        engine = open_engine(store_url)
        # More commands than one SQL parameter chunk (500), refused ones included, in one batch:
        # a group commit of ~1,300 events, the size that hung eventsourcing's pipelined Postgres insert.
        commands = [cmd.CreateRoom(command_id=f"create-{i}", unique_name=f"room-{i % 600}") for i in range(700)]
        results = engine.execute_batch(commands)
        assert sum(r.ok for r in results) == 600
        assert {r.error_code for r in results if not r.ok} == {53113}

        wanted = [c.command_id for c in commands] + ["never-sent", "also-never-sent"]
        stored = engine.command_log.select_command_results(wanted)
        assert set(stored) == {c.command_id for c in commands}
        assert {k: result_decoder.decode(v) for k, v in stored.items()} == {
            c.command_id: r for c, r in zip(commands, results, strict=True)
        }
        assert engine.command_log.select_command_results([]) == {}
        assert engine.command_log.select_command_results(["never-sent"]) == {}

    def test_select_events_for_returns_every_event_of_the_given_aggregates_in_version_order(
        self, store_url: str, open_engine: OpenEngine
    ) -> None:
        engine = open_engine(store_url)
        sids = [create(engine, f"create-{i}", f"room-{i}").room_sid for i in range(3)]
        for i in range(3):
            connect(engine, f"connect-{i}", "room-0", f"user-{i}")
        connect(engine, "connect-x", "room-2", "x")
        unknown = "RM" + "0" * 32
        wanted = [sids[2], "name:room-0", unknown, sids[0]]

        found = engine.command_log.select_events_for(wanted)
        assert all(isinstance(s, StoredEvent) for s in found)
        expected = sorted(
            (s for aggregate_id in wanted for s in engine.app.recorder.select_events(aggregate_id)),
            key=lambda s: (s.originator_id, s.originator_version),
        )
        assert [(s.originator_id, s.originator_version, s.topic, bytes(s.state)) for s in found] == [
            (s.originator_id, s.originator_version, s.topic, bytes(s.state)) for s in expected
        ]
        assert {s.originator_id for s in found} == {sids[0], sids[2], "name:room-0"}
        assert [s.originator_version for s in found if s.originator_id == sids[0]] == [1, 2, 3, 4]
        assert engine.command_log.select_events_for([]) == []

        # Beyond one SQL parameter chunk: the prefetch of a large batch.
        many = [f"name:room-{i}" for i in range(3)] + [f"name:missing-{i}" for i in range(600)]
        assert {s.originator_id for s in engine.command_log.select_events_for(many)} == {
            "name:room-0",
            "name:room-1",
            "name:room-2",
        }

    # --- snapshots -----------------------------------------------------------------------------

    def test_a_long_room_is_snapshotted_and_a_fresh_engine_loads_it_from_the_snapshot(
        self, store_url: str, open_engine: OpenEngine, log: type[StoreLog]
    ) -> None:
        first = open_engine(store_url, snapshot_interval=10)
        room_sid = create(first, "create", "marathon", max_participants=5).room_sid
        assert room_sid is not None
        present: dict[str, str] = {}
        for i in range(40):  # 40 connects and 36 disconnects: 77 room events, at most 5 present
            identity = f"runner-{i}"
            present[identity] = connect(first, f"connect-{i}", "marathon", identity).participant_sid  # type: ignore[assignment]
            if len(present) == 5:
                leaving = sorted(present)[0]
                disconnect(first, f"leave-{i}", room_sid, present.pop(leaving))
        version = log.room(first, room_sid).version
        assert version == 1 + 40 + 36
        first.app.close()

        second = open_engine(store_url, snapshot_interval=10)
        assert second.app.snapshots is not None
        snapshots = list(second.app.snapshots.get(room_sid))
        snapshot_versions = [s.originator_version for s in snapshots]
        assert len(snapshot_versions) == version // 10
        assert snapshot_versions == sorted(snapshot_versions)
        assert snapshot_versions[-1] == 70
        assert all(s.state.version == s.originator_version for s in snapshots)

        loaded = log.room(second, room_sid)
        assert loaded == log.room_from_events_only(second, room_sid)
        assert loaded.version == version
        assert {p.identity: p.sid for p in loaded.participants.values()} == present
        # The fresh engine keeps going from the loaded state: the cap counts everyone present.
        assert connect(second, "connect-last", "marathon", "runner-last").ok
        assert connect(second, "connect-over", "marathon", "runner-over").error_code == 53105
        assert [type(e).__name__ for e in log.events(second)].count("ParticipantConnected") == 41


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store_url(self, sqlite_store_url: str) -> str:
        return sqlite_store_url


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store_url(self, postgres_store_url: str) -> str:
        return postgres_store_url


# --- SQLite's sync mode and checkpoints -------------------------------------------------------


def _pragma(engine: Engine, name: str) -> object:
    with engine.app.recorder.datastore.get_connection(commit=False) as conn:  # type: ignore[attr-defined]
        cursor = conn.cursor()
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


@pytest.mark.parametrize(("query", "mode"), [("", 1), ("?synchronous=full", 2), ("?synchronous=EXTRA", 3)])
def test_the_sqlite_log_commits_in_the_sync_mode_its_url_names_normal_by_default(
    sqlite_store_url: str, open_engine: OpenEngine, query: str, mode: int
) -> None:
    engine = open_engine(sqlite_store_url + query)
    assert create(engine, "create", "standup").ok
    assert _pragma(engine, "synchronous") == mode  # SQLite's numbers: 1 NORMAL, 2 FULL, 3 EXTRA
    assert _pragma(engine, "journal_mode") == "wal"


@pytest.mark.parametrize("query", ["?synchronous=off", "?synchronous=", "?journal=delete"])
def test_a_sqlite_url_with_an_unsafe_or_unknown_option_is_refused_naming_it(
    sqlite_store_url: str, open_engine: OpenEngine, query: str
) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        open_engine(sqlite_store_url + query)


def test_a_checkpoint_moves_every_committed_page_into_the_database_file(
    sqlite_store_url: str, open_engine: OpenEngine
) -> None:
    engine = open_engine(sqlite_store_url)
    for n in range(50):
        assert create(engine, f"create-{n}", f"room-{n}").ok
    recorder = engine.app.recorder
    assert isinstance(recorder, CommandLogSQLiteRecorder)
    wal = Path(sqlite_store_url.removeprefix("sqlite:///") + "-wal")
    assert wal.stat().st_size > 0
    recorder.checkpoint()

    # Nothing is left in the WAL that the database file lacks: a reader that ignores the WAL (a
    # copy of the main file alone) has every room.
    copy = wal.with_name("copy.db")
    copy.write_bytes(wal.with_name(wal.name.removesuffix("-wal")).read_bytes())
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM command_results").fetchone()[0] == 50
