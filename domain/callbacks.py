"""Twilio room status callbacks as a pure function of an event and the room after it.

`callback_for(event, room, sequence)` answers the callback Twilio would send for `event` to the
room's `StatusCallback` (reference/twilio-video-api.md §5.1), or None: the room has no callback,
or the event is not one Twilio reports (subscriptions, rules, deadlines). `room` is the state
*after* the event (domain.room.apply), so a track removed by a disconnect still finds its
publisher, and a recording that completes after its participant left finds the identity among
the departed. `sequence` is the room's SequenceNumber: the count of callbacks sent for the room
before this one (0 for room-created). Timestamps come from the event, never from a clock.

This is the one place where events become Twilio's names (`track-added`) and PascalCase params.

    event                      StatusCallbackEvent        extra params
    RoomCreated                room-created               -
    RoomEnded                  room-ended                 RoomDuration
    ParticipantConnected       participant-connected      Participant*
    ParticipantDisconnected    participant-disconnected   Participant*, ParticipantDuration
    TrackPublished             track-added                Participant*, Track*
    TrackUnpublished           track-removed              Participant*, Track*
    TrackEnabled               track-enabled              Participant*, Track*
    TrackDisabled              track-disabled             Participant*, Track*
    RecordingStarted           recording-started          Recording*
    RecordingCompleted         recording-completed        Recording*, MediaUri, Duration, Size
    RecordingFailed            recording-failed           Recording*, FailedOperation
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from domain import events as ev
from domain.room import Room

Params = tuple[tuple[str, str], ...]
"""Form parameters in the order they are sent (signatures sort them; order is cosmetic)."""


class Callback(msgspec.Struct, frozen=True, kw_only=True):
    """One status callback: where it goes, how, and its form parameters."""

    room_sid: str
    version: int
    """The room event's version (`originator_version`): what makes the callback unique."""
    sequence: int
    event: str
    url: str
    method: str
    params: Params

    @property
    def token(self) -> str:
        """The `I-Twilio-Idempotency-Token`: unique per callback, the same on every retry."""
        return f"{self.room_sid}-{self.version}"


CALLBACK_EVENTS: Final[dict[type[ev.Event], str]] = {
    ev.RoomCreated: "room-created",
    ev.RoomEnded: "room-ended",
    ev.ParticipantConnected: "participant-connected",
    ev.ParticipantDisconnected: "participant-disconnected",
    ev.TrackPublished: "track-added",
    ev.TrackUnpublished: "track-removed",
    ev.TrackEnabled: "track-enabled",
    ev.TrackDisabled: "track-disabled",
    ev.RecordingStarted: "recording-started",
    ev.RecordingCompleted: "recording-completed",
    ev.RecordingFailed: "recording-failed",
}


