"""The WAL of the SQLite files (the log, the read model): how it is checkpointed.

SQLite's default is to checkpoint in the committing connection once the WAL passes 1,000 pages:
the commit then copies the WAL into the database file and syncs both. At a few thousand
commands a second every tenth batch waited for that (docs/benchmarks.md, NATS plane,
2026-11-24). So the engine service checkpoints in the background (`checkpoint`, every 0.5 s on
a worker thread while it commits) and the connections checkpoint themselves only past
`AUTOCHECKPOINT_PAGES`, a safety net for a process that does not.

A checkpoint does not shorten the WAL by itself: the next writer starts it afresh only if it finds
every frame copied and no reader on an older snapshot. While commits keep coming (the relay and
the read-model follower read the log meanwhile), a checkpoint running beside them never finds
that moment, and the WAL grew until the commits checkpointed themselves (at saturation a batch of
30 commands adds ~100 pages, so 10,000 pages in half a second; each such commit took 50-70 ms).
So when a complete PASSIVE checkpoint finds the WAL past `RESTART_FRAMES`, `checkpoint` asks
for a RESTART, which holds writers up while it copies what came meanwhile and waits (at most
`RESTART_WAIT_MS`) for older readers; the next writer then starts at the WAL's beginning.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence

AUTOCHECKPOINT_PAGES = 40_000
"""A commit that finds the WAL this long (160 MB) checkpoints it itself, in the committer's time."""

RESTART_FRAMES = 16_000
"""A WAL at least this long (64 MB: the writes outpaced the checkpoints) is restarted after a
complete checkpoint. A restart holds writers up for ~10-20 ms however long the WAL, so fewer and
longer is better: at 1,000 commands/s the round trip's p99 was 11 ms restarting past 4,000
frames, 6.4 ms past 8,000 and 4.4-5.1 ms past 16,000; at saturation 4.5k commands/s with a p99 of
94-98 ms, then 5.0k / 45 ms and 5.3k / 39 ms (tests/bench/nats, 2026-11-24 11:20)."""

RESTART_WAIT_MS = 20
"""How long a restart waits for readers of older snapshots (and holds writers up) at most."""

CHECKPOINT_SECONDS = 0.5
"""How often `keep_checkpointed` checkpoints while commits keep coming."""


def checkpoint(path: str) -> None:
    """Checkpoint the WAL of the SQLite file at `path` without holding writers up, then restart
    it if it grew long (module docstring). Run off the event loop: it copies pages and syncs."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and frames >= RESTART_FRAMES and copied == frames:
            conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            conn.execute("PRAGMA wal_checkpoint(RESTART)")  # busy: readers stayed; next time
    finally:
        conn.close()


async def keep_checkpointed(checkpoints: Sequence[Callable[[], None]], position: Callable[[], int]) -> None:
    """Run `checkpoints` (each on a worker thread) every `CHECKPOINT_SECONDS` while `position`
    (the writer's last log position) moves; until cancelled."""
    checkpointed = position()
    while True:
        await asyncio.sleep(CHECKPOINT_SECONDS)
        if position() != checkpointed:
            checkpointed = position()
            for checkpoint in checkpoints:
                await asyncio.to_thread(checkpoint)
