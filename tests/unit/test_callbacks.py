"""Status callbacks (§5): which events a room's StatusCallback receives, with which parameters,
and how they are signed (`X-Twilio-Signature`, checked with the twilio helper library).

The mapping is pure (domain/callbacks.py): these tests fold the log a command produced into
room states, as the webhook follower does, and read the callbacks it would send.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from adapters.webhooks.signature import (
    CONTENT_TYPE,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    USER_AGENT,
    compute_signature,
    signed_request,
)
from domain import room as rooms
from domain.callbacks import Callback, callback_for, timestamp
from domain.commands import (
    CompleteRoom,
    DisconnectParticipant,
    ReportRecordingCompleted,
    ReportRecordingFailed,
    ReportRecordingStarted,
    SetTrackEnabled,
    UnpublishTrack,
)

HOOK = "https://hooks.example.com/room-events"
AUTH_TOKEN = "12345678901234567890123456789012"
ACCOUNT_SID = "AC" + "0" * 32
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def callbacks(world) -> list[Callback]:
    """Every callback the world's log produces, as the follower computes them."""
    states: dict[str, rooms.Room] = {}
    sequences: dict[str, int] = {}
    out = []
    for event in world.log():
        if type(event) not in rooms.ROOM_EVENT_TYPES:
            continue
        sid = event.originator_id
        states[sid] = rooms.apply(states.get(sid), event)
        callback = callback_for(event, states[sid], sequences.get(sid, 0))
        if callback is not None:
            sequences[sid] = sequences.get(sid, 0) + 1
            out.append(callback)
    return out


def sent(world) -> list[dict[str, str]]:
    return [dict(c.params) for c in callbacks(world)]


def events(world) -> list[str]:
    return [p["StatusCallbackEvent"] for p in sent(world)]


# --- which events -------------------------------------------------------------------------------


def test_a_room_without_a_status_callback_sends_nothing(world):
    room = world.room()
    world.join(room, "alice", "mic:audio")
    world.given(CompleteRoom, room_sid=room)

    assert callbacks(world) == []


def test_room_created_carries_the_room_parameters(world, start):
    room = world.room(unique_name="standup", status_callback=HOOK)

    (created,) = callbacks(world)

    assert (created.url, created.method, created.event, created.sequence) == (HOOK, "POST", "room-created", 0)
    assert dict(created.params) == {
        "AccountSid": ACCOUNT_SID,
        "RoomName": "standup",
        "RoomSid": room,
        "RoomStatus": "in-progress",
        "RoomType": "group",
        "StatusCallbackEvent": "room-created",
        "Timestamp": "2025-01-06T09:00:00.000Z",
        "SequenceNumber": "0",
    }


def test_a_room_without_unique_name_is_named_by_its_sid(world):
    room = world.room(status_callback=HOOK)

    assert sent(world)[0]["RoomName"] == room


def test_joining_with_tracks_sends_participant_connected_then_track_added_per_track(world):
    room = world.room(status_callback=HOOK)
    joined = world.join(room, "alice", "mic:audio", "cam:video", "chat:data")

    *_, connected, mic, cam, chat = sent(world)

    assert connected["StatusCallbackEvent"] == "participant-connected"
    assert (connected["ParticipantSid"], connected["ParticipantIdentity"], connected["ParticipantStatus"]) == (
        joined.participant_sid,
        "alice",
        "connected",
    )
    assert [(t["StatusCallbackEvent"], t["TrackName"], t["TrackKind"]) for t in (mic, cam, chat)] == [
        ("track-added", "mic", "audio"),
        ("track-added", "cam", "video"),
        ("track-added", "chat", "data"),
    ]
    assert [t["TrackSid"] for t in (mic, cam, chat)] == list(joined.track_sids)
    assert {t["ParticipantIdentity"] for t in (mic, cam, chat)} == {"alice"}


def test_sequence_numbers_count_a_rooms_callbacks_from_zero(world):
    room = world.room(status_callback=HOOK)
    world.join(room, "alice", "mic:audio")
    world.join(room, "bob")  # subscriptions in between send nothing
    other = world.room(status_callback=HOOK)

    by_room: dict[str, list[str]] = {}
    for params in sent(world):
        by_room.setdefault(params["RoomSid"], []).append(params["SequenceNumber"])

    assert by_room == {room: ["0", "1", "2", "3"], other: ["0"]}


def test_subscriptions_and_rules_send_nothing(world):
    room = world.room(status_callback=HOOK)
    world.join(room, "alice", "mic:audio")
    before = len(callbacks(world))

    world.join(room, "bob")  # bob subscribes to alice's mic

    assert events(world)[before:] == ["participant-connected"]


