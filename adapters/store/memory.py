"""In-memory event store (eventsourcing POPO) with stored command results, for unit tests.

Selected with `PERSISTENCE_MODULE=adapters.store.memory` (store URL `memory://`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory


class MemoryRecorder(POPOApplicationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self._results: dict[str, bytes] = {}

    def _insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        results: list[tuple[str, bytes]] = kwargs.get("command_results") or []
        with self._database_lock:
            if any(command_id in self._results for command_id, _ in results):
                raise IntegrityError("command result already recorded")
            ids = super()._insert_events(stored_events, **kwargs)
            self._results.update(results)
            return ids

    def select_command_results(self, command_ids: Sequence[str]) -> dict[str, bytes]:
        with self._database_lock:
            return {k: self._results[k] for k in command_ids if k in self._results}

    def select_events_for(self, originator_ids: Sequence[str]) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        for originator_id in originator_ids:
            out.extend(self.select_events(originator_id))
        return out

    def select_versions(self, originator_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for originator_id in originator_ids:
            last = self.select_events(originator_id, desc=True, limit=1)
            if last:
                found[originator_id] = last[0].originator_version
        return found

    def select_raw(self, start: int, limit: int, part: tuple[int, int] = (0, 1)) -> list[tuple[int, str, bytes]]:
        from adapters.partition import partition_of

        k, n = part
        rows: list[tuple[int, str, bytes]] = []
        while len(rows) < limit:
            chunk = self.select_notifications(start, limit, inclusive_of_start=False)
            if not chunk:
                break
            rows.extend((x.id, x.topic, x.state) for x in chunk if partition_of(str(x.originator_id), n) == k)
            start = chunk[-1].id
        return rows[:limit]


class Factory(POPOFactory):
    def application_recorder(self) -> ApplicationRecorder:
        return MemoryRecorder()
