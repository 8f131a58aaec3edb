"""The read model as pure functions: each event becomes row operations on named tables.

The store adapter applies the operations to SQL tables together with the follower's tracking
position (exactly once); `replay --verify` applies the same operations to dictionaries and
compares. Times are integer microseconds since the epoch (sortable, exact); the Twilio shapes
(`2015-07-30T20:00:00Z`, `in-progress`) are produced at the HTTP/NATS edge.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, NamedTuple

import msgspec

from domain import events as ev
from domain.rules import Rule

Row = dict[str, Any]


class Table(NamedTuple):
    columns: tuple[str, ...]
    key: tuple[str, ...]


SCHEMA: Final[dict[str, Table]] = {
    "rooms": Table(
        (
            "sid",
            "account_sid",
            "unique_name",
            "status",
            "type",
            "date_created",
            "date_updated",
            "end_time",
            "duration",
            "max_participants",
            "max_participant_duration",
            "max_concurrent_published_tracks",
            "status_callback",
            "status_callback_method",
            "record_participants_on_connect",
            "video_codecs",
            "media_region",
            "audio_only",
            "empty_room_timeout",
            "unused_room_timeout",
            "large_room",
            "ad_hoc",
            "end_reason",
            "unused_deadline",
            "empty_deadline",
            "end_deadline",
        ),
        ("sid",),
    ),
    "participants": Table(
        (
            "sid",
            "room_sid",
            "account_sid",
            "identity",
            "status",
            "date_created",
            "date_updated",
            "start_time",
            "end_time",
            "duration",
            "deadline",
            "disconnect_reason",
            "error_code",
        ),
        ("sid",),
    ),
    "published_tracks": Table(
        ("sid", "room_sid", "participant_sid", "name", "kind", "enabled", "priority", "date_created", "date_updated"),
        ("sid",),
    ),
    "subscribed_tracks": Table(
        (
            "participant_sid",
            "sid",
            "room_sid",
            "publisher_sid",
            "name",
            "kind",
            "enabled",
            "date_created",
            "date_updated",
        ),
        ("participant_sid", "sid"),
    ),
    "subscribe_rules": Table(
        ("participant_sid", "room_sid", "rules", "date_created", "date_updated"), ("participant_sid",)
    ),
    "recording_rules": Table(("room_sid", "rules", "date_created", "date_updated"), ("room_sid",)),
    "recordings": Table(
        (
            "sid",
            "account_sid",
            "room_sid",
            "participant_sid",
            "source_sid",
            "status",
            "state",
            "type",
            "codec",
            "container_format",
            "track_name",
            "size",
            "duration",
            "offset",
            "media_location",
            "date_created",
            "date_updated",
        ),
        ("sid",),
    ),
}


# Structs, not NamedTuples: built once or twice per event, they cost a fifth as much (C init).
# gc=False: they only hold strings and row dictionaries, never a cycle.


class Upsert(msgspec.Struct, frozen=True, gc=False):
    """Insert `row`, or replace the row with its key."""

    table: str
    row: Row


class Update(msgspec.Struct, frozen=True, gc=False):
    """Set `fields` in the rows whose columns equal `where`."""

    table: str
    where: Row
    fields: Row


class Delete(msgspec.Struct, frozen=True, gc=False):
    """Delete the rows whose columns equal `where`."""

    table: str
    where: Row


Op = Upsert | Update | Delete

_RULES_ENCODER: Final = msgspec.json.Encoder()


def micros(at: datetime | None) -> int | None:
    if at is None:
        return None
    global _last_micros
    cached = _last_micros  # one (time, value) pair, swapped atomically: safe across threads
    if at == cached[0]:  # the events of one batch share their time
        return cached[1]
    value = int(at.timestamp() * 1_000_000)
    _last_micros = (at, value)
    return value


_last_micros: tuple[datetime | None, int] = (None, 0)


def rules_json(rules: Any) -> str:
    return _rules_json(tuple(rules))


@functools.lru_cache(maxsize=1024)
def _rules_json(rules: tuple[Rule, ...]) -> str:
    """Cached: almost every participant connects with the default rules."""
    return _RULES_ENCODER.encode([r.as_twilio() for r in rules]).decode()


def _room_created(e: ev.RoomCreated) -> list[Op]:
    s, at = e.settings, micros(e.at)
    room = {
        "sid": e.originator_id,
        "account_sid": e.account_sid,
        "unique_name": e.unique_name,
        "status": "in-progress",
        "type": s.type,
        "date_created": at,
        "date_updated": at,
        "end_time": None,
        "duration": None,
        "max_participants": s.max_participants,
        "max_participant_duration": s.max_participant_duration,
        "max_concurrent_published_tracks": s.max_concurrent_published_tracks,
        "status_callback": s.status_callback,
        "status_callback_method": s.status_callback_method,
        "record_participants_on_connect": s.record_participants_on_connect,
        "video_codecs": ",".join(s.video_codecs),
        "media_region": s.media_region or None,
        "audio_only": s.audio_only,
        "empty_room_timeout": s.empty_room_timeout,
        "unused_room_timeout": s.unused_room_timeout,
        "large_room": s.large_room,
        "ad_hoc": s.ad_hoc,
        "end_reason": None,
        "unused_deadline": micros(e.unused_deadline),
        "empty_deadline": None,
        "end_deadline": micros(e.end_deadline),
    }
    ops: list[Op] = [Upsert("rooms", room)]
    if s.type in ("group", "group-small"):
        ops.append(
            Upsert(
                "recording_rules",
                {
                    "room_sid": e.originator_id,
                    "rules": rules_json(e.recording_rules),
                    "date_created": at,
                    "date_updated": at,
                },
            )
        )
    return ops


def _room_emptied(e: ev.RoomEmptied) -> list[Op]:
    return [Update("rooms", {"sid": e.originator_id}, {"empty_deadline": micros(e.empty_deadline)})]


def _room_ended(e: ev.RoomEnded) -> list[Op]:
    at = micros(e.at)
    return [
        Update(
            "rooms",
            {"sid": e.originator_id},
            {
                "status": e.status,
                "end_time": at,
                "date_updated": at,
                "duration": e.duration,
                "end_reason": e.reason,
                "unused_deadline": None,
                "empty_deadline": None,
                "end_deadline": None,
            },
        )
    ]


def _participant_connected(e: ev.ParticipantConnected, account_sid: str = "") -> list[Op]:
    at = micros(e.at)
    return [
        Upsert(
            "participants",
            {
                "sid": e.participant_sid,
                "room_sid": e.originator_id,
                "account_sid": account_sid,
                "identity": e.identity,
                "status": "connected",
                "date_created": at,
                "date_updated": at,
                "start_time": at,
                "end_time": None,
                "duration": None,
                "deadline": micros(e.deadline),
                "disconnect_reason": None,
                "error_code": None,
            },
        ),
        Upsert(
            "subscribe_rules",
            {
                "participant_sid": e.participant_sid,
                "room_sid": e.originator_id,
                "rules": rules_json(e.subscribe_rules),
                "date_created": at,
                "date_updated": at,
            },
        ),
        Update("rooms", {"sid": e.originator_id}, {"unused_deadline": None, "empty_deadline": None}),
    ]


def _participant_disconnected(e: ev.ParticipantDisconnected) -> list[Op]:
    at = micros(e.at)
    return [
        Update(
            "participants",
            {"sid": e.participant_sid},
            {
                "status": "disconnected",
                "date_updated": at,
                "end_time": at,
                "duration": e.duration,
                "deadline": None,
                "disconnect_reason": e.reason,
                "error_code": e.error_code,
            },
        ),
    ]


def _participant_anonymized(e: ev.ParticipantAnonymized) -> list[Op]:
    return [Update("participants", {"sid": e.participant_sid}, {"identity": e.identity, "date_updated": micros(e.at)})]


def _track_published(e: ev.TrackPublished) -> list[Op]:
    at = micros(e.at)
    return [
        Upsert(
            "published_tracks",
            {
                "sid": e.track_sid,
                "room_sid": e.originator_id,
                "participant_sid": e.participant_sid,
                "name": e.name,
                "kind": e.kind,
                "enabled": e.enabled,
                "priority": e.priority,
                "date_created": at,
                "date_updated": at,
            },
        )
    ]


def _track_toggled(enabled: bool) -> Callable[[Any], list[Op]]:
    def ops(e: Any) -> list[Op]:
        fields = {"enabled": enabled, "date_updated": micros(e.at)}
        return [
            Update("published_tracks", {"sid": e.track_sid}, fields),
            Update("subscribed_tracks", {"sid": e.track_sid}, fields),
        ]

    return ops


def _track_unpublished(e: ev.TrackUnpublished) -> list[Op]:
    return [Delete("published_tracks", {"sid": e.track_sid})]


def _track_subscribed(e: ev.TrackSubscribed) -> list[Op]:
    at = micros(e.at)
    return [
        Upsert(
            "subscribed_tracks",
            {
                "participant_sid": e.participant_sid,
                "sid": e.track_sid,
                "room_sid": e.originator_id,
                "publisher_sid": e.publisher_sid,
                "name": e.name,
                "kind": e.kind,
                "enabled": e.enabled,
                "date_created": at,
                "date_updated": at,
            },
        )
    ]


def _track_unsubscribed(e: ev.TrackUnsubscribed) -> list[Op]:
    return [Delete("subscribed_tracks", {"participant_sid": e.participant_sid, "sid": e.track_sid})]


def _subscribe_rules(e: ev.SubscribeRulesUpdated) -> list[Op]:
    return [
        Update(
            "subscribe_rules",
            {"participant_sid": e.participant_sid},
            {"rules": rules_json(e.rules), "date_updated": micros(e.at)},
        )
    ]


def _recording_rules(e: ev.RecordingRulesUpdated) -> list[Op]:
    return [
        Update(
            "recording_rules",
            {"room_sid": e.originator_id},
            {"rules": rules_json(e.rules), "date_updated": micros(e.at)},
        )
    ]


def _recording_requested(e: ev.RecordingRequested, account_sid: str = "") -> list[Op]:
    at = micros(e.at)
    return [
        Upsert(
            "recordings",
            {
                "sid": e.recording_sid,
                "account_sid": account_sid,
                "room_sid": e.originator_id,
                "participant_sid": e.participant_sid,
                "source_sid": e.track_sid,
                "status": "processing",
                "state": "requested",
                "type": e.kind,
                "codec": e.codec,
                "container_format": e.container_format,
                "track_name": e.track_name,
                "size": 0,
                "duration": 0,
                "offset": 0,
                "media_location": None,
                "date_created": at,
                "date_updated": at,
            },
        )
    ]


def _recording_state(state: str, status: str) -> Callable[[Any], list[Op]]:
    def ops(e: Any) -> list[Op]:
        fields: Row = {"state": state, "status": status, "date_updated": micros(e.at)}
        if isinstance(e, ev.RecordingCompleted):
            fields.update(size=e.size, duration=e.duration, media_location=e.media_location)
        return [Update("recordings", {"sid": e.recording_sid}, fields)]

    return ops


def _ignored(_: Any) -> list[Op]:
    return []


_PROJECT: Final[dict[type[ev.Event], Callable[[Any], list[Op]]]] = {
    ev.RoomCreated: _room_created,
    ev.RoomEmptied: _room_emptied,
    ev.RoomEnded: _room_ended,
    ev.ParticipantConnected: _participant_connected,
    ev.ParticipantDisconnected: _participant_disconnected,
    ev.ParticipantAnonymized: _participant_anonymized,
    ev.TrackPublished: _track_published,
    ev.TrackEnabled: _track_toggled(True),
    ev.TrackDisabled: _track_toggled(False),
    ev.TrackUnpublished: _track_unpublished,
    ev.TrackSubscribed: _track_subscribed,
    ev.TrackUnsubscribed: _track_unsubscribed,
    ev.SubscribeRulesUpdated: _subscribe_rules,
    ev.RecordingRulesUpdated: _recording_rules,
    ev.RecordingRequested: _recording_requested,
    ev.RecordingStarted: _recording_state("started", "processing"),
    ev.RecordingStopRequested: _recording_state("stopping", "processing"),
    ev.RecordingCompleted: _recording_state("completed", "completed"),
    ev.RecordingFailed: _recording_state("failed", "failed"),
    ev.RecordingDeleted: _recording_state("deleted", "deleted"),
    ev.RoomNameClaimed: _ignored,
    ev.RoomNameReleased: _ignored,
    ev.GoParticipantAdmitted: _ignored,
    ev.GoParticipantReleased: _ignored,
}


def project(event: ev.Event, account_sid: str) -> list[Op]:
    """The read-model operations for one event. `account_sid` is the engine's account."""
    kind = type(event)
    if kind is ev.ParticipantConnected:
        return _participant_connected(event, account_sid)  # type: ignore[arg-type]
    if kind is ev.RecordingRequested:
        return _recording_requested(event, account_sid)  # type: ignore[arg-type]
    return _PROJECT[kind](event)


