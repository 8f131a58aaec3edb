"""The callback outbox: SQL tables shared by every process on one database.

* `webhook_outbox`: callbacks not yet delivered, one row each, keyed by (room, SequenceNumber).
  The follower inserts them in the same transaction as it moves its position in `rm_tracking`
  (a compare-and-set, like the read model's), so each callback enters the outbox exactly once.
  A row leaves when it was delivered or given up.
* `webhook_sequences`: the next SequenceNumber of each room that has a callback.

Delivery claims only the head of a room (its lowest SequenceNumber), by leasing the row to one
deliverer until a time; a claim is a compare-and-set on the lease, so two processes never both
hold a row. A room's next callback becomes the head only once the previous one left: per-room
order. Times are integer microseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from adapters.store.sql import Database
from domain.callbacks import Callback

TRACKING_NAME: Final = "webhooks"
_SCHEMA_LOCK: Final = 0x7765626F6F6B73  # pg_advisory_xact_lock key ("webooks") while creating tables
_PARAMS: Final = msgspec.json.Decoder(list[tuple[str, str]])
_ENCODER: Final = msgspec.json.Encoder()
_COLUMNS: Final = (
    "room_sid, seq, version, event, url, method, params, created_at, attempts, first_attempt_at, next_attempt_at"
)


@dataclass(frozen=True)
class Entry:
    """A callback in the outbox, as a deliverer claimed it."""

    room_sid: str
    sequence: int
    version: int
    event: str
    url: str
    method: str
    params: tuple[tuple[str, str], ...]
    created_at: int
    attempts: int
    first_attempt_at: int | None

    @property
    def token(self) -> str:
        return f"{self.room_sid}-{self.version}"


def _entry(row: Sequence[object]) -> Entry:
    room_sid, seq, version, event, url, method, params, created, attempts, first, _ = row
    return Entry(
        room_sid=str(room_sid),
        sequence=int(str(seq)),
        version=int(str(version)),
        event=str(event),
        url=str(url),
        method=str(method),
        params=tuple(_PARAMS.decode(str(params))),
        created_at=int(str(created)),
        attempts=int(str(attempts)),
        first_attempt_at=None if first is None else int(str(first)),
    )


def _key(c: Callback) -> tuple[str, int, int]:
    return c.room_sid, c.sequence, c.version


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_tables(self, initial_position: int) -> None:
        """Create the tables; a follower seen for the first time starts at `initial_position`."""
        big = "BIGINT" if self.db.kind != "sqlite" else "INTEGER"
        with self.db.transaction() as cur:
            if self.db.kind != "sqlite":
                cur.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS rm_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)")
            cur.execute(
                "CREATE TABLE IF NOT EXISTS webhook_outbox ("
                f"room_sid TEXT NOT NULL, seq {big} NOT NULL, version {big} NOT NULL, event TEXT NOT NULL, "
                "url TEXT NOT NULL, method TEXT NOT NULL, params TEXT NOT NULL, "
                f"created_at {big} NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, first_attempt_at {big}, "
                f"next_attempt_at {big} NOT NULL, lease_owner TEXT, lease_until {big}, last_error TEXT, "
                "PRIMARY KEY (room_sid, seq))"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS webhook_sequences (room_sid TEXT PRIMARY KEY, next_seq {big} NOT NULL)"
            )
            cur.execute(
                "INSERT INTO rm_tracking (name, position) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (TRACKING_NAME, initial_position),
            )

    # --- the follower's side ---------------------------------------------------------------

    def position(self) -> int:
        rows = self.db.query("SELECT position FROM rm_tracking WHERE name = ?", (TRACKING_NAME,))
        return int(rows[0][0]) if rows else 0

    def next_sequence(self, room_sid: str) -> int:
        rows = self.db.query("SELECT next_seq FROM webhook_sequences WHERE room_sid = ?", (room_sid,))
        return int(rows[0][0]) if rows else 0

    def append(
        self, start: int, end: int, callbacks: Sequence[Callback], sequences: Mapping[str, int], now: int
    ) -> bool:
        """Insert `callbacks` and move the position from `start` to `end`, atomically.

        False, and nothing written, when the position is no longer `start` (another follower
        got there first). `sequences` are the rooms' next SequenceNumbers after the batch.
        """
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE rm_tracking SET position = ? WHERE name = ? AND position = ?", (end, TRACKING_NAME, start)
            )
            if cur.rowcount != 1:
                return False
            if callbacks:
                cur.executemany(
                    f"INSERT INTO webhook_outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, 0)",
                    [(*_key(c), c.event, c.url, c.method, _ENCODER.encode(c.params).decode(), now) for c in callbacks],
                )
            if sequences:
                cur.executemany(
                    "INSERT INTO webhook_sequences (room_sid, next_seq) VALUES (?, ?) "
                    "ON CONFLICT (room_sid) DO UPDATE SET next_seq = excluded.next_seq",
                    sorted(sequences.items()),
                )
        return True

    # --- the deliverer's side --------------------------------------------------------------

    def claim(self, owner: str, now: int, until: int, limit: int, busy: Sequence[str] = ()) -> list[Entry]:
        """Lease up to `limit` due room heads to `owner` until `until`, oldest due first.

        `busy` rooms (the caller's own requests in flight) are left alone.
        """
        if limit <= 0:
            return []
        exclude = f" AND o.room_sid NOT IN ({', '.join('?' * len(busy))})" if busy else ""
        claimed: list[Entry] = []
        with self.db.transaction() as cur:
            cur.execute(
                f"SELECT {', '.join('o.' + c for c in _COLUMNS.split(', '))} FROM webhook_outbox o "
                "JOIN (SELECT room_sid, MIN(seq) AS head FROM webhook_outbox GROUP BY room_sid) h "
                "ON o.room_sid = h.room_sid AND o.seq = h.head "
                f"WHERE o.next_attempt_at <= ? AND (o.lease_until IS NULL OR o.lease_until <= ?){exclude} "
                "ORDER BY o.next_attempt_at, o.room_sid LIMIT ?",
                (now, now, *busy, limit),
            )
            heads = sorted((_entry(row) for row in cur.fetchall()), key=lambda e: e.room_sid)  # one lock order
            for entry in heads:
                cur.execute(
                    "UPDATE webhook_outbox SET lease_owner = ?, lease_until = ? WHERE room_sid = ? AND seq = ? "
                    "AND (lease_until IS NULL OR lease_until <= ?)",
                    (owner, until, entry.room_sid, entry.sequence, now),
                )
                if cur.rowcount == 1:
                    claimed.append(entry)
        return claimed

    def next_due(self, busy: Sequence[str] = ()) -> int | None:
        """When the earliest room head other than `busy` may be claimed (due and not leased)."""
        exclude = f" AND o.room_sid NOT IN ({', '.join('?' * len(busy))})" if busy else ""
        rows = self.db.query(
            "SELECT MIN(CASE WHEN o.lease_until IS NOT NULL AND o.lease_until > o.next_attempt_at "
            "THEN o.lease_until ELSE o.next_attempt_at END) FROM webhook_outbox o "
            "JOIN (SELECT room_sid, MIN(seq) AS head FROM webhook_outbox GROUP BY room_sid) h "
            f"ON o.room_sid = h.room_sid AND o.seq = h.head WHERE 1 = 1{exclude}",
            tuple(busy),
        )
        value = rows[0][0] if rows else None
        return None if value is None else int(value)

    def remove(self, entry: Entry) -> None:
        """The callback was delivered (or given up): the room's next one becomes its head."""
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM webhook_outbox WHERE room_sid = ? AND seq = ?", (entry.room_sid, entry.sequence))

    def retry_later(self, entry: Entry, owner: str, *, first_attempt_at: int, next_attempt_at: int, error: str) -> None:
        """Record a failed attempt and release the lease; the row is due again at `next_attempt_at`."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, first_attempt_at = ?, next_attempt_at = ?, "
                "last_error = ?, lease_owner = NULL, lease_until = NULL "
                "WHERE room_sid = ? AND seq = ? AND lease_owner = ?",
                (first_attempt_at, next_attempt_at, error[:1000], entry.room_sid, entry.sequence, owner),
            )

    def release(self, owner: str) -> int:
        """Give back every lease `owner` holds (it stops): others may send those rows at once."""
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE webhook_outbox SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", (owner,)
            )
            return cur.rowcount

    # --- observation -----------------------------------------------------------------------

    def pending(self) -> int:
        """How many callbacks wait in the outbox (in flight included)."""
        rows = self.db.query("SELECT COUNT(*) FROM webhook_outbox")
        return int(rows[0][0])

    def pending_rooms(self) -> dict[str, list[tuple[int, str, int]]]:
        """Per room, its waiting callbacks as (SequenceNumber, event, attempts), in order."""
        out: dict[str, list[tuple[int, str, int]]] = {}
        for room_sid, seq, event, attempts in self.db.query(
            "SELECT room_sid, seq, event, attempts FROM webhook_outbox ORDER BY room_sid, seq"
        ):
            out.setdefault(str(room_sid), []).append((int(seq), str(event), int(attempts)))
        return out
