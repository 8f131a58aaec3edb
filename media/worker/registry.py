"""The live media workers and their load, from heartbeats in the JetStream KV bucket MEDIA_WORKERS.

Each worker puts `{"load": <sessions>}` under its id every `heartbeat_s`; every process watches
the bucket and counts a worker alive while its last heartbeat is younger than `3 × heartbeat_s`
(measured on this process's clock, when the update arrived). A worker that stops deletes its key;
one that dies just goes quiet. The bucket's entries expire after a minute, so dead workers do not
pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from adapters.tasks import cancel_and_wait

logger = logging.getLogger(__name__)
BUCKET = "MEDIA_WORKERS"
HEARTBEAT_S = 2.0


def new_worker_id() -> str:
    """8 hex digits: the prefix of this worker's session ids."""
    return secrets.token_hex(4)


async def key_value(js: JetStreamContext, bucket: str, ttl_s: float | None = None) -> KeyValue:
    """The bucket, created on first use (every process may be the first)."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s))


class WorkerRegistry:
    def __init__(
        self,
        js: JetStreamContext,
        worker_id: str,
        load: Callable[[], int],
        *,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        bucket: str = BUCKET,
    ) -> None:
        self.worker_id = worker_id
        self.bucket = bucket
        self._js = js
        self._load = load
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        self._seen: dict[str, tuple[int, float]] = {}
        """worker id → (load, when its heartbeat arrived here)."""
        self._kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._kv = await key_value(self._js, self.bucket, ttl_s=60.0)
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._beating(), name="media worker heartbeat"),
            asyncio.create_task(self._watching(), name="media worker watch"),
        ]
        async with asyncio.timeout(10):
            await self._ready.wait()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._kv is not None:
            with contextlib.suppress(Exception):  # NATS may be gone already at shutdown
                await self._kv.delete(self.worker_id)

    def alive(self, worker_id: str) -> bool:
        if worker_id == self.worker_id:
            return True
        seen = self._seen.get(worker_id)
        return seen is not None and self._clock() - seen[1] < 3 * self._heartbeat_s

    def alive_ids(self) -> list[str]:
        """Every live worker, this one included."""
        return [self.worker_id, *(wid for wid in self._seen if wid != self.worker_id and self.alive(wid))]

    def least_loaded(self) -> str:
        """The live worker with the fewest sessions (this one on a tie)."""
        loads = {wid: load for wid, (load, _at) in self._seen.items() if self.alive(wid)}
        loads[self.worker_id] = self._load()
        return min(loads, key=lambda wid: (loads[wid], wid != self.worker_id, wid))

    async def _beat(self) -> None:
        assert self._kv is not None
        await self._kv.put(self.worker_id, json.dumps({"load": self._load()}).encode())

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)  # the heartbeat period itself
            try:
                await self._beat()
            except Exception as exc:  # NATS reconnecting: the next beat tries again
                logger.warning("%s member %s: heartbeat failed: %s", self.bucket, self.worker_id, exc)

    async def _watching(self) -> None:
        assert self._kv is not None
        watcher = await self._kv.watchall()
        async for entry in watcher:
            if entry is None:  # the initial values are all delivered
                self._ready.set()
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self._seen.pop(entry.key, None)
                continue
            try:
                load = int(json.loads(entry.value).get("load", 0))
            except (ValueError, AttributeError):
                continue
            self._seen[entry.key] = (load, self._clock())
