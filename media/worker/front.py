"""The `/signaling` handler of a media process: serve here, or bridge to the worker holding the room.

The first message decides (an `ice` request before it is answered here, by any worker):

    connect   the room is named by `connect.name`, else by the token's video grant (read unverified:
              the worker verifies it) → `RoomPlacement.worker_for(name)`; no name at all: here
    sync      the session id starts with its worker's id → that worker, if it is alive; else here
              (where it is unknown: 53000, and the SDK gives up as it would after a server loss)
    other     here

Here means this process's `SignalingService.handle`, called directly (no NATS hop); elsewhere
means `bridge()` to that worker. The rest of the conversation follows the first message.
"""

from __future__ import annotations

import logging

import jwt
from nats.aio.client import Client

from media.session.signaling_service import SignalingService
from media.signaling.connection import Connection, Replayed
from media.signaling.messages import ClientMessage, Connect, IceRequest, Sync
from media.worker.bridge import bridge
from media.worker.placement import RoomPlacement
from media.worker.registry import WorkerRegistry

logger = logging.getLogger(__name__)
WORKER_ID_LENGTH = 8


class SignalingFront:
    def __init__(self, nc: Client, local: SignalingService, registry: WorkerRegistry, placement: RoomPlacement) -> None:
        self._nc = nc
        self._local = local
        self._registry = registry
        self._placement = placement

    async def handle(self, conn: Connection) -> None:
        async for message in conn:
            if isinstance(message, IceRequest):
                await conn.send(await self._local.iced(message))
                continue
            worker = await self._worker_for(message)
            replayed = Replayed(conn, [message])
            if worker == self._registry.worker_id:
                await self._local.handle(replayed)
            else:
                await bridge(self._nc, replayed, worker)
            return

    async def _worker_for(self, message: ClientMessage) -> str:
        if isinstance(message, Connect):
            name = message.name or _granted_room(message.token)
            if name:
                return await self._placement.worker_for(name)
        elif isinstance(message, Sync):
            worker = str(message.session)[2 : 2 + WORKER_ID_LENGTH]
            if self._registry.alive(worker):
                return worker
        return self._registry.worker_id


def _granted_room(token: str) -> str | None:
    """The room of the token's video grant, read without verifying it (only to route the connect)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    room = ((claims.get("grants") or {}).get("video") or {}).get("room")
    return room if isinstance(room, str) and room else None
