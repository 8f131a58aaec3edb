"""Recent read-model rows, by table and primary key: what command replies are built from.

The engine projects every batch it commits into this cache (the same projections the
follower writes to the database), so a command's reply is ready as soon as its batch is
committed, without waiting for the follower or querying the database. A row this process has
not seen (a miss) is read from the database after the follower caught up. In a deployment of
several engines a reply shows its resource as of its own command.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from domain.projections import SCHEMA, Delete, Op, Row, Upsert, project

CACHED_TABLES = frozenset(
    {"rooms", "participants", "published_tracks", "subscribe_rules", "recording_rules", "recordings"}
)


class RecentRows:
    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[str, tuple[Any, ...]], Row] = OrderedDict()
        self._lock = threading.Lock()

    def apply_events(self, events: Sequence[Any], account_sid: str) -> None:
        """Project committed events into the cache (the engine's on_commit listener)."""
        ops: list[Op] = []
        for event in events:
            ops.extend(project(event, account_sid))
        self.apply(ops)

    def apply(self, ops: Sequence[Op]) -> None:
        with self._lock:
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
                    self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def get(self, table: str, *key: Any) -> Row | None:
        with self._lock:
            row = self._rows.get((table, key))
            return dict(row) if row is not None else None
