"""`rooms.cmd.<command>`: commands over NATS request/reply, in a queue group.

Every engine process subscribes in the same queue group, so NATS spreads the load; each
request is handled in its own task so that requests arriving together are committed together
(the CommandBus group commit). The body is the command's JSON without its tag, decoded by
msgspec into the command named by the subject; the reply carries the resource the command
produced, in Twilio's JSON shape, read with read-your-writes from the read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

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


class _Waiting(NamedTuple):
    """A request submitted to the bus, waiting for its batch."""

    msg: Msg
    name: str
    command: cmd.Command
    future: asyncio.Future[CommandResult]
    began: float


class CommandService(Responder):
    """Requests the engine decides itself go straight to the bus from the subscription's callback
    (decoded there, no task per request) and are answered from the bus's drain task as soon as
    their batch is resolved (`CommandBus.on_resolved`): nothing else runs between a commit and its
    replies. A request forwarded to another engine, or whose resource must be read from the
    database, gets a task of its own."""

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
        """Awaited before reading the produced resource (read-your-writes without a query per reply)."""
        self.recent = recent
        """Rows the follower just wrote: replies read them without a database round trip."""
        self._waiting: list[_Waiting] = []
        """Requests submitted to the bus and not answered yet."""
        self._later: set[asyncio.Task[None]] = set()
        """Replies that read their resource from the database first."""

    async def start(self) -> None:
        self.bus.on_resolved.append(self._send_replies)
        await super().start()

    async def stop(self) -> None:
        """Stop taking requests, then answer those submitted or in flight (also when the bus
        stopped without resolving them as usual: it fails what it leaves behind)."""
        await super().stop()
        while self._waiting or self._later:
            await asyncio.wait([r.future for r in self._waiting] + list(self._later), return_when=FIRST_COMPLETED)
            await self._send_replies()
        with contextlib.suppress(ValueError):
            self.bus.on_resolved.remove(self._send_replies)

    async def _receive(self, msg: Msg) -> None:
        name = msg.subject.rsplit(".", 1)[-1]
        if self.peers is not None and self.peers.owner_elsewhere(msg.data) is not None:
            await super()._receive(msg)  # forwarded: a task waits for the owner's reply
            return
        began = time.perf_counter()
        command = self._decode(name, msg.data)
        if isinstance(command, bytes):
            await self._respond(msg, command)
            return
        try:
            future = self.bus.submit(command)
        except RuntimeError:  # the engine is stopping
            await self._respond(msg, self._failed(name, began))
            return
        self._waiting.append(_Waiting(msg, name, command, future, began))

    async def _send_replies(self) -> None:
        """The replies to the requests whose batch was just resolved (the bus's drain task)."""
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            if not request.future.done():
                self._waiting.append(request)  # in a later batch
            elif not request.future.cancelled():
                reply = self._reply_now(request)
                if reply is None:  # the resource is not among the rows just committed: read it
                    self._spawn(self._reply_later(request))
                else:  # nats-py queues it for its flusher: no wait, unless its buffer is full
                    await self._respond(request.msg, reply)

    def _reply_now(self, request: _Waiting) -> bytes | None:
        """The reply to a resolved request, unless it needs a database read (None)."""
        try:
            shaped = self._shape(request.command, request.future.result())
        except Exception:  # the batch failed (or a bug): this request fails, the others are answered
            logger.exception("command %s failed", request.name)
            return self._failed(request.name, request.began)
        return None if shaped is None else self._done(request.name, request.began, *shaped)

    async def _reply_later(self, request: _Waiting) -> None:
        msg, name, command, future, began = request
        await self._respond(msg, await self._outcome(name, began, command, future))

    async def _respond(self, msg: Msg, reply: bytes) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(reply)
        except Exception as exc:  # the connection is closing or reconnecting: the requester times out
            logger.warning("could not reply on %s: %s", msg.subject, exc)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def answer(self, name: str, data: bytes) -> bytes:
        """The reply to command `name`: from the engine owning its room, or decided here."""
        if self.peers is not None and (forwarded := await self.peers.forward(name, data)) is not None:
            return forwarded
        return await self.reply(name, data)

    async def reply(self, name: str, data: bytes) -> bytes:
        """Execute the command `name` with the JSON body `data` here, awaiting it; the reply envelope.

        The way a command is executed for a caller that awaits it (forwarded by another engine,
        or the REST API in the same process through adapters.http.gateway); the same steps as a
        NATS request's (`_receive`, `_send_replies`)."""
        began = time.perf_counter()
        command = self._decode(name, data)
        if isinstance(command, bytes):
            return command
        return await self._outcome(name, began, command, self.bus.execute(command))

    async def _outcome(self, name: str, began: float, command: cmd.Command, result: Awaitable[CommandResult]) -> bytes:
        """The reply once `result` (the command's execution) is in; 20500 if it failed."""
        try:
            decided = await result
            shaped = self._shape(command, decided) or await self._read_and_shape(command, decided)
        except Exception:
            logger.exception("command %s failed", name)
            return self._failed(name, began)
        return self._done(name, began, *shaped)

    def _decode(self, name: str, data: bytes) -> cmd.Command | bytes:
        """The command, or the error reply to a request that names none or is malformed."""
        began = time.perf_counter()
        decoder = _DECODERS.get(name)
        if decoder is None:
            known = ", ".join(sorted(_DECODERS))
            reply = envelope.error(envelope.NOT_FOUND, f"unknown command {name!r}; known: {known}", 404)
            return self._done(name, began, reply, "unknown")
        try:
            return decoder.decode(data)
        except msgspec.DecodeError as exc:
            logger.info("malformed %s: %s", name, exc)
            reply = envelope.error(envelope.MALFORMED, f"invalid {name}: {exc}")
            return self._done(name, began, reply, str(envelope.MALFORMED))

    def _shape(self, command: cmd.Command, result: CommandResult) -> tuple[bytes, str] | None:
        """The reply to a decided command and its outcome; None when its resource must be read
        from the database (not among the rows this engine just committed)."""
        if not result.ok:
            code = result.error_code or envelope.INTERNAL
            return envelope.error(code, result.error_message or "", result.error_status or 400), str(code)
        resource = self.resource(command, result, self.recent.get) if self.recent is not None else None
        if resource is None:
            return None
        return envelope.ok(resource), "ok"

    async def _read_and_shape(self, command: cmd.Command, result: CommandResult) -> tuple[bytes, str]:
        if self.ready is not None:
            await self.ready()
        resource = await asyncio.to_thread(self.resource, command, result)
        return envelope.ok(resource if resource is not None else msgspec.to_builtins(result)), "ok"

    def _done(self, name: str, began: float, reply: bytes, outcome: str) -> bytes:
        """`reply`, counted in the command metrics."""
        if self.observe is not None:
            self.observe(name, time.perf_counter() - began, outcome)
        return reply

    def _failed(self, name: str, began: float) -> bytes:
        """The reply to a command that failed on our side (a bug, the store, the engine stopping)."""
        return self._done(name, began, envelope.error(envelope.INTERNAL, "internal error", 500), "error")

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
