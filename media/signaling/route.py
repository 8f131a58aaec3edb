"""The `/signaling` WebSocket route: where a session handler plugs into the TCMP transport.

    app.add_routes([signaling_route(handle_session)])

    async def handle_session(conn: Connection) -> None:
        async for message in conn:           # the hello's body (connect, sync or ice) comes first
            ...                              # await conn.send(Connected(...)), etc.

For each WebSocket the route reads the `hello`, answers `welcome` (tcmp.py) and runs the handler
with the open connection. When the handler returns, the socket is closed with 1000, which the
SDK takes as a clean end of the room, so a handler returns once the session is over (`disconnect`
received, or the connection closed under it). What escapes the handler:

* `ConnectionClosedError`: the client went away; nothing more to do.
* another `SignalingError` (e.g. `InvalidMessageError` 53004 from `receive()`): sent to the client as
  an RSP `error` with its code (protocol doc §2.2, §7), which rejects `connect()` or disconnects the
  room, then the socket is closed with 1000.
* any other exception: logged, socket closed with 1011 (the SDK reconnects with `sync`).
* cancellation (server shutdown): socket closed with 1001 (the SDK reconnects), then re-raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from media.signaling.connection import Connection
from media.signaling.errors import ConnectionClosedError, SignalingError
from media.signaling.messages import ErrorMessage
from media.signaling.tcmp import CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, TcmpConfig, TcmpConnection

logger = logging.getLogger(__name__)

SessionHandler = Callable[[Connection], Awaitable[None]]


def signaling_route(
    handler: SessionHandler, *, path: str = "/signaling", config: TcmpConfig | None = None
) -> web.RouteDef:
    """A GET route that upgrades `path` to a WebSocket and runs `handler` on its TCMP connection."""
    tcmp_config = config or TcmpConfig()

    async def signaling(request: web.Request) -> web.WebSocketResponse:
        # autoclose=False: the connection echoes the client's close code itself (see tcmp.py).
        ws = web.WebSocketResponse(autoclose=False, timeout=tcmp_config.close_timeout_s)
        await ws.prepare(request)
        conn = TcmpConnection(ws, config=tcmp_config, peer=request.remote or "?")
        try:
            await conn.accept(await conn.read_hello())
        except ConnectionClosedError:
            await conn.close()
            return ws
        await serve_session(handler, conn)
        return ws

    return web.get(path, signaling)


async def serve_session(handler: SessionHandler, conn: Connection) -> None:
    """Run `handler` on an accepted connection; what escapes it ends the connection as the module
    docstring says. Also used where a media worker serves a connection bridged over NATS."""
    try:
        await handler(conn)
    except ConnectionClosedError:
        pass
    except SignalingError as exc:
        await _report(conn, exc)
    except asyncio.CancelledError:
        await conn.close(CLOSE_GOING_AWAY, "server shutting down")
        raise
    except Exception:
        logger.exception("signaling %s: session handler failed", conn)
        await conn.close(CLOSE_INTERNAL_ERROR, "internal error")
    finally:
        await conn.close()


async def _report(conn: Connection, error: SignalingError) -> None:
    logger.warning("signaling %s: ending the session with error %d: %s", conn, error.code, error.message)
    try:
        await conn.send(ErrorMessage.from_error(error))
    except SignalingError:
        return  # closed meanwhile, or the error came before welcome: nothing to tell
