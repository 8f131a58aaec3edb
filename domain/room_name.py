"""The room-name index: one aggregate per unique name, claimed by at most one in-progress room.

Its id is derived from the name (`name:<unique name>`), so two creators of the same name, in
one process or in several engines, both append to the same aggregate and the store's version
check lets exactly one of them win. It is saved in the same transaction as the room it names;
a completed room releases its name, which frees it for a new room.
"""

from __future__ import annotations

from typing import Final

import msgspec

from domain import events as ev


class RoomName(msgspec.Struct, kw_only=True):
    id: str
    version: int = 0
    room_sid: str | None = None


def empty(aggregate_id: str) -> RoomName:
    """A name nobody has claimed yet."""
    return RoomName(id=aggregate_id)


def apply(entry: RoomName | None, event: ev.Event) -> RoomName:
    target = entry if entry is not None else RoomName(id=event.originator_id)
    if isinstance(event, ev.RoomNameClaimed):
        target.room_sid = event.room_sid
    elif isinstance(event, ev.RoomNameReleased):
        target.room_sid = None
    target.version = event.originator_version
    return target


NAME_EVENT_TYPES: Final = frozenset({ev.RoomNameClaimed, ev.RoomNameReleased})