def timestamp(at: datetime) -> str:
    """UTC ISO-8601 with milliseconds, as Twilio sends it: `2026-01-05T09:00:00.123Z`."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def recording_uri(recording_sid: str) -> str:
    return f"/v1/Recordings/{recording_sid}"


def callback_for(event: ev.Event, room: Room, sequence: int) -> Callback | None:
    """The callback for `event` given the room after it, numbered `sequence`; None if none is sent."""
    name = CALLBACK_EVENTS.get(type(event))
    url = room.settings.status_callback
    if name is None or not url:
        return None
    params: list[tuple[str, str]] = [
        ("AccountSid", room.account_sid),
        ("RoomName", room.unique_name),
        ("RoomSid", room.sid),
        ("RoomStatus", _room_status(event, room)),
        ("RoomType", room.settings.type),
        ("StatusCallbackEvent", name),
        ("Timestamp", timestamp(event.at)),
        ("SequenceNumber", str(sequence)),
    ]
    params.extend(_DETAILS[type(event)](event, room))
    return Callback(
        room_sid=room.sid,
        version=event.originator_version,
        sequence=sequence,
        event=name,
        url=url,
        method=room.settings.status_callback_method.upper(),
        params=tuple(params),
    )


def _room_status(event: ev.Event, room: Room) -> str:
    if isinstance(event, ev.RoomEnded):
        return event.status
    return "in-progress" if room.in_progress else "completed"


def _identity(room: Room, participant_sid: str) -> str:
    participant = room.participants.get(participant_sid)
    if participant is not None:
        return participant.identity
    return room.departed.get(participant_sid, participant_sid)


def _participant(room: Room, participant_sid: str, identity: str | None = None) -> list[tuple[str, str]]:
    return [
        ("ParticipantSid", participant_sid),
        ("ParticipantIdentity", identity if identity is not None else _identity(room, participant_sid)),
        ("ParticipantStatus", "connected" if participant_sid in room.participants else "disconnected"),
    ]


def _track(track_sid: str, kind: str, name: str) -> list[tuple[str, str]]:
    return [("TrackSid", track_sid), ("TrackKind", kind), ("TrackName", name)]


def _none(_: Any, __: Room) -> list[tuple[str, str]]:
    return []


def _room_ended(e: ev.RoomEnded, _: Room) -> list[tuple[str, str]]:
    return [("RoomDuration", str(e.duration))]


def _connected(e: ev.ParticipantConnected, room: Room) -> list[tuple[str, str]]:
    return _participant(room, e.participant_sid, e.identity)


def _disconnected(e: ev.ParticipantDisconnected, room: Room) -> list[tuple[str, str]]:
    return [*_participant(room, e.participant_sid, e.identity), ("ParticipantDuration", str(e.duration))]


def _published(e: ev.TrackPublished, room: Room) -> list[tuple[str, str]]:
    return [*_participant(room, e.participant_sid), *_track(e.track_sid, e.kind, e.name)]


def _unpublished(e: ev.TrackUnpublished, room: Room) -> list[tuple[str, str]]:
    return [*_participant(room, e.participant_sid), *_track(e.track_sid, e.kind, e.name)]


def _toggled(e: ev.TrackEnabled | ev.TrackDisabled, room: Room) -> list[tuple[str, str]]:
    track = room.tracks[e.track_sid]
    return [*_participant(room, e.participant_sid), *_track(track.sid, track.kind, track.name)]


Recorded = ev.RecordingStarted | ev.RecordingCompleted | ev.RecordingFailed


def _recording(e: Recorded, room: Room) -> list[tuple[str, str]]:
    recording = room.recordings[e.recording_sid]
    params = [
        ("RecordingSid", recording.sid),
        ("SourceSid", recording.track_sid),
        ("RecordingUri", recording_uri(recording.sid)),
        ("ParticipantSid", recording.participant_sid),
        ("ParticipantIdentity", _identity(room, recording.participant_sid)),
        ("TrackName", recording.track_name),
        ("Type", recording.kind),
        ("Container", recording.container_format),
        ("Codec", recording.codec),
        ("OffsetFromTwilioVideoEpoch", str(int(recording.requested_at.timestamp() * 1000))),
    ]
    if isinstance(e, ev.RecordingCompleted):
        params += [
            ("MediaUri", f"{recording_uri(recording.sid)}/Media"),
            ("Duration", str(e.duration)),
            ("Size", str(e.size)),
        ]
        if e.media_location:
            params.append(("MediaExternalLocation", e.media_location))
    elif isinstance(e, ev.RecordingFailed):
        params.append(("FailedOperation", e.failed_operation))
    return params


_DETAILS: Final[dict[type[ev.Event], Callable[[Any, Room], list[tuple[str, str]]]]] = {
    ev.RoomCreated: _none,
    ev.RoomEnded: _room_ended,
    ev.ParticipantConnected: _connected,
    ev.ParticipantDisconnected: _disconnected,
    ev.TrackPublished: _published,
    ev.TrackUnpublished: _unpublished,
    ev.TrackEnabled: _toggled,
    ev.TrackDisabled: _toggled,
    ev.RecordingStarted: _recording,
    ev.RecordingCompleted: _recording,
    ev.RecordingFailed: _recording,
}
