"""Events: what happened, in the past tense. Stored in the log and never changed.

Every event carries the aggregate it belongs to (`originator_id`: the room SID, `name:<unique
name>` or `account:<account sid>`), its per-aggregate sequence number (`originator_version`,
starting at 1), the time from the engine's injected clock (`at`) and the `command_id` that
caused it. Bodies hold facts only: applying an event assigns data and nothing else.

Evolution: a new field gets a default; a stored field is never renamed or retyped; a breaking
change is a new event type. docs/events.md describes every event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

from domain.rules import Rule
from domain.settings import RoomSettings

DisconnectReason = Literal["left", "kicked", "duplicate-identity", "max-duration", "room-ended"]
EndReason = Literal["completed", "empty-timeout", "unused-timeout", "max-duration"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="event"):
    originator_id: str
    originator_version: int
    at: datetime
    command_id: str


# --- room lifecycle -------------------------------------------------------------------------


class RoomCreated(Event, tag="room_created", frozen=True):
    account_sid: str
    unique_name: str
    settings: RoomSettings
    end_deadline: datetime
    recording_rules: tuple[Rule, ...] = ()
    unused_deadline: datetime | None = None


class RoomEmptied(Event, tag="room_emptied", frozen=True):
    """The last connected participant left; the room ends at `empty_deadline` unless someone joins."""

    empty_deadline: datetime


class RoomEnded(Event, tag="room_ended", frozen=True):
    reason: EndReason
    duration: int
    status: Literal["completed", "failed"] = "completed"


# --- participants ---------------------------------------------------------------------------


class ParticipantConnected(Event, tag="participant_connected", frozen=True):
    participant_sid: str
    identity: str
    deadline: datetime
    subscribe_rules: tuple[Rule, ...]


class ParticipantDisconnected(Event, tag="participant_disconnected", frozen=True):
    participant_sid: str
    identity: str
    reason: DisconnectReason
    duration: int
    error_code: int | None = None


class ParticipantAnonymized(Event, tag="participant_anonymized", frozen=True):
    participant_sid: str
    identity: str


# --- tracks and subscriptions ---------------------------------------------------------------


class TrackPublished(Event, tag="track_published", frozen=True):
    participant_sid: str
    track_sid: str
    name: str
    kind: Literal["audio", "video", "data"]
    enabled: bool = True
    priority: str = "standard"


class TrackEnabled(Event, tag="track_enabled", frozen=True):
    participant_sid: str
    track_sid: str


class TrackDisabled(Event, tag="track_disabled", frozen=True):
    participant_sid: str
    track_sid: str


class TrackUnpublished(Event, tag="track_unpublished", frozen=True):
    participant_sid: str
    track_sid: str
    name: str
    kind: str


class TrackSubscribed(Event, tag="track_subscribed", frozen=True):
    participant_sid: str
    """The subscriber."""
    publisher_sid: str
    track_sid: str
    name: str
    kind: str
    enabled: bool


class TrackUnsubscribed(Event, tag="track_unsubscribed", frozen=True):
    participant_sid: str
    publisher_sid: str
    track_sid: str


class SubscribeRulesUpdated(Event, tag="subscribe_rules_updated", frozen=True):
    participant_sid: str
    rules: tuple[Rule, ...]


# --- recording ------------------------------------------------------------------------------


class RecordingRulesUpdated(Event, tag="recording_rules_updated", frozen=True):
    rules: tuple[Rule, ...]


class RecordingRequested(Event, tag="recording_requested", frozen=True):
    """The rules select a track: the media layer should start recording it."""

    recording_sid: str
    track_sid: str
    participant_sid: str
    kind: str
    track_name: str
    codec: str
    container_format: str


class RecordingStarted(Event, tag="recording_started", frozen=True):
    recording_sid: str


class RecordingStopRequested(Event, tag="recording_stop_requested", frozen=True):
    """The track is no longer selected (rules, unpublish, leave or room end): finish the file."""

    recording_sid: str


class RecordingCompleted(Event, tag="recording_completed", frozen=True):
    recording_sid: str
    size: int
    duration: int
    media_location: str | None = None


class RecordingFailed(Event, tag="recording_failed", frozen=True):
    recording_sid: str
    failed_operation: str


class RecordingDeleted(Event, tag="recording_deleted", frozen=True):
    recording_sid: str


# --- room-name index and account ------------------------------------------------------------


class RoomNameClaimed(Event, tag="room_name_claimed", frozen=True):
    room_sid: str


class RoomNameReleased(Event, tag="room_name_released", frozen=True):
    room_sid: str


class GoParticipantAdmitted(Event, tag="go_participant_admitted", frozen=True):
    room_sid: str
    participant_sid: str


class GoParticipantReleased(Event, tag="go_participant_released", frozen=True):
    room_sid: str
    participant_sid: str


RoomEvent = (
    RoomCreated
    | RoomEmptied
    | RoomEnded
    | ParticipantConnected
    | ParticipantDisconnected
    | ParticipantAnonymized
    | TrackPublished
    | TrackEnabled
    | TrackDisabled
    | TrackUnpublished
    | TrackSubscribed
    | TrackUnsubscribed
    | SubscribeRulesUpdated
    | RecordingRulesUpdated
    | RecordingRequested
    | RecordingStarted
    | RecordingStopRequested
    | RecordingCompleted
    | RecordingFailed
    | RecordingDeleted
)
AnyEvent = RoomEvent | RoomNameClaimed | RoomNameReleased | GoParticipantAdmitted | GoParticipantReleased

EVENT_TYPES: Final[tuple[type[Event], ...]] = AnyEvent.__args__


def event_name(cls: type[Event]) -> str:
    """The snake_case name of an event class, as used in NATS subjects (`room_created`)."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag
