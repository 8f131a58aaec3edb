"""Room placement across media workers, on a real nats-server (JetStream KV buckets).

Two workers register (heartbeats) and place rooms: a room goes to the least loaded live worker,
every front agrees on it, the last session's release frees it, and a worker that stops beating
loses its rooms to the live one at the next connect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from media.worker.placement import RoomPlacement, room_key
from media.worker.registry import WorkerRegistry

HEARTBEAT_S = 0.2
IDS = ("aaaa0001", "bbbb0002")


class Worker:
    def __init__(self, nc: Any, worker_id: str) -> None:
        self.load = 0
        self.registry = WorkerRegistry(nc.jetstream(), worker_id, lambda: self.load, heartbeat_s=HEARTBEAT_S)
        self.placement = RoomPlacement(nc.jetstream(), self.registry)

    async def start(self) -> Worker:
        await self.registry.start()
        await self.placement.start()
        return self


@pytest.fixture
async def workers(nats_url: str) -> AsyncIterator[list[Worker]]:
    connections = [await nats.connect(nats_url) for _ in range(2)]
    started = [await Worker(nc, worker_id).start() for nc, worker_id in zip(connections, IDS, strict=True)]
    yield started
    for worker in started:
        with contextlib.suppress(Exception):
            await worker.registry.stop()
    for nc in connections:
        await nc.close()


async def until(condition: Any) -> None:
    """Poll a condition that heartbeats make true, up to 10 s."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(HEARTBEAT_S / 4)


async def test_a_room_goes_to_the_least_loaded_worker_and_every_front_agrees(workers: list[Worker]) -> None:
    a, b = workers
    a.load = 5
    await until(lambda: b.registry.least_loaded() == "bbbb0002" and a.registry.least_loaded() == "bbbb0002")

    placed = await a.placement.worker_for("standup")

    assert placed == "bbbb0002"
    assert await b.placement.worker_for("standup") == "bbbb0002"
    a.load = 0
    await until(lambda: a.registry.least_loaded() == "aaaa0001")
    assert await a.placement.worker_for("standup") == "bbbb0002", "a placed room stays where it is"


async def test_a_released_room_is_placed_afresh(workers: list[Worker]) -> None:
    a, b = workers
    assert await a.placement.worker_for("retro") == "aaaa0001"

    await a.placement.release("retro")

    b.load, a.load = 0, 3
    await until(lambda: b.registry.least_loaded() == "bbbb0002")
    assert await b.placement.worker_for("retro") == "bbbb0002"


async def test_a_release_by_a_worker_that_no_longer_holds_the_room_changes_nothing(workers: list[Worker]) -> None:
    a, b = workers
    assert await a.placement.worker_for("planning") == "aaaa0001"

    await b.placement.release("planning")

    assert await b.placement.worker_for("planning") == "aaaa0001"


async def test_rooms_of_a_worker_that_stopped_beating_move_to_a_live_one(workers: list[Worker]) -> None:
    a, b = workers
    assert await a.placement.worker_for("sync") == "aaaa0001"
    assert room_key("sync") != "sync"

    for task in a.registry._tasks:  # the worker dies: no more heartbeats, no goodbye
        task.cancel()
    await until(lambda: not b.registry.alive("aaaa0001"))

    assert await b.placement.worker_for("sync") == "bbbb0002"
