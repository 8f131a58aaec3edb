"""One process's media plane: its signaling sessions and rooms, registered as a worker, behind a front.

plane = MediaPlane(nc, service)            # service: a SignalingService made with plane.worker_id
await plane.start()                        # heartbeat, placement bucket, bridged connections
app.add_routes([signaling_route(plane.handle)])
...
await plane.close()                        # sockets closed with 1001, PCs closed, worker gone
"""

from __future__ import annotations

from nats.aio.client import Client

from media.session.signaling_service import SignalingService
from media.session.stats import MediaStats
from media.signaling.connection import Connection
from media.worker.bridge import BridgeServer
from media.worker.front import SignalingFront
from media.worker.placement import RoomPlacement
from media.worker.registry import WorkerRegistry


class MediaPlane:
    def __init__(self, nc: Client, service: SignalingService, worker_id: str) -> None:
        self.worker_id = worker_id
        self.service = service
        self.registry = WorkerRegistry(nc.jetstream(), worker_id, load=lambda: service.load)
        self.placement = RoomPlacement(nc.jetstream(), self.registry)
        service.on_room_closed = self.placement.release_later
        self._bridges = BridgeServer(nc, worker_id, service.handle)
        self._front = SignalingFront(nc, service, self.registry, self.placement)

    async def start(self) -> None:
        await self.registry.start()
        await self.placement.start()
        await self._bridges.start()

    async def handle(self, conn: Connection) -> None:
        await self._front.handle(conn)

    def stats(self) -> MediaStats:
        return self.service.stats()

    async def close(self) -> None:
        await self._bridges.stop()
        await self.service.close()
        await self.registry.stop()
