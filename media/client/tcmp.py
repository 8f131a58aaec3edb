"""TCMP, the client side: one WebSocket to `/signaling` (protocol doc §1).

    TcmpClient.open(url, body)                     server
      hello{id, version:2, timeout, body} ──────────▶
                                        ◀────────── welcome{negotiatedTimeout}   (or bad, busy)
      msg{body} ◀──────────────────────────────────▶ msg{body}                   send() / receive()
      heartbeat after (negotiatedTimeout − margin) of silence; the watchdog closes the socket
      (3001) when nothing arrived for 3 × negotiatedTimeout
      bye, close 1000 ──────────────────────────────▶                            close()

`receive()` returns the next RSP message and raises `SignalingConnectionError` once the socket is
gone: close code 1000 from the server is a clean end (`clean` is True), anything else 53001 (53002
when the watchdog fired). `busy` is terminal here (53006; no retry), `bad` fails `open` (53000).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import aiohttp
import msgspec

from media.client.errors import SignalingConnectionError
from media.signaling.frame import Bad, Busy, Bye, Heartbeat, Hello, Msg, Welcome
from media.signaling.messages import ClientMessage, ServerMessage, decode_server_message, encode_client_message

logger = logging.getLogger(__name__)

REQUESTED_TIMEOUT_MS = 5000
HEARTBEAT_MARGIN_MS = 200
MISSED_HEARTBEATS = 3
WELCOME_TIMEOUT_S = 5.0
CLOSE_NORMAL = 1000
CLOSE_HEARTBEATS_MISSED = 3001

_ServerFrame = Welcome | Busy | Bad | Msg | Heartbeat | Bye
_decoder: msgspec.json.Decoder[_ServerFrame] = msgspec.json.Decoder(_ServerFrame)
_encoder = msgspec.json.Encoder()


class TcmpClient:
    """An open TCMP connection (after `welcome`); make one with `TcmpClient.open`."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, timeout_ms: int) -> None:
        self._session = session
        self._ws = ws
        self.negotiated_timeout_ms = timeout_ms
        self._inbox: asyncio.Queue[ServerMessage | None] = asyncio.Queue()  # None: closed
        self._last_sent = asyncio.get_running_loop().time()
        self._send_lock = asyncio.Lock()
        self.closed = False
        self.clean = False
        """True when the server closed the socket with 1000 (the SDK's clean end of a room)."""
        self.error: SignalingConnectionError | None = None
        self._tasks = [
            asyncio.create_task(self._read(), name="tcmp read"),
            asyncio.create_task(self._heartbeat(), name="tcmp heartbeat"),
        ]

    @classmethod
    async def open(cls, url: str, body: ClientMessage) -> TcmpClient:
        """Connect, say `hello` with `body` (connect or sync), and wait for `welcome`."""
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, autoclose=False, autoping=True)
            hello = Hello(
                id=str(uuid.uuid4()), timeout=REQUESTED_TIMEOUT_MS, body=msgspec.Raw(encode_client_message(body))
            )
            await ws.send_str(_encoder.encode(hello).decode())
            timeout_ms = await _welcome(ws)
        except BaseException as exc:
            await session.close()
            if isinstance(exc, aiohttp.ClientError | OSError):  # TimeoutError is an OSError
                raise SignalingConnectionError(f"cannot open {url} (or no welcome): {exc!r}") from exc
            raise
        return cls(session, ws, timeout_ms)

    async def send(self, message: ClientMessage) -> None:
        """Send an RSP message in a `msg` frame."""
        await self._send_frame(_encoder.encode(Msg(body=msgspec.Raw(encode_client_message(message)))).decode())

    async def receive(self) -> ServerMessage:
        """The next RSP message; `SignalingConnectionError` once the socket is closed."""
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)  # every later receive() raises too
            raise self.error or SignalingConnectionError("signaling connection closed", code=53001)
        return item

    async def close(self) -> None:
        """`bye`, close with 1000, stop the timers (idempotent)."""
        if not self.closed:
            with contextlib.suppress(Exception):
                await self._send_frame('{"type":"bye"}')
            await self._shut(CLOSE_NORMAL)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._session.close()

    # --- internals -------------------------------------------------------------------------------

    async def _send_frame(self, text: str) -> None:
        if self.closed:
            raise self.error or SignalingConnectionError("signaling connection closed", code=53001)
        async with self._send_lock:
            try:
                await self._ws.send_str(text)
            except (ConnectionError, aiohttp.ClientError) as exc:
                raise SignalingConnectionError(f"cannot send: {exc}", code=53001) from exc
            self._last_sent = asyncio.get_running_loop().time()

    async def _read(self) -> None:
        watchdog = MISSED_HEARTBEATS * self.negotiated_timeout_ms / 1000
        try:
            while True:
                try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow close()'s cancel
                    async with asyncio.timeout(watchdog):
                        message = await self._ws.receive()
                except TimeoutError:
                    self.error = SignalingConnectionError("missed 3 heartbeats", code=53002)
                    await self._shut(CLOSE_HEARTBEATS_MISSED)
                    return
                if message.type != aiohttp.WSMsgType.TEXT:
                    self._closed_by_server(self._ws.close_code)
                    return
                try:
                    frame = _decoder.decode(message.data)
                except msgspec.DecodeError:
                    logger.info("ignoring a frame that is not TCMP: %.200s", message.data)
                    continue
                if isinstance(frame, Msg):
                    try:
                        self._inbox.put_nowait(decode_server_message(frame.body))
                    except msgspec.DecodeError as exc:
                        logger.warning("ignoring an RSP message that does not decode (%s): %.200s", exc, frame.body)
        finally:
            self.closed = True
            self._inbox.put_nowait(None)

    def _closed_by_server(self, close_code: int | None) -> None:
        if close_code == CLOSE_NORMAL:
            self.clean = True
        elif self.error is None:
            self.error = SignalingConnectionError(f"signaling socket closed (code {close_code})", code=53001)
        self.closed = True

    async def _heartbeat(self) -> None:
        period = max(self.negotiated_timeout_ms - HEARTBEAT_MARGIN_MS, 100) / 1000
        loop = asyncio.get_running_loop()
        while not self.closed:
            due = self._last_sent + period - loop.time()
            if due > 0:
                await asyncio.sleep(due)  # a timer, not synchronisation
                continue
            try:
                await self._send_frame('{"type":"heartbeat"}')
            except SignalingConnectionError:
                return

    async def _shut(self, code: int) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self._ws.close(code=code)


async def _welcome(ws: aiohttp.ClientWebSocketResponse) -> int:
    """Wait for `welcome` (its negotiatedTimeout); `bad`, `busy` or a closed socket fail."""
    async with asyncio.timeout(WELCOME_TIMEOUT_S):
        while True:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise SignalingConnectionError(f"socket closed before welcome (code {ws.close_code})")
            try:
                frame = _decoder.decode(message.data)
            except msgspec.DecodeError:
                continue
            if isinstance(frame, Welcome):
                return frame.negotiated_timeout
            if isinstance(frame, Bad):
                raise SignalingConnectionError(f"server refused hello: {frame.reason}")
            if isinstance(frame, Busy):
                raise SignalingConnectionError("server is busy", code=53006)