def test_disabling_and_enabling_a_track_send_track_disabled_and_track_enabled(world):
    room = world.room(status_callback=HOOK)
    joined = world.join(room, "alice", "cam:video")
    cam = joined.track_sids[0]
    world.given(SetTrackEnabled, room_sid=room, participant_sid=joined.participant_sid, track_sid=cam, enabled=False)
    world.given(SetTrackEnabled, room_sid=room, participant_sid=joined.participant_sid, track_sid=cam, enabled=True)

    *_, disabled, enabled = sent(world)

    assert [disabled["StatusCallbackEvent"], enabled["StatusCallbackEvent"]] == ["track-disabled", "track-enabled"]
    assert {(p["TrackSid"], p["TrackKind"], p["TrackName"], p["ParticipantIdentity"]) for p in (disabled, enabled)} == {
        (cam, "video", "cam", "alice")
    }


def test_unpublishing_sends_track_removed(world):
    room = world.room(status_callback=HOOK)
    joined = world.join(room, "alice", "mic:audio")
    world.given(UnpublishTrack, room_sid=room, participant_sid=joined.participant_sid, track_sid=joined.track_sids[0])

    removed = sent(world)[-1]

    assert (removed["StatusCallbackEvent"], removed["TrackSid"], removed["TrackName"], removed["TrackKind"]) == (
        "track-removed",
        joined.track_sids[0],
        "mic",
        "audio",
    )
    assert (removed["ParticipantStatus"], removed["ParticipantIdentity"]) == ("connected", "alice")


def test_leaving_removes_each_track_then_sends_participant_disconnected_with_its_duration(world):
    room = world.room(status_callback=HOOK)
    joined = world.join(room, "alice", "mic:audio", "cam:video")
    world.join(room, "bob")
    world.clock.advance(seconds=75)
    world.given(DisconnectParticipant, room_sid=room, participant_sid=joined.participant_sid)

    *_, mic, cam, left = sent(world)

    assert [(p["StatusCallbackEvent"], p.get("TrackName")) for p in (mic, cam, left)] == [
        ("track-removed", "mic"),
        ("track-removed", "cam"),
        ("participant-disconnected", None),
    ]
    assert (left["ParticipantSid"], left["ParticipantIdentity"], left["ParticipantStatus"]) == (
        joined.participant_sid,
        "alice",
        "disconnected",
    )
    assert left["ParticipantDuration"] == "75"
    assert left["Timestamp"] == "2025-01-06T09:01:15.000Z"
    assert "ParticipantDuration" not in mic


def test_completing_a_room_disconnects_everyone_then_sends_room_ended_with_its_duration(world):
    room = world.room(status_callback=HOOK)
    world.join(room, "alice", "mic:audio")
    world.clock.advance(minutes=2)
    world.given(CompleteRoom, room_sid=room)

    *_, removed, left, ended = sent(world)

    assert [p["StatusCallbackEvent"] for p in (removed, left, ended)] == [
        "track-removed",
        "participant-disconnected",
        "room-ended",
    ]
    assert (ended["RoomStatus"], ended["RoomDuration"]) == ("completed", "120")
    assert "ParticipantSid" not in ended
    assert "RoomDuration" not in left


def test_the_last_participant_leaving_an_ad_hoc_room_ends_it(make_world):
    world = make_world(default_status_callback=HOOK, default_status_callback_method="GET")
    joined = world.join("lobby", "alice")
    world.given(DisconnectParticipant, room_sid=joined.room_sid, participant_sid=joined.participant_sid)

    assert [(p["StatusCallbackEvent"], p["RoomName"]) for p in sent(world)] == [
        ("room-created", "lobby"),
        ("participant-connected", "lobby"),
        ("participant-disconnected", "lobby"),
        ("room-ended", "lobby"),
    ]
    assert {(c.url, c.method) for c in callbacks(world)} == {(HOOK, "GET")}


def test_the_rooms_method_is_carried_to_its_callbacks(world):
    world.room(status_callback=HOOK, status_callback_method="get")

    assert callbacks(world)[0].method == "GET"


def test_each_callback_has_its_own_idempotency_token(world):
    room = world.room(status_callback=HOOK)
    world.join(room, "alice", "mic:audio")

    tokens = [c.token for c in callbacks(world)]

    assert len(set(tokens)) == len(tokens) == 3
    assert tokens == [c.token for c in callbacks(world)]  # the same when computed again


def test_timestamps_are_utc_with_milliseconds(world, start):
    assert timestamp(start + timedelta(microseconds=123_456)) == "2025-01-06T09:00:00.123Z"
    world.room(status_callback=HOOK)
    assert TIMESTAMP.match(sent(world)[0]["Timestamp"])


# --- recordings ---------------------------------------------------------------------------------


