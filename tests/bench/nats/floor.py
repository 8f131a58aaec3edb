"""The NATS benchmark's second baseline: the least a durable command service on this stack does.

    python tests/bench/nats/floor.py NATS_URL SQLITE_PATH

A nats-py responder in a queue group on `bench.floor`, with the engine's storage and nothing of
its domain: the requests that arrived together (one drain task, no task per request) are decoded
with msgspec into the benchmark's command, written in one SQLite transaction as an event row
(eventsourcing's application table: rowid, primary key (originator_id, originator_version)) and
a command-result row (the log's `command_results`), WAL at `synchronous=NORMAL`, checkpointed in
the background as the engine's log is (adapters/store/wal.py); then each gets a short JSON
reply. No decision, no state, no relay, no read model, no metrics. Whatever this reaches on the
machine bounds what the engine can reach with the same client library and store.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import threading

import msgspec
import nats
from nats.aio.msg import Msg

from adapters.store import wal

SUBJECT = "bench.floor"
QUEUE = "bench-floor"
TABLES = (
    "CREATE TABLE IF NOT EXISTS stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
    "state BLOB, PRIMARY KEY (originator_id, originator_version))",
    "CREATE TABLE IF NOT EXISTS command_results (command_id TEXT PRIMARY KEY, result BLOB NOT NULL) WITHOUT ROWID",
)


class SetTrackEnabled(msgspec.Struct, forbid_unknown_fields=True):
    command_id: str
    room_sid: str
    participant_sid: str
    track_sid: str
    enabled: bool


_DECODE = msgspec.json.Decoder(SetTrackEnabled).decode
_ENCODE = msgspec.json.Encoder().encode


def open_log(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    wal.tune(conn.execute, "normal")
    for statement in TABLES:
        conn.execute(statement)
    return conn


def stop_requested() -> asyncio.Event:
    """Set on SIGTERM, or when stdin closes (the benchmark is gone, however it ended): how the
    benchmark's responder processes know to stop."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)

    def orphaned() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stopping.set)

    threading.Thread(target=orphaned, daemon=True).start()
    return stopping


async def serve(url: str, path: str) -> None:
    conn = open_log(path)
    versions: dict[str, int] = {}
    written = 0
    incoming: list[Msg] = []
    arrived = asyncio.Event()

    async def receive(msg: Msg) -> None:
        incoming.append(msg)
        arrived.set()

    async def drain() -> None:
        nonlocal written
        while True:
            await arrived.wait()
            arrived.clear()
            batch = incoming[:]
            del incoming[:]
            commands = [_DECODE(msg.data) for msg in batch]
            events, results, replies = [], [], []
            for command in commands:
                version = versions[command.track_sid] = versions.get(command.track_sid, 0) + 1
                state = _ENCODE(command)
                events.append((command.track_sid, version, "TrackEnabledSet", state))
                reply = _ENCODE({"ok": True, "result": {"sid": command.track_sid, "enabled": command.enabled}})
                results.append((command.command_id, reply))
                replies.append(reply)
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", events)
            conn.executemany("INSERT INTO command_results VALUES (?, ?)", results)
            conn.execute("COMMIT")
            written += len(events)
            for msg, reply in zip(batch, replies, strict=True):
                await msg.respond(reply)

    nc = await nats.connect(url)
    stopping = stop_requested()
    tasks = [
        asyncio.create_task(drain()),
        asyncio.create_task(wal.keep_checkpointed([lambda: wal.checkpoint(path)], lambda: written)),
    ]
    await nc.subscribe(SUBJECT, queue=QUEUE, cb=receive)
    await nc.flush()
    print("ready", flush=True)
    await stopping.wait()
    await nc.drain()
    for task in tasks:
        task.cancel()
    conn.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
