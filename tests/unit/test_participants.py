"""Participants: connect, identity rules, capacity, duplicate identity, leave and kick, go caps."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import events as ev
from domain.commands import AnonymizeParticipant, CompleteRoom, ConnectParticipant, DisconnectParticipant, TrackSpec
from domain.rules import Rule

# --- connect --------------------------------------------------------------------------------


def test_connecting_records_the_participant_with_its_deadline_and_include_all_rules(world, start):
    room = world.room()

    outcome = world.when(ConnectParticipant, room=room, identity="alice")

    assert outcome.ok
    assert outcome.names == ["ParticipantConnected"]
    connected = outcome.one(ev.ParticipantConnected)
    assert connected.participant_sid == outcome.result.participant_sid
    assert outcome.result.participant_sid.startswith("PA")
    assert connected.identity == "alice"
    assert connected.deadline == start + timedelta(hours=4)
    assert connected.subscribe_rules == (Rule(type="include", all=True),)
    assert world.connected(room) == {"alice"}


def test_a_participant_can_connect_by_the_rooms_unique_name(world):
    room = world.room(unique_name="standup")

    outcome = world.when(ConnectParticipant, room="standup", identity="alice")

    assert outcome.result.room_sid == room
    assert world.connected(room) == {"alice"}


def test_every_connect_gets_a_new_participant_sid(world):
    room = world.room()
    first = world.join(room, "alice").participant_sid
    world.given(DisconnectParticipant, room_sid=room, participant_sid=first)

    again = world.join(room, "alice").participant_sid

    assert again != first


# --- identity rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "code"),
    [
        ("", 53200),
        ("a" * 129, 53201),
        ("bad\x01identity", 53202),
        ("line\nbreak", 53202),
        ("del\x7f", 53202),
    ],
)
def test_an_invalid_identity_is_refused_with_twilios_code(world, identity, code):
    room = world.room()

    outcome = world.when(ConnectParticipant, room=room, identity=identity)

    assert outcome.code == code
    assert outcome.events == []


def test_an_invalid_identity_does_not_create_an_ad_hoc_room(world):
    outcome = world.when(ConnectParticipant, room="hallway", identity="")

    assert outcome.code == 53200
    assert outcome.events == []


@pytest.mark.parametrize("identity", ["a" * 128, "alice@example.com", "Ålice Ünicode ☕", "a/b?c#d%e"])
def test_identities_up_to_128_printable_characters_are_accepted(world, identity):
    room = world.room()

    assert world.when(ConnectParticipant, room=room, identity=identity).ok


# --- capacity -------------------------------------------------------------------------------


def test_connecting_to_a_full_room_is_refused_with_53105(world):
    room = world.room(max_participants=2)
    world.join(room, "alice")
    world.join(room, "bob")

    outcome = world.when(ConnectParticipant, room=room, identity="carol")

    assert outcome.code == 53105
    assert outcome.events == []
    assert world.connected(room) == {"alice", "bob"}


@pytest.mark.parametrize(("room_type", "cap"), [("group", 50), ("group-small", 4), ("peer-to-peer", 10), ("go", 2)])
def test_each_room_type_admits_up_to_its_cap(world, room_type, cap):
    room = world.room(type=room_type)
    for n in range(cap):
        world.join(room, f"user{n}")

    outcome = world.when(ConnectParticipant, room=room, identity="one-too-many")

    assert outcome.code == 53105
    assert len(world.connected(room)) == cap


def test_a_seat_freed_by_a_leaving_participant_can_be_taken(world):
    room = world.room(max_participants=1)
    alice = world.join(room, "alice").participant_sid
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)

    assert world.when(ConnectParticipant, room=room, identity="bob").ok


# --- duplicate identity -----------------------------------------------------------------------


def test_second_connect_with_same_identity_disconnects_the_first(world):
    room = world.room()
    first = world.join(room, "alice").participant_sid

    outcome = world.when(ConnectParticipant, room=room, identity="alice")

    assert outcome.ok
    assert outcome.names == ["ParticipantDisconnected", "ParticipantConnected"]
    gone = outcome.one(ev.ParticipantDisconnected)
    assert (gone.participant_sid, gone.reason, gone.error_code) == (first, "duplicate-identity", 53205)
    assert outcome.result.replaced_participant_sid == first
    assert outcome.one(ev.ParticipantConnected).participant_sid == outcome.result.participant_sid != first
    assert world.connected(room) == {"alice"}


def test_a_duplicate_identity_is_admitted_even_when_the_room_is_full(world):
    room = world.room(type="go")
    world.join(room, "alice")
    world.join(room, "bob")

    outcome = world.when(ConnectParticipant, room=room, identity="bob")

    assert outcome.ok
    assert outcome.one(ev.ParticipantDisconnected).reason == "duplicate-identity"
    assert world.connected(room) == {"alice", "bob"}


def test_replacing_a_participant_unpublishes_its_tracks_and_publishes_the_newcomers(world):
    room = world.room()
    world.join(room, "alice", "mic:audio")
    world.join(room, "bob")

    outcome = world.when(ConnectParticipant, room=room, identity="alice", tracks=[TrackSpec(name="mic", kind="audio")])

    assert outcome.names == [
        "TrackUnsubscribed",
        "TrackUnpublished",
        "ParticipantDisconnected",
        "ParticipantConnected",
        "TrackPublished",
        "TrackSubscribed",
    ]
    assert world.subscriptions(room) == {"alice": set(), "bob": {"alice/mic"}}


def test_a_replaced_participant_never_empties_the_room(world):
    room = world.room()
    world.join(room, "alice")

    outcome = world.when(ConnectParticipant, room=room, identity="alice")

    assert "RoomEmptied" not in outcome.names


# --- leave and kick -------------------------------------------------------------------------


def test_a_participant_leaving_is_recorded_with_reason_left_and_its_duration(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.join(room, "bob")
    world.clock.advance(seconds=75)

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice)

    gone = outcome.one(ev.ParticipantDisconnected)
    assert (gone.reason, gone.error_code, gone.duration, gone.identity) == ("left", None, 75, "alice")
    assert world.connected(room) == {"bob"}


def test_kicking_a_participant_disconnects_it_with_reason_kicked_and_no_error(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.join(room, "bob")

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice, reason="kicked")

    gone = outcome.one(ev.ParticipantDisconnected)
    assert (gone.participant_sid, gone.reason, gone.error_code) == (alice, "kicked", None)
    assert outcome.result.participant_sid == alice


def test_a_participant_can_be_kicked_by_identity(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid="alice", reason="kicked")

    assert outcome.one(ev.ParticipantDisconnected).participant_sid == alice


def test_a_participant_can_be_kicked_by_room_name(world):
    room = world.room(unique_name="standup")
    world.join(room, "alice")

    assert world.when(DisconnectParticipant, room_sid="standup", participant_sid="alice", reason="kicked").ok


def test_disconnecting_an_unknown_participant_is_refused_with_53204(world):
    room = world.room()
    world.join(room, "alice")

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid="PA" + "9" * 32)

    assert outcome.code == 53204
    assert outcome.events == []


def test_disconnecting_a_participant_twice_is_refused_the_second_time(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.join(room, "bob")
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice, reason="kicked")

    assert outcome.code == 53204
    assert outcome.events == []


def test_nobody_can_be_disconnected_from_a_completed_room(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.given(CompleteRoom, room_sid=room)

    assert world.when(DisconnectParticipant, room_sid=room, participant_sid=alice).code == 53204


# --- anonymize ------------------------------------------------------------------------------


def test_anonymizing_a_participant_replaces_its_identity_by_its_sid(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid

    outcome = world.when(AnonymizeParticipant, room_sid=room, participant_sid=alice)

    assert outcome.one(ev.ParticipantAnonymized).identity == alice
    assert world.connected(room) == {alice}
    assert world.when(AnonymizeParticipant, room_sid=room, participant_sid=alice).events == []


def test_a_participant_can_be_anonymized_after_it_left_even_after_the_room_ended(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.join(room, "bob")
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)
    world.given(CompleteRoom, room_sid=room)

    outcome = world.when(AnonymizeParticipant, room_sid=room, participant_sid=alice)

    assert outcome.one(ev.ParticipantAnonymized).identity == alice
    row = world.view().tables["participants"][(alice,)]
    assert (row["identity"], row["status"]) == (alice, "disconnected")
    assert world.when(AnonymizeParticipant, room_sid=room, participant_sid=alice).events == []


def test_anonymizing_an_unknown_participant_is_refused_with_53204(world):
    room = world.room()

    assert world.when(AnonymizeParticipant, room_sid=room, participant_sid="PA" + "9" * 32).code == 53204


# --- go rooms: the account-wide cap -------------------------------------------------------------


def test_go_participants_beyond_the_account_cap_are_refused_with_53206(make_world):
    world = make_world(max_go_participants=3)
    first, second = world.room(type="go"), world.room(type="go")
    world.join(first, "alice")
    world.join(first, "bob")
    world.join(second, "carol")

    outcome = world.when(ConnectParticipant, room=second, identity="dave")

    assert outcome.code == 53206
    assert outcome.events == []
    assert world.connected(second) == {"carol"}


def test_a_go_participant_leaving_frees_a_seat_under_the_account_cap(make_world):
    world = make_world(max_go_participants=3)
    first, second = world.room(type="go"), world.room(type="go")
    alice = world.join(first, "alice").participant_sid
    world.join(first, "bob")
    world.join(second, "carol")
    world.given(DisconnectParticipant, room_sid=first, participant_sid=alice)

    assert world.when(ConnectParticipant, room=second, identity="dave").ok


def test_a_completed_go_room_frees_its_seats_under_the_account_cap(make_world):
    world = make_world(max_go_participants=2)
    first, second = world.room(type="go"), world.room(type="go")
    world.join(first, "alice")
    world.join(first, "bob")
    world.given(CompleteRoom, room_sid=first)

    assert world.when(ConnectParticipant, room=second, identity="carol").ok


def test_a_duplicate_identity_in_a_go_room_is_admitted_at_the_account_cap(make_world):
    world = make_world(max_go_participants=2)
    room = world.room(type="go")
    world.join(room, "alice")
    world.join(room, "bob")

    assert world.when(ConnectParticipant, room=room, identity="alice").ok


def test_participants_of_other_room_types_do_not_count_against_the_go_cap(make_world):
    world = make_world(max_go_participants=1)
    group, p2p, go = world.room(), world.room(type="peer-to-peer"), world.room(type="go")
    world.join(group, "alice")
    world.join(group, "bob")
    world.join(p2p, "carol")

    assert world.when(ConnectParticipant, room=go, identity="dave").ok
    assert world.when(ConnectParticipant, room=go, identity="erin").code == 53206
