"""TCMP, the Twilio Connection Messaging Protocol under RSP: the server side of one WebSocket.

Reference: /work/shared/reference/twilio-signaling-protocol.md §1 (frames, timers, close codes)
and §4 (reconnect). The frames themselves are in frame.py.

    client (twilio-video)                          server (TcmpConnection)
    hello{id, version:2, timeout, cookie?, body?} ─▶ read_hello()
                                                 ◀─ busy{retryAfter, keepAlive, cookie?}  busy(): optional
                                                 ◀─ welcome{negotiatedTimeout}            accept(): first reply,
                                                                    then the hello's body is the first receive()
    msg{body} ◀──────────────────────────────────▶ msg{body}                       receive() / send()
    heartbeat ◀──────────────────────────────────▶ heartbeat                       automatic
    bye, then close 1000 ──────────────────────────▶ receive() raises ConnectionClosedError(1000)

* **Negotiation.** The SDK's `hello.timeout` is a ceiling (its option is `requestedHeartbeatTimeout`,
  default 5000 ms); `negotiatedTimeout` is that value clamped to the server's [min, max]. The SDK
  then heartbeats after `negotiatedTimeout − 200` ms of silence and closes with 3001 after
  `3 × negotiatedTimeout` without a frame from the server.
* **Heartbeats.** The server sends `heartbeat` whenever it has sent nothing for
  `negotiatedTimeout − margin`, and closes with 3001 after `missed_heartbeats × negotiatedTimeout`
  without a valid frame from the client. The timers read an injected clock and sleep.
* **Order.** Nothing goes out before `welcome` except `busy` or `bad`: `send()` raises until
  `accept()`. Neither `bad` nor any new frame type is sent after `welcome` (the SDK throws
  inside its socket handler on both).
* **Invalid input.** Before `welcome`: `bad{reason}` and close 3002 (the SDK fails `connect()` with
  53000). After it: logged and ignored, the way the SDK ignores frames it does not expect; the
  SDK never sends such frames, and ignoring them keeps a session alive across a future SDK's new
  frame types. More than `max_invalid_frames` of them close the socket with 1002. A `msg` whose
  body is not valid RSP is a TCMP-valid frame: `receive()` raises `InvalidMessageError` (53004)
  for it and the session decides (usually an RSP `error` 53004).
* **Close codes.** 1000 from the server ends the room on the client without an error; any other
  code after `welcome` makes the SDK reconnect with `sync` (§4). The server echoes the code of a
  close the client starts: aiohttp's `autoclose` would answer 1000, and after `busy{keepAlive:
  false}` the SDK, seeing 1000 instead of its own 3005, would cancel its retry.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec
from aiohttp import WSMessage, WSMsgType
from msgspec import UNSET

from media.signaling.errors import ConnectionClosedError, InvalidMessageError, TcmpStateError
from media.signaling.frame import (
    HEARTBEAT,
    Bad,
    Busy,
    Bye,
    Hello,
    IncomingFrame,
    Msg,
    OutgoingMsg,
    Welcome,
    decode_frame,
    encode_frame,
)
from media.signaling.messages import ClientMessage, ServerMessage, decode_client_message

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000  # the client disconnects the room without an error
CLOSE_GOING_AWAY = 1001  # server shutting down: the client reconnects (sync)
CLOSE_PROTOCOL_ERROR = 1002  # too many invalid frames
CLOSE_INTERNAL_ERROR = 1011  # the session crashed: the client reconnects (sync)
CLOSE_HANDSHAKE_TIMEOUT = 3000  # no hello in time (the SDK's own code for "no welcome")
CLOSE_HEARTBEATS_MISSED = 3001  # the client went silent (the SDK's code for the same)
CLOSE_HELLO_FAILED = 3002  # after `bad` (the SDK closes with this code too)
_ABNORMAL = 1006  # reported, never sent: the socket went away without a close frame
_ROUTINE = frozenset((None, CLOSE_NORMAL, CLOSE_GOING_AWAY, 3004, 3005, 3006))  # logged at INFO: nothing is wrong
_SLACK = 0.001  # s: a timer due within this counts as due (no float rounding can make the loop spin)


@dataclass(frozen=True, slots=True)
class TcmpConfig:
    """Timers and limits of the server side; the defaults suit the SDK's defaults."""

    min_timeout_ms: int = 1000
    max_timeout_ms: int = 5000
    heartbeat_margin_ms: int = 200
    missed_heartbeats: int = 3
    hello_timeout_s: float = 15.0  # the SDK sends hello at once, and gives up after 3 × 5 s
    close_timeout_s: float = 5.0  # how long to wait for the client's half of a close
    max_invalid_frames: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.min_timeout_ms <= self.max_timeout_ms:
            raise ValueError(f"need 0 < min_timeout_ms <= max_timeout_ms: {self.min_timeout_ms}, {self.max_timeout_ms}")
        if self.missed_heartbeats < 1 or self.heartbeat_margin_ms < 0:
            raise ValueError("missed_heartbeats must be >= 1 and heartbeat_margin_ms >= 0")


