"""Recording rules (§4.4) and the recording lifecycle reported by the media layer."""

from __future__ import annotations

import pytest

from domain import events as ev
from domain.commands import (
    AnonymizeParticipant,
    CompleteRoom,
    ConnectParticipant,
    CreateRoom,
    DeleteRecording,
    DisconnectParticipant,
    PublishTrack,
    ReportRecordingCompleted,
    ReportRecordingFailed,
    ReportRecordingStarted,
    TrackSpec,
    UnpublishTrack,
    UpdateRecordingRules,
)
from domain.rules import Rule

INCLUDE_ALL = [{"type": "include", "all": True}]
EXCLUDE_ALL = [{"type": "exclude", "all": True}]
AV_AND_DATA = [
    TrackSpec(name="mic", kind="audio"),
    TrackSpec(name="cam", kind="video"),
    TrackSpec(name="chat", kind="data"),
]


def recorded_tracks(outcome):
    return {e.track_name for e in outcome.of(ev.RecordingRequested)}


# --- which rooms record -----------------------------------------------------------------------


def test_a_room_records_nothing_by_default(world):
    room = world.room()

    outcome = world.when(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA)

    assert outcome.of(ev.RecordingRequested) == []


def test_record_participants_on_connect_seeds_include_all_and_records_audio_and_video(world):
    created = world.when(CreateRoom, record_participants_on_connect=True)
    room = created.result.room_sid
    assert created.one(ev.RoomCreated).recording_rules == (Rule(type="include", all=True),)

    outcome = world.when(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA)

    requested = {e.track_name: e for e in outcome.of(ev.RecordingRequested)}
    assert set(requested) == {"mic", "cam"}
    mic, cam = requested["mic"], requested["cam"]
    assert (mic.kind, mic.codec, mic.container_format) == ("audio", "OPUS", "mka")
    assert (cam.kind, cam.codec, cam.container_format) == ("video", "VP8", "mkv")
    assert mic.participant_sid == outcome.result.participant_sid
    assert mic.track_sid == outcome.result.track_sids[0]
    assert mic.recording_sid.startswith("RT")
    assert mic.recording_sid != cam.recording_sid


def test_video_is_recorded_with_the_rooms_first_video_codec(world):
    room = world.room(record_participants_on_connect=True, video_codecs=["H264"])

    outcome = world.when(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA[1:2])

    assert outcome.one(ev.RecordingRequested).codec == "H264"


def test_recording_rules_given_at_creation_win_over_record_participants_on_connect(world):
    room = world.room(record_participants_on_connect=True, recording_rules=[{"type": "include", "kind": "audio"}])

    outcome = world.when(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA)

    assert recorded_tracks(outcome) == {"mic"}


@pytest.mark.parametrize("room_type", ["peer-to-peer", "go"])
def test_recording_rules_outside_group_rooms_are_refused_with_53122(world, room_type):
    room = world.room(type=room_type)

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules=INCLUDE_ALL)

    assert outcome.code == 53122
    assert outcome.events == []


def test_group_small_rooms_can_record(world):
    room = world.room(type="group-small")

    assert world.when(UpdateRecordingRules, room_sid=room, rules=INCLUDE_ALL).ok


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param([], id="empty array"),
        pytest.param([{"type": "include", "kind": "data"}], id="kind data"),
        pytest.param([{"type": "include", "all": False}], id="all false"),
        pytest.param([{"type": "include", "all": True, "kind": "audio"}], id="all combined"),
        pytest.param([{"kind": "audio"}], id="missing type"),
        pytest.param(
            [{"type": "include", "kind": "audio", "priority": "high"}], id="priority is not a recording filter"
        ),
        pytest.param(INCLUDE_ALL * 21, id="more than 20 rules"),
        pytest.param("all", id="not an array"),
    ],
)
def test_invalid_recording_rules_are_refused_with_53120(world, rules):
    room = world.room()

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules=rules)

    assert outcome.code == 53120
    assert outcome.result.error_status == 400
    assert outcome.events == []


def test_recording_rules_in_a_completed_room_are_refused_with_53118(world):
    room = world.room()
    world.given(CompleteRoom, room_sid=room)

    assert world.when(UpdateRecordingRules, room_sid=room, rules=INCLUDE_ALL).code == 53118


# --- rules select tracks ----------------------------------------------------------------------


def test_new_rules_request_a_recording_of_every_selected_audio_and_video_track(world):
    room = world.room()
    world.join(room, "alice", "mic:audio", "cam:video", "chat:data")
    world.join(room, "bob", "mic:audio")

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules={"rules": [{"type": "include", "kind": "audio"}]})

    assert outcome.one(ev.RecordingRulesUpdated).rules == (Rule(type="include", kind="audio"),)
    assert [e.track_name for e in outcome.of(ev.RecordingRequested)] == ["mic", "mic"]
    assert len({e.participant_sid for e in outcome.of(ev.RecordingRequested)}) == 2


