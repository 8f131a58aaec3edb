"""TCMP timing and negotiation, deterministic: a fake socket and a clock that only moves when the
connection sleeps. What is asserted is the frames the client would receive, with their times.

The same connection over a real aiohttp socket is in tests/integration/test_tcmp_connection.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import WSMessage, WSMsgType

from media.signaling.errors import ConnectionClosedError
from media.signaling.messages import Connect, Disconnected
from media.signaling.tcmp import (
    CLOSE_HEARTBEATS_MISSED,
    TcmpConfig,
    TcmpConnection,
    negotiate_timeout,
)

CONFIG = TcmpConfig(min_timeout_ms=500, max_timeout_ms=5000, heartbeat_margin_ms=200, missed_heartbeats=3)
HELLO_BODY = {
    "type": "connect",
    "version": 2,
    "name": "r1",
    "token": "eyJ.token",
    "participant": {"revision": 1, "tracks": []},
    "peer_connections": [],
}


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class FakeTime:
    """A clock that moves only when the connection sleeps, running scheduled client actions on the way."""

    def __init__(self) -> None:
        self.now = 0.0
        self.schedule: list[tuple[float, Callable[[], Any]]] = []

    def clock(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], Any]) -> None:
        self.schedule.append((when, action))
        self.schedule.sort(key=lambda item: item[0])

    async def sleep(self, delay: float) -> None:
        end = self.now + max(delay, 0.0)
        while self.schedule and self.schedule[0][0] <= end:
            self.now, action = self.schedule.pop(0)
            action()
            await settle()
        self.now = end
        await asyncio.sleep(0)


class FakeSocket:
    """The server end of a WebSocket: frames the client sends go in, frames the server sends are kept."""

    def __init__(self, time: FakeTime) -> None:
        self._time = time
        self._incoming: asyncio.Queue[WSMessage] = asyncio.Queue()
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.closed_with: list[tuple[float, int]] = []

    def client_sends(self, frame: dict[str, Any]) -> None:
        self._incoming.put_nowait(WSMessage(WSMsgType.TEXT, json.dumps(frame), None))

    async def receive(self) -> WSMessage:
        return await self._incoming.get()

    async def send_str(self, data: str) -> None:
        self.sent.append((self._time.now, json.loads(data)))

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed_with.append((round(self._time.now, 6), code))
        self._incoming.put_nowait(WSMessage(WSMsgType.CLOSED, None, None))
        return True

    def frames(self, kind: str) -> list[float]:
        return [round(at, 6) for at, frame in self.sent if frame["type"] == kind]


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def socket(time: FakeTime) -> FakeSocket:
    return FakeSocket(time)


async def open_connection(socket: FakeSocket, time: FakeTime, requested_timeout: int) -> TcmpConnection:
    conn = TcmpConnection(socket, config=CONFIG, clock=time.clock, sleep=time.sleep)
    socket.client_sends({"type": "hello", "id": "h1", "version": 2, "timeout": requested_timeout, "body": HELLO_BODY})
    await conn.accept(await conn.read_hello())
    return conn


@pytest.mark.parametrize(
    ("requested", "negotiated"),
    [(5000, 5000), (1500, 1500), (9000, 5000), (100, 500), (None, 5000), (0, 5000), (-3, 5000), (float("nan"), 5000)],
)
def test_the_negotiated_timeout_is_the_requested_one_within_the_servers_bounds(
    requested: float | None, negotiated: int
) -> None:
    assert negotiate_timeout(requested, CONFIG) == negotiated


def test_a_config_whose_minimum_exceeds_its_maximum_is_refused() -> None:
    with pytest.raises(ValueError):
        TcmpConfig(min_timeout_ms=6000, max_timeout_ms=5000)


async def test_welcome_is_the_first_frame_and_the_hello_body_the_first_message(
    socket: FakeSocket, time: FakeTime
) -> None:
    conn = await open_connection(socket, time, requested_timeout=1000)

    message = await conn.receive()

    assert socket.sent[0] == (0.0, {"type": "welcome", "negotiatedTimeout": 1000})
    assert isinstance(message, Connect) and message.token == "eyJ.token"
    assert conn.hello is not None and conn.hello.id == "h1"
    await conn.close()


async def test_a_silent_server_heartbeats_every_negotiated_timeout_minus_the_margin_until_the_watchdog_closes(
    socket: FakeSocket, time: FakeTime
) -> None:
    conn = await open_connection(socket, time, requested_timeout=1000)

    async with asyncio.timeout(5):
        await conn.wait_closed()

    assert socket.frames("heartbeat") == [0.8, 1.6, 2.4]
    assert socket.closed_with == [(3.0, CLOSE_HEARTBEATS_MISSED)]
    await conn.receive()  # the hello body is still delivered
    with pytest.raises(ConnectionClosedError) as closed:
        await conn.receive()
    assert (closed.value.close_code, closed.value.code) == (CLOSE_HEARTBEATS_MISSED, 53002)


async def test_a_heartbeat_from_the_client_postpones_the_watchdog(socket: FakeSocket, time: FakeTime) -> None:
    time.at(2.5, lambda: socket.client_sends({"type": "heartbeat"}))
    conn = await open_connection(socket, time, requested_timeout=1000)

    async with asyncio.timeout(5):
        await conn.wait_closed()

    assert socket.closed_with == [(5.5, CLOSE_HEARTBEATS_MISSED)]


async def test_a_message_the_server_sends_counts_as_its_heartbeat(socket: FakeSocket, time: FakeTime) -> None:
    conn = await open_connection(socket, time, requested_timeout=1000)
    time.at(0.5, lambda: asyncio.ensure_future(conn.send(Disconnected())))

    async with asyncio.timeout(5):
        await conn.wait_closed()

    assert socket.frames("msg") == [0.5]
    assert socket.frames("heartbeat") == [1.3, 2.1, 2.9]


async def test_the_hello_timeout_asked_for_is_honoured_at_the_servers_minimum(
    socket: FakeSocket, time: FakeTime
) -> None:
    conn = await open_connection(socket, time, requested_timeout=100)

    async with asyncio.timeout(5):
        await conn.wait_closed()

    assert socket.sent[0][1] == {"type": "welcome", "negotiatedTimeout": 500}
    assert socket.closed_with == [(1.5, CLOSE_HEARTBEATS_MISSED)]
