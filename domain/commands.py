"""Commands: what a caller asks the engine to do, one msgspec tagged union.

Field names are the snake_case forms of the Twilio REST parameters where one exists. Every
command carries a `command_id`: a command seen before returns its first result and records
nothing. The tag (`command`) is the snake_case class name, which is also the NATS subject's
last token (`rooms.cmd.create_room`). Parameter *values* are validated by the domain so that
faults carry Twilio's codes; types and unknown fields are checked by msgspec at decode time.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

CommandId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Command(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="command"):
    command_id: CommandId


class CreateRoom(Command, tag="create_room", frozen=True):
    unique_name: str | None = None
    type: str | None = None
    status_callback: str | None = None
    status_callback_method: str | None = None
    max_participants: int | None = None
    record_participants_on_connect: bool | None = None
    video_codecs: list[str] | None = None
    media_region: str | None = None
    recording_rules: Any = None
    audio_only: bool | None = None
    max_participant_duration: int | None = None
    empty_room_timeout: int | None = None
    unused_room_timeout: int | None = None
    large_room: bool | None = None
    enable_turn: bool | None = None


class CompleteRoom(Command, tag="complete_room", frozen=True):
    room_sid: str
    """The room's SID or the unique name of an in-progress room."""


class TrackSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A track published together with a connect."""

    name: str
    kind: Literal["audio", "video", "data"]
    enabled: bool = True
    priority: Literal["low", "standard", "high"] = "standard"


class ConnectParticipant(Command, tag="connect_participant", frozen=True):
    room: str
    """The room's SID or unique name; an unknown name creates an ad-hoc room when allowed."""
    identity: str
    subscribe_rules: Any = None
    """Initial subscribe rules; when absent, include-all (or exclude-all without automatic subscription)."""
    automatic_subscription: bool = True
    tracks: list[TrackSpec] = []


class DisconnectParticipant(Command, tag="disconnect_participant", frozen=True):
    room_sid: str
    participant_sid: str
    """The participant's SID or the identity of a connected participant."""
    reason: Literal["left", "kicked"] = "left"


class AnonymizeParticipant(Command, tag="anonymize_participant", frozen=True):
    room_sid: str
    participant_sid: str


class PublishTrack(Command, tag="publish_track", frozen=True):
    room_sid: str
    participant_sid: str
    name: str
    kind: Literal["audio", "video", "data"]
    enabled: bool = True
    priority: Literal["low", "standard", "high"] = "standard"


class SetTrackEnabled(Command, tag="set_track_enabled", frozen=True):
    room_sid: str
    participant_sid: str
    track_sid: str
    enabled: bool


class UnpublishTrack(Command, tag="unpublish_track", frozen=True):
    room_sid: str
    participant_sid: str
    track_sid: str


class UpdateSubscribeRules(Command, tag="update_subscribe_rules", frozen=True):
    room_sid: str
    participant_sid: str
    rules: Any


class UpdateRecordingRules(Command, tag="update_recording_rules", frozen=True):
    room_sid: str
    rules: Any


class ExpireDeadlines(Command, tag="expire_deadlines", frozen=True):
    """Sent by the scheduler: end whatever in the room is past its deadline at the engine's now."""

    room_sid: str


class ReportRecordingStarted(Command, tag="report_recording_started", frozen=True):
    room_sid: str
    recording_sid: str
    codec: str | None = None
    container_format: str | None = None


class ReportRecordingCompleted(Command, tag="report_recording_completed", frozen=True):
    room_sid: str
    recording_sid: str
    size: int = 0
    duration: int = 0
    media_location: str | None = None


class ReportRecordingFailed(Command, tag="report_recording_failed", frozen=True):
    room_sid: str
    recording_sid: str
    failed_operation: Literal["RecordingStart", "RecordingComplete", "RecordingUpload"] = "RecordingStart"


class DeleteRecording(Command, tag="delete_recording", frozen=True):
    room_sid: str
    recording_sid: str


AnyCommand = (
    CreateRoom
    | CompleteRoom
    | ConnectParticipant
    | DisconnectParticipant
    | AnonymizeParticipant
    | PublishTrack
    | SetTrackEnabled
    | UnpublishTrack
    | UpdateSubscribeRules
    | UpdateRecordingRules
    | ExpireDeadlines
    | ReportRecordingStarted
    | ReportRecordingCompleted
    | ReportRecordingFailed
    | DeleteRecording
)

COMMAND_TYPES: Final[dict[str, type[Command]]] = {cls.__struct_config__.tag: cls for cls in AnyCommand.__args__}
