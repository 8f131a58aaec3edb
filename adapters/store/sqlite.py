"""SQLite event store (one file, WAL) with the command-results table.

Selected with `PERSISTENCE_MODULE=adapters.store.sqlite`. The results of a batch's commands are
written by `_insert_events` inside the same transaction as its events.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from eventsourcing.persistence import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from adapters.store import wal
from adapters.store.url import SQLITE_SYNC_MODES

_CHUNK = 500
SQLITE_PARTITION = (
    "(CASE WHEN substr({column}, 1, 2) = 'RM' THEN instr('0123456789abcdef', lower(substr({column}, -1))) ELSE 0 END)"
)
"""The partition number expression of adapters.partition.partition_of, in SQLite."""


def _use_wal(db_name: str, timeout: float) -> None:
    """Put the file in WAL mode before any pooled connection opens it.

    eventsourcing's pool switches a new file to WAL on its first connection. When engine
    processes open a new file at the same moment, SQLite refuses the loser's switch at once with
    "database is locked" (its busy timeout does not apply to it) and that engine fails to start
    (1 start in 40 with four processes). Here the switch is retried until it took, by us or by
    another process.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        conn = sqlite3.connect(db_name, uri=True, timeout=timeout, isolation_level=None)
        try:
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            if mode.lower() == "wal":
                return
            failure: str = f"journal mode is {mode!r}"
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            failure = str(exc)
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"could not switch {db_name} to WAL: {failure}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class _ImmediateSchemaCreation:
    """`create_table()` in a BEGIN IMMEDIATE transaction.

    eventsourcing's deferred BEGIN reads the schema first and upgrades to a write lock on the
    first CREATE; if another process created a table in between, SQLite fails at once with
    "database is locked" instead of waiting. Taking the write lock first makes it wait.
    """

    datastore: SQLiteDatastore
    create_table_statements: list[str]

    def create_table(self) -> None:
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for statement in self.create_table_statements:
                    cursor.execute(statement)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()


def _persistence_error(exc: sqlite3.Error) -> PersistenceError:
    """eventsourcing's exception for a sqlite3 one (as its own transactions raise them)."""
    for sqlite_error, ours in (
        (sqlite3.IntegrityError, IntegrityError),
        (sqlite3.OperationalError, OperationalError),
        (sqlite3.DatabaseError, DatabaseError),
    ):
        if isinstance(exc, sqlite_error):
            return ours(exc)
    return PersistenceError(exc)


class SnapshotSQLiteRecorder(_ImmediateSchemaCreation, SQLiteAggregateRecorder):
    """The snapshots table's recorder (eventsourcing's), with waiting schema creation."""


