"""The read model in SQL, kept by a tracked follower of the event log.

Tables are those of domain.projections.SCHEMA. The follower reads notifications after its
stored position, turns them into row operations with the pure projections, and writes the
rows and the new position in one transaction. The position update is a compare-and-set, so
two followers on one read model never apply an event twice: exactly once, resumed after a
restart from the stored position.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

from adapters.store.sql import Database, _Cursor
from domain.codec import decode
from domain.engine import RoomsApplication
from domain.events import Event
from domain.projections import SCHEMA, Delete, Op, Row, Update, Upsert, project

logger = logging.getLogger(__name__)

TRACKING_NAME: Final = "read_model"
BOOLEAN_COLUMNS: Final = frozenset({"record_participants_on_connect", "audio_only", "large_room", "ad_hoc", "enabled"})
INTEGER_COLUMNS: Final = frozenset(
    {
        "date_created",
        "date_updated",
        "end_time",
        "start_time",
        "duration",
        "deadline",
        "unused_deadline",
        "empty_deadline",
        "end_deadline",
        "max_participants",
        "max_participant_duration",
        "max_concurrent_published_tracks",
        "empty_room_timeout",
        "unused_room_timeout",
        "size",
        "offset",
        "error_code",
    }
)
INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS rm_rooms_status ON rm_rooms (status, date_created)",
    "CREATE INDEX IF NOT EXISTS rm_rooms_name ON rm_rooms (unique_name, status)",
    "CREATE INDEX IF NOT EXISTS rm_participants_room ON rm_participants (room_sid, status)",
    "CREATE INDEX IF NOT EXISTS rm_published_participant ON rm_published_tracks (participant_sid)",
    "CREATE INDEX IF NOT EXISTS rm_subscribed_track ON rm_subscribed_tracks (sid)",
    "CREATE INDEX IF NOT EXISTS rm_recordings_room ON rm_recordings (room_sid, date_created)",
    # The scheduler's deadline queries: the earliest and the due ones, without reading every room.
    "CREATE INDEX IF NOT EXISTS rm_rooms_unused_deadline ON rm_rooms (status, unused_deadline)",
    "CREATE INDEX IF NOT EXISTS rm_rooms_empty_deadline ON rm_rooms (status, empty_deadline)",
    "CREATE INDEX IF NOT EXISTS rm_rooms_end_deadline ON rm_rooms (status, end_deadline)",
    "CREATE INDEX IF NOT EXISTS rm_participants_deadline ON rm_participants (status, deadline)",
)


def table_name(table: str) -> str:
    return f"rm_{table}"


def _quote(column: str) -> str:
    return f'"{column}"'


def _column_type(db: Database, column: str) -> str:
    if column in BOOLEAN_COLUMNS:
        return "BOOLEAN"
    if column in INTEGER_COLUMNS:
        return "BIGINT" if db.kind != "sqlite" else "INTEGER"
    return "TEXT"


class ReadModel:
    """The SQL read model: schema, tracked batch writes, and raw row access."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.create_tables()

    def create_tables(self) -> None:
        with self.db.transaction() as cur:
            for name, table in SCHEMA.items():
                columns = ", ".join(f"{_quote(c)} {_column_type(self.db, c)}" for c in table.columns)
                key = ", ".join(_quote(c) for c in table.key)
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table_name(name)} ({columns}, PRIMARY KEY ({key}))")
            cur.execute("CREATE TABLE IF NOT EXISTS rm_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)")
            for statement in INDEXES:
                cur.execute(statement)
            cur.execute(
                "INSERT INTO rm_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                (TRACKING_NAME,),
            )

    def position(self, name: str = TRACKING_NAME) -> int:
        """How far the follower (or another tracked follower of the log, such as the relay) got."""
        rows = self.db.query("SELECT position FROM rm_tracking WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def advance(self, name: str, start: int, end: int) -> bool:
        """Move a follower's position from `start` to `end`; False if it was not at `start`."""
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO rm_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,))
            cur.execute("UPDATE rm_tracking SET position = ? WHERE name = ? AND position = ?", (end, name, start))
            return cur.rowcount == 1

    def apply(self, start: int, end: int, ops: Sequence[Op]) -> bool:
        """Apply `ops` and move the position from `start` to `end` atomically.

        False (and nothing written) when the position is no longer `start`: another follower
        got there first.
        """
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE rm_tracking SET position = ? WHERE name = ? AND position = ?",
                (end, TRACKING_NAME, start),
            )
            if cur.rowcount != 1:
                return False
            for op in ops:
                _execute(cur, op)
        return True

    def rows(self, table: str, part: tuple[int, int] = (0, 1)) -> Iterator[Row]:
        """Every row of a table, or only those of rooms in partition k of n (adapters.partition)."""
        columns = SCHEMA[table].columns
        select = ", ".join(_quote(c) for c in columns)
        k, n = part
        where = ""
        if n > 1:
            column = "sid" if table == "rooms" else "room_sid"
            digit = (
                f"instr('0123456789abcdef', lower(substr({column}, -1)))"
                if self.db.kind == "sqlite"
                else f"strpos('0123456789abcdef', lower(right({column}, 1)))"
            )
            where = f" WHERE {digit} % {n} = {k}"
        for values in self.db.query(f"SELECT {select} FROM {table_name(table)}{where}"):
            yield normalize(dict(zip(columns, values, strict=True)))


