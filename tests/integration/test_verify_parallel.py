"""`replay --verify` split across worker processes finds the same as one process.

The log is partitioned by room (adapters.partition); each worker rebuilds and checks its
rooms and compares its share of the stored read model. A problem in any partition must reach
the report, and a clean store must verify clean, whatever the number of workers.
"""

from __future__ import annotations

import sqlite3

import pytest

from adapters.bootstrap import open_application, open_read_model, random_sid
from adapters.clock import SystemClock
from adapters.partition import partition_of
from adapters.replay import verify_store
from adapters.store.read_model import Follower
from domain import commands as cmd
from domain.engine import Engine
from domain.settings import AccountPolicy

ACCOUNT = "AC" + "0" * 32


@pytest.fixture
def store(tmp_path):
    """A store with 24 rooms (both partitions), people coming and going, and its read model."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    app = open_application(url)
    engine = Engine(app, policy=AccountPolicy(account_sid=ACCOUNT), sids=random_sid, clock=SystemClock().now)
    rooms = []
    for i in range(24):
        room = engine.execute(cmd.CreateRoom(command_id=f"c{i}", unique_name=f"room-{i}")).room_sid
        assert room is not None
        rooms.append(room)
        people = [
            engine.execute(
                cmd.ConnectParticipant(
                    command_id=f"c{i}-{p}",
                    room=room,
                    identity=f"user{p}",
                    tracks=[cmd.TrackSpec(name="mic", kind="audio"), cmd.TrackSpec(name="cam", kind="video")],
                )
            ).participant_sid
            for p in range(3)
        ]
        engine.execute(cmd.DisconnectParticipant(command_id=f"c{i}-leave", room_sid=room, participant_sid=people[0]))
        if i % 3 == 0:
            engine.execute(cmd.CompleteRoom(command_id=f"c{i}-end", room_sid=room))
    read_model = open_read_model(url)
    Follower(app, read_model, ACCOUNT).catch_up()
    read_model.db.close()
    app.close()
    return url, tmp_path / "events-readmodel.db", rooms


def test_rooms_fall_in_both_partitions(store):
    _, _, rooms = store
    assert {partition_of(room, 2) for room in rooms} == {0, 1}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_consistent_store_verifies_clean_with_any_number_of_workers(store, workers):
    url, _, _ = store

    report = verify_store(url, ACCOUNT, workers=workers)

    assert report.consistent, (report.problems, report.differences)
    assert report.events == open_application(url).recorder.max_notification_id()


@pytest.mark.parametrize("partition", [0, 1])
def test_a_tampered_row_in_either_partition_is_reported_by_the_parallel_verify(store, partition):
    url, read_model_file, rooms = store
    room = next(r for r in rooms if partition_of(r, 2) == partition)
    with sqlite3.connect(read_model_file) as conn:
        changed = conn.execute(
            "UPDATE rm_participants SET status = 'connected' WHERE room_sid = ? AND status = 'disconnected'",
            (room,),
        ).rowcount
    assert changed >= 1

    report = verify_store(url, ACCOUNT, workers=2)

    assert not report.consistent
    assert [line for line in report.differences if line.startswith("participants[")], report.differences
