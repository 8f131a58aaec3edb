"""The audit: rebuild every aggregate and the read model from the log and check invariants.

Fed every event in log order, `Audit` folds the rooms, name index and accounts exactly as the
engine does, rebuilds the read model in memory with the same projections, and checks:

- per-aggregate sequence numbers start at 1 and have no gap;
- a room never has more connected participants than its cap;
- every disconnect follows a connect of that participant;
- an ended room has no connected participant, and nothing happens in it but recording
  reports and anonymizing a participant;
- a name is claimed only while free and released only by the room that holds it;
- after each command, a room's subscriptions equal its participants' rules evaluated on its
  tracks (and at the end of the log).

`problems` lists every violation found with its log position.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from domain import account, room, room_name
from domain import events as ev
from domain.handlers import expected_subscriptions
from domain.projections import MemoryView, project

_SUBSCRIPTION_EVENTS: Final = frozenset(
    {
        ev.ParticipantConnected,
        ev.ParticipantDisconnected,
        ev.ParticipantAnonymized,
        ev.TrackPublished,
        ev.TrackUnpublished,
        ev.TrackSubscribed,
        ev.TrackUnsubscribed,
        ev.SubscribeRulesUpdated,
    }
)
_AFTER_END_ALLOWED: Final = frozenset(
    {
        ev.RecordingStarted,
        ev.RecordingCompleted,
        ev.RecordingFailed,
        ev.RecordingDeleted,
        ev.RoomNameReleased,
        ev.ParticipantAnonymized,
    }
)
MAX_PROBLEMS: Final = 1000
_BROKEN: Final = (KeyError, AttributeError, TypeError, ValueError)
"""What folding or projecting an event that contradicts the state before it raises."""
_NAME_EVENTS: Final = frozenset({ev.RoomNameClaimed, ev.RoomNameReleased})
_ACCOUNT_EVENTS: Final = frozenset({ev.GoParticipantAdmitted, ev.GoParticipantReleased})


class Audit:
    def __init__(self, account_sid: str) -> None:
        self.account_sid = account_sid
        self.rooms: dict[str, room.Room] = {}
        self.names: dict[str, room_name.RoomName] = {}
        self.accounts: dict[str, account.Account] = {}
        self.view = MemoryView()
        self.problems: list[str] = []
        self.events = 0
        self._versions: dict[str, int] = {}
        self._command_id: str | None = None
        self._command_room: str | None = None
        self._dirty: set[str] = set()

    def problem(self, position: int, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"#{position}: {text}")

    def feed(self, log: Iterable[tuple[int, Any]]) -> None:
        """Fold and check (position, event) pairs, in log order."""
        feed_room, view_apply, account_sid = self._feed_room, self.view.apply, self.account_sid  # the hot path
        for position, event in log:
            self.events += 1
            kind = type(event)
            if kind in _NAME_EVENTS:
                self._check_sequence(position, event)
                self._feed_name(position, event)
            elif kind in _ACCOUNT_EVENTS:
                self._check_sequence(position, event)
                self.accounts[event.originator_id] = account.apply(self.accounts.get(event.originator_id), event)
            elif feed_room(position, event, kind):  # a room's version is its state's: its own sequence check
                try:
                    view_apply(project(event, account_sid))
                except _BROKEN as exc:  # a row the event updates is missing: the comparison shows the rest
                    self.problem(position, f"{kind.__name__} of {event.originator_id} does not project: {exc!r}")

    def _check_sequence(self, position: int, event: Any) -> None:
        aggregate_id, version = event.originator_id, event.originator_version
        expected = self._versions.get(aggregate_id, 0) + 1
        if version != expected:
            self.problem(position, f"{aggregate_id} sequence {version}, expected {expected}")
        self._versions[aggregate_id] = version

    def _feed_name(self, position: int, event: Any) -> None:
        entry = self.names.get(event.originator_id)
        holder = entry.room_sid if entry else None
        if isinstance(event, ev.RoomNameClaimed) and holder is not None:
            self.problem(position, f"{event.originator_id} claimed by {event.room_sid} while held by {holder}")
        if isinstance(event, ev.RoomNameReleased) and holder != event.room_sid:
            self.problem(position, f"{event.originator_id} released by {event.room_sid} but held by {holder}")
        self.names[event.originator_id] = room_name.apply(entry, event)

    def _feed_room(self, position: int, event: Any, kind: type[Any]) -> bool:
        """Check and fold a room event; False when it cannot be applied at all (reported)."""
        sid = event.originator_id
        if event.command_id != self._command_id or sid != self._command_room:
            if self._dirty:
                self._check_subscriptions(position)
            self._command_id, self._command_room = event.command_id, sid
        current = self.rooms.get(sid)
        expected = current.version + 1 if current is not None else 1
        if event.originator_version != expected:
            self.problem(position, f"{sid} sequence {event.originator_version}, expected {expected}")
        if current is not None and current.ended_at is not None and kind not in _AFTER_END_ALLOWED:
            self.problem(position, f"{kind.__name__} in ended room {sid}")
        if kind is ev.ParticipantDisconnected and (
            current is None or event.participant_sid not in current.participants
        ):
            self.problem(position, f"{event.participant_sid} disconnected from {sid} without being connected")
        elif kind is ev.TrackPublished and (current is None or event.participant_sid not in current.participants):
            self.problem(position, f"{event.track_sid} published in {sid} by {event.participant_sid}, not connected")
        try:
            updated = self.rooms[sid] = room.apply(current, event)
        except _BROKEN as exc:  # e.g. a track of someone never connected: report it, keep auditing
            self.problem(position, f"{kind.__name__} does not apply to {sid}: {exc!r}")
            return False
        if kind is ev.ParticipantConnected and len(updated.participants) > updated.settings.max_participants:
            self.problem(
                position, f"{sid} has {len(updated.participants)} participants, cap {updated.settings.max_participants}"
            )
        elif kind is ev.RoomEnded and updated.participants:
            self.problem(position, f"{sid} ended with {len(updated.participants)} connected participants")
        if kind in _SUBSCRIPTION_EVENTS:
            self._dirty.add(sid)
        return True

    def _check_subscriptions(self, position: int) -> None:
        for sid in self._dirty:
            current = self.rooms[sid]
            try:
                expected = expected_subscriptions(current)
            except _BROKEN as exc:  # e.g. a track whose publisher is not in the room
                self.problem(position, f"{sid} subscriptions cannot be evaluated: {exc!r}")
                continue
            if current.subscriptions != expected:
                self.problem(position, f"{sid} subscriptions differ from its rules' evaluation")
        self._dirty.clear()

    def finish(self) -> list[str]:
        """Run the end-of-log checks; returns all problems."""
        self._check_subscriptions(-1)
        return self.problems


def compare_tables(
    expected: dict[str, dict[tuple[Any, ...], dict[str, Any]]],
    stored: dict[str, dict[tuple[Any, ...], dict[str, Any]]],
    limit: int = 50,
) -> list[str]:
    """Differences between the rebuilt read model and the stored one, table by table."""
    differences: list[str] = []
    for table, rows in expected.items():
        other = stored.get(table, {})
        if rows == other:  # the usual case, compared in C
            continue
        for key in sorted(rows.keys() - other.keys(), key=str)[:limit]:
            differences.append(f"{table}{list(key)}: missing from the stored read model")
        for key in sorted(other.keys() - rows.keys(), key=str)[:limit]:
            differences.append(f"{table}{list(key)}: in the stored read model but not in the log")
        for key in sorted(rows.keys() & other.keys(), key=str):
            if rows[key] != other[key]:
                changed = {c: (rows[key][c], other[key].get(c)) for c in rows[key] if rows[key][c] != other[key].get(c)}
                differences.append(f"{table}{list(key)}: log says / store says {changed}")
                if len(differences) >= limit:
                    return differences
    return differences