class MemoryView:
    """The read model in dictionaries: what `replay --verify` rebuilds and compares.

    Rows are keyed by their primary key; subscribed tracks are also indexed by track SID so
    that enabling a track updates its subscriptions without a scan.
    """

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], Row]] = {name: {} for name in SCHEMA}
        self._key_names = {name: tuple(table.key) for name, table in SCHEMA.items()}
        self._by_track: dict[str, set[tuple[Any, ...]]] = {}

    def apply(self, ops: list[Op]) -> None:
        """Apply operations; rows are taken as given (the projections build a fresh dict per op)."""
        tables, key_names, by_track = self.tables, self._key_names, self._by_track
        for op in ops:
            name = op.table
            table = tables[name]
            keys = key_names[name]
            if type(op) is Upsert:
                row = op.row
                key = (row[keys[0]],) if len(keys) == 1 else (row[keys[0]], row[keys[1]])
                table[key] = row
                if name == "subscribed_tracks":
                    by_track.setdefault(key[-1], set()).add(key)
                continue
            where = op.where  # type: ignore[union-attr]  # not an Upsert
            found: Any
            if len(where) == len(keys) and keys[0] in where:
                found = ((where[keys[0]],) if len(keys) == 1 else (where[keys[0]], where[keys[1]]),)
            elif name == "subscribed_tracks" and len(where) == 1 and "sid" in where:
                found = tuple(by_track.get(where["sid"], ()))
            else:
                found = [k for k, r in table.items() if all(r[c] == v for c, v in where.items())]
            if type(op) is Delete:
                for key in found:
                    table.pop(key, None)
                    if name == "subscribed_tracks":
                        by_track.get(key[-1], set()).discard(key)
            else:
                fields = op.fields  # type: ignore[union-attr]  # an Update
                for key in found:
                    target = table.get(key)
                    if target is not None:
                        target.update(fields)
