"""The read-model rows this process's follower wrote last, by table and primary key.

A command's reply is the resource it produced; right after the follower applied the batch,
the rows are in hand, so replies read them here instead of querying the database again. Only
rows the follower wrote itself are kept: when another process's follower moved the read model
on, the cache starts afresh, and a miss falls back to the database. Replies may so show a
resource as of their own command, never older.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from domain.projections import SCHEMA, Delete, Op, Row, Upsert

CACHED_TABLES = frozenset(
    {"rooms", "participants", "published_tracks", "subscribe_rules", "recording_rules", "recordings"}
)


class RecentRows:
    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[str, tuple[Any, ...]], Row] = OrderedDict()
        self._lock = threading.Lock()
        self.synced_to = 0
        """The read-model position up to which this cache saw every write."""

    def apply(self, start: int, end: int, ops: Sequence[Op]) -> None:
        """Record the rows of a batch the follower applied from `start` to `end`."""
        with self._lock:
            if start != self.synced_to:
                self._rows.clear()
            for op in ops:
                if op.table not in CACHED_TABLES:
                    continue
                key_columns = SCHEMA[op.table].key
                if isinstance(op, Upsert):
                    self._rows[(op.table, tuple(op.row[c] for c in key_columns))] = dict(op.row)
                    continue
                if tuple(op.where) != key_columns:
                    self._rows.clear()  # an update by other columns: cannot tell which rows
                    continue
                key = (op.table, tuple(op.where[c] for c in key_columns))
                if isinstance(op, Delete):
                    self._rows.pop(key, None)
                elif key in self._rows:
                    self._rows[key].update(op.fields)
            self.synced_to = end
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def moved_on(self, position: int) -> None:
        """The read model is at `position`: forget everything if others wrote since."""
        with self._lock:
            if position != self.synced_to:
                self._rows.clear()
                self.synced_to = position

    def get(self, table: str, *key: Any) -> Row | None:
        with self._lock:
            row = self._rows.get((table, key))
            return dict(row) if row is not None else None