def test_recording_rules_follow_the_same_algebra_as_subscribe_rules(world):
    room = world.room()
    world.join(room, "alice", "mic:audio", "cam:video")
    world.join(room, "bob", "mic:audio", "cam:video")

    outcome = world.when(
        UpdateRecordingRules,
        room_sid=room,
        rules=[
            {"type": "include", "all": True},
            {"type": "exclude", "publisher": "bob"},
            {"type": "include", "publisher": "bob", "kind": "video"},
        ],
    )

    by_publisher = {(e.participant_sid, e.track_name) for e in outcome.of(ev.RecordingRequested)}
    assert len(by_publisher) == 3
    assert {name for _, name in by_publisher} == {"mic", "cam"}


def test_a_track_published_later_is_recorded_when_the_rules_select_it(world):
    room = world.room(recording_rules=[{"type": "include", "kind": "video"}])
    alice = world.join(room, "alice").participant_sid

    audio = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="mic", kind="audio")
    video = world.when(PublishTrack, room_sid=room, participant_sid=alice, name="cam", kind="video")

    assert audio.of(ev.RecordingRequested) == []
    assert video.one(ev.RecordingRequested).track_sid == video.result.track_sid


def test_excluding_a_recorded_track_requests_its_recording_to_stop(world):
    room = world.room(record_participants_on_connect=True)
    joined = world.when(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA)
    recordings = {e.track_name: e.recording_sid for e in joined.of(ev.RecordingRequested)}

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules=[{"type": "include", "kind": "audio"}])

    assert outcome.names == ["RecordingRulesUpdated", "RecordingStopRequested"]
    assert outcome.one(ev.RecordingStopRequested).recording_sid == recordings["cam"]


def test_exclude_all_stops_every_recording(world):
    room = world.room(record_participants_on_connect=True)
    world.join(room, "alice", "mic:audio", "cam:video")

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules=EXCLUDE_ALL)

    assert len(outcome.of(ev.RecordingStopRequested)) == 2


def test_a_track_still_selected_is_not_recorded_twice(world):
    room = world.room(record_participants_on_connect=True)
    world.join(room, "alice", "mic:audio")

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules=[{"type": "include", "kind": "audio"}])

    assert outcome.names == ["RecordingRulesUpdated"]


def test_including_a_track_again_creates_a_new_recording_sid(world):
    room = world.room(record_participants_on_connect=True)
    first = world.when(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA[:1]).one(
        ev.RecordingRequested
    )
    world.given(UpdateRecordingRules, room_sid=room, rules=EXCLUDE_ALL)

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules=INCLUDE_ALL)

    again = outcome.one(ev.RecordingRequested)
    assert again.track_sid == first.track_sid
    assert again.recording_sid != first.recording_sid


def test_unpublishing_a_recorded_track_stops_its_recording_before_the_track_goes(world):
    room = world.room(record_participants_on_connect=True)
    joined = world.given(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA[:1])

    outcome = world.when(
        UnpublishTrack, room_sid=room, participant_sid=joined.participant_sid, track_sid=joined.track_sids[0]
    )

    assert outcome.names == ["RecordingStopRequested", "TrackUnpublished"]


def test_a_recorded_participant_leaving_stops_its_recordings(world):
    room = world.room(record_participants_on_connect=True)
    alice = world.join(room, "alice", "mic:audio", "cam:video").participant_sid
    world.join(room, "bob", "mic:audio")

    outcome = world.when(DisconnectParticipant, room_sid=room, participant_sid=alice)

    assert len(outcome.of(ev.RecordingStopRequested)) == 2


def test_completing_a_room_stops_every_recording(world):
    room = world.room(record_participants_on_connect=True)
    world.join(room, "alice", "mic:audio", "cam:video")
    world.join(room, "bob", "mic:audio")

    outcome = world.when(CompleteRoom, room_sid=room)

    assert len(outcome.of(ev.RecordingStopRequested)) == 3
    assert outcome.of(ev.RecordingRequested) == []


# --- the recording lifecycle --------------------------------------------------------------------


@pytest.fixture
def recording(world):
    """A room recording alice's microphone: (world, room sid, recording sid)."""
    room = world.room(record_participants_on_connect=True)
    joined = world.when(ConnectParticipant, room=room, identity="alice", tracks=AV_AND_DATA[:1])
    return world, room, joined.one(ev.RecordingRequested).recording_sid


def test_a_recording_goes_from_requested_to_started_to_completed(recording):
    world, room, sid = recording

    started = world.when(ReportRecordingStarted, room_sid=room, recording_sid=sid, codec="opus")
    completed = world.when(
        ReportRecordingCompleted,
        room_sid=room,
        recording_sid=sid,
        size=1024,
        duration=12,
        media_location="file:///rec/a.mka",
    )

    assert started.names == ["RecordingStarted"]
    assert started.result.recording_sid == sid
    done = completed.one(ev.RecordingCompleted)
    assert (done.size, done.duration, done.media_location) == (1024, 12, "file:///rec/a.mka")
    row = world.view().tables["recordings"][(sid,)]
    assert (row["status"], row["size"], row["duration"]) == ("completed", 1024, 12)


def test_a_stopped_recording_completes_after_the_room_has_ended(recording):
    world, room, sid = recording
    world.given(ReportRecordingStarted, room_sid=room, recording_sid=sid)
    world.given(CompleteRoom, room_sid=room)

    outcome = world.when(ReportRecordingCompleted, room_sid=room, recording_sid=sid, size=1, duration=1)

    assert outcome.names == ["RecordingCompleted"]


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([], id="from requested"),
        pytest.param(["start"], id="from started"),
        pytest.param(["start", "stop"], id="from stopping"),
    ],
)
def test_a_recording_can_fail_before_it_is_done(recording, steps):
    world, room, sid = recording
    for step in steps:
        if step == "start":
            world.given(ReportRecordingStarted, room_sid=room, recording_sid=sid)
        else:
            world.given(UpdateRecordingRules, room_sid=room, rules=EXCLUDE_ALL)

    outcome = world.when(ReportRecordingFailed, room_sid=room, recording_sid=sid, failed_operation="RecordingUpload")

    assert outcome.one(ev.RecordingFailed).failed_operation == "RecordingUpload"
    assert world.view().tables["recordings"][(sid,)]["status"] == "failed"


@pytest.mark.parametrize("finish", [ReportRecordingCompleted, ReportRecordingFailed])
def test_a_finished_recording_can_be_deleted_once(recording, finish):
    world, room, sid = recording
    world.given(ReportRecordingStarted, room_sid=room, recording_sid=sid)
    world.given(finish, room_sid=room, recording_sid=sid)

    deleted = world.when(DeleteRecording, room_sid=room, recording_sid=sid)
    again = world.when(DeleteRecording, room_sid=room, recording_sid=sid)

    assert deleted.names == ["RecordingDeleted"]
    assert again.code == 53000
    assert again.events == []


@pytest.mark.parametrize(
    ("steps", "report"),
    [
        pytest.param([ReportRecordingStarted], ReportRecordingStarted, id="start twice"),
        pytest.param([], ReportRecordingCompleted, id="complete before start"),
        pytest.param([], DeleteRecording, id="delete while requested"),
        pytest.param([ReportRecordingStarted], DeleteRecording, id="delete while started"),
        pytest.param(
            [ReportRecordingStarted, ReportRecordingCompleted], ReportRecordingFailed, id="fail after completing"
        ),
        pytest.param(
            [ReportRecordingStarted, ReportRecordingCompleted], ReportRecordingStarted, id="restart a completed one"
        ),
        pytest.param([ReportRecordingFailed], ReportRecordingCompleted, id="complete after failing"),
        pytest.param([ReportRecordingFailed, DeleteRecording], ReportRecordingStarted, id="start a deleted one"),
    ],
)
def test_reports_the_recording_state_machine_does_not_allow_are_refused(recording, steps, report):
    world, room, sid = recording
    for step in steps:
        world.given(step, room_sid=room, recording_sid=sid)

    outcome = world.when(report, room_sid=room, recording_sid=sid)

    assert outcome.code == 53000
    assert outcome.events == []


def test_a_report_about_an_unknown_recording_is_refused_as_not_found(recording):
    world, room, _ = recording

    outcome = world.when(ReportRecordingStarted, room_sid=room, recording_sid="RT" + "0" * 32)

    assert outcome.code == 20404
    assert outcome.events == []


def test_a_failed_recording_is_not_requested_again_by_an_unrelated_change(recording):
    world, room, sid = recording
    world.given(ReportRecordingFailed, room_sid=room, recording_sid=sid, failed_operation="RecordingStart")

    outcome = world.when(ConnectParticipant, room=room, identity="bob", tracks=AV_AND_DATA[:1])

    requested = outcome.of(ev.RecordingRequested)
    assert [e.participant_sid for e in requested] == [outcome.result.participant_sid]


def test_new_recording_rules_request_a_failed_track_again(recording):
    world, room, sid = recording
    world.given(ReportRecordingFailed, room_sid=room, recording_sid=sid, failed_operation="RecordingStart")

    outcome = world.when(UpdateRecordingRules, room_sid=room, rules=INCLUDE_ALL)

    assert outcome.one(ev.RecordingRequested).recording_sid != sid


def test_anonymizing_a_participant_re_evaluates_rules_that_named_it(world):
    room = world.room(recording_rules=[{"type": "include", "publisher": "alice"}])
    alice = world.join(room, "alice", "mic:audio").participant_sid

    outcome = world.when(AnonymizeParticipant, room_sid=room, participant_sid=alice)

    assert outcome.names == ["ParticipantAnonymized", "RecordingStopRequested"]
