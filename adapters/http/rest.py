"""Twilio's Video `/v1` REST API, as the `twilio` helper libraries call it.

Each route reads Twilio's parameters (adapters.http.params), sends the engine's command or query
through the gateway (adapters.http.gateway) and answers the resource in Twilio's JSON shape, or
Twilio's error body. Status codes as Twilio's spec: 201 create, 202 room/participant update,
200 fetch, list and rules, 204 delete. Lists page as Twilio's `meta` (adapters.http.paging).

Writes carry a `command_id`: the client's `I-Twilio-Idempotency-Token` header when it sends
one (a retried request then returns its first result), else a fresh one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
from aiohttp import web

from adapters.http import params as P
from adapters.http.errors import twilio_error
from adapters.http.gateway import Gateway, Reply
from adapters.http.paging import page_body, read_paging

logger = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDEMPOTENCY_HEADER: Final = "I-Twilio-Idempotency-Token"
NOT_IMPLEMENTED: Final = 20501
FORM_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")
_ENCODER = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(body), status=status, content_type="application/json")


class RestApi:
    """The `/v1` routes. `attach()` gives them the engine once the service has started."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.base = ""

    def attach(self, gateway: Gateway, base_url: str) -> None:
        self.gateway = gateway
        self.base = base_url.rstrip("/")

    def routes(self) -> list[web.RouteDef]:
        room = "/v1/Rooms/{room}"
        participant = room + "/Participants/{participant}"
        return [
            web.post("/v1/Rooms", self.create_room),
            web.get("/v1/Rooms", self.list_rooms),
            web.get(room, self.fetch_room),
            web.post(room, self.update_room),
            web.get(room + "/Participants", self.list_participants),
            web.get(participant, self.fetch_participant),
            web.post(participant, self.update_participant),
            web.post(participant + "/Anonymize", self.anonymize_participant),
            web.get(participant + "/PublishedTracks", self._tracks("list_published_tracks", "published_tracks")),
            web.get(participant + "/PublishedTracks/{track}", self._track("get_published_track")),
            web.get(participant + "/SubscribedTracks", self._tracks("list_subscribed_tracks", "subscribed_tracks")),
            web.get(participant + "/SubscribedTracks/{track}", self._track("get_subscribed_track")),
            web.get(participant + "/SubscribeRules", self.fetch_subscribe_rules),
            web.post(participant + "/SubscribeRules", self.update_subscribe_rules),
            web.get(room + "/RecordingRules", self.fetch_recording_rules),
            web.post(room + "/RecordingRules", self.update_recording_rules),
            web.get(room + "/Recordings", self.list_room_recordings),
            web.get(room + "/Recordings/{recording}", self.fetch_recording),
            web.delete(room + "/Recordings/{recording}", self.delete_recording),
            web.get(room + "/Recordings/{recording}/Media", self.recording_media),
            web.get("/v1/Recordings", self.list_recordings),
            web.get("/v1/Recordings/{recording}", self.fetch_recording),
            web.delete("/v1/Recordings/{recording}", self.delete_recording),
            web.get("/v1/Recordings/{recording}/Media", self.recording_media),
            *self._not_implemented(),
        ]

    # --- plumbing --------------------------------------------------------------------------

    def _gateway(self) -> Gateway:
        if self.gateway is None:
            raise web.HTTPServiceUnavailable(reason="The service is starting; try again")
        return self.gateway

    async def _command(self, request: web.Request, name: str, body: dict[str, Any], status: int) -> web.Response:
        body["command_id"] = request.headers.get(IDEMPOTENCY_HEADER) or f"rest-{os.urandom(16).hex()}"
        return self._answer(request, await self._gateway().command(name, body), status)

    async def _query(self, name: str, body: dict[str, Any]) -> Reply:
        return await self._gateway().query(name, body)

    def _answer(self, request: web.Request, reply: Reply, status: int = 200) -> web.Response:
        if reply.ok:
            return json_response(reply.result, status)  # the result's JSON bytes, as the engine encoded them
        error = reply.error or {}
        code = int(error.get("code", 20500))
        http_status = int(error.get("status", 500))
        message = str(error.get("message", ""))
        if http_status == 404:  # whichever resource of the path is missing, Twilio's REST answer is 20404
            code, message = 20404, f"The requested resource {request.path} was not found"
        elif http_status >= 500:
            logger.error("%s %s failed: %s", request.method, request.path, message)
        return twilio_error(http_status, message, code)

    @staticmethod
    async def _form(request: web.Request) -> Any:
        """The form body; a body of another type is refused (Twilio takes only forms)."""
        if request.can_read_body and request.content_type not in FORM_TYPES:
            raise P.BadParameterError(
                f"Content-Type {request.content_type!r} is not supported: send application/x-www-form-urlencoded"
            )
        try:
            return await request.post()
        except ValueError as exc:  # a broken multipart body or bad encoding
            raise P.BadParameterError(f"The request body cannot be read: {exc}") from None

    async def _list(
        self, request: web.Request, query: str, key: str, body: dict[str, Any], filters: tuple[P.Param, ...], cap: int
    ) -> web.Response:
        body.update(P.read(request.query, filters))
        paging = read_paging(request.query, cap)
        body["page_size"] = paging.page_size
        if paging.page_token is not None:
            body["page_token"] = paging.page_token
        reply = await self._query(query, body)
        if not reply.ok:
            return self._answer(request, reply)
        result = reply.value()
        return json_response(
            page_body(key, result[key], result["next_page_token"], paging, self.base + request.path,
                      P.echo(request.query, filters))
        )  # fmt: skip

    # --- rooms -----------------------------------------------------------------------------

    async def create_room(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        P.read(form, P.ROOM_CREATE_IGNORED)
        return await self._command(request, "create_room", P.read(form, P.ROOM_CREATE), 201)

    async def list_rooms(self, request: web.Request) -> web.Response:
        return await self._list(request, "list_rooms", "rooms", {}, P.ROOM_FILTERS, 1000)

    async def fetch_room(self, request: web.Request) -> web.Response:
        return self._answer(request, await self._query("get_room", {"room": request.match_info["room"]}))

    async def update_room(self, request: web.Request) -> web.Response:
        status = P.read(await self._form(request), P.ROOM_UPDATE)["status"]
        if status != "completed":
            return twilio_error(400, f"Invalid Room status {status!r}: only completed can be set", 53112)
        return await self._command(request, "complete_room", {"room_sid": request.match_info["room"]}, 202)

    # --- participants ----------------------------------------------------------------------

    def _participant_body(self, request: web.Request) -> dict[str, Any]:
        return {"room": request.match_info["room"], "participant": request.match_info["participant"]}

    def _participant_target(self, request: web.Request) -> dict[str, Any]:
        return {"room_sid": request.match_info["room"], "participant_sid": request.match_info["participant"]}

    async def list_participants(self, request: web.Request) -> web.Response:
        body = {"room": request.match_info["room"]}
        return await self._list(request, "list_participants", "participants", body, P.PARTICIPANT_FILTERS, 1000)

    async def fetch_participant(self, request: web.Request) -> web.Response:
        return self._answer(request, await self._query("get_participant", self._participant_body(request)))

    async def update_participant(self, request: web.Request) -> web.Response:
        status = P.read(await self._form(request), P.PARTICIPANT_UPDATE)["status"]
        if status != "disconnected":
            return twilio_error(400, f"Invalid Participant status {status!r}: only disconnected can be set", 53209)
        body = {**self._participant_target(request), "reason": "kicked"}
        return await self._command(request, "disconnect_participant", body, 202)

    async def anonymize_participant(self, request: web.Request) -> web.Response:
        return await self._command(request, "anonymize_participant", self._participant_target(request), 200)

    def _tracks(self, query: str, key: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return await self._list(request, query, key, self._participant_body(request), (), 1000)

        return handler

    def _track(self, query: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            body = {**self._participant_body(request), "track": request.match_info["track"]}
            return self._answer(request, await self._query(query, body))

        return handler

    # --- rules -----------------------------------------------------------------------------

    async def fetch_subscribe_rules(self, request: web.Request) -> web.Response:
        reply = await self._query("get_subscribe_rules", self._participant_body(request))
        return self._answer(request, reply)

    async def update_subscribe_rules(self, request: web.Request) -> web.Response:
        body = {**self._participant_target(request), **P.read(await self._form(request), P.SUBSCRIBE_RULES)}
        return await self._command(request, "update_subscribe_rules", body, 200)

    async def fetch_recording_rules(self, request: web.Request) -> web.Response:
        return self._answer(request, await self._query("get_recording_rules", {"room": request.match_info["room"]}))

    async def update_recording_rules(self, request: web.Request) -> web.Response:
        body = {"room_sid": request.match_info["room"], **P.read(await self._form(request), P.RECORDING_RULES)}
        return await self._command(request, "update_recording_rules", body, 200)

    # --- recordings ------------------------------------------------------------------------

    @staticmethod
    def _recording_body(request: web.Request) -> dict[str, Any]:
        body = {"recording": request.match_info["recording"]}
        if "room" in request.match_info:
            body["room"] = request.match_info["room"]
        return body

    async def list_recordings(self, request: web.Request) -> web.Response:
        return await self._list(request, "list_recordings", "recordings", {}, P.RECORDING_FILTERS, 100)

    async def list_room_recordings(self, request: web.Request) -> web.Response:
        body = {"room": request.match_info["room"]}
        return await self._list(request, "list_recordings", "recordings", body, P.ROOM_RECORDING_FILTERS, 100)

    async def fetch_recording(self, request: web.Request) -> web.Response:
        return self._answer(request, await self._query("get_recording", self._recording_body(request)))

    async def delete_recording(self, request: web.Request) -> web.StreamResponse:
        found = await self._query("get_recording", self._recording_body(request))
        if not found.ok:
            return self._answer(request, found)
        recording = found.value()
        target = {"room_sid": recording["grouping_sids"]["room_sid"], "recording_sid": recording["sid"]}
        deleted = await self._command(request, "delete_recording", target, 204)
        return web.Response(status=204) if deleted.status == 204 else deleted

    async def recording_media(self, request: web.Request) -> web.StreamResponse:
        found = await self._query("get_recording", self._recording_body(request))
        if not found.ok:
            return self._answer(request, found)
        recording = found.value()
        location = recording.get("media_external_location")
        if recording.get("status") != "completed" or not location:
            return twilio_error(404, f"The media of recording {recording['sid']} is not available", 20404)
        raise web.HTTPFound(location)

    # --- what is not built yet -------------------------------------------------------------

    @staticmethod
    def _not_implemented() -> list[web.RouteDef]:
        async def handler(request: web.Request) -> web.Response:
            return twilio_error(
                501,
                f"{request.method} {request.path} is not implemented by openrooms yet (see docs/api-compatibility.md)",
                NOT_IMPLEMENTED,
            )

        paths = (
            "/v1/Compositions",
            "/v1/Compositions/{sid}",
            "/v1/Compositions/{sid}/Media",
            "/v1/CompositionHooks",
            "/v1/CompositionHooks/{sid}",
            "/v1/CompositionSettings/Default",
            "/v1/RecordingSettings/Default",
            "/v1/Rooms/{room}/Transcriptions",
            "/v1/Rooms/{room}/Transcriptions/{sid}",
        )
        return [web.route("*", path, handler) for path in paths]
