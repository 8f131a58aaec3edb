"""The typed events a `Room` emits, in the order the SDK would fire them.

    ParticipantConnected(participant)            ParticipantDisconnected(participant)
    TrackPublished(participant, publication)     TrackUnpublished(participant, publication)
    TrackEnabled / TrackDisabled(participant, publication)
    TrackSubscribed(participant, publication, track)   track: the aiortc MediaStreamTrack
    TrackUnsubscribed(participant, publication, track)
    TrackSubscriptionFailed(track_sid, error)
    Disconnected(error)                          error: None for a clean end (disconnect(), kicked)

Participants already in the room at connect are in `room.participants` without events; their
tracks' `TrackSubscribed` events do come, as the subscriptions arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.mediastreams import MediaStreamTrack

from domain.ids import TrackSid
from media.client.errors import ClientError
from media.client.participant import RemoteParticipant, RemoteTrackPublication


@dataclass(frozen=True, eq=False)
class ParticipantConnected:
    participant: RemoteParticipant


@dataclass(frozen=True, eq=False)
class ParticipantDisconnected:
    participant: RemoteParticipant


@dataclass(frozen=True, eq=False)
class TrackPublished:
    participant: RemoteParticipant
    publication: RemoteTrackPublication


@dataclass(frozen=True, eq=False)
class TrackUnpublished:
    participant: RemoteParticipant
    publication: RemoteTrackPublication


@dataclass(frozen=True, eq=False)
class TrackEnabled:
    participant: RemoteParticipant
    publication: RemoteTrackPublication


@dataclass(frozen=True, eq=False)
class TrackDisabled:
    participant: RemoteParticipant
    publication: RemoteTrackPublication


@dataclass(frozen=True, eq=False)
class TrackSubscribed:
    participant: RemoteParticipant
    publication: RemoteTrackPublication
    track: MediaStreamTrack


@dataclass(frozen=True, eq=False)
class TrackUnsubscribed:
    participant: RemoteParticipant
    publication: RemoteTrackPublication
    track: MediaStreamTrack


@dataclass(frozen=True, eq=False)
class TrackSubscriptionFailed:
    track_sid: TrackSid
    error: ClientError


@dataclass(frozen=True, eq=False)
class Disconnected:
    error: ClientError | None


@dataclass(frozen=True, eq=False)
class Reconnecting:
    """The signaling socket was lost; the client is reconnecting (the SDK's `reconnecting`)."""

    error: ClientError


@dataclass(frozen=True, eq=False)
class Reconnected:
    """The session is back on a new socket (`synced`)."""


RoomEvent = (
    ParticipantConnected
    | ParticipantDisconnected
    | TrackPublished
    | TrackUnpublished
    | TrackEnabled
    | TrackDisabled
    | TrackSubscribed
    | TrackUnsubscribed
    | TrackSubscriptionFailed
    | Disconnected
    | Reconnecting
    | Reconnected
)
