"""Rooms: creation, types and caps, settings validation, unique names, completion, timeouts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import events as ev
from domain.commands import CompleteRoom, ConnectParticipant, CreateRoom, DisconnectParticipant, ExpireDeadlines
from domain.engine import project
from domain.room import earliest_deadline_set

# --- creation and defaults ----------------------------------------------------------------


def test_a_room_created_without_parameters_is_a_group_room_with_twilio_defaults(world, start):
    outcome = world.when(CreateRoom)

    assert outcome.ok
    assert outcome.names == ["RoomCreated"]
    created = outcome.one(ev.RoomCreated)
    assert created.originator_id == outcome.result.room_sid
    assert created.unique_name == outcome.result.room_sid
    s = created.settings
    assert (s.type, s.max_participants, s.max_participant_duration, s.max_concurrent_published_tracks) == (
        "group",
        50,
        14400,
        170,
    )
    assert (s.empty_room_timeout, s.unused_room_timeout, s.status_callback_method, s.media_region) == (
        5,
        5,
        "POST",
        "us1",
    )
    assert s.video_codecs == ("VP8", "H264")
    assert created.recording_rules == ()
    assert created.unused_deadline == start + timedelta(minutes=5)
    assert created.end_deadline == start + timedelta(hours=24)
    assert world.status(created.originator_id) == "in-progress"


def test_a_named_room_claims_its_name(world):
    outcome = world.when(CreateRoom, unique_name="standup")

    assert outcome.names == ["RoomCreated", "RoomNameClaimed"]
    assert outcome.one(ev.RoomCreated).unique_name == "standup"
    assert outcome.one(ev.RoomNameClaimed).originator_id == "name:standup"


@pytest.mark.parametrize(("room_type", "cap"), [("group", 50), ("group-small", 4), ("peer-to-peer", 10), ("go", 2)])
def test_max_participants_defaults_to_the_room_types_cap(world, room_type, cap):
    outcome = world.when(CreateRoom, type=room_type)

    assert outcome.one(ev.RoomCreated).settings.max_participants == cap


@pytest.mark.parametrize(("room_type", "cap"), [("group", 50), ("group-small", 4), ("peer-to-peer", 10), ("go", 2)])
def test_max_participants_is_accepted_from_one_to_the_types_cap(world, room_type, cap):
    assert world.when(CreateRoom, type=room_type, max_participants=1).ok
    assert world.when(CreateRoom, type=room_type, max_participants=cap).ok


@pytest.mark.parametrize(
    ("room_type", "value"),
    [
        ("group", 0),
        ("group", 51),
        ("group", -1),
        ("group-small", 5),
        ("peer-to-peer", 11),
        ("go", 3),
        ("go", 0),
    ],
)
def test_max_participants_outside_one_to_the_types_cap_is_refused_with_53107(world, room_type, value):
    outcome = world.when(CreateRoom, type=room_type, max_participants=value)

    assert outcome.code == 53107
    assert outcome.events == []


def test_only_group_and_group_small_rooms_have_a_published_track_cap(world):
    caps = {
        t: world.when(CreateRoom, type=t).one(ev.RoomCreated).settings.max_concurrent_published_tracks
        for t in ("group", "group-small", "peer-to-peer", "go")
    }
    assert caps == {"group": 170, "group-small": 170, "peer-to-peer": 0, "go": 0}


# --- settings validation --------------------------------------------------------------------

INVALID_SETTINGS = [
    pytest.param({"type": "huge"}, 53108, id="unknown type"),
    pytest.param({"unique_name": "x" * 129}, 53101, id="name longer than 128"),
    pytest.param({"unique_name": ""}, 53102, id="empty name"),
    pytest.param({"unique_name": "a/b"}, 53102, id="slash in name"),
    pytest.param({"unique_name": "a?b"}, 53102, id="question mark in name"),
    pytest.param({"unique_name": "tab\there"}, 53102, id="control char in name"),
    pytest.param({"unique_name": "RM" + "a" * 32}, 53102, id="name that is a room sid"),
    pytest.param({"status_callback": "not a url"}, 53111, id="callback not a url"),
    pytest.param({"status_callback": "ftp://example.com/x"}, 53111, id="callback not http"),
    pytest.param({"status_callback": "https://example.com/" + "a" * 1010}, 53111, id="callback 1024+ chars"),
    pytest.param({"status_callback_method": "PUT"}, 53110, id="callback method PUT"),
    pytest.param({"empty_room_timeout": 0}, 53109, id="empty timeout 0"),
    pytest.param({"empty_room_timeout": 61}, 53109, id="empty timeout 61"),
    pytest.param({"unused_room_timeout": 0}, 53109, id="unused timeout 0"),
    pytest.param({"unused_room_timeout": 61}, 53109, id="unused timeout 61"),
    pytest.param({"max_participant_duration": 599}, 53123, id="participant duration 599"),
    pytest.param({"max_participant_duration": 86401}, 53123, id="participant duration 86401"),
    pytest.param({"type": "group-small", "audio_only": True}, 53124, id="audio only group-small"),
    pytest.param({"type": "peer-to-peer", "audio_only": True}, 53124, id="audio only p2p"),
    pytest.param({"type": "go", "audio_only": True}, 53124, id="audio only go"),
    pytest.param({"type": "peer-to-peer", "video_codecs": ["VP8"]}, 53114, id="codecs on p2p"),
    pytest.param({"type": "go", "video_codecs": ["H264"]}, 53114, id="codecs on go"),
    pytest.param({"type": "peer-to-peer", "media_region": "de1"}, 53114, id="region on p2p"),
    pytest.param({"type": "peer-to-peer", "large_room": True}, 53114, id="large room on p2p"),
    pytest.param({"video_codecs": ["AV1"]}, 53114, id="unknown codec"),
    pytest.param({"video_codecs": ["VP8", "VP8"]}, 53114, id="repeated codec"),
    pytest.param({"media_region": "mars1"}, 53115, id="unknown region"),
    pytest.param({"type": "peer-to-peer", "record_participants_on_connect": True}, 53122, id="record on connect p2p"),
    pytest.param({"type": "go", "record_participants_on_connect": True}, 53122, id="record on connect go"),
    pytest.param(
        {"type": "peer-to-peer", "recording_rules": [{"type": "include", "all": True}]},
        53122,
        id="recording rules on p2p",
    ),
    pytest.param({"recording_rules": [{"type": "include", "kind": "data"}]}, 53120, id="invalid recording rules"),
    pytest.param({"large_room": True}, 53103, id="large room not enabled"),
]


@pytest.mark.parametrize(("fields", "code"), INVALID_SETTINGS)
def test_invalid_room_settings_are_refused_with_twilios_code_and_record_nothing(world, fields, code):
    outcome = world.when(CreateRoom, **fields)

    assert not outcome.ok
    assert outcome.code == code
    assert outcome.result.error_status == 400
    assert outcome.events == []


@pytest.mark.parametrize(
    "fields",
    [
        {"unique_name": "x" * 128},
        {"unique_name": "Daily Standup ☕"},
        {"status_callback": "https://example.com/cb?x=1", "status_callback_method": "get"},
        {"empty_room_timeout": 1, "unused_room_timeout": 60},
        {"empty_room_timeout": 60, "unused_room_timeout": 1},
        {"max_participant_duration": 600},
        {"max_participant_duration": 86400},
        {"audio_only": True},
        {"video_codecs": ["H264"], "media_region": "de1"},
        {"type": "group-small", "record_participants_on_connect": True},
        {"type": "peer-to-peer", "enable_turn": False},
    ],
)
def test_settings_at_the_edges_of_their_ranges_are_accepted(world, fields):
    assert world.when(CreateRoom, **fields).ok


def test_settings_are_stored_as_given(world):
    outcome = world.when(
        CreateRoom,
        status_callback="https://example.com/cb",
        status_callback_method="get",
        empty_room_timeout=7,
        unused_room_timeout=9,
        max_participant_duration=900,
        video_codecs=["H264"],
        media_region="de1",
    )

    s = outcome.one(ev.RoomCreated).settings
    assert (s.status_callback, s.status_callback_method) == ("https://example.com/cb", "GET")
    assert (s.empty_room_timeout, s.unused_room_timeout, s.max_participant_duration) == (7, 9, 900)
    assert (s.video_codecs, s.media_region) == (("H264",), "de1")


# --- unique names ---------------------------------------------------------------------------


def test_a_second_in_progress_room_with_the_same_name_is_refused_with_53113(world):
    world.room(unique_name="standup")

    outcome = world.when(CreateRoom, unique_name="standup")

    assert outcome.code == 53113
    assert outcome.events == []


def test_rooms_without_a_name_never_conflict(world):
    first, second = world.room(), world.room()

    assert first != second


def test_a_completed_room_frees_its_name_for_a_new_room_with_a_new_sid(world):
    old = world.room(unique_name="standup")
    completed = world.when(CompleteRoom, room_sid=old)

    assert completed.one(ev.RoomNameReleased).originator_id == "name:standup"
    outcome = world.when(CreateRoom, unique_name="standup")
    assert outcome.ok
    assert outcome.result.room_sid != old
    assert world.status(old) == "completed"


def test_a_room_ended_by_its_unused_timeout_frees_its_name(world):
    old = world.room(unique_name="standup")
    world.clock.advance(minutes=5)
    world.given(ExpireDeadlines, room_sid=old)

    assert world.when(CreateRoom, unique_name="standup").ok


def test_an_ad_hoc_room_holds_its_name_against_rest_creation(world):
    world.given(ConnectParticipant, room="hallway", identity="alice")

    outcome = world.when(CreateRoom, unique_name="hallway")

    assert outcome.code == 53113
    assert outcome.events == []


def test_names_are_case_sensitive(world):
    world.room(unique_name="standup")

    assert world.when(CreateRoom, unique_name="Standup").ok


# --- completing a room --------------------------------------------------------------------


def test_completing_a_room_disconnects_everyone_with_53118_and_ends_it(world, start):
    room = world.room(unique_name="standup")
    alice = world.join(room, "alice", "mic:audio").participant_sid
    bob = world.join(room, "bob").participant_sid
    world.clock.advance(minutes=3)

    outcome = world.when(CompleteRoom, room_sid=room)

    assert outcome.ok
    assert outcome.result.room_sid == room
    disconnected = outcome.of(ev.ParticipantDisconnected)
    assert {d.participant_sid for d in disconnected} == {alice, bob}
    assert {(d.reason, d.error_code, d.duration) for d in disconnected} == {("room-ended", 53118, 180)}
    assert outcome.one(ev.TrackUnpublished).participant_sid == alice
    ended = outcome.one(ev.RoomEnded)
    assert (ended.reason, ended.duration, ended.status) == ("completed", 180, "completed")
    assert outcome.names[-2:] == ["RoomEnded", "RoomNameReleased"]
    assert world.connected(room) == set()
    assert world.published(room) == set()
    assert world.status(room) == "completed"


def test_a_room_can_be_completed_by_its_unique_name(world):
    room = world.room(unique_name="standup")

    outcome = world.when(CompleteRoom, room_sid="standup")

    assert outcome.result.room_sid == room
    assert outcome.one(ev.RoomEnded).reason == "completed"


def test_completing_a_completed_room_is_refused_with_53112(world):
    room = world.room()
    world.given(CompleteRoom, room_sid=room)

    outcome = world.when(CompleteRoom, room_sid=room)

    assert outcome.code == 53112
    assert outcome.events == []


def test_completing_an_unknown_room_is_refused_with_53106(world):
    outcome = world.when(CompleteRoom, room_sid="RM" + "f" * 32)

    assert outcome.code == 53106
    assert outcome.result.error_status == 404


def test_a_completed_room_cannot_be_found_by_its_name_any_more(world):
    room = world.room(unique_name="standup")
    world.given(CompleteRoom, room_sid=room)

    assert world.when(CompleteRoom, room_sid="standup").code == 53106


# --- timeouts -------------------------------------------------------------------------------


def test_nothing_happens_before_the_unused_room_timeout(world):
    room = world.room()
    world.clock.advance(minutes=4, seconds=59)

    outcome = world.when(ExpireDeadlines, room_sid=room)

    assert outcome.ok
    assert outcome.events == []


def test_a_room_nobody_joins_ends_after_the_default_five_minutes(world):
    room = world.room(unique_name="standup")
    world.clock.advance(minutes=5)

    outcome = world.when(ExpireDeadlines, room_sid=room)

    assert outcome.names == ["RoomEnded", "RoomNameReleased"]
    ended = outcome.one(ev.RoomEnded)
    assert (ended.reason, ended.duration) == ("unused-timeout", 300)


def test_the_unused_room_timeout_can_be_set_per_room(world):
    room = world.room(unused_room_timeout=10)
    world.clock.advance(minutes=9)
    assert world.when(ExpireDeadlines, room_sid=room).events == []

    world.clock.advance(minutes=1)

    assert world.when(ExpireDeadlines, room_sid=room).one(ev.RoomEnded).reason == "unused-timeout"


def test_a_room_someone_joined_is_not_ended_by_the_unused_timeout(world):
    room = world.room()
    world.clock.advance(minutes=1)
    world.join(room, "alice")
    world.clock.advance(minutes=10)

    assert world.when(ExpireDeadlines, room_sid=room).events == []
    assert world.connected(room) == {"alice"}


def test_the_last_participant_leaving_starts_the_empty_room_timeout(world, start):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.clock.advance(minutes=2)

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice)

    assert outcome.names == ["ParticipantDisconnected", "RoomEmptied"]
    assert outcome.one(ev.RoomEmptied).empty_deadline == start + timedelta(minutes=7)
    assert world.status(room) == "in-progress"


def test_an_empty_room_ends_at_its_empty_timeout_and_not_before(world):
    room = world.room(empty_room_timeout=3)
    alice = world.join(room, "alice").participant_sid
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)
    world.clock.advance(minutes=2, seconds=59)
    assert world.when(ExpireDeadlines, room_sid=room).events == []

    world.clock.advance(seconds=1)
    outcome = world.when(ExpireDeadlines, room_sid=room)

    assert outcome.one(ev.RoomEnded).reason == "empty-timeout"
    assert world.status(room) == "completed"


def test_someone_joining_an_empty_room_cancels_its_empty_timeout(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)
    world.clock.advance(minutes=4)
    world.join(room, "bob")
    world.clock.advance(minutes=10)

    assert world.when(ExpireDeadlines, room_sid=room).events == []
    assert world.connected(room) == {"bob"}


def test_a_room_that_still_has_participants_is_not_emptied(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.join(room, "bob")

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice)

    assert outcome.names == ["ParticipantDisconnected"]


def test_a_room_ends_after_24_hours_even_with_participants_in_it(world, start):
    room = world.room(max_participant_duration=86400)
    world.clock.advance(minutes=1)
    alice = world.join(room, "alice").participant_sid
    world.clock.now = start + timedelta(hours=23, minutes=59, seconds=59)
    assert world.when(ExpireDeadlines, room_sid=room).events == []

    world.clock.now = start + timedelta(hours=24)
    outcome = world.when(ExpireDeadlines, room_sid=room)

    gone = outcome.one(ev.ParticipantDisconnected)
    assert (gone.participant_sid, gone.reason, gone.error_code) == (alice, "room-ended", 53118)
    ended = outcome.one(ev.RoomEnded)
    assert (ended.reason, ended.duration) == ("max-duration", 86400)
    assert world.status(room) == "completed"


def test_expiring_deadlines_of_a_completed_room_records_nothing(world):
    room = world.room()
    world.given(CompleteRoom, room_sid=room)
    world.clock.advance(hours=30)

    outcome = world.when(ExpireDeadlines, room_sid=room)

    assert outcome.ok
    assert outcome.events == []


def test_expiring_deadlines_of_an_unknown_room_is_refused_with_53106(world):
    assert world.when(ExpireDeadlines, room_sid="RM" + "e" * 32).code == 53106


# --- participant duration -------------------------------------------------------------------


def test_a_participant_is_disconnected_with_53216_after_the_default_four_hours(world):
    room = world.room()
    alice = world.join(room, "alice").participant_sid
    world.clock.advance(hours=1)
    world.join(room, "bob")
    world.clock.advance(hours=2, minutes=59, seconds=59)
    assert world.when(ExpireDeadlines, room_sid=room).events == []

    world.clock.advance(seconds=1)
    outcome = world.when(ExpireDeadlines, room_sid=room)

    gone = outcome.one(ev.ParticipantDisconnected)
    assert (gone.participant_sid, gone.reason, gone.error_code, gone.duration) == (alice, "max-duration", 53216, 14400)
    assert world.connected(room) == {"bob"}


def test_max_participant_duration_can_be_set_per_room(world):
    room = world.room(max_participant_duration=600)
    world.join(room, "alice")
    world.clock.advance(seconds=600)

    outcome = world.when(ExpireDeadlines, room_sid=room)

    assert outcome.names == ["ParticipantDisconnected", "RoomEmptied"]
    assert outcome.one(ev.ParticipantDisconnected).error_code == 53216


def test_participants_past_their_deadline_leave_together_and_the_room_empties(world):
    room = world.room()
    world.join(room, "alice")
    world.join(room, "bob")
    world.clock.advance(hours=4)

    outcome = world.when(ExpireDeadlines, room_sid=room)

    assert [e.identity for e in outcome.of(ev.ParticipantDisconnected)] == ["alice", "bob"]
    assert outcome.names[-1] == "RoomEmptied"


# --- ad-hoc rooms ---------------------------------------------------------------------------


def test_connecting_to_an_unknown_name_creates_an_ad_hoc_group_room(world, start):
    outcome = world.when(ConnectParticipant, room="hallway", identity="alice")

    assert outcome.ok
    assert outcome.names == ["RoomCreated", "RoomNameClaimed", "ParticipantConnected"]
    created = outcome.one(ev.RoomCreated)
    assert created.originator_id == outcome.result.room_sid
    assert created.unique_name == "hallway"
    assert created.settings.ad_hoc
    assert (created.settings.type, created.settings.empty_room_timeout, created.settings.unused_room_timeout) == (
        "group",
        0,
        0,
    )
    assert created.unused_deadline is None


def test_later_connects_with_the_same_name_join_the_ad_hoc_room(world):
    room = world.given(ConnectParticipant, room="hallway", identity="alice").room_sid

    outcome = world.when(ConnectParticipant, room="hallway", identity="bob")

    assert outcome.result.room_sid == room
    assert outcome.names == ["ParticipantConnected"]
    assert world.connected(room) == {"alice", "bob"}


def test_ad_hoc_rooms_take_the_accounts_defaults(make_world):
    world = make_world(
        default_room_type="group-small",
        default_status_callback="https://example.com/cb",
        default_record_participants_on_connect=True,
    )

    created = world.when(ConnectParticipant, room="hallway", identity="alice").one(ev.RoomCreated)

    assert created.settings.type == "group-small"
    assert created.settings.status_callback == "https://example.com/cb"
    assert created.recording_rules[0].all is True


def test_an_ad_hoc_room_ends_when_its_last_participant_leaves(world):
    room = world.given(ConnectParticipant, room="hallway", identity="alice")

    outcome = world.when(DisconnectParticipant, room_sid=room.room_sid, participant_sid=room.participant_sid)

    assert outcome.names == ["ParticipantDisconnected", "RoomEmptied", "RoomEnded", "RoomNameReleased"]
    assert outcome.one(ev.RoomEnded).reason == "empty-timeout"
    assert world.status(room.room_sid) == "completed"


def test_connecting_after_an_ad_hoc_room_ended_creates_a_new_room(world):
    first = world.given(ConnectParticipant, room="hallway", identity="alice")
    world.given(DisconnectParticipant, room_sid=first.room_sid, participant_sid=first.participant_sid)

    outcome = world.when(ConnectParticipant, room="hallway", identity="alice")

    assert outcome.one(ev.RoomCreated).originator_id != first.room_sid


def test_connecting_by_the_name_of_a_completed_rest_room_creates_a_new_ad_hoc_room(world):
    old = world.room(unique_name="standup")
    world.given(CompleteRoom, room_sid=old)

    outcome = world.when(ConnectParticipant, room="standup", identity="alice")

    created = outcome.one(ev.RoomCreated)
    assert created.originator_id != old
    assert created.settings.ad_hoc


def test_connecting_to_an_unknown_name_is_refused_with_53103_without_client_room_creation(make_world):
    world = make_world(client_room_creation=False)

    outcome = world.when(ConnectParticipant, room="hallway", identity="alice")

    assert outcome.code == 53103
    assert outcome.events == []


def test_rest_created_rooms_can_be_joined_by_name_without_client_room_creation(make_world):
    world = make_world(client_room_creation=False)
    room = world.room(unique_name="standup")

    assert world.when(ConnectParticipant, room="standup", identity="alice").result.room_sid == room


def test_connecting_to_an_unknown_room_sid_is_refused_with_53106(world):
    outcome = world.when(ConnectParticipant, room="RM" + "a" * 32, identity="alice")

    assert outcome.code == 53106
    assert outcome.events == []


def test_connecting_to_a_completed_room_by_sid_is_refused_with_53118(world):
    room = world.room()
    world.given(CompleteRoom, room_sid=room)

    outcome = world.when(ConnectParticipant, room=room, identity="alice")

    assert outcome.code == 53118
    assert outcome.events == []


@pytest.mark.parametrize(("name", "code"), [("x" * 129, 53101), ("a/b", 53102), ("", 53102)])
def test_connecting_to_an_invalid_room_name_is_refused_and_creates_nothing(world, name, code):
    outcome = world.when(ConnectParticipant, room=name, identity="alice")

    assert outcome.code == code
    assert outcome.events == []


# --- the scheduler's view -------------------------------------------------------------------


def replayed(world, room):
    return project(None, [e for e in world.log() if e.originator_id == room])


def test_the_next_deadline_is_the_earliest_thing_that_can_expire(world, start):
    room = world.room(unused_room_timeout=10, empty_room_timeout=3, max_participant_duration=3600)
    assert replayed(world, room).next_deadline() == start + timedelta(minutes=10)

    world.clock.advance(minutes=1)
    alice = world.join(room, "alice").participant_sid
    assert replayed(world, room).next_deadline() == start + timedelta(hours=1, minutes=1)

    world.clock.advance(minutes=1)
    world.given(DisconnectParticipant, room_sid=room, participant_sid=alice)
    assert replayed(world, room).next_deadline() == start + timedelta(minutes=5)

    world.given(CompleteRoom, room_sid=room)
    assert replayed(world, room).next_deadline() is None


def test_the_earliest_deadline_a_batch_sets_is_what_can_wake_the_scheduler(world, start):
    created = world.when(CreateRoom, unused_room_timeout=2, empty_room_timeout=1)
    room = created.result.room_sid
    joined = world.when(ConnectParticipant, room=room, identity="alice")
    world.clock.advance(minutes=1)
    left = world.when(DisconnectParticipant, room_sid=room, participant_sid=joined.result.participant_sid)
    ended = world.when(CompleteRoom, room_sid=room)

    assert earliest_deadline_set(created.events) == start + timedelta(minutes=2)  # unused, before the 24 h end
    assert earliest_deadline_set(joined.events) == start + timedelta(hours=4)
    assert earliest_deadline_set(left.events) == start + timedelta(minutes=2)  # emptied at +1 min, 1 min timeout
    assert earliest_deadline_set([*joined.events, *left.events]) == start + timedelta(minutes=2)
    assert earliest_deadline_set(ended.events) is None
