"""`rooms.cmd.<command>`: commands over NATS request/reply, in a queue group.

Every engine process subscribes in the same queue group, so NATS spreads the load; each
request is handled in its own task so that requests arriving together are committed together
(the CommandBus group commit). The body is the command's JSON without its tag, decoded by
msgspec into the command named by the subject; the reply carries the resource the command
produced, in Twilio's JSON shape, read with read-your-writes from the read model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.aio.client import Client

from adapters import twilio_shapes as shapes
from adapters.command_bus import CommandBus
from adapters.nats import envelope
from adapters.nats.engine_peers import EnginePeers
from adapters.nats.responder import Responder
from adapters.store.queries import Queries
from adapters.store.recent_rows import RecentRows
from domain import commands as cmd
from domain.projections import Row
from domain.results import CommandResult

logger = logging.getLogger(__name__)
SUBJECT = "rooms.cmd.*"
QUEUE = "openrooms-engine"
_DECODERS = {name: msgspec.json.Decoder(cls) for name, cls in cmd.COMMAND_TYPES.items()}


class CommandService(Responder):
    subject = SUBJECT
    queue = QUEUE

    def __init__(
        self,
        nc: Client,
        bus: CommandBus,
        queries: Queries,
        base_url: str,
        *,
        ready: Callable[[], Awaitable[None]] | None = None,
        recent: RecentRows | None = None,
        observe: Callable[[str, float, str], None] | None = None,
        peers: EnginePeers | None = None,
    ) -> None:
        super().__init__(nc)
        self.peers = peers
        """With several engines: forward a command to the engine that owns its room."""
        self.bus = bus
        self.queries = queries
        self.base_url = base_url.rstrip("/")
        self.observe = observe
        self.ready = ready
        self.recent = recent
        """Rows the follower just wrote: replies read them without a database round trip."""
        """Awaited before reading the produced resource (read-your-writes without a query per reply)."""

    async def answer(self, name: str, data: bytes) -> bytes:
        """The reply to command `name`: from the engine owning its room, or decided here."""
        if self.peers is not None and (forwarded := await self.peers.forward(name, data)) is not None:
            return forwarded
        return await self.reply(name, data)

    async def reply(self, name: str, data: bytes) -> bytes:
        """Execute the command `name` with the JSON body `data` here; the reply envelope.

        The one way a command is executed, whatever carried it (NATS here, forwarded by another
        engine, or the REST API in the same process through adapters.http.gateway)."""
        began = time.perf_counter()
        outcome = "error"
        try:
            reply, outcome = await self._execute(name, data)
        except Exception:
            logger.exception("command %s failed", name)
            reply = envelope.error(envelope.INTERNAL, "internal error", 500)
        if self.observe is not None:
            self.observe(name, time.perf_counter() - began, outcome)
        return reply

    async def _execute(self, name: str, data: bytes) -> tuple[bytes, str]:
        decoder = _DECODERS.get(name)
        if decoder is None:
            known = ", ".join(sorted(_DECODERS))
            return envelope.error(envelope.NOT_FOUND, f"unknown command {name!r}; known: {known}", 404), "unknown"
        try:
            command = decoder.decode(data)
        except msgspec.DecodeError as exc:
            logger.info("malformed %s: %s", name, exc)
            return envelope.error(envelope.MALFORMED, f"invalid {name}: {exc}"), str(envelope.MALFORMED)
        result = await self.bus.execute(command)
        if not result.ok:
            code = result.error_code or envelope.INTERNAL
            return envelope.error(code, result.error_message or "", result.error_status or 400), str(code)
        resource = self.resource(command, result, self.recent.get) if self.recent is not None else None
        if resource is None:  # not among the rows this engine just committed: read the database
            if self.ready is not None:
                await self.ready()
            resource = await asyncio.to_thread(self.resource, command, result)
        return envelope.ok(resource if resource is not None else msgspec.to_builtins(result)), "ok"

    def resource(
        self, command: cmd.Command, result: CommandResult, find: Callable[..., Row | None] | None = None
    ) -> dict[str, Any] | None:
        """What a command produced, in Twilio's JSON shape; None when `find` does not have it."""
        find = find or self.queries.by_key
        base = self.base_url
        if isinstance(command, cmd.UpdateSubscribeRules) and result.participant_sid:
            rules = find("subscribe_rules", result.participant_sid)
            return shapes.subscribe_rules_json(rules) if rules is not None else None
        if isinstance(command, cmd.UpdateRecordingRules) and result.room_sid:
            rules = find("recording_rules", result.room_sid)
            return shapes.recording_rules_json(rules) if rules is not None else None
        if result.recording_sid:
            recording = find("recordings", result.recording_sid)
            return shapes.recording_json(recording, base) if recording is not None else None
        if result.track_sid and result.participant_sid and not isinstance(command, cmd.UnpublishTrack):
            track = find("published_tracks", result.track_sid)
            return shapes.published_track_json(track, base) if track is not None else None
        if result.participant_sid:
            participant = find("participants", result.participant_sid)
            if participant is None:
                return None
            shaped = shapes.participant_json(participant, base)
            if result.track_sids:
                shaped["published_track_sids"] = list(result.track_sids)
            return shaped
        if result.room_sid:
            room = find("rooms", result.room_sid)
            return shapes.room_json(room, base) if room is not None else None
        return msgspec.to_builtins(result)  # type: ignore[no-any-return]


class OwnedCommands(Responder):
    """`rooms.engine.<id>.cmd.*`: commands other engines forward to this one, because it owns
    their rooms (adapters/nats/engine_peers.py). Decided here, never forwarded again."""

    queue = ""

    def __init__(self, nc: Client, commands: CommandService, subject: str) -> None:
        super().__init__(nc)
        self.commands = commands
        self.subject = subject

    async def answer(self, name: str, data: bytes) -> bytes:
        return await self.commands.reply(name, data)
