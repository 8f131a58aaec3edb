"""The engine: idempotent command ids (also across a restart), batches, and what events carry."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from domain import events as ev
from domain.commands import CompleteRoom, ConnectParticipant, CreateRoom, DisconnectParticipant, PublishTrack
from domain.engine import Engine
from domain.ids import CountingSidSource

# --- idempotency ------------------------------------------------------------------------------


def test_a_repeated_command_id_returns_the_first_result_and_records_nothing(world):
    first = world.when(CreateRoom, command_id="create-1", unique_name="standup")

    again = world.when(CreateRoom, command_id="create-1", unique_name="standup")

    assert again.result == first.result
    assert again.events == []
    assert len([e for e in world.log() if isinstance(e, ev.RoomCreated)]) == 1


def test_a_repeated_command_id_with_other_parameters_still_returns_the_first_result(world):
    first = world.when(CreateRoom, command_id="create-1", unique_name="standup")

    again = world.when(CreateRoom, command_id="create-1", unique_name="retro", type="go")

    assert again.result == first.result
    assert again.events == []


def test_a_repeated_connect_does_not_replace_the_participant_it_connected(world):
    room = world.room()
    first = world.when(ConnectParticipant, command_id="join-alice", room=room, identity="alice")

    again = world.when(ConnectParticipant, command_id="join-alice", room=room, identity="alice")

    assert again.result.participant_sid == first.result.participant_sid
    assert again.events == []
    assert world.connected(room) == {"alice"}


def test_a_refused_command_repeated_after_the_obstacle_is_gone_keeps_its_first_refusal(world):
    room = world.room(unique_name="standup")
    refused = world.when(CreateRoom, command_id="create-2", unique_name="standup")
    world.given(CompleteRoom, room_sid=room)

    again = world.when(CreateRoom, command_id="create-2", unique_name="standup")

    assert refused.code == again.code == 53113
    assert again.events == []


def test_a_restarted_engine_over_the_same_store_remembers_command_results(world):
    first = world.when(ConnectParticipant, command_id="join", room="hallway", identity="alice")
    restarted = Engine(world.app, policy=world.policy, sids=CountingSidSource(start=1000), clock=world.clock)

    again = world.execute(
        world.command(ConnectParticipant, command_id="join", room="hallway", identity="alice"), engine=restarted
    )

    assert again.result == first.result
    assert again.events == []


def test_a_restarted_engine_continues_the_rooms_it_did_not_see_being_built(world):
    room = world.room(max_participants=2)
    alice = world.join(room, "alice", "mic:audio").participant_sid
    restarted = Engine(world.app, policy=world.policy, sids=CountingSidSource(start=1000), clock=world.clock)

    full = world.execute(world.command(ConnectParticipant, room=room, identity="bob"), engine=restarted)
    refused = world.execute(world.command(ConnectParticipant, room=room, identity="carol"), engine=restarted)
    left = world.execute(world.command(DisconnectParticipant, room_sid=room, participant_sid=alice), engine=restarted)

    assert full.names == ["ParticipantConnected", "TrackSubscribed"]
    assert refused.code == 53105
    assert left.one(ev.ParticipantDisconnected).participant_sid == alice
    versions = [e.originator_version for e in world.log() if e.originator_id == room]
    assert versions == list(range(1, len(versions) + 1))


# --- batches ----------------------------------------------------------------------------------


def test_a_command_id_repeated_inside_one_batch_runs_once(world):
    create = world.command(CreateRoom, command_id="create-1", unique_name="standup")
    before = world.position()

    results = world.engine.execute_batch([create, create, world.command(CreateRoom, command_id="create-1")])

    assert results[0] == results[1] == results[2]
    assert results[0].ok
    assert [type(e).__name__ for e in world.log(after=before)] == ["RoomCreated", "RoomNameClaimed"]


def test_a_batch_answers_in_order_and_later_commands_see_earlier_ones(world):
    batch = [
        world.command(CreateRoom, unique_name="standup", max_participants=1),
        world.command(ConnectParticipant, room="standup", identity="alice"),
        world.command(ConnectParticipant, room="standup", identity="bob"),
        world.command(CreateRoom, unique_name="standup"),
    ]

    results = world.engine.execute_batch(batch)

    assert [r.ok for r in results] == [True, True, False, False]
    assert [r.error_code for r in results[2:]] == [53105, 53113]
    assert results[1].room_sid == results[0].room_sid
    assert world.connected(results[0].room_sid) == {"alice"}


def test_a_refusal_inside_a_batch_records_nothing_for_that_command_only(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    batch = [
        world.command(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="audio"),
        world.command(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="video"),
        world.command(PublishTrack, room_sid=room, participant_sid=alice, name="cam", kind="video"),
    ]
    before = world.position()

    results = world.engine.execute_batch(batch)

    assert [r.error_code for r in results] == [None, 53304, None]
    recorded = world.log(after=before)
    assert {e.command_id for e in recorded} == {batch[0].command_id, batch[2].command_id}
    assert world.published(room) == {"alice/mic", "alice/cam"}


def test_commands_of_a_batch_are_remembered_individually(world):
    batch = [world.command(CreateRoom, unique_name="a"), world.command(CreateRoom, unique_name="b")]
    results = world.engine.execute_batch(batch)

    again = world.execute(batch[1])

    assert again.result == results[1]
    assert again.events == []


# --- what events carry ------------------------------------------------------------------------


def test_events_carry_gapless_per_aggregate_sequence_numbers_from_one(world):
    room = world.room(unique_name="standup")
    alice = world.join(room, "alice", "mic:audio").participant_sid
    world.join(room, "bob", "cam:video")
    other = world.room()
    world.join(other, "carol")
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)
    world.given(CompleteRoom, room_sid=room)
    world.room(unique_name="standup")

    versions: dict[str, list[int]] = defaultdict(list)
    for event in world.log():
        versions[event.originator_id].append(event.originator_version)

    assert set(versions) >= {room, other, "name:standup"}
    for aggregate, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), aggregate
    assert versions["name:standup"] == [1, 2, 3]


def test_events_carry_the_time_from_the_clock_and_the_command_id(world, start):
    world.clock.advance(minutes=3)
    created = world.when(CreateRoom, command_id="create-at-3", unique_name="standup")
    world.clock.advance(seconds=42)
    joined = world.when(ConnectParticipant, command_id="join-at-3m42", room="standup", identity="alice")

    assert {(e.at, e.command_id) for e in created.events} == {(start + timedelta(minutes=3), "create-at-3")}
    assert {(e.at, e.command_id) for e in joined.events} == {(start + timedelta(minutes=3, seconds=42), "join-at-3m42")}
    assert joined.one(ev.ParticipantConnected).deadline == start + timedelta(hours=4, minutes=3, seconds=42)


def test_go_participants_are_counted_on_the_account_aggregate(world):
    room = world.room(type="go")
    alice = world.join(room, "alice").participant_sid

    left = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice)

    released = left.one(ev.GoParticipantReleased)
    assert released.originator_id == f"account:{world.policy.account_sid}"
    assert released.participant_sid == alice
    account_versions = [e.originator_version for e in world.log() if e.originator_id == released.originator_id]
    assert account_versions == [1, 2]


def test_two_connects_to_a_new_name_in_one_batch_share_one_ad_hoc_room(world):
    batch = [
        world.command(ConnectParticipant, room="hallway", identity="alice"),
        world.command(ConnectParticipant, room="hallway", identity="bob"),
    ]

    first, second = world.engine.execute_batch(batch)

    assert first.ok and second.ok
    assert first.room_sid == second.room_sid
    assert len([e for e in world.log() if isinstance(e, ev.RoomCreated)]) == 1
    assert world.connected(first.room_sid) == {"alice", "bob"}
