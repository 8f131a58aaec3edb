"""Which media worker holds a room: room name → worker id in the JetStream KV bucket MEDIA_ROOMS.

The first connect to a room places it on the least loaded live worker (`create`: of two fronts
placing the same room at once, one wins and the other reads its choice). A placement on a worker
that is no longer alive is replaced (`update` against the revision read, so again one wins). The
worker releases the room when its last session there ends (`delete` against the revision read,
only if the room is still its own).

Keys are the SHA-256 of the room name (names may hold any character; KV keys may not).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from media.session.errors import SessionError
from media.worker.registry import WorkerRegistry, key_value

logger = logging.getLogger(__name__)
BUCKET = "MEDIA_ROOMS"
ATTEMPTS = 5


def room_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class RoomPlacement:
    def __init__(self, js: JetStreamContext, registry: WorkerRegistry) -> None:
        self._js = js
        self._registry = registry
        self._kv: KeyValue | None = None
        self._releases: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._kv = await key_value(self._js, BUCKET)

    async def worker_for(self, name: str) -> str:
        """The worker that holds room `name`, placing it first if no live worker does."""
        assert self._kv is not None
        key = room_key(name)
        for _attempt in range(ATTEMPTS):
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                chosen = self._registry.least_loaded()
                try:
                    await self._kv.create(key, chosen.encode())
                except KeyWrongLastSequenceError:
                    continue  # placed meanwhile by another front: read its choice
                logger.info("room %r placed on media worker %s", name, chosen)
                return chosen
            held = (entry.value or b"").decode()
            if held and self._registry.alive(held):
                return held
            chosen = self._registry.least_loaded()
            try:
                await self._kv.update(key, chosen.encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            logger.warning("room %r: media worker %s is gone; placed on %s", name, held or "-", chosen)
            return chosen
        raise SessionError(f"room {name!r}: its placement kept changing over {ATTEMPTS} attempts", code=53000)

    def release_later(self, name: str) -> None:
        """`release(name)` in the background (called when a room's last local session ends)."""
        task = asyncio.create_task(self.release(name), name=f"release room {name!r}")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def release(self, name: str) -> None:
        """This worker's last session of room `name` ended: free the placement if it is still ours."""
        if self._kv is None:
            return
        try:
            entry = await self._kv.get(room_key(name))
            if (entry.value or b"").decode() == self._registry.worker_id:
                await self._kv.delete(room_key(name), last=entry.revision)
        except (KeyNotFoundError, KeyWrongLastSequenceError):
            pass  # gone or re-placed meanwhile
        except Exception as exc:  # NATS gone at shutdown: the next front replaces a dead placement
            logger.info("room %r: releasing its placement failed: %s", name, exc)
