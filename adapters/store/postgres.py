"""PostgreSQL event store with the command-results table.

Selected with `PERSISTENCE_MODULE=adapters.store.postgres`. A batch's command results are
inserted by `insert_events` in the same transaction as its events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import retry
from psycopg.errors import DuplicateObject
from psycopg.sql import SQL, Composed, Identifier

_SCHEMA_LOCK = 0x6F70656E726F6F6D
"""pg_advisory_xact_lock key ("openroom") held while an engine creates or checks its schema."""


class _SerialSchemaCreation:
    """`create_table()` in one transaction, under an advisory lock.

    eventsourcing runs CREATE OR REPLACE FUNCTION, CREATE TYPE and CREATE TABLE IF NOT EXISTS each
    time an application starts, in separate transactions; two engine processes starting at the
    same moment then fail with "tuple concurrently updated" (or a duplicate key in pg_type), even
    when the tables exist. Under the lock the second engine finds everything made.
    """

    datastore: PostgresDatastore
    sql_create_statements: list[Composed]

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in self.sql_create_statements:
                if "CREATE TYPE" in statement.as_string():
                    # No IF NOT EXISTS for types: a savepoint keeps the transaction usable.
                    with contextlib.suppress(DuplicateObject), conn.transaction():
                        curs.execute(statement, prepare=False)
                else:
                    curs.execute(statement, prepare=False)
        self.datastore.register_type_adapters()


class SnapshotPostgresRecorder(_SerialSchemaCreation, PostgresAggregateRecorder):
    """The snapshots table's recorder (eventsourcing's), with serialised schema creation."""


class CommandLogPostgresRecorder(_SerialSchemaCreation, PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.results_table = events_table_name.removesuffix("_events") + "_command_results"
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (command_id text PRIMARY KEY, result bytea NOT NULL)").format(
                Identifier(datastore.schema), Identifier(self.results_table)
            )
        )
        self._insert_results = SQL("INSERT INTO {0}.{1} VALUES (%s, %s)").format(
            Identifier(datastore.schema), Identifier(self.results_table)
        )
        self._select_many = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {0}.{1} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(Identifier(datastore.schema), Identifier(self.events_table_name))
        self._select_versions = SQL(
            "SELECT originator_id, MAX(originator_version) AS version FROM {0}.{1} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(Identifier(datastore.schema), Identifier(self.events_table_name))
        self._select_raw = SQL(
            "SELECT notification_id, topic, state FROM {0}.{1} WHERE notification_id > %s "
            "AND (CASE WHEN left(originator_id, 2) = 'RM' "
            "THEN strpos('0123456789abcdef', lower(right(originator_id, 1))) ELSE 0 END) %% %s = %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(Identifier(datastore.schema), Identifier(self.events_table_name))
        self._select_results = SQL("SELECT command_id, result FROM {0}.{1} WHERE command_id = ANY(%s)").format(
            Identifier(datastore.schema), Identifier(self.results_table)
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Events (table lock, NOTIFY, insert) then their command results, in one transaction.

        eventsourcing sends this transaction in psycopg pipeline mode, which hangs for ever (the
        client in `sync()`, the server in ClientRead) once a batch's events are a few hundred KB
        (psycopg 3.3.9 with its libpq 18; a 1,200-event batch hung 8 times in 8). A plain
        transaction costs one round trip per statement and never hangs. Results are inserted
        after the table lock, in command-id order, so two writers never wait on each other's
        result rows in opposite orders.
        """
        if self.datastore.enable_db_functions:
            inserted: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return inserted
        ids: Sequence[int] | None = None
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            if stored_events:
                self._insert_stored_events(curs, stored_events, **kwargs)
                ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            results = kwargs.get("command_results")
            if results:
                curs.executemany(self._insert_results, sorted(results))
        return ids

    def select_command_results(self, command_ids: Sequence[str]) -> dict[str, bytes]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_results, (list(command_ids),))
            return {row["command_id"]: bytes(row["result"]) for row in curs.fetchall()}

    def select_events_for(self, originator_ids: Sequence[str]) -> list[StoredEvent]:
        """Every event of the given aggregates, in one read (the engine's prefetch)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_many, (list(originator_ids),))
            return [
                StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                for r in curs.fetchall()
            ]

    def select_versions(self, originator_ids: Sequence[str]) -> dict[str, int]:
        """The latest version of each given aggregate that has events, in one read."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_versions, (list(originator_ids),))
            return {row["originator_id"]: int(row["version"]) for row in curs.fetchall()}

    def select_raw(self, start: int, limit: int, part: tuple[int, int] = (0, 1)) -> list[tuple[int, str, bytes]]:
        """(notification id, topic, state) after `start`, optionally one partition (k, n)."""
        k, n = part
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_raw, (start, n, k, limit))
            return [(r["notification_id"], r["topic"], bytes(r["state"])) for r in curs.fetchall()]


class Factory(PostgresFactory):
    aggregate_recorder_class = SnapshotPostgresRecorder
    application_recorder_class = CommandLogPostgresRecorder