class CommandLogSQLiteRecorder(_ImmediateSchemaCreation, SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS command_results "
            "(command_id TEXT PRIMARY KEY, result BLOB NOT NULL) WITHOUT ROWID",
        ]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The batch's events and command results in one transaction, on the pool's writer
        connection (on a pooled one for an in-memory database); SQLite's errors as
        eventsourcing's (an `IntegrityError` is a lost race or a repeated command id)."""
        pool = self.datastore.pool
        if not isinstance(pool, _SyncedPool) or pool.is_sqlite_memory_mode:
            return super().insert_events(stored_events, **kwargs)
        with pool.writing() as conn:
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN")
                ids = self._insert_events(cursor, stored_events, **kwargs)
                cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.rollback()
                raise _persistence_error(exc) from exc
            finally:
                cursor.close()
        return ids

    def _insert_events(
        self, c: sqlite3.Cursor | SQLiteCursor, stored_events: Sequence[Any], **kwargs: Any
    ) -> Sequence[int] | None:
        """One statement for the batch's events, one for its results (`c`: a sqlite3 cursor or
        eventsourcing's). Rowids inside one write transaction are consecutive (max(rowid)+1
        each, nothing deleted), so the notification ids are the last n."""
        ids: list[int] = []
        if len(stored_events) == 1:
            s = stored_events[0]
            c.execute(self.insert_events_statement, (s.originator_id, s.originator_version, s.topic, s.state))
            assert c.lastrowid is not None  # set by a successful INSERT
            ids = [c.lastrowid]
        elif stored_events:
            c.executemany(
                self.insert_events_statement,
                [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events],
            )
            c.execute("SELECT last_insert_rowid()")
            last = int(c.fetchone()[0])
            ids = list(range(last - len(stored_events) + 1, last + 1))
        results = kwargs.get("command_results")
        if results:
            c.executemany("INSERT INTO command_results VALUES (?, ?)", results)
        return ids

    def _select_in(self, sql: str, ids: Sequence[str]) -> list[Any]:
        """The rows of `sql` for `ids` (its `{marks}` becomes the IN list), in chunks, in one read."""
        rows: list[Any] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                c.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)
                rows.extend(c.fetchall())
        return rows

    def select_command_results(self, command_ids: Sequence[str]) -> dict[str, bytes]:
        sql = "SELECT command_id, result FROM command_results WHERE command_id IN ({marks})"
        return {row[0]: bytes(row[1]) for row in self._select_in(sql, command_ids)}

    def select_events_for(self, originator_ids: Sequence[str]) -> list[StoredEvent]:
        """Every event of the given aggregates, in one read (the engine's prefetch)."""
        sql = (
            f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name} "
            "WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version"
        )
        return [StoredEvent(row[0], row[1], row[2], row[3]) for row in self._select_in(sql, originator_ids)]

    def select_versions(self, originator_ids: Sequence[str]) -> dict[str, int]:
        """The latest version of each given aggregate that has events, in one read."""
        sql = (
            f"SELECT originator_id, MAX(originator_version) FROM {self.events_table_name} "
            "WHERE originator_id IN ({marks}) GROUP BY originator_id"
        )
        return {row[0]: int(row[1]) for row in self._select_in(sql, originator_ids)}

    def checkpoint(self) -> None:
        """The log's background WAL checkpoint (adapters/store/wal.py)."""
        pool = self.datastore.pool
        if not pool.is_sqlite_memory_mode:
            wal.checkpoint(pool.db_name)

    def select_raw(self, start: int, limit: int, part: tuple[int, int] = (0, 1)) -> list[tuple[int, str, bytes]]:
        """(notification id, topic, state) after `start`: the audit's fast path.

        `part` = (k, n) keeps only the aggregates of partition k of n (see adapters.partition).
        """
        k, n = part
        where = "" if n == 1 else f" AND {SQLITE_PARTITION.format(column='originator_id')} % {n} = {k}"
        with self.datastore.get_connection(commit=False) as conn:
            cursor = conn.cursor().sqlite_cursor  # plain tuples: sqlite3.Row costs a third of the scan
            cursor.row_factory = None
            cursor.execute(
                f"SELECT rowid, topic, state FROM {self.events_table_name} "
                f"WHERE rowid > ?{where} ORDER BY rowid LIMIT ?",
                (start, limit),
            )
            rows: list[tuple[int, str, bytes]] = cursor.fetchall()
            cursor.close()
            return rows


class _SyncedPool(SQLiteConnectionPool):
    """eventsourcing's pool; each connection at the chosen `PRAGMA synchronous` (a per-connection
    setting; SQLite's default is FULL) and with the longer automatic checkpoint. It also keeps the
    log's writer connection (`writing`), and closes it with the others."""

    synchronous: str
    _writer: sqlite3.Connection | None
    _writer_lock: threading.Lock

    def adopt(self, synchronous: str) -> None:
        """Become this class (no connection made yet), with the log's sync mode."""
        self.__class__ = _SyncedPool
        self.synchronous = synchronous
        self._writer = None
        self._writer_lock = threading.Lock()

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        wal.tune(connection.cursor().execute, self.synchronous)
        return connection

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The one connection the log's writes use, held by one writer at a time. Not taken
        from the pool: the pool's get and put cost a quarter of a one-event write."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = conn = sqlite3.connect(
                    self.db_name, uri=True, check_same_thread=False, isolation_level=None,
                    timeout=self.lock_timeout or 5,
                )  # fmt: skip
                wal.tune(conn.execute, self.synchronous)
            yield self._writer

    def close(self) -> None:
        super().close()
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


class Factory(SQLiteFactory):
    aggregate_recorder_class = SnapshotSQLiteRecorder
    application_recorder_class = CommandLogSQLiteRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        # Set by adapters/store/url.py; an environment written by hand gets SQLite's own default.
        synchronous = self.env.get("SQLITE_SYNCHRONOUS", "full")
        if synchronous not in SQLITE_SYNC_MODES:
            raise OSError(f"SQLITE_SYNCHRONOUS must be one of {', '.join(SQLITE_SYNC_MODES)}, not {synchronous!r}")
        _SyncedPool.adopt(cast(_SyncedPool, pool), synchronous)
        if not pool.is_sqlite_memory_mode:
            _use_wal(pool.db_name, float(pool.lock_timeout or 5))
