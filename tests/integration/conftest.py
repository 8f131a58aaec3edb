"""Integration helpers: reading a store the way an auditor would (`log` fixture), and a
nats-server per test module (`nats_url`).

The stores themselves (`sqlite_store_url`, `postgres_store_url`) and `open_engine` are in
tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import Notification

from adapters.nats.server import EmbeddedNatsServer
from domain.engine import Engine, project
from domain.room import Room


class StoreLog:
    """The whole log, decoded, and a room rebuilt from it, as a fresh reader sees them."""

    @staticmethod
    def notifications(engine: Engine) -> list[Notification]:
        """Every notification in the log, in notification-id order."""
        out: list[Notification] = []
        start = 1
        while page := engine.app.recorder.select_notifications(start=start, limit=1000):
            out.extend(page)
            start = page[-1].id + 1
        return out

    @classmethod
    def events(cls, engine: Engine) -> list[Any]:
        """Every domain event in the log, in log order."""
        return [engine.app.mapper.to_domain_event(n) for n in cls.notifications(engine)]

    @staticmethod
    def room(engine: Engine, room_sid: str) -> Room:
        """The room as the engine loads it from the store (latest snapshot, then later events)."""
        room = engine.app.repository.get(room_sid, projector_func=project)
        assert isinstance(room, Room)
        return room

    @staticmethod
    def room_from_events_only(engine: Engine, room_sid: str) -> Room:
        """The room folded from every one of its events, ignoring snapshots."""
        stored = engine.app.recorder.select_events(room_sid)
        room = project(None, (engine.app.mapper.to_domain_event(s) for s in stored))
        assert isinstance(room, Room)
        return room


@pytest.fixture
def log() -> type[StoreLog]:
    return StoreLog


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nats-server with JetStream on a free loopback port, for this module's tests."""
    server = EmbeddedNatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
