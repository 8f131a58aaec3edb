"""Participants and their track publications, as the client sees them.

    LocalParticipant      sid, identity, tracks: {publication id → LocalTrackPublication}
    RemoteParticipant     sid, identity, state, tracks: {MT sid → RemoteTrackPublication}

A local publication's `id` is the aiortc track's own id: the client writes it as the `a=msid`
track id of its m-line, which is how the server maps m-lines to publications (protocol doc §2.3).
`sid` arrives with the server's `published` block. A remote publication's `track` is the aiortc
`MediaStreamTrack` receiving it while subscribed (else None).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc.mediastreams import MediaStreamTrack

from domain.ids import ParticipantSid, TrackSid
from media.signaling.messages import LocalTrackState, TrackId, TrackKind, TrackPriority, TrackState


@dataclass(eq=False)
class LocalTrackPublication:
    id: TrackId
    kind: TrackKind
    name: str
    track: MediaStreamTrack
    enabled: bool = True
    priority: TrackPriority = "standard"
    sid: TrackSid | None = None

    def state(self) -> LocalTrackState:
        return LocalTrackState(id=self.id, kind=self.kind, name=self.name, enabled=self.enabled, priority=self.priority)


@dataclass(eq=False)
class LocalParticipant:
    sid: ParticipantSid
    identity: str
    tracks: dict[TrackId, LocalTrackPublication] = field(default_factory=dict)


@dataclass(eq=False)
class RemoteTrackPublication:
    sid: TrackSid
    kind: TrackKind
    name: str
    enabled: bool
    track: MediaStreamTrack | None = None

    @classmethod
    def from_state(cls, state: TrackState) -> RemoteTrackPublication:
        return cls(sid=state.sid, kind=state.kind, name=state.name, enabled=state.enabled)


@dataclass(eq=False)
class RemoteParticipant:
    sid: ParticipantSid
    identity: str
    revision: int
    state: str = "connected"
    tracks: dict[TrackSid, RemoteTrackPublication] = field(default_factory=dict)


def track_kind(track: MediaStreamTrack) -> TrackKind:
    """The RSP kind of an aiortc track (audio or video; data tracks are not supported)."""
    if track.kind == "audio":
        return "audio"
    if track.kind == "video":
        return "video"
    raise ValueError(f"cannot publish a track of kind {track.kind!r}")
