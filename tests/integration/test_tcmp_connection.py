"""TCMP over a real aiohttp server on a free port, with an aiohttp WebSocket client acting as the
twilio-video SDK does (protocol doc §1): hello first, msg frames, heartbeats, bye, close codes.

What is asserted is what the SDK would see on its socket, and what the session handler gets.
Frames the SDK really sent are taken from tests/data/twilio-signaling-trace.jsonl. Waits are on
frames and events with timeouts; the only sleeps are the client's own heartbeat pacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from yarl import URL

from domain.ids import ParticipantSid, RoomSid
from media.signaling.errors import SignalingError, TcmpStateError
from media.signaling.messages import (
    ClientMessage,
    Connect,
    Connected,
    Disconnect,
    Disconnected,
    Iced,
    IceRequest,
    IceServer,
    SelfParticipant,
    ServerMessage,
    SessionId,
)
from media.signaling.route import signaling_route
from media.signaling.tcmp import TcmpConfig, TcmpConnection

DATA = Path(__file__).resolve().parents[1] / "data"
TRACE = [json.loads(line) for line in (DATA / "twilio-signaling-trace.jsonl").read_text().splitlines()]
SDK_HELLO = TRACE[0]["msg"]  # hello{id, timeout: 5000, version: 2, body: connect} from twilio-video 2.36.0
SDK_ICE_HELLO, SDK_CONNECT_MSG = TRACE[21]["msg"], TRACE[23]["msg"]
SDK_DISCONNECT_MSG, SDK_BYE = TRACE[16]["msg"], TRACE[18]["msg"]

FAST = TcmpConfig(min_timeout_ms=100, hello_timeout_s=0.5, close_timeout_s=1.0, max_invalid_frames=3)
WAIT = 3.0  # s: the longest any single step may take before the test fails


def connected_reply() -> Connected:
    return Connected(
        session=SessionId("SE1"),
        sid=RoomSid("RM1"),
        name="r1",
        participant=SelfParticipant(sid=ParticipantSid("PA1"), identity="alice"),
    )


class Recorder:
    """A session handler that records what it receives and answers with `reply`."""

    def __init__(self, reply: Callable[[ClientMessage], ServerMessage | None] = lambda _: None) -> None:
        self.reply = reply
        self.messages: asyncio.Queue[ClientMessage] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.close_code: int | None = None
        self.error: SignalingError | None = None

    async def __call__(self, conn: TcmpConnection) -> None:
        try:
            async for message in conn:
                await self.messages.put(message)
                if (answer := self.reply(message)) is not None:
                    await conn.send(answer)
                if isinstance(message, Disconnect):
                    return
        except SignalingError as exc:
            self.error = exc
            raise
        finally:
            self.close_code = conn.close_code
            self.ended.set()

    async def next_message(self) -> ClientMessage:
        async with asyncio.timeout(WAIT):
            return await self.messages.get()

    async def wait_ended(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.ended.wait()


class SdkLikeClient:
    """The client end: JSON text frames in and out, like twilio-video's TwilioConnection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def hello(self, body: dict[str, Any] | None = None, timeout: int = 5000, **extra: Any) -> None:
        frame = {"id": "hello-1", "timeout": timeout, "type": "hello", "version": 2, **extra}
        await self.send(frame if body is None else {**frame, "body": body})

    async def frame(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=WAIT)
        assert message.type is WSMsgType.TEXT, f"expected a text frame, got {message.type.name} {message.data!r}"
        decoded: dict[str, Any] = json.loads(message.data)
        return decoded

    async def frames_until_close(self) -> tuple[list[dict[str, Any]], int | None]:
        """Every frame until the server closes, and the close code it sent."""
        frames = []
        while True:
            message = await self.ws.receive(timeout=WAIT)
            if message.type is WSMsgType.TEXT:
                frames.append(json.loads(message.data))
            else:
                assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), message
                return frames, self.ws.close_code


