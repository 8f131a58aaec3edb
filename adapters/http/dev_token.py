"""`POST /dev/token` (only with `openrooms serve --dev true`): an access token for the demo page.

    POST /dev/token   identity=alice&room=standup   (form or JSON)
    200 {"token": "<JWT>", "identity": "alice", "room": "standup", "ttl": 3600}

Signed with the configured API key (the one `openrooms token` uses by default), valid for an
hour, restricted to `room` when one is given. Unauthenticated by design: whoever reaches the port
can join any room, so the server logs a warning at start and it must never face a network.
A missing or refused identity answers 400 with code 20001 in Twilio's error body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web

from adapters.config import Credentials
from adapters.http.params import BadParameterError
from domain.access import mint_token

logger = logging.getLogger(__name__)
TTL_SECONDS: Final = 3600


async def _fields(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            raise BadParameterError("The request body is not JSON") from exc
        if not isinstance(body, dict):
            raise BadParameterError("The request body is not a JSON object")
        return body
    return dict(await request.post())


def dev_token_route(credentials: Credentials, *, now: Callable[[], float]) -> web.RouteDef:
    async def dev_token(request: web.Request) -> web.Response:
        fields = await _fields(request)
        identity, room = fields.get("identity"), fields.get("room") or None
        if not isinstance(identity, str) or not identity.strip():
            raise BadParameterError("Missing required parameter identity in the request")
        if room is not None and not isinstance(room, str):
            raise BadParameterError("room must be a string")
        identity, room = identity.strip(), room.strip() if room else None
        try:
            token = mint_token(
                account_sid=credentials.account_sid,
                key_sid=credentials.api_key_sid,
                key_secret=credentials.api_key_secret,
                identity=identity,
                room=room,
                ttl=TTL_SECONDS,
                now=int(now()),
            )
        except ValueError as exc:
            raise BadParameterError(str(exc)) from exc
        logger.info("dev token for identity %r, room %r", identity, room)
        return web.json_response({"token": token, "identity": identity, "room": room, "ttl": TTL_SECONDS})

    return web.post("/dev/token", dev_token)
