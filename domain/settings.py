"""Room types, their caps, and validation of room settings with Twilio's error codes."""

from __future__ import annotations

import re
from typing import Final

import msgspec

from domain import errors
from domain.ids import ROOM_PREFIX, is_sid

ROOM_TYPES: Final = ("group", "group-small", "peer-to-peer", "go")
PARTICIPANT_CAP: Final = {"group": 50, "group-small": 4, "peer-to-peer": 10, "go": 2}
SFU_TYPES: Final = frozenset({"group", "group-small"})
MEDIA_REGIONS: Final = frozenset({"gll", "au1", "br1", "de1", "ie1", "in1", "jp1", "sg1", "us1", "us2"})
VIDEO_CODECS: Final = ("VP8", "H264")
DEFAULT_TRACK_CAP: Final = 170
NAME_MAX: Final = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f/?#%]")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)

MINUTE: Final = 60
DEFAULT_TIMEOUT_MIN: Final = 5
DEFAULT_MAX_PARTICIPANT_DURATION: Final = 4 * 3600
MAX_ROOM_DURATION: Final = 24 * 3600


class RoomSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The settings a room is created with; they do not change during its life."""

    type: str
    max_participants: int
    max_participant_duration: int
    max_concurrent_published_tracks: int
    empty_room_timeout: int
    unused_room_timeout: int
    status_callback: str | None = None
    status_callback_method: str = "POST"
    record_participants_on_connect: bool = False
    video_codecs: tuple[str, ...] = VIDEO_CODECS
    media_region: str = "us1"
    audio_only: bool = False
    large_room: bool = False
    ad_hoc: bool = False


class AccountPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Account-wide settings a Twilio Console user had (client-side room creation and caps)."""

    account_sid: str
    client_room_creation: bool = True
    default_room_type: str = "group"
    default_status_callback: str | None = None
    default_status_callback_method: str = "POST"
    default_record_participants_on_connect: bool = False
    max_go_participants: int = 500


def validate_room_name(name: str) -> str:
    if len(name) > NAME_MAX:
        raise errors.RoomNameTooLongError(len(name))
    if not name or _CONTROL.search(name) or is_sid(name, ROOM_PREFIX):
        raise errors.RoomNameCharsInvalidError()
    return name


def validate_identity(identity: str) -> str:
    if not identity:
        raise errors.ParticipantIdentityInvalidError()
    if len(identity) > NAME_MAX:
        raise errors.ParticipantIdentityInvalidError("Participant identity is too long", code=53201)
    if _CONTROL.search(identity.replace("/", "").replace("?", "").replace("#", "").replace("%", "")):
        raise errors.ParticipantIdentityInvalidError("Participant identity contains invalid characters", code=53202)
    return identity


def validate_track_name(name: str) -> str:
    if not name:
        raise errors.TrackNameInvalidError()
    if len(name) > NAME_MAX:
        raise errors.TrackNameInvalidError("Track name is too long", code=53302)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise errors.TrackNameInvalidError("Track name contains invalid characters", code=53303)
    return name


def validate_callback(url: str | None, method: str | None) -> tuple[str | None, str]:
    if url is not None and (len(url) >= 1024 or not _URL.match(url)):
        raise errors.StatusCallbackInvalidError(url)
    normalized = "POST" if method is None else method.upper()
    if normalized not in ("GET", "POST"):
        raise errors.StatusCallbackMethodInvalidError(normalized)
    return url, normalized


def _timeout(name: str, value: int | None) -> int:
    if value is None:
        return DEFAULT_TIMEOUT_MIN
    if not 1 <= value <= 60:
        raise errors.TimeoutOutOfRangeError(name, value)
    return value


def room_settings(
    *,
    room_type: str | None,
    max_participants: int | None = None,
    max_participant_duration: int | None = None,
    empty_room_timeout: int | None = None,
    unused_room_timeout: int | None = None,
    status_callback: str | None = None,
    status_callback_method: str | None = None,
    record_participants_on_connect: bool | None = None,
    recording_rules_given: bool = False,
    video_codecs: list[str] | None = None,
    media_region: str | None = None,
    audio_only: bool | None = None,
    large_room: bool | None = None,
    ad_hoc: bool = False,
) -> RoomSettings:
    """Validate create-room parameters in Twilio's order and fill Twilio's defaults."""
    kind = "group" if room_type is None else room_type
    if kind not in ROOM_TYPES:
        raise errors.RoomTypeInvalidError(kind)
    cap = PARTICIPANT_CAP[kind]
    participants = cap if max_participants is None else max_participants
    if not 1 <= participants <= cap:
        raise errors.MaxParticipantsOutOfRangeError(participants, cap)
    callback, method = validate_callback(status_callback, status_callback_method)
    duration = DEFAULT_MAX_PARTICIPANT_DURATION if max_participant_duration is None else max_participant_duration
    if not 600 <= duration <= 86400:
        raise errors.MaxParticipantDurationOutOfRangeError(duration)
    empty = _timeout("EmptyRoomTimeout", empty_room_timeout)
    unused = _timeout("UnusedRoomTimeout", unused_room_timeout)
    sfu = kind in SFU_TYPES
    if audio_only and kind != "group":
        raise errors.AudioOnlyNotSupportedError(kind)
    if not sfu and (record_participants_on_connect or recording_rules_given):
        raise errors.UnsupportedForRoomTypeError("recording", kind, code=53122)
    if not sfu and (video_codecs or media_region or large_room):
        parameter = "VideoCodecs" if video_codecs else "MediaRegion" if media_region else "LargeRoom"
        raise errors.InvalidParametersForTypeError(parameter, kind)
    codecs = tuple(video_codecs) if video_codecs else (VIDEO_CODECS if sfu else ())
    if any(codec not in VIDEO_CODECS for codec in codecs) or len(set(codecs)) != len(codecs):
        raise errors.InvalidParametersForTypeError(f"VideoCodecs={list(codecs)}", kind)
    region = media_region or ("us1" if sfu else "")
    if sfu and region not in MEDIA_REGIONS:
        raise errors.DomainError(f"MediaRegion is invalid: {region!r}", code=53115)
    if large_room:
        raise errors.RoomCreateFailedError("large rooms are not enabled for this account")
    return RoomSettings(
        type=kind,
        max_participants=participants,
        max_participant_duration=duration,
        max_concurrent_published_tracks=DEFAULT_TRACK_CAP if sfu else 0,
        empty_room_timeout=0 if ad_hoc else empty,
        unused_room_timeout=0 if ad_hoc else unused,
        status_callback=callback,
        status_callback_method=method,
        record_participants_on_connect=bool(record_participants_on_connect),
        video_codecs=codecs,
        media_region=region,
        audio_only=bool(audio_only),
        large_room=False,
        ad_hoc=ad_hoc,
    )
