"""The session handler behind `/signaling`: connect, sync, update, disconnect (protocol doc §2-§4).

    app.add_routes([signaling_route(service.handle)])

* `ice` (hello body when the app gave no `iceServers`) → `iced` with the configured STUN servers and
  TURN servers with time-limited credentials for the token's identity (ice_servers.py); the token
  is verified first (a bad one gets its 201xx error). With none configured, `iced` lists none.
* `connect` → the token is verified by the engine (`rooms.qry.verify_token`, room = connect.name);
  a refusal is an RSP `error` with its code (20101-20107), which rejects `connect()`. Then
  `rooms.cmd.connect_participant`, the participant's PeerConnection (MAX_BUNDLE) joins the room's
  router, the client's offer is answered, and `connected` lists the other participants (from the
  room's events), the answer, and the MT sids of the published tracks. In an audio-only room the
  video tracks are left out of the command and fail with 53125 in `published` (Twilio's behaviour:
  the room connects, `trackPublicationFailed` fires for the video).
* `update` → `ParticipantSession.on_update`; `disconnect` → `disconnect_participant` (left).
* a lost socket keeps the session for `session_timeout` seconds; `sync` with its session id on a
  new socket attaches it again and answers `synced` (participants, PC id, published,
  subscribed); after the timeout the participant is disconnected (reason left).

Rooms live in this process (one `MediaRoom` per room SID) until their last local session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from domain.ids import ParticipantSid, RoomSid, TrackSid
from media.session.engine_link import EngineLink
from media.session.errors import EngineError, SessionError
from media.session.ice_servers import IceServerSettings, ice_servers
from media.session.media_room import MediaRoom
from media.session.mesh_topology import PEER_LOSS_GRACE_S, MeshTopology
from media.session.participant_session import ParticipantSession
from media.session.sfu_topology import SfuTopology
from media.session.stats import MediaStats
from media.session.topology import Topology
from media.sfu import Router, SfuConfig
from media.signaling.connection import Connection
from media.signaling.errors import ConnectionClosedError, SignalingError
from media.signaling.messages import (
    ClientMessage,
    ClientUpdate,
    Connect,
    Connected,
    Disconnect,
    Iced,
    IceRequest,
    LocalTrackState,
    SelfParticipant,
    SessionId,
    Sync,
    Synced,
)
from media.signaling.tcmp import CLOSE_GOING_AWAY

logger = logging.getLogger(__name__)
TRACK_KIND_NOT_SUPPORTED = 53125
MESH_ROOM_TYPES = ("peer-to-peer", "go")


@dataclass(frozen=True)
class SessionSettings:
    session_timeout_s: int = 30
    """The reconnect window told to the SDK, and how long a session outlives a lost socket."""
    event_wait_s: float = 10.0
    """How long `connect` waits for the room's events to show the new participant."""
    peer_loss_grace_s: float = PEER_LOSS_GRACE_S
    """Peer-to-peer rooms: how long a lost socket keeps its links before the peers are told to close them."""


