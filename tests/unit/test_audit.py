"""The audit (`replay --verify`) finds every kind of inconsistency in a log, and none in a sound one.

A log the engine wrote audits clean and rebuilds the read model the projections give. Each
tampered log breaks one invariant and must be reported with its log position, also when a
later command hides the damage.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain import commands as cmd
from domain import events as ev
from domain.audit import Audit, compare_tables

from .conftest import ACCOUNT_SID, World


def audited(log: list[Any]) -> Audit:
    audit = Audit(ACCOUNT_SID)
    audit.feed(enumerate(log, 1))
    audit.finish()
    return audit


def without(log: list[Any], *dropped: Any) -> list[Any]:
    return [e for e in log if all(e is not d for d in dropped)]


def replaced(log: list[Any], old: Any, **fields: Any) -> list[Any]:
    return [msgspec.structs.replace(e, **fields) if e is old else e for e in log]


def dropped_and_renumbered(log: list[Any], dropped: Any) -> list[Any]:
    """The log without `dropped`, its aggregate's later events renumbered: no sequence gap."""
    return [
        msgspec.structs.replace(e, originator_version=e.originator_version - 1)
        if e.originator_id == dropped.originator_id and e.originator_version > dropped.originator_version
        else e
        for e in without(log, dropped)
    ]


def first(log: list[Any], event_type: type[Any], **fields: Any) -> Any:
    return next(e for e in log if type(e) is event_type and all(getattr(e, k) == v for k, v in fields.items()))


def busy_world() -> World:
    """Rooms of every kind with people, tracks, rule changes, recordings, an anonymized and an ended room."""
    world = World()
    group = world.room(unique_name="busy", recording_rules=[{"type": "include", "kind": "audio"}])
    joined = world.join(group, "alice", "mic:audio", "cam:video")
    alice, cam = joined.participant_sid, joined.track_sids[1]
    bob = world.join(group, "bob", "mic:audio").participant_sid
    world.join(group, "carol", "cam:video", subscribe_rules=[{"type": "include", "kind": "video"}])
    world.given(cmd.SetTrackEnabled, room_sid=group, participant_sid=alice, track_sid=cam, enabled=False)
    world.given(cmd.UpdateSubscribeRules, room_sid=group, participant_sid=bob, rules=[{"type": "exclude", "all": True}])
    world.given(cmd.UpdateRecordingRules, room_sid=group, rules=[{"type": "include", "all": True}])
    world.given(cmd.DisconnectParticipant, room_sid=group, participant_sid=bob)
    world.given(cmd.AnonymizeParticipant, room_sid=group, participant_sid=bob)
    small = world.room(type="go")
    world.join(small, "dave", "mic:audio")
    world.given(cmd.CompleteRoom, room_sid=small)
    world.given(cmd.CompleteRoom, room_sid=group)
    world.room(unique_name="busy")
    return world


def test_a_log_the_engine_wrote_audits_clean_and_rebuilds_the_read_model():
    world = busy_world()
    log = world.log()

    audit = audited(log)

    assert audit.problems == []
    assert audit.events == len(log)
    assert audit.view.tables == world.view().tables
    assert compare_tables(audit.view.tables, world.view().tables) == []


def test_a_gap_in_a_rooms_sequence_is_reported():
    world = World()
    room = world.room()
    world.join(room, "alice", "mic:audio", "cam:video")
    log = world.log()
    mic, cam = log[-2:]
    assert type(mic) is type(cam) is ev.TrackPublished

    problems = audited(without(log, mic)).problems

    assert problems == [f"#{len(log) - 1}: {room} sequence {cam.originator_version}, expected {mic.originator_version}"]


def test_more_connected_participants_than_the_cap_is_reported():
    world = World()
    room = world.room(max_participants=3)
    for name in ("alice", "bob", "carol"):
        world.join(room, name)
    log = world.log()
    created = first(log, ev.RoomCreated)
    third = first(log, ev.ParticipantConnected, identity="carol")

    tampered = replaced(log, created, settings=msgspec.structs.replace(created.settings, max_participants=2))

    assert audited(tampered).problems == [f"#{log.index(third) + 1}: {room} has 3 participants, cap 2"]


def test_an_ended_room_with_a_connected_participant_is_reported():
    world = World()
    room = world.room()
    world.join(room, "alice")
    world.given(cmd.CompleteRoom, room_sid=room)
    log = world.log()
    kicked = first(log, ev.ParticipantDisconnected)
    ended = first(log, ev.RoomEnded)
    tampered = [
        msgspec.structs.replace(e, originator_version=e.originator_version - 1) if e is ended else e
        for e in without(log, kicked)
    ]

    assert audited(tampered).problems == [f"#{log.index(ended)}: {room} ended with 1 connected participants"]


