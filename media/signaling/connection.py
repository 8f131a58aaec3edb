"""What a session handler talks to: a client's ordered RSP messages in, server messages out.

`TcmpConnection` (a WebSocket, tcmp.py) is one; a connection bridged over NATS from the
WebSocket front of another process (media/worker/bridge.py) is another. `Replayed` puts messages
that a router already read back in front of a connection.
"""

from __future__ import annotations

from typing import Protocol

from media.signaling.errors import ConnectionClosedError
from media.signaling.messages import ClientMessage, ServerMessage
from media.signaling.tcmp import CLOSE_NORMAL


class Connection(Protocol):
    @property
    def closed(self) -> bool: ...

    def __aiter__(self) -> Connection: ...

    async def __anext__(self) -> ClientMessage:
        """The next client message; StopAsyncIteration once closed (InvalidMessageError propagates)."""
        ...

    async def send(self, message: ServerMessage) -> None:
        """Raises a SignalingError (ConnectionClosedError once closed)."""
        ...

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None: ...


class Replayed:
    """`conn`, with `messages` (already read from it) delivered again first."""

    def __init__(self, conn: Connection, messages: list[ClientMessage]) -> None:
        self._conn = conn
        self._messages = list(messages)

    def __str__(self) -> str:
        return str(self._conn)

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def __aiter__(self) -> Replayed:
        return self

    async def __anext__(self) -> ClientMessage:
        if self._messages:
            return self._messages.pop(0)
        return await self._conn.__anext__()

    async def send(self, message: ServerMessage) -> None:
        await self._conn.send(message)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        await self._conn.close(code, reason)


__all__ = ["Connection", "ConnectionClosedError", "Replayed"]