Start = Callable[..., Awaitable[URL]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """`await start(handler, config=...)` or `await start(view=...)`: a server on a free port; its URL."""
    servers: list[TestServer] = []

    async def _start(
        handler: Callable[[TcmpConnection], Awaitable[None]] | None = None,
        *,
        config: TcmpConfig = FAST,
        view: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None,
    ) -> URL:
        app = web.Application()
        if view is not None:
            app.router.add_get("/signaling", view)
        else:
            assert handler is not None
            app.add_routes([signaling_route(handler, config=config)])
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return server.make_url("/signaling")

    yield _start
    for server in servers:
        await server.close()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[URL], Awaitable[SdkLikeClient]]]:
    session = aiohttp.ClientSession()

    async def _connect(url: URL) -> SdkLikeClient:
        return SdkLikeClient(await session.ws_connect(url))

    yield _connect
    await session.close()


# --- handshake and messages ---------------------------------------------------------------------


async def test_the_sdks_hello_is_answered_welcome_first_then_its_connect_reaches_the_handler(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    recorder = Recorder(lambda m: connected_reply() if isinstance(m, Connect) else None)
    client = await connect(await start(recorder))

    await client.send(SDK_HELLO)

    assert await client.frame() == {"type": "welcome", "negotiatedTimeout": 5000}
    reply = await client.frame()
    assert reply["type"] == "msg"
    assert reply["body"]["type"] == "connected"
    assert reply["body"]["participant"] == {"sid": "PA1", "identity": "alice"}
    message = await recorder.next_message()
    assert isinstance(message, Connect)
    assert message.name == "r1"
    assert [t.kind for t in message.participant.tracks] == ["audio", "video"]


async def test_nothing_can_be_sent_before_welcome(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    refused: list[Exception] = []

    async def eager(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        conn = TcmpConnection(ws, config=FAST)
        try:
            await conn.send(Disconnected())
        except TcmpStateError as exc:
            refused.append(exc)
        await conn.accept(await conn.read_hello())
        await conn.send(Disconnected(status="completed"))
        await conn.close()
        return ws

    client = await connect(await start(view=eager))
    await client.hello(SDK_HELLO["body"])

    frames, code = await client.frames_until_close()

    assert len(refused) == 1
    assert frames == [
        {"type": "welcome", "negotiatedTimeout": 5000},
        {"type": "msg", "body": {"type": "disconnected", "status": "completed"}},
    ]
    assert code == 1000


async def test_an_ice_server_request_is_answered_and_the_connect_that_follows_is_delivered_in_order(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    stun = Iced(ice_servers=[IceServer(urls="stun:stun.example.com:3478")])
    recorder = Recorder(lambda m: stun if isinstance(m, IceRequest) else None)
    client = await connect(await start(recorder))

    await client.send(SDK_ICE_HELLO)
    assert (await client.frame())["type"] == "welcome"
    assert await client.frame() == {
        "type": "msg",
        "body": {"type": "iced", "ice_servers": [{"urls": "stun:stun.example.com:3478"}]},
    }
    await client.send(SDK_CONNECT_MSG)

    assert isinstance(await recorder.next_message(), IceRequest)
    connect_message = await recorder.next_message()
    assert isinstance(connect_message, Connect) and connect_message.ice_servers == "acquire"


async def test_disconnect_then_bye_ends_the_session_cleanly_with_1000(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    recorder = Recorder()
    client = await connect(await start(recorder))
    await client.send(SDK_HELLO)
    await client.frame()

    await client.send(SDK_DISCONNECT_MSG)
    await client.send(SDK_BYE)
    await client.ws.close()  # the SDK closes with 1000 right after bye

    await recorder.wait_ended()
    assert [type(await recorder.next_message()) for _ in range(2)] == [Connect, Disconnect]
    assert client.ws.close_code == 1000
    assert recorder.close_code == 1000


async def test_a_handler_that_returns_ends_the_room_on_the_client_with_close_1000(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    async def complete_the_room(conn: TcmpConnection) -> None:
        await conn.receive()
        await conn.send(Disconnected(status="completed"))

    client = await connect(await start(complete_the_room))
    await client.send(SDK_HELLO)

    frames, code = await client.frames_until_close()

    assert [f["type"] for f in frames] == ["welcome", "msg"]
    assert frames[1]["body"] == {"type": "disconnected", "status": "completed"}
    assert code == 1000


# --- heartbeats ---------------------------------------------------------------------------------


async def test_an_idle_server_heartbeats_well_within_the_clients_watchdog(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    recorder = Recorder()
    client = await connect(await start(recorder))
    await client.hello(SDK_HELLO["body"], timeout=200)
    assert await client.frame() == {"type": "welcome", "negotiatedTimeout": 200}
    arrivals: list[tuple[float, str]] = []

    async def keep_alive_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await client.send({"type": "heartbeat"})
            await asyncio.sleep(0.1)  # the client's own heartbeat period, not synchronisation

    async def collect() -> None:
        while True:
            arrivals.append((time.monotonic(), (await client.frame())["type"]))

    collector = asyncio.create_task(collect())
    await keep_alive_for(1.2)
    collector.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await collector

    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(arrivals)]
    assert {kind for _, kind in arrivals} == {"heartbeat"}
    assert len(arrivals) >= 4
    assert max(gaps) < 2 * 0.2  # the SDK gives up after 3 × negotiatedTimeout
    assert not client.ws.closed
    assert isinstance(await recorder.next_message(), Connect)
    assert recorder.messages.empty()  # heartbeats are not messages


async def test_a_silent_client_is_closed_after_three_negotiated_timeouts(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    recorder = Recorder()
    client = await connect(await start(recorder))
    await client.hello(SDK_HELLO["body"], timeout=200)
    assert (await client.frame())["type"] == "welcome"
    welcomed = time.monotonic()

    frames, code = await client.frames_until_close()

    assert 0.55 <= time.monotonic() - welcomed < 2.0
    assert code == 3001
    assert {f["type"] for f in frames} == {"heartbeat"}
    await recorder.wait_ended()
    assert recorder.close_code == 3001


async def test_a_client_that_never_says_hello_is_closed(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    client = await connect(await start(Recorder()))

    frames, code = await client.frames_until_close()

    assert (frames, code) == ([], 3000)


# --- invalid input ------------------------------------------------------------------------------

JUNK = [
    pytest.param("{not json", id="malformed-json"),
    pytest.param('{"type": "teleport"}', id="unknown-frame-type"),
    pytest.param('{"type": "msg", "body": {"type": "connect"}}', id="msg-before-hello"),
    pytest.param(b"\x00\x01", id="binary-frame"),
]


async def send_raw(client: SdkLikeClient, data: str | bytes) -> None:
    if isinstance(data, bytes):
        await client.ws.send_bytes(data)
    else:
        await client.ws.send_str(data)


@pytest.mark.parametrize("junk", JUNK)
async def test_junk_instead_of_hello_gets_bad_and_close_3002_and_the_server_keeps_serving(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]], junk: str | bytes
) -> None:
    url = await start(Recorder())
    client = await connect(url)

    await send_raw(client, junk)
    frames, code = await client.frames_until_close()

    assert [f["type"] for f in frames] == ["bad"] and frames[0]["reason"]
    assert code == 3002
    next_client = await connect(url)
    await next_client.send(SDK_HELLO)
    assert (await next_client.frame())["type"] == "welcome"


@pytest.mark.parametrize("junk", JUNK[:2] + JUNK[3:])
async def test_junk_after_welcome_is_ignored_and_never_answered_with_bad(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]], junk: str | bytes
) -> None:
    recorder = Recorder()
    client = await connect(await start(recorder))
    await client.send(SDK_HELLO)
    await client.frame()

    await send_raw(client, junk)
    await client.send(SDK_DISCONNECT_MSG)
    frames, code = await client.frames_until_close()

    assert [type(await recorder.next_message()) for _ in range(2)] == [Connect, Disconnect]
    assert "bad" not in {f["type"] for f in frames}
    assert code == 1000


async def test_a_flood_of_junk_after_welcome_closes_the_socket_with_1002(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    client = await connect(await start(Recorder()))
    await client.send(SDK_HELLO)
    await client.frame()

    for _ in range(FAST.max_invalid_frames + 1):
        await client.ws.send_str("{not json")
    frames, code = await client.frames_until_close()

    assert "bad" not in {f["type"] for f in frames}
    assert code == 1002


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(
            [{"id": "h", "timeout": 5000, "type": "hello", "version": 2, "body": {"type": "connect"}}],
            id="connect-without-token-in-hello",
        ),
        pytest.param([SDK_HELLO, {"type": "msg", "body": {"type": "update"}}], id="update-without-session-in-msg"),
    ],
)
async def test_an_invalid_rsp_body_is_answered_with_error_53004_after_welcome(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]], sent: list[dict[str, Any]]
) -> None:
    recorder = Recorder()
    client = await connect(await start(recorder))

    for frame in sent:
        await client.send(frame)
    frames, code = await client.frames_until_close()

    assert frames[0]["type"] == "welcome"
    assert [f["body"]["type"] for f in frames[1:]] == ["error"]
    assert frames[1]["body"]["code"] == 53004
    assert code == 1000
    await recorder.wait_ended()
    assert recorder.error is not None and recorder.error.code == 53004


# --- close codes and busy -----------------------------------------------------------------------


async def test_a_close_the_client_starts_is_echoed_with_its_own_code(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    recorder = Recorder()
    client = await connect(await start(recorder))
    await client.send(SDK_HELLO)
    await client.frame()

    await client.ws.close(code=3004)  # the SDK's "network changed": it will reconnect with sync

    await recorder.wait_ended()
    assert client.ws.close_code == 3004
    assert recorder.close_code == 3004


async def test_busy_with_keep_alive_makes_the_client_say_hello_again_on_the_same_socket(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]]
) -> None:
    cookies: list[object] = []

    async def overloaded_once(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        conn = TcmpConnection(ws, config=FAST)
        await conn.read_hello()
        await conn.busy(50, keep_alive=True, cookie="c-1")
        hello = await conn.read_hello()
        cookies.append(hello.cookie)
        await conn.accept(hello)
        await conn.close()
        return ws

    client = await connect(await start(view=overloaded_once))
    await client.hello(SDK_HELLO["body"])

    assert await client.frame() == {"type": "busy", "retryAfter": 50, "keepAlive": True, "cookie": "c-1"}
    await client.hello(SDK_HELLO["body"], cookie="c-1")
    assert (await client.frame())["type"] == "welcome"
    assert cookies == ["c-1"]


@pytest.mark.parametrize(("retry_after", "sdk_close_code"), [(1000, 3005), (-1, 3006)])
async def test_busy_without_keep_alive_waits_for_the_client_to_close_and_echoes_its_code(
    start: Start, connect: Callable[[URL], Awaitable[SdkLikeClient]], retry_after: int, sdk_close_code: int
) -> None:
    async def overloaded(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        conn = TcmpConnection(ws, config=FAST)
        await conn.read_hello()
        await conn.busy(retry_after, keep_alive=False)
        return ws

    client = await connect(await start(view=overloaded))
    await client.hello(SDK_HELLO["body"])

    assert await client.frame() == {"type": "busy", "retryAfter": retry_after, "keepAlive": False}
    await client.ws.close(code=sdk_close_code)
    # 1000 here would make the SDK drop its retry (3005) and end as a local close
    assert client.ws.close_code == sdk_close_code