def normalize(row: Row) -> Row:
    """Booleans come back from SQLite as integers."""
    for column in BOOLEAN_COLUMNS & row.keys():
        if row[column] is not None:
            row[column] = bool(row[column])
    return row


def _execute(cur: _Cursor, op: Op) -> None:
    if isinstance(op, Upsert):
        cur.execute(_upsert_sql(op.table, tuple(op.row)), list(op.row.values()))
    elif isinstance(op, Update):
        cur.execute(_update_sql(op.table, tuple(op.fields), tuple(op.where)), [*op.fields.values(), *op.where.values()])
    elif isinstance(op, Delete):
        cur.execute(_delete_sql(op.table, tuple(op.where)), list(op.where.values()))


# The statements are built once per shape: joining a room's 27 quoted column names for every
# row took about as long as SQLite's insert.


@functools.lru_cache(maxsize=1024)
def _upsert_sql(table: str, columns: tuple[str, ...]) -> str:
    key = SCHEMA[table].key
    updates = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table_name(table)} ({', '.join(_quote(c) for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({', '.join(_quote(c) for c in key)}) DO UPDATE SET {updates}"
    )


@functools.lru_cache(maxsize=1024)
def _update_sql(table: str, fields: tuple[str, ...], where: tuple[str, ...]) -> str:
    sets = ", ".join(f"{_quote(c)} = ?" for c in fields)
    return f"UPDATE {table_name(table)} SET {sets} WHERE {' AND '.join(f'{_quote(c)} = ?' for c in where)}"


@functools.lru_cache(maxsize=1024)
def _delete_sql(table: str, where: tuple[str, ...]) -> str:
    return f"DELETE FROM {table_name(table)} WHERE {' AND '.join(f'{_quote(c)} = ?' for c in where)}"


FOLLOW_STEP = 200
"""Events a follower applies per pass after commits (`step`), on an event loop: a few ms at most.
Not on a worker thread: a thread running Python beside the event loop made every socket send and
SQLite call of the loop wait to get the interpreter lock back (a 1-event commit took 4x its CPU
time at 1,000 commands/s; docs/benchmarks.md, NATS plane, 2026-11-24)."""


FOLLOWED_POLL_S = 0.005
"""How often `wait_until_followed` looks at the read model's position (one indexed read)."""
FOLLOWED_TIMEOUT_S = 2.0
"""How long `wait_until_followed` waits for the other follower (paced at 25 ms) before doing
its work."""


class Follower:
    """Follows the log into the read model, in batches, from the stored position."""

    def __init__(self, app: RoomsApplication, read_model: ReadModel, account_sid: str, batch_size: int = 2000) -> None:
        self.app = app
        self.read_model = read_model
        self.account_sid = account_sid
        self.batch_size = batch_size
        self.listeners: list[Any] = []

    def catch_up(self) -> int:
        """Apply everything committed so far; returns the position reached."""
        while True:
            position, more = self.step()
            if not more:
                return position

    def step(self, limit: int | None = None) -> tuple[int, bool]:
        """Apply the next batch of at most `limit` events (default `batch_size`); the position
        reached, and whether the log may have more after it."""
        limit = limit or self.batch_size
        with self.read_model.lock:
            start = self.read_model.position()
            notifications = self.app.recorder.select_notifications(start=start, limit=limit, inclusive_of_start=False)
            if not notifications:
                return start, False
            events: list[Event] = [decode(n.topic, n.state) for n in notifications]
            ops: list[Op] = []
            for event in events:
                ops.extend(project(event, self.account_sid))
            end = notifications[-1].id
            if not self.read_model.apply(start, end, ops):
                logger.info("read model moved on from %d by another follower; re-reading", start)
                return start, True
            for listener in self.listeners:
                listener(events)
            return end, len(notifications) == limit

    def is_behind(self) -> bool:
        return (self.app.recorder.max_notification_id() or 0) > self.read_model.position()

    def refresh(self) -> None:
        """Read-your-writes: make the read model include every committed event."""
        if self.is_behind():
            self.catch_up()

    def wait_until_followed(self, timeout: float = FOLLOWED_TIMEOUT_S) -> None:
        """Read-your-writes where another process follows the log into this read model (the
        relay process under `openrooms serve`): wait, blocking this thread, until the read model
        includes every event committed before the call; after `timeout` (that process stopped
        or lost its lease), catch up here. Not on an event loop.

        Catching up here instead would write the same rows twice and hold the interpreter lock
        for the whole pass: the scheduler's refresh every 0.5 s stalled the engine's event loop
        by ~12 ms at 1,000 commands/s (docs/benchmarks.md, NATS plane, 2026-11-24 14:35)."""
        target = self.app.recorder.max_notification_id() or 0
        give_up = time.monotonic() + timeout
        while self.read_model.position() < target:
            if time.monotonic() >= give_up:
                logger.info("read model not followed to %d within %.1f s; catching up here", target, timeout)
                self.catch_up()
                return
            time.sleep(FOLLOWED_POLL_S)