@pytest.fixture
def recorded(world):
    """A recording room with alice's mic being recorded: (world, room, recording SID, alice)."""
    room = world.room(status_callback=HOOK, record_participants_on_connect=True)
    joined = world.join(room, "alice", "mic:audio")
    recording = next(e for e in world.log() if type(e).__name__ == "RecordingRequested")
    return world, room, recording, joined


def test_recording_started_names_the_recording_its_track_and_participant(recorded):
    world, room, recording, joined = recorded
    world.given(ReportRecordingStarted, room_sid=room, recording_sid=recording.recording_sid)

    started = sent(world)[-1]

    assert started["StatusCallbackEvent"] == "recording-started"
    assert started["RecordingSid"] == recording.recording_sid
    assert started["RecordingUri"] == f"/v1/Recordings/{recording.recording_sid}"
    assert (started["SourceSid"], started["TrackName"], started["Type"]) == (joined.track_sids[0], "mic", "audio")
    assert (started["Container"], started["Codec"]) == ("mka", "OPUS")
    assert (started["ParticipantSid"], started["ParticipantIdentity"]) == (joined.participant_sid, "alice")
    assert int(started["OffsetFromTwilioVideoEpoch"]) == int(recording.at.timestamp() * 1000)
    assert "MediaUri" not in started


def test_recording_completed_after_the_room_ended_carries_media_duration_and_size(recorded):
    world, room, recording, _ = recorded
    world.given(ReportRecordingStarted, room_sid=room, recording_sid=recording.recording_sid)
    world.given(CompleteRoom, room_sid=room)
    world.given(
        ReportRecordingCompleted,
        room_sid=room,
        recording_sid=recording.recording_sid,
        size=4096,
        duration=42,
        media_location="s3://bucket/RT.mka",
    )

    completed = sent(world)[-1]

    assert completed["StatusCallbackEvent"] == "recording-completed"
    assert completed["RoomStatus"] == "completed"
    assert completed["ParticipantIdentity"] == "alice"  # gone, still named
    assert completed["MediaUri"] == f"/v1/Recordings/{recording.recording_sid}/Media"
    assert (completed["Duration"], completed["Size"]) == ("42", "4096")
    assert completed["MediaExternalLocation"] == "s3://bucket/RT.mka"


def test_recording_failed_names_the_failed_operation(recorded):
    world, room, recording, _ = recorded
    world.given(
        ReportRecordingFailed, room_sid=room, recording_sid=recording.recording_sid, failed_operation="RecordingUpload"
    )

    failed = sent(world)[-1]

    assert (failed["StatusCallbackEvent"], failed["FailedOperation"]) == ("recording-failed", "RecordingUpload")
    assert failed["RecordingSid"] == recording.recording_sid


# --- signature ----------------------------------------------------------------------------------


PARAMS = [("RoomSid", "RM" + "1" * 32), ("StatusCallbackEvent", "room-created"), ("RoomName", "a b&c=d/é")]


def test_the_signature_is_the_one_the_twilio_library_computes():
    assert compute_signature(AUTH_TOKEN, HOOK, PARAMS) == RequestValidator(AUTH_TOKEN).compute_signature(
        HOOK, dict(PARAMS)
    )


def test_a_post_callback_validates_with_the_twilio_library():
    request = signed_request(AUTH_TOKEN, url=HOOK, method="POST", params=PARAMS, token="RM1-1")

    form = dict(parse_qsl(request.body.decode()))
    assert form == dict(PARAMS)
    assert request.url == HOOK
    assert RequestValidator(AUTH_TOKEN).validate(request.url, form, request.headers[SIGNATURE_HEADER])
    assert not RequestValidator("another token").validate(request.url, form, request.headers[SIGNATURE_HEADER])
    assert request.headers["Content-Type"] == CONTENT_TYPE
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers[IDEMPOTENCY_HEADER] == "RM1-1"


def test_a_get_callback_puts_the_params_in_the_query_string_and_validates():
    request = signed_request(AUTH_TOKEN, url=HOOK + "?app=1", method="GET", params=PARAMS, token="RM1-1")

    assert request.method == "GET"
    assert request.body is None
    assert dict(parse_qsl(urlsplit(request.url).query)) == {"app": "1", **dict(PARAMS)}
    assert RequestValidator(AUTH_TOKEN).validate(request.url, {}, request.headers[SIGNATURE_HEADER])


def test_a_tampered_parameter_fails_validation():
    request = signed_request(AUTH_TOKEN, url=HOOK, method="POST", params=PARAMS, token="RM1-1")

    forged = {**dict(PARAMS), "RoomName": "other"}
    assert not RequestValidator(AUTH_TOKEN).validate(request.url, forged, request.headers[SIGNATURE_HEADER])
