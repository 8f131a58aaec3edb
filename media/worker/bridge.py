"""A client's signaling connection carried over NATS from the WebSocket front to the room's worker.

    front                                         worker (BridgeServer)
    request media.worker.<wid>.open {conn}   →    subscribes media.conn.<conn>.in, replies
    publish media.conn.<conn>.in {m}         →    BridgedConnection yields the client message
    publish media.conn.<conn>.in {closed}    →    the client's socket is gone
    request media.conn.<conn>.in {ping}      →    replies (every `ping_s`; none within `ping_s`: the worker is gone)
            media.conn.<conn>.out {m}        ←    send(server message)
            media.conn.<conn>.out {close}    ←    close(code, reason): the front closes the socket so

Messages keep their order (one publisher, one subscriber per subject). The worker treats a front
that stopped pinging for `3 × ping_s` as a lost socket (the session then waits for `sync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from adapters.tasks import cancel_and_wait
from media.session.errors import SessionError
from media.signaling.connection import Connection
from media.signaling.errors import ConnectionClosedError
from media.signaling.messages import (
    ClientMessage,
    ServerMessage,
    decode_client_message,
    decode_server_message,
    encode_client_message,
    encode_server_message,
)
from media.signaling.route import SessionHandler, serve_session
from media.signaling.tcmp import CLOSE_INTERNAL_ERROR, CLOSE_NORMAL

logger = logging.getLogger(__name__)
PING_S = 5.0
OPEN_TIMEOUT_S = 5.0


def open_subject(worker_id: str) -> str:
    return f"media.worker.{worker_id}.open"


def inbound_subject(conn_id: str) -> str:
    return f"media.conn.{conn_id}.in"


def outbound_subject(conn_id: str) -> str:
    return f"media.conn.{conn_id}.out"


class ToWorker(msgspec.Struct, omit_defaults=True, frozen=True):
    m: str | None = None
    closed: bool = False
    ping: bool = False


class ToFront(msgspec.Struct, omit_defaults=True, frozen=True):
    m: str | None = None
    close: int | None = None
    reason: str = ""


class Open(msgspec.Struct, frozen=True):
    conn: str
    peer: str


_to_worker = msgspec.json.Decoder(ToWorker)
_to_front = msgspec.json.Decoder(ToFront)
_open = msgspec.json.Decoder(Open)
_encode = msgspec.json.Encoder().encode


# --- the front's side ------------------------------------------------------------------------------


async def bridge(nc: Client, conn: Connection, worker_id: str, *, ping_s: float = PING_S) -> None:
    """Carry `conn` to worker `worker_id` until either side ends it (SessionError 53000 if the worker
    does not answer). Client messages still unread on `conn` are forwarded first, in order."""
    conn_id = uuid.uuid4().hex
    outbound: asyncio.Queue[ToFront] = asyncio.Queue()

    async def on_out(msg: Msg) -> None:
        outbound.put_nowait(_to_front.decode(msg.data))

    subscription = await nc.subscribe(outbound_subject(conn_id), cb=on_out)
    try:
        try:
            await nc.request(open_subject(worker_id), _encode(Open(conn_id, str(conn))), timeout=OPEN_TIMEOUT_S)
        except (nats.errors.Error, TimeoutError) as exc:
            raise SessionError(f"media worker {worker_id} did not answer: {exc}", code=53000) from exc
        logger.info("signaling %s: bridged to media worker %s as %s", conn, worker_id, conn_id)
        pumps = [
            asyncio.create_task(_client_to_worker(nc, conn, conn_id)),
            asyncio.create_task(_worker_to_client(conn, outbound)),
            asyncio.create_task(_ping(nc, conn, conn_id, ping_s)),
        ]
        try:
            done, _pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(pumps)
        for pump in done:
            pump.result()  # an InvalidMessageError from the client reaches the route (53004)
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def _client_to_worker(nc: Client, conn: Connection, conn_id: str) -> None:
    subject = inbound_subject(conn_id)
    try:
        async for message in conn:
            await nc.publish(subject, _encode(ToWorker(m=encode_client_message(message).decode())))
    finally:
        with contextlib.suppress(Exception):
            await nc.publish(subject, _encode(ToWorker(closed=True)))


async def _worker_to_client(conn: Connection, outbound: asyncio.Queue[ToFront]) -> None:
    while True:
        item = await outbound.get()
        if item.m is not None:
            await conn.send(decode_server_message(item.m))
        if item.close is not None:
            await conn.close(item.close, item.reason)
            return


async def _ping(nc: Client, conn: Connection, conn_id: str, ping_s: float) -> None:
    while True:
        await asyncio.sleep(ping_s)  # the ping period itself
        try:
            await nc.request(inbound_subject(conn_id), _encode(ToWorker(ping=True)), timeout=ping_s)
        except (nats.errors.Error, TimeoutError):
            logger.warning("signaling %s: media worker stopped answering; closing the socket", conn)
            await conn.close(CLOSE_INTERNAL_ERROR, "media worker lost")  # the SDK reconnects
            return


# --- the worker's side -----------------------------------------------------------------------------


class BridgedConnection:
    """The worker's end of a bridged connection (the `Connection` a session handler reads)."""

    def __init__(self, nc: Client, conn_id: str, peer: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn_id = conn_id
        self._nc = nc
        self._peer = peer
        self._clock = clock
        self._inbox: asyncio.Queue[ClientMessage | Exception | None] = asyncio.Queue()
        self._closed = False
        self.last_heard = clock()
        self._subscription: Subscription | None = None

    def __str__(self) -> str:
        return f"{self._peer} via NATS {self.conn_id[:8]}"

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(inbound_subject(self.conn_id), cb=self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        self.last_heard = self._clock()
        try:
            item = _to_worker.decode(msg.data)
        except msgspec.DecodeError:
            logger.warning("signaling %s: undecodable bridge message", self)
            return
        if item.ping:
            await msg.respond(b"pong")
        elif item.closed:
            self.lost()
        elif item.m is not None:
            try:
                self._inbox.put_nowait(decode_client_message(item.m))
            except Exception as exc:  # InvalidMessageError: as a WebSocket would report it
                self._inbox.put_nowait(exc)

    def lost(self) -> None:
        """The client's socket is gone (as the front said, or as its silence says)."""
        if not self._closed:
            self._closed = True
            self._inbox.put_nowait(None)

    def __aiter__(self) -> BridgedConnection:
        return self

    async def __anext__(self) -> ClientMessage:
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return item

    async def send(self, message: ServerMessage) -> None:
        if self._closed:
            raise ConnectionClosedError(None, "the bridged connection is closed")
        payload = ToFront(m=encode_server_message(message).decode())
        await self._nc.publish(outbound_subject(self.conn_id), _encode(payload))

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self._closed:
            return
        self.lost()
        with contextlib.suppress(Exception):
            await self._nc.publish(outbound_subject(self.conn_id), _encode(ToFront(close=code, reason=reason)))
        await self.stop()

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None


class BridgeServer:
    """A worker's end of every bridged connection: each runs the session handler as a WebSocket would."""

    def __init__(self, nc: Client, worker_id: str, handler: SessionHandler, *, ping_s: float = PING_S) -> None:
        self._nc = nc
        self._worker_id = worker_id
        self._handler = handler
        self._ping_s = ping_s
        self._connections: dict[str, tuple[BridgedConnection, asyncio.Task[None]]] = {}
        self._subscription: Subscription | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(open_subject(self._worker_id), cb=self._open)
        self._watchdog = asyncio.create_task(self._watch(), name="bridge watchdog")

    async def _open(self, msg: Msg) -> None:
        try:
            request = _open.decode(msg.data)
        except msgspec.DecodeError:
            logger.warning("media worker %s: undecodable open request", self._worker_id)
            return
        conn = BridgedConnection(self._nc, request.conn, request.peer)
        await conn.start()
        task = asyncio.create_task(self._serve(conn), name=f"bridged session {request.conn[:8]}")
        self._connections[request.conn] = (conn, task)
        await msg.respond(b"ok")

    async def _serve(self, conn: BridgedConnection) -> None:
        try:
            await serve_session(self._handler, conn)
        finally:
            await conn.stop()
            self._connections.pop(conn.conn_id, None)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._ping_s)  # the check period itself
            now = time.monotonic()
            for conn, _task in list(self._connections.values()):
                if now - conn.last_heard > 3 * self._ping_s:
                    logger.warning("signaling %s: the front stopped pinging; the socket counts as lost", conn)
                    conn.lost()

    async def stop(self) -> None:
        if self._watchdog is not None:
            await cancel_and_wait([self._watchdog])
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        for _conn, task in list(self._connections.values()):
            task.cancel()  # once: its session's cleanup (conn.stop()) runs to the end
            with contextlib.suppress(asyncio.CancelledError):
                await task
