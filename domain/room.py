"""The room aggregate's state and how each event changes it.

A room holds its whole live state: settings, lifecycle state, connected participants,
published tracks, subscriptions, rules, recordings and deadlines. `apply()` only assigns data
(replay never has side effects); decisions live in domain/handlers.py. The state is a msgspec
Struct so a snapshot is its encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

import msgspec

from domain import events as ev
from domain.rules import Rule, TrackFacts
from domain.settings import RoomSettings

LIVE_STATES: Final = frozenset({"created", "occupied", "empty"})


class Participant(msgspec.Struct, kw_only=True):
    sid: str
    identity: str
    connected_at: datetime
    deadline: datetime
    rules: tuple[Rule, ...]


class Track(msgspec.Struct, kw_only=True):
    sid: str
    participant_sid: str
    name: str
    kind: str
    state: str
    priority: str = "standard"


class Recording(msgspec.Struct, kw_only=True):
    sid: str
    track_sid: str
    participant_sid: str
    kind: str
    track_name: str
    codec: str
    container_format: str
    state: str
    requested_at: datetime


class Room(msgspec.Struct, kw_only=True):
    id: str
    version: int
    account_sid: str
    unique_name: str
    settings: RoomSettings
    state: str
    created_at: datetime
    end_deadline: datetime
    unused_deadline: datetime | None = None
    empty_deadline: datetime | None = None
    ended_at: datetime | None = None
    participants: dict[str, Participant] = {}
    tracks: dict[str, Track] = {}
    subscriptions: set[tuple[str, str]] = set()
    """(subscriber participant SID, track SID) pairs."""
    recording_rules: tuple[Rule, ...] = ()
    recordings: dict[str, Recording] = {}
    departed: dict[str, str] = {}
    """SID → identity of participants that left (Anonymize works after a call, as on Twilio)."""

    # --- guards (read-only; named in domain/machines.py) -----------------------------------

    def has_capacity(self) -> bool:
        return len(self.participants) < self.settings.max_participants

    def is_last_participant(self) -> bool:
        return len(self.participants) <= 1

    # --- queries -----------------------------------------------------------------------------

    @property
    def sid(self) -> str:
        return self.id

    @property
    def in_progress(self) -> bool:
        return self.state in LIVE_STATES

    def participant_by_identity(self, identity: str) -> Participant | None:
        for participant in self.participants.values():
            if participant.identity == identity:
                return participant
        return None

    def track_facts(self, only: Iterable[str] | None = None) -> list[TrackFacts]:
        """What rules match on, for all published tracks or only the given SIDs."""
        tracks = self.tracks.values() if only is None else [self.tracks[sid] for sid in only]
        out = []
        for track in tracks:
            publisher = self.participants[track.participant_sid]
            out.append(TrackFacts(track.sid, track.name, track.kind, publisher.sid, publisher.identity))
        return out

    def subscriptions_of(self, participant_sid: str) -> set[str]:
        return {track for (subscriber, track) in self.subscriptions if subscriber == participant_sid}

    def active_recording(self, track_sid: str) -> Recording | None:
        for recording in self.recordings.values():
            if recording.track_sid == track_sid and recording.state in ("requested", "started"):
                return recording
        return None

    def next_deadline(self) -> datetime | None:
        """The earliest moment something in the room expires, None once it has ended."""
        if not self.in_progress:
            return None
        candidates = [self.end_deadline]
        if self.unused_deadline is not None:
            candidates.append(self.unused_deadline)
        if self.empty_deadline is not None:
            candidates.append(self.empty_deadline)
        candidates.extend(p.deadline for p in self.participants.values())
        return min(candidates)


def earliest_deadline_set(events: Iterable[Any]) -> datetime | None:
    """The earliest deadline these events set (a room created or emptied, a participant
    connected), None if they set none: the only events that can bring a deadline forward."""
    earliest: datetime | None = None
    for e in events:
        if isinstance(e, ev.RoomCreated):
            found = min(e.end_deadline, e.unused_deadline) if e.unused_deadline is not None else e.end_deadline
        elif isinstance(e, ev.RoomEmptied):
            found = e.empty_deadline
        elif isinstance(e, ev.ParticipantConnected):
            found = e.deadline
        else:
            continue
        if earliest is None or found < earliest:
            earliest = found
    return earliest


# --- apply: event → state change ------------------------------------------------------------


def _created(_: Room | None, e: ev.RoomCreated) -> Room:
    return Room(
        id=e.originator_id,
        version=e.originator_version,
        account_sid=e.account_sid,
        unique_name=e.unique_name,
        settings=e.settings,
        state="created",
        created_at=e.at,
        end_deadline=e.end_deadline,
        unused_deadline=e.unused_deadline,
        recording_rules=e.recording_rules,
    )


def _emptied(room: Room, e: ev.RoomEmptied) -> None:
    room.state = "empty"
    room.empty_deadline = e.empty_deadline


def _ended(room: Room, e: ev.RoomEnded) -> None:
    room.state = "completed"
    room.ended_at = e.at
    room.unused_deadline = room.empty_deadline = None


def _connected(room: Room, e: ev.ParticipantConnected) -> None:
    room.state = "occupied"
    room.unused_deadline = room.empty_deadline = None
    room.participants[e.participant_sid] = Participant(
        sid=e.participant_sid,
        identity=e.identity,
        connected_at=e.at,
        deadline=e.deadline,
        rules=e.subscribe_rules,
    )


def _disconnected(room: Room, e: ev.ParticipantDisconnected) -> None:
    del room.participants[e.participant_sid]
    room.departed[e.participant_sid] = e.identity


def _anonymized(room: Room, e: ev.ParticipantAnonymized) -> None:
    participant = room.participants.get(e.participant_sid)
    if participant is not None:
        participant.identity = e.identity
    elif e.participant_sid in room.departed:
        room.departed[e.participant_sid] = e.identity


def _published(room: Room, e: ev.TrackPublished) -> None:
    room.tracks[e.track_sid] = Track(
        sid=e.track_sid,
        participant_sid=e.participant_sid,
        name=e.name,
        kind=e.kind,
        state="enabled" if e.enabled else "disabled",
        priority=e.priority,
    )


def _enabled(room: Room, e: ev.TrackEnabled) -> None:
    room.tracks[e.track_sid].state = "enabled"


def _disabled(room: Room, e: ev.TrackDisabled) -> None:
    room.tracks[e.track_sid].state = "disabled"


def _unpublished(room: Room, e: ev.TrackUnpublished) -> None:
    del room.tracks[e.track_sid]


def _subscribed(room: Room, e: ev.TrackSubscribed) -> None:
    room.subscriptions.add((e.participant_sid, e.track_sid))


def _unsubscribed(room: Room, e: ev.TrackUnsubscribed) -> None:
    room.subscriptions.discard((e.participant_sid, e.track_sid))


def _subscribe_rules(room: Room, e: ev.SubscribeRulesUpdated) -> None:
    room.participants[e.participant_sid].rules = e.rules


def _recording_rules(room: Room, e: ev.RecordingRulesUpdated) -> None:
    room.recording_rules = e.rules


def _recording_requested(room: Room, e: ev.RecordingRequested) -> None:
    room.recordings[e.recording_sid] = Recording(
        sid=e.recording_sid,
        track_sid=e.track_sid,
        participant_sid=e.participant_sid,
        kind=e.kind,
        track_name=e.track_name,
        codec=e.codec,
        container_format=e.container_format,
        state="requested",
        requested_at=e.at,
    )


def _recording_state(state: str) -> Callable[[Room, Any], None]:
    def assign(room: Room, e: Any) -> None:
        room.recordings[e.recording_sid].state = state

    return assign


_APPLY: Final[dict[type[ev.Event], Callable[[Any, Any], Room | None]]] = {
    ev.RoomCreated: _created,
    ev.RoomEmptied: _emptied,
    ev.RoomEnded: _ended,
    ev.ParticipantConnected: _connected,
    ev.ParticipantDisconnected: _disconnected,
    ev.ParticipantAnonymized: _anonymized,
    ev.TrackPublished: _published,
    ev.TrackEnabled: _enabled,
    ev.TrackDisabled: _disabled,
    ev.TrackUnpublished: _unpublished,
    ev.TrackSubscribed: _subscribed,
    ev.TrackUnsubscribed: _unsubscribed,
    ev.SubscribeRulesUpdated: _subscribe_rules,
    ev.RecordingRulesUpdated: _recording_rules,
    ev.RecordingRequested: _recording_requested,
    ev.RecordingStarted: _recording_state("started"),
    ev.RecordingStopRequested: _recording_state("stopping"),
    ev.RecordingCompleted: _recording_state("completed"),
    ev.RecordingFailed: _recording_state("failed"),
    ev.RecordingDeleted: _recording_state("deleted"),
}


def apply(room: Room | None, event: ev.Event) -> Room:
    """The room after `event`; mutates and returns `room` (creates it for RoomCreated)."""
    result = _APPLY[type(event)](room, event)
    target = result if result is not None else room
    assert target is not None, f"{type(event).__name__} before RoomCreated"
    target.version = event.originator_version
    return target


ROOM_EVENT_TYPES: Final = frozenset(_APPLY)
