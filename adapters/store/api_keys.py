"""API keys (`SK…` SID + secret) kept in the read-model database, beside the read model.

Besides the primary key from the credentials, an operator can create more keys (one per app or
environment), list them and revoke them; each signs access tokens and authenticates REST calls.

The secrets are deliberately NOT events: the event log is relayed to NATS (JetStream stream
ROOMS_EVENTS) and replayed for audit, and a secret must never travel or be kept there. They live
in this table only, in clear (verifying an HS256 token needs the secret itself), so the database
is as sensitive as `credentials.json`. A revoked key keeps its row (`revoked` = when) and stops
signing and authenticating.
"""

from __future__ import annotations

import builtins
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from adapters.store.sql import Database, DatabaseClosedError
from domain.ids import API_KEY_PREFIX


class ApiKeyStoreError(RuntimeError):
    """The key table could not be read or written (database unreachable, broken file, closed)."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"API keys in {url}: {detail}")


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never its secret."""

    sid: str
    friendly_name: str
    date_created: int
    """Microseconds since the epoch."""
    revoked: int | None = None
    """When it was revoked (microseconds since the epoch), or None while it is active."""

    @property
    def active(self) -> bool:
        return self.revoked is None


class ApiKeys:
    """The `api_keys` table; the table is created on first use of a database."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock
        self._errors = _driver_errors(db)
        with self._translated(), db.transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (sid TEXT PRIMARY KEY, secret TEXT NOT NULL, "
                "friendly_name TEXT NOT NULL, date_created BIGINT NOT NULL, revoked BIGINT NULL)"
            )

    def create(self, friendly_name: str = "") -> tuple[str, str]:
        """A new active key: its SID and its secret (shown once: `list()` never returns it)."""
        sid, secret = API_KEY_PREFIX + secrets.token_hex(16), secrets.token_urlsafe(24)
        with self._translated(), self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO api_keys (sid, secret, friendly_name, date_created) VALUES (?, ?, ?, ?)",
                (sid, secret, friendly_name, self._micros()),
            )
        return sid, secret

    def list(self) -> builtins.list[ApiKey]:
        """Every key, active and revoked, oldest first."""
        with self._translated():
            rows = self.db.query(
                "SELECT sid, friendly_name, date_created, revoked FROM api_keys ORDER BY date_created, sid"
            )
        return [
            ApiKey(sid, name, int(created), None if revoked is None else int(revoked))
            for sid, name, created, revoked in rows
        ]

    def revoke(self, sid: str) -> bool:
        """Revoke an active key; False when there is no active key `sid` (unknown or already revoked)."""
        with self._translated(), self.db.transaction() as cur:
            cur.execute("UPDATE api_keys SET revoked = ? WHERE sid = ? AND revoked IS NULL", (self._micros(), sid))
            return cur.rowcount == 1

    def secret(self, sid: str) -> str | None:
        """The secret of an active key; None for an unknown or revoked one."""
        with self._translated():
            rows = self.db.query("SELECT secret FROM api_keys WHERE sid = ? AND revoked IS NULL", (sid,))
        return str(rows[0][0]) if rows else None

    def close(self) -> None:
        """Close the database (after a query in flight); later calls raise ApiKeyStoreError."""
        self.db.close()

    def _micros(self) -> int:
        return int(self._clock() * 1_000_000)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise ApiKeyStoreError(self.db.config.url, str(exc).strip() or type(exc).__name__) from exc


def _driver_errors(db: Database) -> tuple[type[Exception], ...]:
    if db.kind == "sqlite":
        return (sqlite3.Error, DatabaseClosedError)
    import psycopg  # the PostgreSQL driver is imported only when a PostgreSQL store is used

    return (psycopg.Error, DatabaseClosedError)
