"""SQLite event store (one file, WAL) with the command-results table.

Selected with `PERSISTENCE_MODULE=adapters.store.sqlite`. The results of a batch's commands are
written by `_insert_events` inside the same transaction as its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteFactory

_CHUNK = 500
SQLITE_PARTITION = (
    "(CASE WHEN substr({column}, 1, 2) = 'RM' "
    "THEN instr('0123456789abcdef', lower(substr({column}, -1))) ELSE 0 END)"
)
"""The partition number expression of adapters.partition.partition_of, in SQLite."""


class CommandLogSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS command_results "
            "(command_id TEXT PRIMARY KEY, result BLOB NOT NULL) WITHOUT ROWID",
        ]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[Any], **kwargs: Any) -> Sequence[int] | None:
        """One executemany for the batch. Rowids inside one write transaction are consecutive
        (max(rowid)+1 each, nothing deleted), so the notification ids are the last n."""
        ids: list[int] = []
        if stored_events:
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

    def select_command_results(self, command_ids: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(command_ids), _CHUNK):
                chunk = command_ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                c.execute(f"SELECT command_id, result FROM command_results WHERE command_id IN ({marks})", chunk)
                found.update((row[0], bytes(row[1])) for row in c.fetchall())
        return found


    def select_events_for(self, originator_ids: Sequence[str]) -> list[StoredEvent]:
        """Every event of the given aggregates, in one read (the engine's prefetch)."""
        found: list[StoredEvent] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(originator_ids), _CHUNK):
                chunk = originator_ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name} "
                    f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
                    chunk,
                )
                found.extend(StoredEvent(row[0], row[1], row[2], row[3]) for row in c.fetchall())
        return found


    def select_raw(self, start: int, limit: int, part: tuple[int, int] = (0, 1)) -> list[tuple[int, str, bytes]]:
        """(notification id, topic, state) after `start`: the audit's fast path.

        `part` = (k, n) keeps only the aggregates of partition k of n (see adapters.partition).
        """
        k, n = part
        where = "" if n == 1 else f" AND {SQLITE_PARTITION.format(column='originator_id')} % {n} = {k}"
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, topic, state FROM {self.events_table_name} WHERE rowid > ?{where} ORDER BY rowid LIMIT ?",
                (start, limit),
            )
            return [(int(row[0]), str(row[1]), bytes(row[2])) for row in c.fetchall()]


class Factory(SQLiteFactory):
    application_recorder_class = CommandLogSQLiteRecorder
