"""Rooms partitioned between engine processes: each room's commands are decided by one engine.

The queue group `openrooms-engine` hands a command to any engine. Two engines deciding one room
at the same moment lose version races against each other and re-run commands one at a time, so
an engine that receives a command for a room another live engine owns forwards it there, on that
engine's own subject `rooms.engine.<id>.cmd.<command>`, and relays the reply. Owners come from
rendezvous hashing of the room key (its SID, or the unique name it is addressed by) over the live
engines, which heartbeat in the JetStream KV bucket ENGINES (the media workers' registry). When
engines come or go, rooms move; a command that cannot be forwarded (the owner just died) is
decided here, which the version checks keep correct.
"""

from __future__ import annotations

import hashlib
import logging

import msgspec
import nats.errors
from nats.aio.client import Client

from media.worker.registry import WorkerRegistry, new_worker_id

logger = logging.getLogger(__name__)
BUCKET = "ENGINES"
FORWARD_TIMEOUT_S = 10.0


class _Target(msgspec.Struct):
    """The fields of any command that name its room (the rest is ignored when decoding)."""

    room_sid: str | None = None
    room: str | None = None
    unique_name: str | None = None


_TARGET = msgspec.json.Decoder(_Target)


def room_key(data: bytes) -> str | None:
    """The room a command's JSON body names (SID or unique name); None for none, or bad JSON."""
    try:
        target = _TARGET.decode(data)
    except msgspec.DecodeError:
        return None  # the command service answers it with the error
    return target.room_sid or target.room or target.unique_name


def _score(engine_id: str, key: str) -> bytes:
    return hashlib.blake2b(f"{engine_id}/{key}".encode(), digest_size=8).digest()


class EnginePeers:
    def __init__(self, nc: Client, engine_id: str | None = None) -> None:
        self.nc = nc
        self.engine_id = engine_id or new_worker_id()
        self.registry = WorkerRegistry(nc.jetstream(), self.engine_id, load=lambda: 0, bucket=BUCKET)
        self.forwarded = 0

    @property
    def subject(self) -> str:
        """Where other engines forward the commands of the rooms this engine owns."""
        return f"rooms.engine.{self.engine_id}.cmd.*"

    async def start(self) -> None:
        await self.registry.start()

    async def stop(self) -> None:
        await self.registry.stop()

    def owner(self, key: str) -> str:
        """The live engine that decides the room `key` (rendezvous hashing)."""
        return max(self.registry.alive_ids(), key=lambda engine_id: _score(engine_id, key))

    def owner_elsewhere(self, data: bytes) -> str | None:
        """The other live engine that owns the room the command body `data` names; None when
        this engine decides it (it owns the room, it is alone, or the command names none)."""
        if len(self.registry.alive_ids()) < 2:  # alone (or not registered yet): nobody to forward to
            return None
        key = room_key(data)
        if key is None:
            return None
        owner = self.owner(key)
        return None if owner == self.engine_id else owner

    async def forward(self, name: str, data: bytes) -> bytes | None:
        """The reply of the room's owner to command `name`; None when this engine decides it
        (it owns the room, the command names none, or the owner cannot be reached)."""
        owner = self.owner_elsewhere(data)
        if owner is None:
            return None
        try:
            reply = await self.nc.request(f"rooms.engine.{owner}.cmd.{name}", data, timeout=FORWARD_TIMEOUT_S)
        except (TimeoutError, nats.errors.Error) as exc:  # gone or stuck: decide here
            logger.warning("could not forward %s to engine %s (%s); deciding it here", name, owner, exc)
            return None
        self.forwarded += 1
        return reply.data
