"""One room in this process: its local sessions, its event stream, and its topology.

The room follows the engine's events for its SID (`EngineLink.follow_room`, from the first
event, in order) and reacts:

    room_created
        → the topology for the room's type: the SFU for group rooms, relayed links between
          the clients for peer-to-peer and go rooms (topology.py)
    participant_* / track_published|unpublished|enabled|disabled
        → `RoomView` gives the participant a new revision; every other local session gets an
          `update` with that participant's state (the SDK's participantConnected, trackPublished,
          trackEnabled/Disabled, trackUnpublished, participantDisconnected)
    track_subscribed / track_unsubscribed
        → the subscriptions the engine decided (`wanted_by`); the topology delivers them
    participant_disconnected of a local participant
        → kicked: `disconnected`; duplicate-identity: `error` 53205; room-ended: handled with
          room_ended; left: the session is already over (or timed out)
    room_ended
        → `disconnected{status:'completed'}` (the SDK's 53118) to every local session

Commands for the participant's own track changes go out from `sync_local_tracks`; a publish the
engine refuses (53125 video in an audio-only room, 53203 track cap, ...) fails that publication
only (`published` state `failed`: the SDK's publishTrack rejects), the room stays connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.subscription import Subscription as NatsSubscription

from domain.ids import ParticipantSid, RoomSid, TrackSid
from media.session.engine_link import EngineLink
from media.session.errors import EngineError
from media.session.participant_session import ParticipantSession
from media.session.room_view import ParticipantView, RoomView
from media.session.topology import Topology
from media.signaling.messages import (
    Disconnected,
    ErrorMessage,
    LocalTrackState,
    ServerMessage,
    ServerUpdate,
    TrackId,
)

logger = logging.getLogger(__name__)
DUPLICATE_IDENTITY = 53205

TopologyFactory = Callable[["MediaRoom", str], Topology]
"""(room, room type) → the room's topology."""


