"""The media plane's only way to the engine: NATS request/reply and the room event stream.

    link = EngineLink(nc)
    grant = await link.query("verify_token", token=..., room="standup")
    participant = await link.command("connect_participant", room="standup", identity="alice", ...)
    sub = await link.follow_room(room_sid, on_event)     # every event of the room, from its start

Replies are docs/nats.md's envelope; `{"ok": false}` raises `EngineError` with the engine's
Twilio code; a timeout or a lost connection raises `SessionError` 53000. Room events are read
from the JetStream stream `ROOMS_EVENTS` with an ordered consumer that starts at the room's first
event: the session layer rebuilds the room's state from them (no snapshot query to race with).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy

from domain.ids import RoomSid
from media.session.errors import EngineError, SessionError

logger = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 10.0

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class EngineLink:
    """Commands, queries and room events over one NATS connection."""

    def __init__(self, nc: Client, *, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._nc = nc
        self._timeout_s = timeout_s

    async def command(self, name: str, /, **body: Any) -> dict[str, Any]:
        """`rooms.cmd.<name>` with a fresh command_id; the result, or EngineError."""
        body.setdefault("command_id", f"media-{uuid.uuid4().hex}")
        return await self._request(f"rooms.cmd.{name}", body)

    async def query(self, name: str, /, **body: Any) -> dict[str, Any]:
        """`rooms.qry.<name>`; the result, or EngineError."""
        return await self._request(f"rooms.qry.{name}", body)

    async def follow_room(self, room_sid: RoomSid, handler: EventHandler) -> Subscription:
        """Call `handler` with every event of the room in order, from the first one, then live."""

        async def deliver(msg: Msg) -> None:
            try:
                event = json.loads(msg.data)
            except ValueError:
                logger.warning("room %s: undecodable event on %s", room_sid, msg.subject)
                return
            try:
                await handler(event)
            except Exception:  # one bad event must not stop the room's stream
                logger.exception("room %s: handling event %s failed", room_sid, event.get("event"))

        js = self._nc.jetstream()
        return await js.subscribe(
            f"rooms.evt.{room_sid}.>", cb=deliver, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )

    async def _request(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = await self._nc.request(subject, json.dumps(body).encode(), timeout=self._timeout_s)
        except (nats.errors.Error, TimeoutError) as exc:
            raise SessionError(f"the engine did not answer {subject}: {exc}", code=53000) from exc
        decoded = json.loads(reply.data)
        if not decoded.get("ok"):
            error = decoded.get("error") or {}
            raise EngineError(subject, int(error.get("code", 53000)), str(error.get("message", "engine error")))
        result: dict[str, Any] = decoded["result"]
        return result
