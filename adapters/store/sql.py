"""A small DB-API layer over sqlite3 and psycopg: one SQL text (with `?` marks) for both.

The read model and its queries are written once; PostgreSQL gets `%s` marks and real
BOOLEAN/BIGINT columns, SQLite gets a WAL file. Nothing else in the project builds SQL strings
for both engines.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from adapters.store import wal
from adapters.store.url import StoreConfig, parse_store_url


class Cursor(Protocol):
    rowcount: int

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class Database:
    """One connection per thread; `transaction()` commits or rolls back as a unit."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.kind = config.kind
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(parse_store_url(url))

    def _connect(self) -> Any:
        if self.kind == "sqlite":
            if self.config.sqlite_path is None:  # in memory, shared by this object's threads
                target, uri = f"file:openrooms-{id(self)}?mode=memory&cache=shared", True
            else:
                Path(self.config.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
                target, uri = str(self.config.sqlite_path), False
            conn = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            wal.tune(conn.execute, "normal")
            return conn
        import psycopg

        assert self.config.postgres_dsn is not None
        return psycopg.connect(self.config.postgres_dsn, autocommit=True)

    @property
    def connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._connections.append(conn)
        return conn

    def sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        """Counts a use of the connections, so `close()` never closes one under a running query."""
        with self._lock:
            if self._closed:
                raise DatabaseClosedError(f"the database {self.config.url} is closed")
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()

    @contextmanager
    def transaction(self) -> Iterator[_Cursor]:
        with self._in_use():
            yield from self._transaction()

    def _transaction(self) -> Iterator[_Cursor]:
        conn = self.connection
        cur = _Cursor(self, conn.cursor())
        if self.kind == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with conn.transaction():
                yield cur

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._in_use():
            cur = self.connection.cursor()
            cur.execute(self.sql(text), params)
            rows = cur.fetchall()
            cur.close()
            return [tuple(r) for r in rows]

    def checkpoint(self) -> None:
        """A SQLite file's background WAL checkpoint (adapters/store/wal.py); nothing for
        PostgreSQL or memory."""
        if self.kind == "sqlite" and self.config.sqlite_path is not None:
            wal.checkpoint(str(self.config.sqlite_path))

    def close(self, timeout: float = 30.0) -> None:
        """Close every connection once no query or transaction is running; later uses raise."""
        with self._lock:
            self._closed = True
            self._idle.wait_for(lambda: self._busy == 0, timeout)
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


class DatabaseClosedError(RuntimeError):
    pass


class _Cursor:
    def __init__(self, db: Database, cursor: Any) -> None:
        self._db = db
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(self._db.sql(sql), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(self._db.sql(sql), params)

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    def fetchone(self) -> Any:
        return self._cursor.fetchone()