def test_anything_but_recording_reports_and_anonymizing_in_an_ended_room_is_reported():
    world = World()
    room = world.room()
    alice = world.join(room, "alice", "mic:audio").participant_sid
    world.given(cmd.CompleteRoom, room_sid=room)
    log = world.log()
    end = log[-1]
    late = {"originator_id": room, "at": end.at, "command_id": "late"}
    emptied = ev.RoomEmptied(originator_version=end.originator_version + 1, empty_deadline=end.at, **late)
    anonymized = ev.ParticipantAnonymized(
        originator_version=end.originator_version + 2, participant_sid=alice, identity="someone", **late
    )

    problems = audited([*log, emptied, anonymized]).problems

    assert problems == [f"#{len(log) + 1}: RoomEmptied in ended room {room}"]


def test_subscriptions_that_differ_from_the_rules_are_reported_after_the_command_even_when_later_repaired():
    world = World()
    room = world.room()
    world.join(room, "alice", "mic:audio")
    bob = world.join(room, "bob").participant_sid
    world.given(cmd.DisconnectParticipant, room_sid=room, participant_sid=bob)
    log = world.log()
    subscribed = first(log, ev.TrackSubscribed)
    tampered = dropped_and_renumbered(log, subscribed)  # only the subscription is missing
    leave = next(i for i, e in enumerate(tampered, 1) if e.command_id == log[-1].command_id)  # the next command

    assert audited(tampered).problems == [f"#{leave}: {room} subscriptions differ from its rules' evaluation"]


def alice_publishing_bob_joining() -> tuple[str, list[Any]]:
    """A room where alice publishes a microphone and bob joins after: (room, log)."""
    world = World()
    room = world.room()
    world.join(room, "alice", "mic:audio")
    world.join(room, "bob")
    return room, world.log()


def test_subscriptions_left_wrong_at_the_end_of_the_log_are_reported():
    room, log = alice_publishing_bob_joining()
    subscribed = log[-1]
    assert type(subscribed) is ev.TrackSubscribed

    assert audited(log[:-1]).problems == [f"#-1: {room} subscriptions differ from its rules' evaluation"]


def test_a_name_claimed_while_held_and_released_by_another_room_are_reported():
    world = World()
    first_room = world.room(unique_name="standup")
    world.given(cmd.CompleteRoom, room_sid=first_room)
    second_room = world.room(unique_name="standup")
    log = world.log()
    released = first(log, ev.RoomNameReleased)
    claimed = first(log, ev.RoomNameClaimed, room_sid=second_room)
    renumbered = replaced(without(log, released), claimed, originator_version=released.originator_version)

    assert audited(replaced(log, released, room_sid=second_room)).problems == [
        f"#{log.index(released) + 1}: name:standup released by {second_room} but held by {first_room}"
    ]
    assert audited(renumbered).problems == [
        f"#{log.index(claimed)}: name:standup claimed by {second_room} while held by {first_room}"
    ]


def test_rows_missing_from_extra_in_and_different_in_the_stored_read_model_are_each_reported():
    expected = {"rooms": {("RM1",): {"sid": "RM1", "status": "in-progress"}, ("RM2",): {"sid": "RM2", "status": "x"}}}
    stored = {"rooms": {("RM1",): {"sid": "RM1", "status": "completed"}, ("RM3",): {"sid": "RM3", "status": "x"}}}

    assert compare_tables(expected, stored) == [
        "rooms['RM2']: missing from the stored read model",
        "rooms['RM3']: in the stored read model but not in the log",
        "rooms['RM1']: log says / store says {'status': ('in-progress', 'completed')}",
    ]


def test_a_disconnect_of_someone_never_connected_is_reported_and_the_audit_goes_on():
    world = World()
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.given(cmd.DisconnectParticipant, room_sid=room, participant_sid=alice)
    world.join(room, "bob")
    log = world.log()
    connected = first(log, ev.ParticipantConnected, identity="alice")
    renumbered = dropped_and_renumbered(log, connected)
    left = first(renumbered, ev.ParticipantDisconnected)
    position = renumbered.index(left) + 1

    audit = audited(renumbered)

    assert audit.problems[:2] == [
        f"#{position}: {alice} disconnected from {room} without being connected",
        f"#{position}: ParticipantDisconnected does not apply to {room}: KeyError('{alice}')",
    ]
    assert audit.events == len(renumbered)


def test_a_track_published_by_someone_not_in_the_room_is_reported_not_crashed_on():
    room, log = alice_publishing_bob_joining()
    published = first(log, ev.TrackPublished)

    stranger = "PA" + "f" * 32
    position = log.index(published) + 1

    problems = audited(replaced(log, published, participant_sid=stranger)).problems

    assert problems == [
        f"#{position}: {published.track_sid} published in {room} by {stranger}, not connected",
        f"#{position + 1}: {room} subscriptions cannot be evaluated: KeyError('{stranger}')",
        f"#-1: {room} subscriptions cannot be evaluated: KeyError('{stranger}')",
    ]
