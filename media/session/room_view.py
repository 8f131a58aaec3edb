"""What every client of a room is told about the participants: their state, rebuilt from events.

The SDK applies a participant's state only when its `revision` went up (protocol doc §2.2), so
each change gives that participant a new revision; one revision per participant serves every
client of the room, since all of them receive the same states. Applying events is idempotent
(a connected participant connecting again, or a track published twice, changes nothing), and
each `apply` returns the participant whose state changed, for the session layer to fan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from domain.ids import ParticipantSid, TrackSid
from media.signaling.messages import ParticipantState, TrackKind, TrackPriority, TrackState


@dataclass
class ParticipantView:
    sid: ParticipantSid
    identity: str
    revision: int = 1
    connected: bool = True
    reconnecting: bool = False
    """Its signaling socket dropped and the session waits for `sync` (the SDK's participantReconnecting)."""
    tracks: dict[TrackSid, TrackState] = field(default_factory=dict)

    def state(self) -> ParticipantState:
        return ParticipantState(
            sid=self.sid,
            identity=self.identity,
            revision=self.revision,
            state="disconnected" if not self.connected else "reconnecting" if self.reconnecting else "connected",
            tracks=list(self.tracks.values()),
        )


class RoomView:
    """Participants and their published tracks, from `participant_*` and `track_*` events."""

    def __init__(self) -> None:
        self.participants: dict[ParticipantSid, ParticipantView] = {}

    def connected(self, exclude: ParticipantSid | None = None) -> list[ParticipantState]:
        """The states of the connected participants (for `connected` and `synced`)."""
        return [p.state() for p in self.participants.values() if p.connected and p.sid != exclude]

    def set_reconnecting(self, sid: ParticipantSid, reconnecting: bool) -> ParticipantView | None:
        """Mark a connected participant reconnecting or back; the participant if that changed its state."""
        view = self.participants.get(sid)
        if view is None or not view.connected or view.reconnecting == reconnecting:
            return None
        view.reconnecting = reconnecting
        view.revision += 1
        return view

    def apply(self, event: dict[str, Any]) -> ParticipantView | None:
        """Apply one room event; the participant whose state changed, if any."""
        name = event.get("event")
        sid = ParticipantSid(str(event.get("participant_sid", "")))
        if name == "participant_connected":
            if sid in self.participants:
                return None
            view = self.participants[sid] = ParticipantView(sid, str(event["identity"]))
            return view
        view_or_none = self.participants.get(sid)
        if view_or_none is None or not view_or_none.connected:
            return None
        view = view_or_none
        if name == "participant_disconnected":
            view.connected = False
        elif name == "track_published":
            track_sid = TrackSid(str(event["track_sid"]))
            if track_sid in view.tracks:
                return None
            view.tracks[track_sid] = TrackState(
                sid=track_sid,
                kind=cast(TrackKind, event["kind"]),
                name=str(event["name"]),
                enabled=bool(event.get("enabled", True)),
                priority=cast(TrackPriority, event.get("priority") or "standard"),
            )
        elif name == "track_unpublished":
            if view.tracks.pop(TrackSid(str(event["track_sid"])), None) is None:
                return None
        elif name in ("track_enabled", "track_disabled"):
            track_sid = TrackSid(str(event["track_sid"]))
            track = view.tracks.get(track_sid)
            enabled = name == "track_enabled"
            if track is None or track.enabled == enabled:
                return None
            view.tracks[track_sid] = TrackState(
                sid=track.sid, kind=track.kind, name=track.name, enabled=enabled, priority=track.priority
            )
        else:
            return None
        view.revision += 1
        return view
