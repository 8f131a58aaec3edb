"""The callback follower: the log, from its stored position, into the outbox.

It reads notifications after the position `webhooks` in `rm_tracking`, keeps the state of the
rooms it meets (domain.room.apply), maps each event with the pure domain.callbacks, and writes
the batch's callbacks together with the new position (exactly once). A room it holds no state
for (after a restart, or evicted from its cache) is loaded from the application's repository at
the version just before the event (latest snapshot, then events); the room's next
SequenceNumber comes from the outbox. Rooms without a status callback are remembered as silent
and cost nothing more; index and account aggregates are skipped.

Another follower on the same database may move the position first: the compare-and-set then
fails, nothing is written, the cached rooms are dropped (they may be ahead) and the batch is
read again from the new position.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Final

from adapters.webhooks.outbox import Outbox
from domain import room as rooms
from domain.callbacks import Callback, callback_for
from domain.codec import decode
from domain.engine import RoomsApplication, project
from domain.events import Event, RoomCreated

logger = logging.getLogger(__name__)
_SILENT: Final = object()
"""Cache marker of a room without a status callback (settings never change)."""


class _Tracked:
    __slots__ = ("next_sequence", "room")

    def __init__(self, room: rooms.Room | None, next_sequence: int) -> None:
        self.room = room
        self.next_sequence = next_sequence


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


class CallbackFollower:
    def __init__(
        self,
        app: RoomsApplication,
        outbox: Outbox,
        clock: Callable[[], datetime],
        *,
        batch_size: int = 500,
        cache_size: int = 10_000,
    ) -> None:
        self.app = app
        self.outbox = outbox
        self.clock = clock
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.appended = 0
        """Callbacks this follower put in the outbox (for tests and metrics)."""
        self._rooms: OrderedDict[str, _Tracked | object] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = False

    def stop(self) -> None:
        """Finish the batch in hand and return from `catch_up` (which runs on a thread)."""
        self._stopping = True

    def catch_up(self) -> int:
        """Put the callbacks of everything committed so far in the outbox; the position reached."""
        with self._lock:
            while True:
                start = self.outbox.position()
                if self._stopping:
                    return start
                notifications = self.app.recorder.select_notifications(
                    start=start, limit=self.batch_size, inclusive_of_start=False
                )
                if not notifications:
                    return start
                sequences: dict[str, int] = {}
                try:
                    silent = self._rooms.get
                    callbacks = [
                        c
                        for n in notifications
                        if silent(str(n.originator_id)) is not _SILENT  # no callback: not even decoded
                        and (c := self._advance(decode(n.topic, n.state), sequences)) is not None
                    ]
                    written = self.outbox.append(
                        start, notifications[-1].id, callbacks, sequences, _micros(self.clock())
                    )
                except BaseException:
                    self._rooms.clear()  # states may be ahead of the stored position
                    raise
                if written:
                    self.appended += len(callbacks)
                else:
                    self._rooms.clear()
                    logger.info("webhook position moved on from %d by another follower; re-reading", start)

    def _advance(self, event: Event, sequences: dict[str, int]) -> Callback | None:
        if type(event) not in rooms.ROOM_EVENT_TYPES:
            return None  # room-name index and account events
        sid = event.originator_id
        tracked = self._rooms.get(sid)
        if tracked is _SILENT:
            return None
        if not isinstance(tracked, _Tracked) or not _fits(tracked.room, event):
            tracked = self._load(event, sequences)
            if tracked is None:
                self._remember(sid, _SILENT)
                return None
        self._remember(sid, tracked)
        tracked.room = rooms.apply(tracked.room, event)
        callback = callback_for(event, tracked.room, tracked.next_sequence)
        if callback is not None:
            tracked.next_sequence += 1
            sequences[sid] = tracked.next_sequence
        return callback

    def _load(self, event: Event, sequences: dict[str, int]) -> _Tracked | None:
        """The room just before `event` and its next SequenceNumber; None if it has no callback."""
        sid = event.originator_id
        before: rooms.Room | None = None
        if isinstance(event, RoomCreated):
            callback = event.settings.status_callback
        else:
            before = self.app.repository.get(sid, version=event.originator_version - 1, projector_func=project)
            assert isinstance(before, rooms.Room)
            callback = before.settings.status_callback
            logger.debug("loaded room %s at version %d for its callbacks", sid, before.version)
        if not callback:
            return None
        next_sequence = sequences[sid] if sid in sequences else self.outbox.next_sequence(sid)
        return _Tracked(before, next_sequence)

    def _remember(self, sid: str, tracked: _Tracked | object) -> None:
        self._rooms[sid] = tracked
        self._rooms.move_to_end(sid)
        while len(self._rooms) > self.cache_size:
            self._rooms.popitem(last=False)


def _fits(room: rooms.Room | None, event: Event) -> bool:
    """Whether `room` is the state the event applies to (the version just before it)."""
    if room is None:
        return isinstance(event, RoomCreated)
    return room.version == event.originator_version - 1
