"""A connected room: what the server tells the client, turned into state and typed events.

    room = await connect(url, token, "standup", tracks=[video, audio])   # connect.py
    room.sid, room.name, room.local_participant, room.participants
    event = await room.wait_for(TrackSubscribed, lambda e: e.publication.kind == "video")
    publication = await room.publish(track)      # update + client offer; returns once it has its MT sid
    await room.set_enabled(publication, False)   # signalled only: aiortc keeps sending the media
    await room.unpublish(publication)
    await room.disconnect()

One task reads the server's RSP messages in order and applies each block the way the SDK does
(protocol doc §2.2): a block only when its revision went up, `peer_connections` first (so the
tracks of a remote offer exist), then `published`, `participants`, `subscribed`; a subscription
becomes `TrackSubscribed` once the `subscribed` entry, the publication and the m-line whose msid
is the entry's `id` are all known, on any PeerConnection. The PeerConnections are a `Mesh`
(mesh.py): one to the SFU in a group room, one per peer in a peer-to-peer or go room. Every event
goes to `room.events` (an asyncio.Queue) and to `room.history`, which `wait_for` searches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

from aiortc.mediastreams import MediaStreamTrack
from msgspec import UNSET

from domain.ids import RoomSid, TrackSid
from media.client.errors import (
    ClientError,
    ClientStateError,
    RoomCompletedError,
    SignalingConnectionError,
    TrackError,
    twilio_error,
)
from media.client.event import (
    Disconnected,
    ParticipantConnected,
    ParticipantDisconnected,
    Reconnected,
    Reconnecting,
    RoomEvent,
    TrackDisabled,
    TrackEnabled,
    TrackPublished,
    TrackSubscribed,
    TrackSubscriptionFailed,
    TrackUnpublished,
    TrackUnsubscribed,
)
from media.client.mesh import Mesh
from media.client.participant import (
    LocalParticipant,
    LocalTrackPublication,
    RemoteParticipant,
    RemoteTrackPublication,
    track_kind,
)
from media.client.reconnect import reopen
from media.client.tcmp import TcmpClient
from media.signaling.messages import (
    ClientUpdate,
    Connected,
    Disconnect,
    ErrorMessage,
    LocalParticipantState,
    ParticipantState,
    PeerConnectionState,
    Published,
    ServerMessage,
    ServerUpdate,
    Subscribed,
    Sync,
    Synced,
    TrackId,
)
from media.signaling.messages import Disconnected as DisconnectedMessage

logger = logging.getLogger(__name__)
E = TypeVar("E", bound=RoomEvent)


class Room:
    """A room the client is connected to (made by `connect`)."""

    def __init__(
        self,
        tcmp: TcmpClient,
        mesh: Mesh,
        connected: Connected,
        local: LocalParticipant,
        *,
        reconnect_to: tuple[str, str] | None = None,
    ) -> None:
        """`reconnect_to`: (signaling url, token) to reconnect with `sync` when the socket is lost."""
        self.sid: RoomSid = connected.sid
        self.name = connected.name
        self.session = connected.session
        self.local_participant = local
        self.participants: dict[str, RemoteParticipant] = {}
        self.events: asyncio.Queue[RoomEvent] = asyncio.Queue()
        self.history: list[RoomEvent] = []
        self.state = "connected"
        self.error: ClientError | None = None
        self._tcmp = tcmp
        self._mesh = mesh
        self._reconnect_to = reconnect_to
        self._session_timeout_s = float(connected.options.session_timeout)
        self._revision = 1 + len(local.tracks)  # the SDK's participant revision: +1 per change
        self._published_revision = 0
        self._subscribed_revision = 0
        self._subscribed: dict[TrackSid, TrackId] = {}
        self._delivered: dict[TrackSid, MediaStreamTrack] = {}
        self._waiters: dict[TrackId, asyncio.Future[TrackSid]] = {}
        self._tick = asyncio.Event()
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        return f"room {self.sid} participant {self.local_participant.sid}"

    @property
    def pc_connection_state(self) -> str:
        """The best state over the PeerConnections (`new` with none, as a lone P2P participant)."""
        return self._mesh.connection_state

    @property
    def peer_connection_count(self) -> int:
        """How many PeerConnections are open: 1 in a group room, one per linked peer in P2P and go rooms."""
        return len(self._mesh.negotiators)

    def local_candidate_types(self) -> set[str]:
        """The kinds of ICE candidates the PeerConnections gathered (`host`, `srflx`, `relay`)."""
        return self._mesh.local_candidate_types()

    async def start(self, connected: Connected) -> None:
        """Apply `connected`, then read the server's messages until the room ends."""
        async with self._lock:
            await self._apply(connected)
        self._reader = asyncio.create_task(self._read(), name=f"room {self.sid} reader")

    # --- the caller's API ---------------------------------------------------------------------------

    async def publish(
        self, track: MediaStreamTrack, name: str | None = None, timeout: float = 10.0
    ) -> LocalTrackPublication:
        """Publish `track` (update + an offer on every PeerConnection); returns once the server gave it its MT sid."""
        self._check_connected()
        track_id = TrackId(track.id)
        if track_id in self.local_participant.tracks:
            raise ClientStateError(f"track {track_id} is already published")
        async with self._lock:
            publication = LocalTrackPublication(id=track_id, kind=track_kind(track), name=name or track_id, track=track)
            self._mesh.add_track(track)
            self.local_participant.tracks[track_id] = publication
            waiter = self._waiters[track_id] = asyncio.get_running_loop().create_future()
            self._revision += 1
            await self._send_update(offer=True)
        async with asyncio.timeout(timeout):
            publication.sid = await waiter
        return publication

    async def unpublish(self, publication: LocalTrackPublication) -> None:
        """Stop sending the track (its m-line becomes recvonly) and tell the server."""
        self._check_connected()
        async with self._lock:
            if self.local_participant.tracks.pop(publication.id, None) is None:
                return
            self._mesh.remove_track(publication.id)
            self._revision += 1
            await self._send_update(offer=True)

    async def set_enabled(self, publication: LocalTrackPublication, enabled: bool) -> None:
        """Mark the publication enabled or disabled for the others (media keeps flowing)."""
        self._check_connected()
        async with self._lock:
            if publication.enabled == enabled:
                return
            publication.enabled = enabled
            self._revision += 1
            await self._send_update(offer=False)

    async def disconnect(self, timeout: float = 5.0) -> None:
        """Leave the room: `disconnect`, then `bye` and close 1000; emits `Disconnected(None)`.

        Unlike the SDK it waits (up to `timeout` s) for the server to end the session and close
        the socket before closing the PeerConnections: aiortc on the server closes its side of a
        PeerConnection whose DTLS peer went away, and a server offer racing with that fails."""
        if self.state == "connected":
            with contextlib.suppress(ClientError):
                await self._tcmp.send(Disconnect(session=self.session))
                reader = self._reader
                if reader is not None and reader is not asyncio.current_task():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await asyncio.shield(reader)
        await self._end(None)

    async def wait_for(self, event_type: type[E], where: Callable[[E], bool] | None = None, timeout: float = 20.0) -> E:
        """The first event (since connect) of `event_type` for which `where` holds, waiting up to `timeout` s."""
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    tick = self._tick
                    for event in self.history[seen:]:
                        if isinstance(event, event_type) and (where is None or where(event)):
                            return event
                    seen = len(self.history)
                    await tick.wait()
        except TimeoutError:
            kinds = [type(e).__name__ for e in self.history]
            raise TimeoutError(f"{self}: no matching {event_type.__name__} within {timeout} s; saw {kinds}") from None

    # --- messages in --------------------------------------------------------------------------------

    async def _read(self) -> None:
        while self.state == "connected":
            try:
                message = await self._tcmp.receive()
            except ClientError as exc:
                if self._tcmp.clean or not await self._reconnect(exc):
                    await self._end(None if self._tcmp.clean else exc)
                    return
                continue
            try:
                async with self._lock:
                    await self._apply(message)
            except SignalingConnectionError as exc:  # a send failed: receive() tells how the socket ended
                logger.info("%s: %s", self, exc)
            except ClientError as exc:
                logger.warning("%s: %s", self, exc)
                await self._end(exc)
            except Exception as exc:  # the top of the task loop: never leave the room half-alive
                logger.exception("%s: applying %s failed", self, type(message).__name__)
                await self._end(ClientError(f"client failed: {exc!r}"))

    async def _reconnect(self, lost: ClientError) -> bool:
        """Reopen the session on a new socket (`sync`); False when the room should end."""
        if self._reconnect_to is None or self.state != "connected":
            return False
        url, token = self._reconnect_to
        self._emit(Reconnecting(lost))
        participant = LocalParticipantState(
            revision=self._revision, tracks=[p.state() for p in self.local_participant.tracks.values()]
        )
        sync = Sync(session=self.session, token=token, name=self.name, participant=participant)
        try:
            tcmp, first = await reopen(url, sync, self._session_timeout_s)
        except SignalingConnectionError as exc:
            await self._end(exc)
            return False
        await self._tcmp.close()
        self._tcmp = tcmp
        if not isinstance(first, Synced):
            async with self._lock:
                await self._apply(first)  # an error (e.g. the session expired): the room ends
            return self.state == "connected"
        async with self._lock:
            await self._apply(first)
        self._emit(Reconnected())
        return True

    async def _apply(self, message: ServerMessage) -> None:
        if isinstance(message, ErrorMessage):
            await self._end(twilio_error(message.code, message.message))
        elif isinstance(message, DisconnectedMessage):
            await self._end(RoomCompletedError() if message.status == "completed" else None)
        elif isinstance(message, Connected | ServerUpdate | Synced):
            await self._apply_state(message)

    async def _apply_state(self, message: Connected | ServerUpdate | Synced) -> None:
        if message.peer_connections is not UNSET:
            answers = await self._mesh.apply(message.peer_connections, only=isinstance(message, Synced))
            if answers:
                await self._send(peer_connections=answers)
        if message.published is not UNSET:
            self._apply_published(message.published)
        if message.participants is not UNSET:
            for participant in message.participants:
                self._apply_participant(participant, initial=isinstance(message, Connected))
        if message.subscribed is not UNSET:
            self._apply_subscribed(message.subscribed)
        self._match_subscriptions()
        if self._mesh.wants_offer and self.state == "connected":
            await self._send_update(offer=True)

    def _apply_published(self, published: Published) -> None:
        if published.revision <= self._published_revision:
            return
        self._published_revision = published.revision
        for entry in published.tracks:
            publication = self.local_participant.tracks.get(entry.id)
            waiter = self._waiters.pop(entry.id, None)
            if entry.state == "ready" and entry.sid is not UNSET:
                if publication is not None:
                    publication.sid = entry.sid
                if waiter is not None and not waiter.done():
                    waiter.set_result(entry.sid)
            elif entry.state == "failed" and waiter is not None and not waiter.done():
                error = entry.error
                code, text = (error.code, error.message) if error is not UNSET else (53300, "publication failed")
                waiter.set_exception(TrackError(text, code=code))
            elif waiter is not None:
                self._waiters[entry.id] = waiter  # still `created`

    def _apply_participant(self, state: ParticipantState, *, initial: bool) -> None:
        known = self.participants.get(state.sid)
        if known is None:
            if state.state == "disconnected":
                return
            known = RemoteParticipant(
                sid=state.sid, identity=state.identity, revision=state.revision, state=state.state
            )
            self.participants[state.sid] = known
            if not initial:
                self._emit(ParticipantConnected(known))
        elif state.revision <= known.revision:
            return
        known.revision, known.state = state.revision, state.state
        if state.state == "disconnected":
            for gone in list(known.tracks.values()):
                self._remove_publication(known, gone)
            del self.participants[state.sid]
            self._emit(ParticipantDisconnected(known))
            return
        current = {track.sid: track for track in state.tracks}
        for sid in [sid for sid in known.tracks if sid not in current]:
            self._remove_publication(known, known.tracks[sid])
        for sid, track in current.items():
            publication = known.tracks.get(sid)
            if publication is None:
                added = known.tracks[sid] = RemoteTrackPublication.from_state(track)
                if not initial:
                    self._emit(TrackPublished(known, added))
            elif publication.enabled != track.enabled:
                publication.enabled = track.enabled
                self._emit(TrackEnabled(known, publication) if track.enabled else TrackDisabled(known, publication))

    def _remove_publication(self, participant: RemoteParticipant, publication: RemoteTrackPublication) -> None:
        self._unsubscribe(publication.sid)
        del participant.tracks[publication.sid]
        self._emit(TrackUnpublished(participant, publication))

    def _apply_subscribed(self, subscribed: Subscribed) -> None:
        if subscribed.revision <= self._subscribed_revision:
            return
        self._subscribed_revision = subscribed.revision
        current: dict[TrackSid, TrackId] = {}
        for entry in subscribed.tracks:
            if entry.id is not UNSET:
                current[entry.sid] = entry.id
            elif entry.error is not UNSET:
                self._emit(TrackSubscriptionFailed(entry.sid, twilio_error(entry.error.code, entry.error.message)))
        for sid in [sid for sid in self._subscribed if sid not in current]:
            self._unsubscribe(sid)
        self._subscribed = current

    def _unsubscribe(self, track_sid: TrackSid) -> None:
        self._subscribed.pop(track_sid, None)
        track = self._delivered.pop(track_sid, None)
        found = self._publication(track_sid)
        if track is not None and found is not None:
            participant, publication = found
            publication.track = None
            self._emit(TrackUnsubscribed(participant, publication, track))

    def _match_subscriptions(self) -> None:
        for track_sid, track_id in self._subscribed.items():
            if track_sid in self._delivered:
                continue
            found = self._publication(track_sid)
            track = self._mesh.receiving_track(track_id)
            if found is None or track is None:
                continue  # the publication or the m-line is still to come
            participant, publication = found
            self._delivered[track_sid] = publication.track = track
            self._emit(TrackSubscribed(participant, publication, track))

    def _publication(self, track_sid: TrackSid) -> tuple[RemoteParticipant, RemoteTrackPublication] | None:
        for participant in self.participants.values():
            publication = participant.tracks.get(track_sid)
            if publication is not None:
                return participant, publication
        return None

    # --- messages out -------------------------------------------------------------------------------

    async def _send_update(self, *, offer: bool) -> None:
        offers = await self._mesh.offers() if offer else []
        await self._send(peer_connections=offers or None)

    async def _send(self, *, peer_connections: list[PeerConnectionState] | None = None) -> None:
        participant = LocalParticipantState(
            revision=self._revision, tracks=[p.state() for p in self.local_participant.tracks.values()]
        )
        update = ClientUpdate(
            session=self.session, participant=participant,
            peer_connections=UNSET if peer_connections is None else peer_connections,
        )  # fmt: skip
        await self._tcmp.send(update)

    # --- the end ------------------------------------------------------------------------------------

    def _emit(self, event: RoomEvent) -> None:
        logger.debug("%s: %s", self, type(event).__name__)
        self.history.append(event)
        self.events.put_nowait(event)
        self._tick.set()
        self._tick = asyncio.Event()

    def _check_connected(self) -> None:
        if self.state != "connected":
            raise ClientStateError(f"{self} is {self.state}")

    async def _end(self, error: ClientError | None) -> None:
        """Close socket and PeerConnections, fail pending publishes, emit `Disconnected` (once)."""
        if self.state == "disconnected":
            return
        self.state, self.error = "disconnected", error
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error or ClientStateError(f"{self} disconnected"))
        self._waiters.clear()
        if error is not None:
            logger.info("%s: disconnected: %s", self, error)
        await self._tcmp.close()
        await self._mesh.close()
        self._emit(Disconnected(error))
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
