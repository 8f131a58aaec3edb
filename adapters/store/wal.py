"""The WAL of the SQLite files (the log, the read model): how it is checkpointed.

SQLite's default is to checkpoint in the committing connection once the WAL passes 1,000 pages:
the commit then copies the WAL's pages into the database file and syncs both files. Under load
every tenth batch waited 5-70 ms for that (a batch of 30 one-event commands writes ~100 pages:
its rooms' index entries and its random command ids land on scattered pages). So the engine
service copies the pages in the background (`keep_checkpointed`: a PASSIVE checkpoint, which
holds no writer up, every `CHECKPOINT_SECONDS` on a worker thread while commits come).

A background checkpoint does not restart the WAL from its beginning: only a writer that finds
every frame copied and no reader on an older snapshot does, and while commits keep coming the
relay and the read-model follower are always reading. So the WAL grows until a commit finds it
past `AUTOCHECKPOINT_PAGES` and checkpoints it itself; by then the background has copied all but
the last tenth of a second. Measured (tests/bench/nats load, 2026-11-24 11:50): at 1,000
commands/s that commit takes ~15 ms, once every ~3.5 s (two commits in 10 s over 5 ms); at
saturation (5,100/s) up to 40 ms, against 50-70 ms every tenth batch before. A RESTART checkpoint
from the background, which holds writers up until the readers move on, was tried: no better at
1,000/s or at saturation (p99 4.4 / 40 ms against 4.0 / 35 ms), and it is one mechanism more.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence

AUTOCHECKPOINT_PAGES = 16_000
"""A commit that finds the WAL this long (64 MB) checkpoints it itself, and the next one starts
the WAL afresh."""


def tune(execute: Callable[[str], object], synchronous: str) -> None:
    """Set a new connection's sync mode and its automatic checkpoint with its `execute` (they are
    per-connection settings; outside a transaction, where SQLite ignores them)."""
    execute(f"PRAGMA synchronous={synchronous}")
    execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")


CHECKPOINT_SECONDS = 0.1
"""How often `keep_checkpointed` checkpoints while commits keep coming."""


def checkpoint(path: str) -> None:
    """Copy the WAL's committed pages into the SQLite file at `path` without holding writers up.
    Run off the event loop: it copies pages and syncs."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
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