class SignalingService:
    """Every signaling session of this process, and the rooms they are in."""

    def __init__(
        self,
        link: EngineLink,
        settings: SessionSettings | None = None,
        sfu_config: SfuConfig | None = None,
        ice_servers: IceServerSettings | None = None,
        worker_id: str = "",
    ) -> None:
        """`worker_id` starts every session id (the front routes a `sync` by it)."""
        self._link = link
        self._worker_id = worker_id
        self.on_room_closed: Callable[[str], None] | None = None
        """Called with a room's name when its last session here ended (placement releases it)."""
        self._settings = settings or SessionSettings()
        self._ice_servers = ice_servers or IceServerSettings()
        self._sfu_config = sfu_config
        self._rooms: dict[RoomSid, MediaRoom] = {}
        self._sessions: dict[SessionId, ParticipantSession] = {}
        self._expiry: dict[SessionId, asyncio.Task[None]] = {}
        self._closing = False
        self._retired_packets = 0

    # --- the handler --------------------------------------------------------------------------------

    async def handle(self, conn: Connection) -> None:
        """Run one socket's RSP conversation (see the module docstring)."""
        session: ParticipantSession | None = None
        try:
            async for message in conn:
                if session is None:
                    session = await self._open(conn, message)
                    if session is None and isinstance(message, Disconnect):
                        return
                elif isinstance(message, ClientUpdate):
                    await session.on_update(message)
                elif isinstance(message, Disconnect):
                    await self._leave(session)
                    return
                if session is not None and session.ended:
                    return
        except ConnectionClosedError:
            pass
        finally:
            if session is not None and not session.ended and session.conn is conn:
                self._detach(session)

    async def _open(self, conn: Connection, message: ClientMessage) -> ParticipantSession | None:
        if isinstance(message, IceRequest):
            await conn.send(await self.iced(message))
            return None
        if isinstance(message, Connect):
            return await self._connect(conn, message)
        if isinstance(message, Sync):
            return await self._sync(conn, message)
        return None  # update/disconnect without a session: nothing to do

    async def iced(self, request: IceRequest) -> Iced:
        """STUN/TURN servers with TURN credentials for the token's identity (a bad token: its 201xx error)."""
        if not self._ice_servers.stun_urls and not self._ice_servers.turn_urls:
            return Iced(ice_servers=[])
        token = request.token if isinstance(request.token, str) else ""
        grant = await self._link.query("verify_token", token=token, room=None)
        return Iced(ice_servers=ice_servers(self._ice_servers, str(grant["identity"]), time.time()))

    # --- connect ------------------------------------------------------------------------------------

    async def _connect(self, conn: Connection, connect: Connect) -> ParticipantSession:
        grant = await self._link.query("verify_token", token=connect.token, room=connect.name)
        room_name = connect.name or grant.get("room")
        if not room_name:
            raise SessionError("connect names no room and the token grants none", code=53100)
        rules = [] if connect.subscribe is UNSET else connect.subscribe.rules
        automatic = not rules or rules[0].type == "include"
        result, tracks, refused = await self._connect_participant(
            str(room_name), str(grant["identity"]), automatic, connect.participant.tracks
        )
        participant_sid = ParticipantSid(str(result["sid"]))
        room = await self._room(RoomSid(str(result["room_sid"])), str(room_name))
        session_id = SessionId(f"SS{self._worker_id}{uuid.uuid4().hex}")
        session = ParticipantSession(session_id, room, participant_sid, str(result["identity"]))
        for track, track_sid in zip(tracks, result.get("published_track_sids", []), strict=False):
            session.record_published(track.id, TrackSid(str(track_sid)))
        for track in refused:
            session.record_failed(track.id, TRACK_KIND_NOT_SUPPORTED, "The track kind is not supported by the Room")
        session.local_tracks = {t.id: t for t in connect.participant.tracks}
        if connect.media_signaling is not UNSET:
            session.requested_media_signaling = list(connect.media_signaling)
        room.add_session(session)
        self._sessions[session.session_id] = session
        session.conn = conn
        try:
            await room.wait_for_participant(participant_sid, self._settings.event_wait_s)
            offer = connect.peer_connections[0] if connect.peer_connections else None
            peer_connections = await room.topology.join(session, offer)
        except BaseException:
            await self._drop(session)
            raise
        connected = Connected(
            session=session.session_id,
            sid=room.room_sid,
            name=str(room_name),
            options=room.topology.options(self._settings.session_timeout_s),
            participant=SelfParticipant(sid=participant_sid, identity=session.identity),
            participants=room.view.connected(exclude=participant_sid),
            peer_connections=peer_connections,
            published=session.published_block(),
            subscribed=session.subscribed_block(),
            media_signaling=session.media_signaling or UNSET,
        )
        session.ready = True
        await session.send(connected)
        logger.info("room %s: participant %s (%s) connected", room.room_sid, participant_sid, session.identity)
        await room.topology.joined(session)
        return session

    async def _connect_participant(
        self, room: str, identity: str, automatic: bool, tracks: list[LocalTrackState]
    ) -> tuple[dict[str, Any], list[LocalTrackState], list[LocalTrackState]]:
        """`connect_participant`; the engine's result, the tracks it published, those it refused.

        An audio-only room refuses video (53125) for the whole command; Twilio connects the
        participant anyway and fails only the video publications (`trackPublicationFailed`), so the
        command is sent again without them.
        """
        try:
            return await self._command_connect(room, identity, automatic, tracks), tracks, []
        except EngineError as exc:
            refused = [t for t in tracks if t.kind == "video"]
            if exc.code != TRACK_KIND_NOT_SUPPORTED or not refused:
                raise
        kept = [t for t in tracks if t.kind != "video"]
        return await self._command_connect(room, identity, automatic, kept), kept, refused

    async def _command_connect(
        self, room: str, identity: str, automatic: bool, tracks: list[LocalTrackState]
    ) -> dict[str, Any]:
        return await self._link.command(
            "connect_participant", room=room, identity=identity, automatic_subscription=automatic,
            tracks=[{"name": t.name, "kind": t.kind, "enabled": t.enabled, "priority": t.priority} for t in tracks],
        )  # fmt: skip

    async def _room(self, room_sid: RoomSid, name: str) -> MediaRoom:
        room = self._rooms.get(room_sid)
        if room is None or room.closed:
            room = MediaRoom(room_sid, self._link, self._topology, on_closed=self._room_closed)
            room.name = name
            self._rooms[room_sid] = room
            await room.start()
        return room

    def _topology(self, room: MediaRoom, room_type: str) -> Topology:
        if room_type in MESH_ROOM_TYPES:
            return MeshTopology(room, self._settings.peer_loss_grace_s)
        return SfuTopology(room, self._sfu_config, on_closed=self._router_closed)

    def _router_closed(self, router: Router) -> None:
        self._retired_packets += router.packets_received()

    def stats(self) -> MediaStats:
        """What this process's media plane holds now (for /metrics)."""
        sessions: dict[str, int] = {}
        packets, pcs = self._retired_packets, 0
        for room in list(self._rooms.values()):
            kind = room.room_type or "unknown"
            sessions[kind] = sessions.get(kind, 0) + len(room.sessions)
            if isinstance(room.topology_or_none, SfuTopology):
                packets += room.topology_or_none.router.packets_received()
                pcs += room.topology_or_none.router.peer_connections()
        return MediaStats(sessions_by_room_type=sessions, peer_connections=pcs, rtp_packets_received=packets)

    def _room_closed(self, room: MediaRoom) -> None:
        if self._rooms.get(room.room_sid) is room:
            del self._rooms[room.room_sid]
        if self.on_room_closed is not None and room.name:
            self.on_room_closed(room.name)

    @property
    def load(self) -> int:
        """Sessions in this process (where placement puts new rooms: the least loaded worker)."""
        return len(self._sessions)

    # --- reconnect ----------------------------------------------------------------------------------

    async def _sync(self, conn: Connection, sync: Sync) -> ParticipantSession:
        session = self._sessions.get(sync.session)
        if session is None or session.ended:
            raise SessionError(f"unknown or expired session {sync.session}", code=53000)
        expiry = self._expiry.pop(session.session_id, None)
        if expiry is not None:
            expiry.cancel()
        old = session.conn
        session.conn = conn
        if old is not None and old is not conn:
            await old.close(CLOSE_GOING_AWAY, "replaced by a new socket")
        room = session.room
        # The client's current descriptions (an answer the old socket may have lost, a pending offer).
        await room.topology.on_peer_connections(session, sync.peer_connections)
        peer_connections = await room.topology.resync(session)
        await session.send(
            Synced(
                session=session.session_id,
                sid=room.room_sid,
                participant=SelfParticipant(sid=session.sid, identity=session.identity),
                participants=room.view.connected(exclude=session.sid),
                peer_connections=peer_connections,
                published=session.published_block(),
                subscribed=session.subscribed_block(),
            )
        )
        await room.sync_local_tracks(session, sync.participant.tracks)
        await room.topology.resynced(session)
        await room.set_reconnecting(session, False)
        logger.info("room %s: participant %s resynced", room.room_sid, session.sid)
        return session

    def _detach(self, session: ParticipantSession) -> None:
        """The socket is gone without `disconnect`: keep the session for the reconnect window."""
        session.conn = None
        if self._closing:
            return
        session.room.topology.lost(session)
        logger.info("%s: socket lost; keeping the session for %d s", session, self._settings.session_timeout_s)
        self._expiry[session.session_id] = asyncio.create_task(self._expire(session))

    async def _expire(self, session: ParticipantSession) -> None:
        await session.room.set_reconnecting(session, True)
        await asyncio.sleep(self._settings.session_timeout_s)  # the reconnect window itself
        self._expiry.pop(session.session_id, None)
        if session.conn is None:
            await self._leave(session)

    # --- the end ------------------------------------------------------------------------------------

    async def _leave(self, session: ParticipantSession) -> None:
        """The participant leaves: tell the engine (reason left), drop its media."""
        if not session.ended and not session.room.ended:
            try:
                await self._link.command(
                    "disconnect_participant", room_sid=session.room.room_sid, participant_sid=session.sid, reason="left"
                )
            except SignalingError as exc:  # already gone (kicked, room ended): nothing left to tell
                logger.info("%s: disconnect_participant: %s", session, exc)
        await self._drop(session)

    async def _drop(self, session: ParticipantSession) -> None:
        self._sessions.pop(session.session_id, None)
        await session.room.remove_session(session)

    async def close(self) -> None:
        """Shutdown: close every socket with 1001 (the SDK would reconnect), PCs and rooms."""
        self._closing = True
        for task in self._expiry.values():
            task.cancel()
        for session in list(self._sessions.values()):
            conn, session.conn = session.conn, None
            if conn is not None:
                await conn.close(CLOSE_GOING_AWAY, "server shutting down")
        for room in list(self._rooms.values()):
            await room.close()
        for task in self._expiry.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._expiry.clear()
        self._sessions.clear()