def negotiate_timeout(requested_ms: float | None, config: TcmpConfig) -> int:
    """`negotiatedTimeout` for a hello that asked for `requested_ms` (None, or nonsense: the maximum)."""
    if requested_ms is None or not math.isfinite(requested_ms) or requested_ms <= 0:
        return config.max_timeout_ms
    return int(min(max(requested_ms, config.min_timeout_ms), config.max_timeout_ms))


@dataclass(frozen=True, slots=True)
class _Invalid:
    reason: str


@dataclass(frozen=True, slots=True)
class _PeerClosed:
    code: int | None


class WebSocketLike(Protocol):
    """The part of `aiohttp.web.WebSocketResponse` used here (created with `autoclose=False`)."""

    async def receive(self) -> WSMessage: ...

    async def send_str(self, data: str) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class _State(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


class _Closed(enum.Enum):
    MARK = "closed"


_Item = ClientMessage | InvalidMessageError | _Closed


class TcmpConnection:
    """One client's TCMP connection: handshake, then RSP messages in and out, with heartbeats.

    `read_hello()` → [`busy()` → `read_hello()` ...] → `accept()` → `receive()`/`send()` → `close()`.
    After `accept()` a reader task and a timer task run until the connection closes; `close()`
    (or the client closing) stops them and waits for them to end.
    """

    def __init__(
        self,
        ws: WebSocketLike,
        *,
        config: TcmpConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        peer: str = "?",
    ) -> None:
        self._ws = ws
        self._config = config or TcmpConfig()
        self._clock = clock
        self._sleep = sleep
        self._peer = peer
        self._state = _State.HANDSHAKE
        self._hello: Hello | None = None
        self._negotiated_ms: int | None = None
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._close_code: int | None = None
        self._close_reason = ""
        self._last_sent = self._last_received = clock()
        self._invalid_frames = 0

    def __str__(self) -> str:
        return f"{self._peer} {self._hello.id if self._hello else '-'}"

    @property
    def hello(self) -> Hello | None:
        return self._hello

    @property
    def negotiated_timeout_ms(self) -> int | None:
        return self._negotiated_ms

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def close_code(self) -> int | None:
        return self._close_code

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- handshake --------------------------------------------------------------------------------

    async def read_hello(self) -> Hello:
        """Wait for the client's `hello`; on anything else send `bad`, close, and raise."""
        self._require(_State.HANDSHAKE, "read_hello")
        try:
            async with asyncio.timeout(self._config.hello_timeout_s):
                frame = await self._next_frame()
        except TimeoutError:
            await self._finish(CLOSE_HANDSHAKE_TIMEOUT, "no hello")
            raise self._closed_error() from None
        if isinstance(frame, Hello):
            self._hello, self._last_received = frame, self._clock()
            return frame
        if isinstance(frame, _PeerClosed):
            await self._finish(frame.code, "closed by the client before hello")
        elif isinstance(frame, Bye):
            await self._finish(CLOSE_NORMAL, "bye before hello")
        else:
            reason = frame.reason if isinstance(frame, _Invalid) else "expected hello"
            logger.warning("tcmp %s: rejected handshake: %s", self, reason)
            await self._send_frame(encode_frame(Bad(reason=reason)))
            await self._finish(CLOSE_HELLO_FAILED, reason)
        raise self._closed_error()

    async def busy(self, retry_after_ms: int, *, keep_alive: bool, cookie: str | None = None) -> None:
        """Answer the pending hello with `busy` instead of `welcome` (§1.2).

        `keep_alive` and `retry_after_ms >= 0`: the client sends `hello` again on this socket after
        `retry_after_ms` (read it with `read_hello()`, its `cookie` echoed). Otherwise the client
        closes the socket (3005: it retries on a new one; 3006 for a negative `retry_after_ms`:
        `connect()` fails with 53006); this method waits for that close and echoes its code.
        """
        self._require(_State.HANDSHAKE, "busy")
        if self._hello is None:
            raise TcmpStateError("busy() answers a hello: call read_hello() first")
        busy = Busy(retry_after=retry_after_ms, keep_alive=keep_alive, cookie=UNSET if cookie is None else cookie)
        await self._send_frame(encode_frame(busy))
        self._hello = None
        if keep_alive and retry_after_ms >= 0:
            return
        try:
            async with asyncio.timeout(self._config.close_timeout_s):
                while not isinstance(closing := await self._next_frame(), _PeerClosed):
                    pass
        except TimeoutError:
            await self._finish(CLOSE_NORMAL, "busy, and the client did not close")
        else:
            await self._finish(closing.code, "busy")

    async def accept(self, hello: Hello | None = None) -> None:
        """Send `welcome` (always the first reply), queue the hello's body, start the timers."""
        self._require(_State.HANDSHAKE, "accept")
        hello = hello or self._hello
        if hello is None:
            raise TcmpStateError("accept() answers a hello: call read_hello() first")
        self._hello = hello
        self._negotiated_ms = negotiate_timeout(None if hello.timeout is UNSET else hello.timeout, self._config)
        await self._send_frame(encode_frame(Welcome(negotiated_timeout=self._negotiated_ms)))
        self._state = _State.OPEN
        if hello.body is not UNSET:
            self._inbox.put_nowait(self._decode_body(hello.body))
        self._reader = asyncio.create_task(self._read_loop(), name=f"tcmp-read {self}")
        self._timer = asyncio.create_task(self._timer_loop(), name=f"tcmp-timer {self}")
        logger.info("tcmp %s: welcome, negotiated timeout %d ms", self, self._negotiated_ms)

    # --- messages ---------------------------------------------------------------------------------

    async def receive(self) -> ClientMessage:
        """The next RSP message from the client, in order (the hello's body first).

        Raises `InvalidMessageError` (53004) for a body that is not valid RSP (the connection stays
        open) and `ConnectionClosedError` once the connection is closed and drained.
        """
        if self._state is _State.HANDSHAKE:
            raise TcmpStateError("receive() before accept()")
        item = await self._inbox.get()
        if item is _Closed.MARK:
            self._inbox.put_nowait(item)  # every later receive() raises too
            raise self._closed_error()
        if isinstance(item, InvalidMessageError):
            raise item
        return item

    def __aiter__(self) -> TcmpConnection:
        return self

    async def __anext__(self) -> ClientMessage:
        """Iterate until the connection closes; `InvalidMessageError` still propagates."""
        try:
            return await self.receive()
        except ConnectionClosedError:
            raise StopAsyncIteration from None

    async def send(self, message: ServerMessage) -> None:
        """Send one RSP message as `msg{body}`; raises `TcmpStateError` before `accept()`."""
        if self._state is _State.HANDSHAKE:
            raise TcmpStateError("send() before accept(): welcome must be the first frame")
        await self._send_frame(encode_frame(OutgoingMsg(body=message)))

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the socket with `code` (see the module docstring for which code means what)."""
        await self._finish(code, reason or "closed by the server")

    # --- internals ----------------------------------------------------------------------------------

    def _require(self, state: _State, operation: str) -> None:
        if self._state is _State.CLOSED:
            raise self._closed_error()
        if self._state is not state:
            raise TcmpStateError(f"{operation}() is not allowed in state {self._state.value}")

    def _closed_error(self) -> ConnectionClosedError:
        timed_out = self._close_code == CLOSE_HEARTBEATS_MISSED
        return ConnectionClosedError(self._close_code, self._close_reason, code=53002 if timed_out else None)

    async def _send_frame(self, data: str) -> None:
        async with self._send_lock:
            if self._state is _State.CLOSED:
                raise self._closed_error()
            try:
                await self._ws.send_str(data)
            except ConnectionError as exc:
                await self._finish(_ABNORMAL, f"send failed: {exc}")
                raise self._closed_error() from exc
            self._last_sent = self._clock()

    async def _next_frame(self) -> IncomingFrame | _Invalid | _PeerClosed:
        """The next frame from the socket, decoded; `_Invalid` for junk, `_PeerClosed` at the end."""
        message = await self._ws.receive()
        if message.type is WSMsgType.CLOSE:
            return _PeerClosed(message.data if isinstance(message.data, int) else None)
        if message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return _PeerClosed(_ABNORMAL)
        if message.type is not WSMsgType.TEXT:
            return _Invalid(f"unexpected {message.type.name} frame")
        try:
            return decode_frame(message.data)
        except InvalidMessageError as exc:
            return _Invalid(exc.detail)

    def _decode_body(self, body: msgspec.Raw) -> ClientMessage | InvalidMessageError:
        try:
            return decode_client_message(body)
        except InvalidMessageError as exc:
            logger.warning("tcmp %s: invalid RSP body: %s", self, exc.detail)
            return exc

    async def _read_loop(self) -> None:
        try:
            while self._state is _State.OPEN:
                frame = await self._next_frame()
                if isinstance(frame, _PeerClosed):
                    await self._finish(frame.code, "closed by the client")
                elif isinstance(frame, _Invalid):
                    await self._on_invalid(frame.reason)
                else:
                    self._last_received = self._clock()
                    if isinstance(frame, Msg):
                        self._inbox.put_nowait(self._decode_body(frame.body))
                    elif isinstance(frame, Bye):
                        await self._finish(CLOSE_NORMAL, "bye")
                    elif isinstance(frame, Hello):
                        logger.debug("tcmp %s: ignored a repeated hello", self)
        except Exception:
            logger.exception("tcmp %s: reader failed", self)
            await self._finish(CLOSE_INTERNAL_ERROR, "reader failed")

    async def _on_invalid(self, reason: str) -> None:
        self._invalid_frames += 1
        logger.warning("tcmp %s: ignored an invalid frame (%d so far): %s", self, self._invalid_frames, reason)
        if self._invalid_frames > self._config.max_invalid_frames:
            await self._finish(CLOSE_PROTOCOL_ERROR, "too many invalid frames")

    async def _timer_loop(self) -> None:
        """Send heartbeats when idle; close when the client has been silent too long."""
        assert self._negotiated_ms is not None
        negotiated = self._negotiated_ms / 1000
        interval = negotiated - min(self._config.heartbeat_margin_ms / 1000, negotiated / 4)
        watchdog = self._config.missed_heartbeats * negotiated
        try:
            while self._state is _State.OPEN:
                now = self._clock()
                heartbeat_due, watchdog_due = self._last_sent + interval, self._last_received + watchdog
                if now + _SLACK >= watchdog_due:
                    reason = f"Missed {self._config.missed_heartbeats} heartbeat messages"
                    await self._finish(CLOSE_HEARTBEATS_MISSED, reason)
                elif now + _SLACK >= heartbeat_due:
                    await self._send_frame(HEARTBEAT)
                else:
                    await self._sleep(min(heartbeat_due, watchdog_due) - now)
        except ConnectionClosedError:
            pass
        except Exception:
            logger.exception("tcmp %s: timer failed", self)
            await self._finish(CLOSE_INTERNAL_ERROR, "timer failed")

    async def _finish(self, code: int | None, reason: str) -> None:
        """The one way to the closed state: mark, wake `receive()`, close the socket, stop the tasks."""
        if self._state is _State.CLOSED:
            return
        self._state, self._close_code, self._close_reason = _State.CLOSED, code, reason
        self._inbox.put_nowait(_Closed.MARK)
        self._closed.set()
        logger.log(
            logging.INFO if code in _ROUTINE else logging.WARNING, "tcmp %s: closed (%s): %s", self, code, reason
        )
        current = asyncio.current_task()
        reader, timer = (task if task is not current else None for task in (self._reader, self._timer))
        if timer is not None:
            timer.cancel()
        try:  # with the reader still waiting, aiohttp hands it the close, which ends its loop
            await self._ws.close(code=_sendable(code), message=reason.encode()[:120].decode(errors="ignore").encode())
        except Exception:  # the socket is going away whatever happens; nothing more to tell the client
            logger.debug("tcmp %s: error while closing the socket", self, exc_info=True)
        if reader is not None:
            reader.cancel()
        if stopping := {task for task in (reader, timer) if task is not None}:
            await asyncio.wait(stopping)  # unlike `await task`, never mistakes their cancellation for ours


def _sendable(code: int | None) -> int:
    """The close code to put on the wire. Codes that may not be sent (1005, 1006, 1015...) become
    1011, so that a client still listening reconnects rather than taking it as a clean end."""
    if code is None:
        return CLOSE_NORMAL
    if 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return code
    return CLOSE_INTERNAL_ERROR