class MediaRoom:
    """The in-process state of one room: local sessions, participants as clients see them, topology."""

    def __init__(
        self,
        room_sid: RoomSid,
        link: EngineLink,
        topology_of: TopologyFactory,
        on_closed: Callable[[MediaRoom], None] | None = None,
    ) -> None:
        self.room_sid = room_sid
        self.name = ""
        """The room's name as clients connect to it (placement's key)."""
        self.link = link
        self.view = RoomView()
        self.sessions: dict[ParticipantSid, ParticipantSession] = {}
        self.room_type: str | None = None
        self.closed = False
        self.ended = False
        self._topology_of = topology_of
        self._topology: Topology | None = None
        self._wanted: dict[ParticipantSid, set[TrackSid]] = {}
        self._seen: dict[ParticipantSid, asyncio.Event] = {}
        self._events: NatsSubscription | None = None
        self._unsubscribing: asyncio.Task[None] | None = None
        self._on_closed = on_closed

    @property
    def topology_or_none(self) -> Topology | None:
        """The topology, once the room's type is known."""
        return self._topology

    @property
    def topology(self) -> Topology:
        if self._topology is None:  # the stream no longer starts with room_created: the default type
            logger.warning("room %s: no room_created event seen; serving it as a group room", self.room_sid)
            self._set_type("group")
        assert self._topology is not None
        return self._topology

    def _set_type(self, room_type: str) -> None:
        if self._topology is None:
            self.room_type = room_type
            self._topology = self._topology_of(self, room_type)

    async def start(self) -> None:
        self._events = await self.link.follow_room(self.room_sid, self.on_event)

    async def wait_for_participant(self, sid: ParticipantSid, timeout_s: float) -> None:
        """Until the room's events have shown `sid` connecting (its state is then complete)."""
        async with asyncio.timeout(timeout_s):
            await self._seen.setdefault(sid, asyncio.Event()).wait()

    # --- sessions -------------------------------------------------------------------------------

    def add_session(self, session: ParticipantSession) -> None:
        self.sessions[session.sid] = session

    async def end_session(self, session: ParticipantSession, message: ServerMessage | None = None) -> None:
        """Tell the client (if `message`), close its socket with 1000, drop its media."""
        if message is not None:
            await session.send(message)
        conn = session.conn
        await self.remove_session(session)
        if conn is not None:
            await conn.close()

    async def remove_session(self, session: ParticipantSession) -> None:
        session.ended = True
        if self.sessions.get(session.sid) is not session:
            return
        del self.sessions[session.sid]
        if self._topology is not None:
            await self._topology.leave(session)
        if not self.sessions:
            await self.close()

    async def close(self) -> None:
        """Stop following events and end every local session's media (shutdown, room over)."""
        if self.closed:
            return
        self.closed = True
        for session in list(self.sessions.values()):
            session.ended = True
        self.sessions.clear()
        if self._topology is not None:
            await self._topology.close()
        if self._events is not None:
            # Not awaited here: close() may run inside the event callback, and unsubscribing
            # cancels the task that runs the callbacks.
            self._unsubscribing = asyncio.create_task(self._unsubscribe(self._events))
        if self._on_closed is not None:
            self._on_closed(self)

    async def _unsubscribe(self, events: NatsSubscription) -> None:
        try:
            await events.unsubscribe()
        except Exception as exc:  # NATS already gone at shutdown
            logger.info("room %s: unsubscribing from events: %s", self.room_sid, exc)

    # --- subscriptions ----------------------------------------------------------------------------

    def wanted_by(self, sid: ParticipantSid) -> set[TrackSid]:
        """The tracks the engine subscribed `sid` to."""
        return self._wanted.get(sid, set())

    def subscriptions_of(self, sid: ParticipantSid) -> dict[TrackSid, str]:
        """Track SID → the id the client matches it by, for what `sid` receives (the `subscribed` block)."""
        if sid not in self.sessions:
            return {}
        return self.topology.subscriptions_of(sid)

    def track_sids(self) -> list[TrackSid]:
        return [track_sid for view in self.view.participants.values() for track_sid in view.tracks]

    def publisher_of(self, track_sid: TrackSid) -> ParticipantSid | None:
        for view in self.view.participants.values():
            if track_sid in view.tracks:
                return view.sid
        return None

    # --- the participant's own tracks -------------------------------------------------------------

    async def sync_local_tracks(self, session: ParticipantSession, tracks: list[LocalTrackState]) -> None:
        """Turn the client's track list diff into publish/unpublish/enable commands."""
        current = {track.id: track for track in tracks}
        added = False
        for track_id, track in current.items():
            before = session.local_tracks.get(track_id)
            if before is None and track_id not in session.published:
                try:
                    result = await self.link.command(
                        "publish_track", room_sid=self.room_sid, participant_sid=session.sid,
                        name=track.name, kind=track.kind, enabled=track.enabled, priority=track.priority,
                    )  # fmt: skip
                except EngineError as exc:  # refused (53125 audio-only, 53203 cap, 533xx name): this track only
                    logger.info("%s: publishing %s track %s refused: %s", session, track.kind, track_id, exc)
                    session.record_failed(track_id, exc.code, exc.message)
                else:
                    session.record_published(track_id, TrackSid(str(result["sid"])))
                added = True
            elif before is not None and before.enabled != track.enabled and track_id in session.published:
                await self.link.command(
                    "set_track_enabled", room_sid=self.room_sid, participant_sid=session.sid,
                    track_sid=session.published[track_id], enabled=track.enabled,
                )  # fmt: skip
        for track_id in list(session.local_tracks):
            if track_id not in current and track_id in session.published:
                track_sid = session.published.pop(TrackId(track_id))
                await self.link.command(
                    "unpublish_track", room_sid=self.room_sid, participant_sid=session.sid, track_sid=track_sid
                )
        session.local_tracks = current
        if added:
            await session.send(ServerUpdate(published=session.published_block()))
            await self.topology.published(session)

    # --- events ------------------------------------------------------------------------------------

    async def on_event(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        name = event.get("event")
        if name == "room_created":
            self._set_type(str((event.get("settings") or {}).get("type", "group")))
        changed = self.view.apply(event)
        if changed is not None:
            await self._tell_others(changed)
        sid = ParticipantSid(str(event.get("participant_sid", "")))
        if name == "participant_connected":
            self._seen.setdefault(sid, asyncio.Event()).set()
        elif name in ("track_subscribed", "track_unsubscribed"):
            wanted = self._wanted.setdefault(sid, set())
            track_sid = TrackSid(str(event["track_sid"]))
            (wanted.add if name == "track_subscribed" else wanted.discard)(track_sid)
            if sid in self.sessions:
                await self.topology.subscriptions_changed(sid)
        elif name == "track_unpublished":
            await self.topology.track_unpublished(TrackSid(str(event["track_sid"])))
        elif name == "participant_disconnected":
            await self._participant_disconnected(sid, str(event.get("reason", "left")))
        elif name == "room_ended":
            self.ended = True
            for session in list(self.sessions.values()):
                await self.end_session(session, Disconnected(status="completed"))
            await self.close()

    async def set_reconnecting(self, session: ParticipantSession, reconnecting: bool) -> None:
        """The session's socket dropped (True) or it is back with `sync` (False): the others are told."""
        changed = self.view.set_reconnecting(session.sid, reconnecting)
        if changed is not None:
            await self._tell_others(changed)

    async def _tell_others(self, changed: ParticipantView) -> None:
        update = ServerUpdate(participants=[changed.state()])
        for session in list(self.sessions.values()):
            if session.ready and session.sid != changed.sid:
                await session.send(update)

    async def _participant_disconnected(self, sid: ParticipantSid, reason: str) -> None:
        self._wanted.pop(sid, None)
        session = self.sessions.get(sid)
        if session is None:
            return
        logger.info("room %s: participant %s disconnected by the engine (%s)", self.room_sid, sid, reason)
        message: ServerMessage | None
        if reason == "duplicate-identity":
            message = ErrorMessage(code=DUPLICATE_IDENTITY, message="Participant disconnected: duplicate identity")
        elif reason == "room-ended":
            message = Disconnected(status="completed")
        else:
            message = Disconnected()
        await self.end_session(session, message)
