"""Command handlers: validate a command against the current state, then record its events.

Each handler receives a `Unit` (the engine's view of one command: loaded aggregates, the
injected clock and SID source, and `record()`), checks every rule first and only then records
events, so a refused command records nothing. Handlers are named after their command.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from domain import commands as cmd
from domain import errors
from domain import events as ev
from domain.account import Account
from domain.ids import PARTICIPANT_PREFIX, RECORDING_PREFIX, ROOM_PREFIX, TRACK_PREFIX, is_sid, room_name_key
from domain.machines import decide
from domain.results import CommandResult
from domain.room import Participant, Room, Track
from domain.room_name import RoomName
from domain.rules import (
    EXCLUDE_ALL,
    INCLUDE_ALL,
    Rule,
    evaluate,
    parse_recording_rules,
    parse_subscribe_rules,
)
from domain.settings import (
    MAX_ROOM_DURATION,
    SFU_TYPES,
    AccountPolicy,
    room_settings,
    validate_identity,
    validate_room_name,
    validate_track_name,
)


class Unit(Protocol):
    """What a handler may use while deciding one command."""

    now: datetime
    policy: AccountPolicy

    def new_sid(self, prefix: str) -> str: ...

    def room(self, sid: str) -> Room | None: ...

    def room_name(self, unique_name: str) -> RoomName: ...

    def account(self) -> Account: ...

    def record(self, aggregate_id: str, event_type: type[ev.Event], **fields: Any) -> None: ...


# --- lookups -----------------------------------------------------------------------------


def _addressed_room(c: cmd.Command) -> str | None:
    """The room a command names (SID, or unique name), if it names one."""
    target = c.room if isinstance(c, cmd.ConnectParticipant) else getattr(c, "room_sid", None)
    return target if isinstance(target, str) else None


def prefetch_keys(c: cmd.Command) -> list[str]:
    """The index entries a command will read, so a batch can load them in one query."""
    if isinstance(c, cmd.CreateRoom):
        return [room_name_key(c.unique_name)] if c.unique_name else []
    target = _addressed_room(c)
    if target is not None and not is_sid(target, ROOM_PREFIX):
        return [room_name_key(target)]
    return []


def touched_keys(c: cmd.Command) -> list[str]:
    """The aggregates a command names: its room (by SID) and the index entries it reads."""
    target = _addressed_room(c)
    keys = prefetch_keys(c)
    if target is not None and is_sid(target, ROOM_PREFIX):
        keys.append(target)
    return keys


# --- lookups (by SID or name) --------------------------------------------------------------------------------


def find_room(unit: Unit, room: str) -> Room:
    """A room by SID (any status) or by the unique name of an in-progress room (53106 if none)."""
    if is_sid(room, ROOM_PREFIX):
        found = unit.room(room)
    else:
        claimed = unit.room_name(room).room_sid
        found = unit.room(claimed) if claimed else None
    if found is None:
        raise errors.RoomNotFoundError(room)
    return found


def live_room(unit: Unit, room: str) -> Room:
    found = find_room(unit, room)
    decide("room", found.state, "update", found, found.sid)
    return found


def find_participant(room: Room, participant: str) -> Participant:
    found = room.participants.get(participant) or room.participant_by_identity(participant)
    if found is None:
        raise errors.ParticipantNotFoundError(participant)
    return found


def _require_sfu(room: Room, operation: str, code: int) -> None:
    if room.settings.type not in SFU_TYPES:
        raise errors.UnsupportedForRoomTypeError(operation, room.settings.type, code=code)


# --- rooms ----------------------------------------------------------------------------------


def create_room(unit: Unit, c: cmd.CreateRoom) -> CommandResult:
    settings = room_settings(
        room_type=c.type,
        max_participants=c.max_participants,
        max_participant_duration=c.max_participant_duration,
        empty_room_timeout=c.empty_room_timeout,
        unused_room_timeout=c.unused_room_timeout,
        status_callback=c.status_callback,
        status_callback_method=c.status_callback_method,
        record_participants_on_connect=c.record_participants_on_connect,
        recording_rules_given=c.recording_rules is not None,
        video_codecs=c.video_codecs,
        media_region=c.media_region,
        audio_only=c.audio_only,
        large_room=c.large_room,
    )
    rules: tuple[Rule, ...] = ()
    if c.recording_rules is not None:
        rules = parse_recording_rules(c.recording_rules)
    elif settings.record_participants_on_connect:
        rules = INCLUDE_ALL
    if c.unique_name is not None:
        validate_room_name(c.unique_name)
        if unit.room_name(c.unique_name).room_sid is not None:
            raise errors.RoomExistsError(c.unique_name)
    sid = unit.new_sid(ROOM_PREFIX)
    _record_room_created(unit, sid, c.unique_name, settings, rules)
    return CommandResult(room_sid=sid)


def _record_room_created(unit: Unit, sid: str, unique_name: str | None, settings: Any, rules: tuple[Rule, ...]) -> None:
    unused = None if settings.ad_hoc else unit.now + timedelta(minutes=settings.unused_room_timeout)
    unit.record(
        sid,
        ev.RoomCreated,
        account_sid=unit.policy.account_sid,
        unique_name=unique_name or sid,
        settings=settings,
        recording_rules=rules,
        unused_deadline=unused,
        end_deadline=unit.now + timedelta(seconds=MAX_ROOM_DURATION),
    )
    if unique_name is not None:
        unit.record(room_name_key(unique_name), ev.RoomNameClaimed, room_sid=sid)


def complete_room(unit: Unit, c: cmd.CompleteRoom) -> CommandResult:
    room = find_room(unit, c.room_sid)
    decide("room", room.state, "complete", room, room.sid)
    end_room(unit, room, "completed")
    return CommandResult(room_sid=room.sid)


def end_room(unit: Unit, room: Room, reason: ev.EndReason) -> None:
    """Disconnect everyone, stop recordings, end the room and free its name."""
    for participant in list(room.participants.values()):
        _disconnect(unit, room, participant, "room-ended", 53118, "end_room", leave_room=False)
    unit.record(room.sid, ev.RoomEnded, reason=reason, duration=_seconds(unit.now - room.created_at))
    _reconcile_recordings(unit, room)
    if room.unique_name != room.sid and unit.room_name(room.unique_name).room_sid == room.sid:
        unit.record(room_name_key(room.unique_name), ev.RoomNameReleased, room_sid=room.sid)


def expire_deadlines(unit: Unit, c: cmd.ExpireDeadlines) -> CommandResult:
    room = find_room(unit, c.room_sid)
    now = unit.now
    if not room.in_progress:
        return CommandResult(room_sid=room.sid)
    if room.end_deadline <= now:
        decide("room", room.state, "expire_max_duration", room, room.sid)
        end_room(unit, room, "max-duration")
    elif room.unused_deadline is not None and room.unused_deadline <= now:
        decide("room", room.state, "expire_unused", room, room.sid)
        end_room(unit, room, "unused-timeout")
    elif room.empty_deadline is not None and room.empty_deadline <= now:
        decide("room", room.state, "expire_empty", room, room.sid)
        end_room(unit, room, "empty-timeout")
    else:
        for participant in [p for p in room.participants.values() if p.deadline <= now]:
            _disconnect(unit, room, participant, "max-duration", 53216, "expire")
    return CommandResult(room_sid=room.sid)


# --- participants ---------------------------------------------------------------------------


def connect_participant(unit: Unit, c: cmd.ConnectParticipant) -> CommandResult:
    identity = validate_identity(c.identity)
    rules = _initial_rules(c)
    room = _room_for_connect(unit, c.room)
    if room is None:
        return _connect_to_new_ad_hoc_room(unit, c, identity, rules)
    if not room.in_progress:
        raise errors.RoomCompletedError(room.sid)
    replaced = room.participant_by_identity(identity)
    _check_tracks(room, c.tracks, replaced)
    go_account = _go_account(unit, room, replaced)
    if replaced is None:
        decide("room", room.state, "connect", room, room.sid)
    else:
        _disconnect(unit, room, replaced, "duplicate-identity", 53205, "replace", leave_room=False)
    return _admit(unit, room, identity, rules, c.tracks, go_account, replaced)


def _initial_rules(c: cmd.ConnectParticipant) -> tuple[Rule, ...]:
    if c.subscribe_rules is not None:
        return parse_subscribe_rules(c.subscribe_rules)
    return INCLUDE_ALL if c.automatic_subscription else EXCLUDE_ALL


def _room_for_connect(unit: Unit, room: str) -> Room | None:
    if is_sid(room, ROOM_PREFIX):
        found = unit.room(room)
        if found is None:
            raise errors.RoomNotFoundError(room)
        return found
    validate_room_name(room)
    claimed = unit.room_name(room).room_sid
    return unit.room(claimed) if claimed else None


def _connect_to_new_ad_hoc_room(
    unit: Unit, c: cmd.ConnectParticipant, identity: str, rules: tuple[Rule, ...]
) -> CommandResult:
    policy = unit.policy
    if not policy.client_room_creation:
        raise errors.RoomCreateFailedError("client-side room creation is disabled for this account")
    settings = room_settings(
        room_type=policy.default_room_type,
        status_callback=policy.default_status_callback,
        status_callback_method=policy.default_status_callback_method,
        record_participants_on_connect=policy.default_record_participants_on_connect,
        ad_hoc=True,
    )
    sid = unit.new_sid(ROOM_PREFIX)
    probe = Room(
        id=sid,
        version=0,
        account_sid=policy.account_sid,
        unique_name=c.room,
        settings=settings,
        state="created",
        created_at=unit.now,
        end_deadline=unit.now,
    )
    _check_tracks(probe, c.tracks, None)
    go_account = _go_account(unit, probe, None)
    _record_room_created(unit, sid, c.room, settings, INCLUDE_ALL if settings.record_participants_on_connect else ())
    room = unit.room(sid)
    assert room is not None
    return _admit(unit, room, identity, rules, c.tracks, go_account, None)


def _go_account(unit: Unit, room: Room, replaced: Participant | None) -> Account | None:
    if room.settings.type != "go":
        return None
    account = unit.account()
    if replaced is None and len(account.go_participants) >= unit.policy.max_go_participants:
        raise errors.AccountParticipantCapError(unit.policy.max_go_participants)
    return account


def _admit(
    unit: Unit,
    room: Room,
    identity: str,
    rules: tuple[Rule, ...],
    tracks: Iterable[cmd.TrackSpec],
    go_account: Account | None,
    replaced: Participant | None,
) -> CommandResult:
    sid = unit.new_sid(PARTICIPANT_PREFIX)
    deadline = unit.now + timedelta(seconds=room.settings.max_participant_duration)
    if room.settings.type not in SFU_TYPES:
        rules = INCLUDE_ALL  # media is direct: every publisher sends every track, client rules have no effect
    unit.record(
        room.sid,
        ev.ParticipantConnected,
        participant_sid=sid,
        identity=identity,
        deadline=deadline,
        subscribe_rules=rules,
    )
    if go_account is not None:
        unit.record(go_account.id, ev.GoParticipantAdmitted, room_sid=room.sid, participant_sid=sid)
    track_sids = tuple(_publish(unit, room, sid, spec.name, spec.kind, spec.enabled, spec.priority) for spec in tracks)
    _reconcile_subscriptions(unit, room, subscribers=[sid])
    return CommandResult(
        room_sid=room.sid,
        participant_sid=sid,
        track_sids=track_sids,
        replaced_participant_sid=replaced.sid if replaced else None,
    )


def disconnect_participant(unit: Unit, c: cmd.DisconnectParticipant) -> CommandResult:
    room = find_room(unit, c.room_sid)
    participant = find_participant(room, c.participant_sid)
    _disconnect(unit, room, participant, c.reason, None, "leave" if c.reason == "left" else "kick")
    return CommandResult(room_sid=room.sid, participant_sid=participant.sid)


def _disconnect(
    unit: Unit,
    room: Room,
    participant: Participant,
    reason: ev.DisconnectReason,
    error_code: int | None,
    trigger: str,
    *,
    leave_room: bool = True,
) -> None:
    decide("participant", "connected", trigger, participant, participant.sid)
    room_dest = decide("room", room.state, "leave", room, room.sid) if leave_room else room.state
    for track_sid in sorted(room.subscriptions_of(participant.sid)):
        _record_subscription(unit, room, participant.sid, track_sid, subscribe=False)
    for track in [t for t in room.tracks.values() if t.participant_sid == participant.sid]:
        _unpublish(unit, room, track.sid)
    unit.record(
        room.sid,
        ev.ParticipantDisconnected,
        participant_sid=participant.sid,
        identity=participant.identity,
        reason=reason,
        error_code=error_code,
        duration=_seconds(unit.now - participant.connected_at),
    )
    if room.settings.type == "go":
        unit.record(unit.account().id, ev.GoParticipantReleased, room_sid=room.sid, participant_sid=participant.sid)
    if room_dest == "empty":
        unit.record(
            room.sid, ev.RoomEmptied, empty_deadline=unit.now + timedelta(minutes=room.settings.empty_room_timeout)
        )
        if room.settings.empty_room_timeout == 0:
            decide("room", room.state, "expire_empty", room, room.sid)
            end_room(unit, room, "empty-timeout")


def anonymize_participant(unit: Unit, c: cmd.AnonymizeParticipant) -> CommandResult:
    room = find_room(unit, c.room_sid)
    participant = room.participants.get(c.participant_sid)
    if participant is None:
        identity = room.departed.get(c.participant_sid)
        if identity is None:
            raise errors.ParticipantNotFoundError(c.participant_sid)
        if identity != c.participant_sid:  # gone: no tracks or subscriptions to re-evaluate
            unit.record(
                room.sid, ev.ParticipantAnonymized, participant_sid=c.participant_sid, identity=c.participant_sid
            )
        return CommandResult(room_sid=room.sid, participant_sid=c.participant_sid)
    if participant.identity != participant.sid:
        unit.record(room.sid, ev.ParticipantAnonymized, participant_sid=participant.sid, identity=participant.sid)
        own = [t.sid for t in room.tracks.values() if t.participant_sid == participant.sid]
        _reconcile_subscriptions(unit, room, tracks=own)
        _reconcile_recordings(unit, room, tracks=own)
    return CommandResult(room_sid=room.sid, participant_sid=participant.sid)


# --- tracks ---------------------------------------------------------------------------------


def _check_tracks(
    room: Room, specs: Iterable[cmd.TrackSpec], replaced: Participant | None, publisher: str | None = None
) -> None:
    specs = list(specs)
    names = [validate_track_name(s.name) for s in specs]
    existing = {t.name for t in room.tracks.values() if publisher is not None and t.participant_sid == publisher}
    seen: set[str] = set(existing)
    for name in names:
        if name in seen:
            raise errors.TrackNameDuplicatedError(name)
        seen.add(name)
    if room.settings.audio_only:
        for spec in specs:
            if spec.kind == "video":
                raise errors.TrackKindNotSupportedError("video")
    cap = room.settings.max_concurrent_published_tracks
    freed = sum(1 for t in room.tracks.values() if replaced is not None and t.participant_sid == replaced.sid)
    if cap and len(room.tracks) - freed + len(specs) > cap:
        raise errors.TrackCapExceededError(cap)


def publish_track(unit: Unit, c: cmd.PublishTrack) -> CommandResult:
    room = live_room(unit, c.room_sid)
    participant = find_participant(room, c.participant_sid)
    decide("participant", "connected", "act", participant, participant.sid)
    spec = cmd.TrackSpec(name=c.name, kind=c.kind, enabled=c.enabled, priority=c.priority)
    _check_tracks(room, [spec], None, publisher=participant.sid)
    track_sid = _publish(unit, room, participant.sid, c.name, c.kind, c.enabled, c.priority)
    return CommandResult(room_sid=room.sid, participant_sid=participant.sid, track_sid=track_sid)


def _publish(unit: Unit, room: Room, participant_sid: str, name: str, kind: str, enabled: bool, priority: str) -> str:
    track_sid = unit.new_sid(TRACK_PREFIX)
    unit.record(
        room.sid,
        ev.TrackPublished,
        participant_sid=participant_sid,
        track_sid=track_sid,
        name=name,
        kind=kind,
        enabled=enabled,
        priority=priority,
    )
    _reconcile_subscriptions(unit, room, tracks=[track_sid])
    _reconcile_recordings(unit, room, tracks=[track_sid])
    return track_sid


def _own_track(unit: Unit, room_sid: str, participant_sid: str, track_sid: str) -> tuple[Room, Participant, Track]:
    """A live room, a connected participant in it, and a track that participant publishes."""
    room = live_room(unit, room_sid)
    participant = find_participant(room, participant_sid)
    track = room.tracks.get(track_sid)
    if track is None or track.participant_sid != participant.sid:
        raise errors.TrackNotFoundError(track_sid)
    return room, participant, track


def set_track_enabled(unit: Unit, c: cmd.SetTrackEnabled) -> CommandResult:
    room, participant, track = _own_track(unit, c.room_sid, c.participant_sid, c.track_sid)
    dest = decide("track", track.state, "enable" if c.enabled else "disable", track, track.sid)
    if dest != track.state:
        event_type = ev.TrackEnabled if c.enabled else ev.TrackDisabled
        unit.record(room.sid, event_type, participant_sid=participant.sid, track_sid=track.sid)
    return CommandResult(room_sid=room.sid, participant_sid=participant.sid, track_sid=track.sid)


def unpublish_track(unit: Unit, c: cmd.UnpublishTrack) -> CommandResult:
    room, participant, track = _own_track(unit, c.room_sid, c.participant_sid, c.track_sid)
    _unpublish(unit, room, track.sid)
    return CommandResult(room_sid=room.sid, participant_sid=participant.sid, track_sid=track.sid)


def _unpublish(unit: Unit, room: Room, track_sid: str) -> None:
    track = room.tracks[track_sid]
    decide("track", track.state, "unpublish", track, track.sid)
    for subscriber, subscribed in sorted(room.subscriptions):
        if subscribed == track_sid:
            _record_subscription(unit, room, subscriber, track_sid, subscribe=False)
    recording = room.active_recording(track_sid)
    if recording is not None:
        decide("recording", recording.state, "stop", recording, recording.sid)
        unit.record(room.sid, ev.RecordingStopRequested, recording_sid=recording.sid)
    unit.record(
        room.sid,
        ev.TrackUnpublished,
        participant_sid=track.participant_sid,
        track_sid=track_sid,
        name=track.name,
        kind=track.kind,
    )


# --- subscriptions --------------------------------------------------------------------------


def update_subscribe_rules(unit: Unit, c: cmd.UpdateSubscribeRules) -> CommandResult:
    room = live_room(unit, c.room_sid)
    _require_sfu(room, "subscription", 53117)
    participant = find_participant(room, c.participant_sid)
    rules = parse_subscribe_rules(c.rules)
    unit.record(room.sid, ev.SubscribeRulesUpdated, participant_sid=participant.sid, rules=rules)
    _reconcile_subscriptions(unit, room, subscribers=[participant.sid])
    return CommandResult(room_sid=room.sid, participant_sid=participant.sid)


def _reconcile_subscriptions(
    unit: Unit, room: Room, *, subscribers: Iterable[str] | None = None, tracks: Iterable[str] | None = None
) -> None:
    """Record the subscription changes that make subscriptions equal the rules' evaluation."""
    facts = room.track_facts(tracks)
    scope = {f.sid for f in facts}
    for sid in sorted(subscribers if subscribers is not None else room.participants):
        participant = room.participants[sid]
        selected = evaluate(participant.rules, facts, own_sid=sid)
        current = {t for (s, t) in room.subscriptions if s == sid and t in scope}
        for track_sid in sorted(current - selected):
            _record_subscription(unit, room, sid, track_sid, subscribe=False)
        for track_sid in sorted(selected - current):
            _record_subscription(unit, room, sid, track_sid, subscribe=True)


def _record_subscription(unit: Unit, room: Room, subscriber: str, track_sid: str, *, subscribe: bool) -> None:
    state = "subscribed" if (subscriber, track_sid) in room.subscriptions else "unsubscribed"
    decide("subscription", state, "subscribe" if subscribe else "unsubscribe", room, track_sid)
    track = room.tracks[track_sid]
    if subscribe:
        unit.record(
            room.sid,
            ev.TrackSubscribed,
            participant_sid=subscriber,
            publisher_sid=track.participant_sid,
            track_sid=track_sid,
            name=track.name,
            kind=track.kind,
            enabled=track.state == "enabled",
        )
    else:
        unit.record(
            room.sid,
            ev.TrackUnsubscribed,
            participant_sid=subscriber,
            publisher_sid=track.participant_sid,
            track_sid=track_sid,
        )


def expected_subscriptions(room: Room) -> set[tuple[str, str]]:
    """Every (subscriber, track) pair the current rules select: what subscriptions must equal."""
    facts = room.track_facts()
    return {
        (sid, track)
        for sid, participant in room.participants.items()
        for track in evaluate(participant.rules, facts, own_sid=sid)
    }


# --- recording ------------------------------------------------------------------------------


def update_recording_rules(unit: Unit, c: cmd.UpdateRecordingRules) -> CommandResult:
    room = live_room(unit, c.room_sid)
    _require_sfu(room, "recording", 53122)
    rules = parse_recording_rules(c.rules)
    unit.record(room.sid, ev.RecordingRulesUpdated, rules=rules)
    _reconcile_recordings(unit, room)
    return CommandResult(room_sid=room.sid)


def expected_recordings(room: Room) -> set[str]:
    """The SIDs of the tracks the recording rules select (audio and video only, live rooms)."""
    if not room.in_progress or room.settings.type not in SFU_TYPES:
        return set()
    facts = [f for f in room.track_facts() if f.kind in ("audio", "video")]
    return evaluate(room.recording_rules, facts)


def _reconcile_recordings(unit: Unit, room: Room, tracks: Iterable[str] | None = None) -> None:
    """Start recordings the rules now select and stop those they no longer do.

    Only the tracks a change concerns are considered (`tracks`; all for a rules change or the
    room's end), so a recording that failed is not silently re-requested by an unrelated change.
    """
    if not room.recording_rules and not room.recordings:
        return
    scope = set(room.tracks) if tracks is None else set(tracks)
    wanted = expected_recordings(room) & scope
    for track_sid in sorted(wanted):
        if room.active_recording(track_sid) is None:
            track = room.tracks[track_sid]
            video = track.kind == "video"
            unit.record(
                room.sid,
                ev.RecordingRequested,
                recording_sid=unit.new_sid(RECORDING_PREFIX),
                track_sid=track_sid,
                participant_sid=track.participant_sid,
                kind=track.kind,
                track_name=track.name,
                codec=(room.settings.video_codecs or ("VP8",))[0] if video else "OPUS",
                container_format="mkv" if video else "mka",
            )
    for recording in list(room.recordings.values()):
        if (
            recording.state in ("requested", "started")
            and recording.track_sid not in wanted
            and (tracks is None or recording.track_sid in scope)
        ):
            decide("recording", recording.state, "stop", recording, recording.sid)
            unit.record(room.sid, ev.RecordingStopRequested, recording_sid=recording.sid)


def _recording(room: Room, recording_sid: str) -> Any:
    recording = room.recordings.get(recording_sid)
    if recording is None:
        raise errors.RecordingNotFoundError(recording_sid)
    return recording


def report_recording_started(unit: Unit, c: cmd.ReportRecordingStarted) -> CommandResult:
    room = find_room(unit, c.room_sid)
    recording = _recording(room, c.recording_sid)
    decide("recording", recording.state, "start", recording, recording.sid)
    unit.record(room.sid, ev.RecordingStarted, recording_sid=recording.sid)
    return CommandResult(room_sid=room.sid, recording_sid=recording.sid)


def report_recording_completed(unit: Unit, c: cmd.ReportRecordingCompleted) -> CommandResult:
    room = find_room(unit, c.room_sid)
    recording = _recording(room, c.recording_sid)
    decide("recording", recording.state, "complete", recording, recording.sid)
    unit.record(
        room.sid,
        ev.RecordingCompleted,
        recording_sid=recording.sid,
        size=c.size,
        duration=c.duration,
        media_location=c.media_location,
    )
    return CommandResult(room_sid=room.sid, recording_sid=recording.sid)


def report_recording_failed(unit: Unit, c: cmd.ReportRecordingFailed) -> CommandResult:
    room = find_room(unit, c.room_sid)
    recording = _recording(room, c.recording_sid)
    decide("recording", recording.state, "fail", recording, recording.sid)
    unit.record(room.sid, ev.RecordingFailed, recording_sid=recording.sid, failed_operation=c.failed_operation)
    return CommandResult(room_sid=room.sid, recording_sid=recording.sid)


def delete_recording(unit: Unit, c: cmd.DeleteRecording) -> CommandResult:
    room = find_room(unit, c.room_sid)
    recording = _recording(room, c.recording_sid)
    decide("recording", recording.state, "delete", recording, recording.sid)
    unit.record(room.sid, ev.RecordingDeleted, recording_sid=recording.sid)
    return CommandResult(room_sid=room.sid, recording_sid=recording.sid)


def _seconds(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds()))


HANDLERS: dict[type[cmd.Command], Any] = {
    cmd.CreateRoom: create_room,
    cmd.CompleteRoom: complete_room,
    cmd.ConnectParticipant: connect_participant,
    cmd.DisconnectParticipant: disconnect_participant,
    cmd.AnonymizeParticipant: anonymize_participant,
    cmd.PublishTrack: publish_track,
    cmd.SetTrackEnabled: set_track_enabled,
    cmd.UnpublishTrack: unpublish_track,
    cmd.UpdateSubscribeRules: update_subscribe_rules,
    cmd.UpdateRecordingRules: update_recording_rules,
    cmd.ExpireDeadlines: expire_deadlines,
    cmd.ReportRecordingStarted: report_recording_started,
    cmd.ReportRecordingCompleted: report_recording_completed,
    cmd.ReportRecordingFailed: report_recording_failed,
    cmd.DeleteRecording: delete_recording,
}
