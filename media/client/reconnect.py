"""Reopening a room's signaling after its socket was lost (protocol doc §4), as the SDK does.

    tcmp, first = await reopen(url, sync, window_s)

A new socket says `hello` with `sync` (the session id, the token, the local participant); the
server answers `synced` (or an `error`). Attempts back off from 80 ms by 1.5x (with jitter, up to
2 s between attempts) until `window_s` (the room's `session_timeout`) has passed since the loss;
then `SignalingConnectionError` 53000, as the SDK disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import random

from media.client.errors import SignalingConnectionError
from media.client.tcmp import TcmpClient
from media.signaling.messages import ServerMessage, Sync

logger = logging.getLogger(__name__)
FIRST_DELAY_S = 0.08
FACTOR = 1.5
MAX_DELAY_S = 2.0


async def reopen(url: str, sync: Sync, window_s: float) -> tuple[TcmpClient, ServerMessage]:
    """A new connection for the session, and the server's first message on it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window_s
    delay = FIRST_DELAY_S
    while True:
        tcmp = None
        try:
            tcmp = await TcmpClient.open(url, sync)
            async with asyncio.timeout(max(deadline - loop.time(), 0.1)):
                return tcmp, await tcmp.receive()
        except (SignalingConnectionError, TimeoutError) as exc:
            if tcmp is not None:
                await tcmp.close()
            if loop.time() + delay >= deadline:
                raise SignalingConnectionError(f"could not reconnect within {window_s} s: {exc}", code=53000) from exc
            logger.info("session %s: reconnecting failed (%s); again in %.2f s", sync.session, exc, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # the SDK's backoff itself
            delay = min(delay * FACTOR, MAX_DELAY_S)
