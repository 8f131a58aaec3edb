"""One participant's session: its PeerConnection to the SFU, its negotiation, its signaling socket.

The session outlives sockets: when the WebSocket drops, the SDK reconnects with `sync` and the
same session id (protocol doc §4), and the PeerConnection is untouched meanwhile.

Negotiation (protocol doc §3) on the one BUNDLE PeerConnection, with one revision counter
shared by both sides:

* a client offer (in `connect` or `update`) is applied, its sending m-lines are registered with
  the router by `mid → msid track id → MT sid` (on every offer: transceivers get recycled), and
  answered with the same revision;
* when the router says the PeerConnection needs an offer (subscriptions changed), the session
  offers with revision + 1, together with the `subscribed` block that names each m-line's msid
  track id (the MT sid of the track it forwards), and applies the client's answer from a later
  `update`. While its offer is outstanding a client offer is ignored: the server wins glare and
  the SDK offers again after answering.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp
from msgspec import UNSET

from domain.ids import ParticipantSid, TrackSid
from media.signaling.errors import SignalingError
from media.signaling.messages import (
    ClientUpdate,
    IceState,
    LocalTrackState,
    PeerConnectionId,
    PeerConnectionState,
    Published,
    PublishedTrack,
    ServerMessage,
    ServerUpdate,
    SessionDescription,
    SessionId,
    Subscribed,
    SubscribedTrack,
    TrackError,
    TrackId,
)
from media.signaling.sdp import sending_tracks, with_msid
from media.signaling.tcmp import TcmpConnection

if TYPE_CHECKING:
    from media.session.media_room import MediaRoom

logger = logging.getLogger(__name__)


class ParticipantSession:
    """A connected participant's PeerConnection, published and subscribed tracks, and socket."""

    def __init__(
        self,
        session_id: SessionId,
        room: MediaRoom,
        participant_sid: ParticipantSid,
        identity: str,
        pc: RTCPeerConnection,
        pc_id: PeerConnectionId,
    ) -> None:
        self.session_id = session_id
        self.room = room
        self.sid = participant_sid
        self.identity = identity
        self.pc = pc
        self.pc_id = pc_id
        self.conn: TcmpConnection | None = None
        self.ready = False
        """True once `connected` was sent: updates and server offers may go out."""
        self.ended = False
        self.published: dict[TrackId, TrackSid] = {}
        self.failed: dict[TrackId, TrackError] = {}
        """Publications the engine refused (e.g. video in an audio-only room, 53125): `failed` in `published`."""
        self.local_tracks: dict[TrackId, LocalTrackState] = {}
        self._published_revision = 1
        self._subscribed_sent: dict[TrackSid, str] = {}
        self._subscribed_revision = 1
        self._revision = 0  # the PeerConnection's shared offer/answer revision
        self._awaiting_answer: int | None = None
        self._ice_seen: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._negotiation: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        return f"room {self.room.room_sid} participant {self.sid}"

    @property
    def stable(self) -> bool:
        """Connected, and no offer/answer exchange in progress: the router may add m-lines."""
        return self.ready and not self._lock.locked() and self._awaiting_answer is None

    # --- messages out -----------------------------------------------------------------------------

    async def send(self, message: ServerMessage) -> None:
        """Send if a socket is attached; while detached the next `synced` carries the state."""
        conn = self.conn
        if conn is None or conn.closed:
            return
        try:
            await conn.send(message)
        except SignalingError as exc:
            logger.info("%s: could not send %s: %s", self, type(message).__name__, exc)

    def record_published(self, track_id: TrackId, track_sid: TrackSid) -> None:
        self.published[track_id] = track_sid
        self.failed.pop(track_id, None)  # published again after a refusal
        self._published_revision += 1

    def record_failed(self, track_id: TrackId, code: int, message: str) -> None:
        """The SDK's `publishTrack` rejects with this code and fires `trackPublicationFailed`."""
        self.failed[track_id] = TrackError(code=code, message=message)
        self._published_revision += 1

    def published_block(self) -> Published:
        tracks = [PublishedTrack(id=track_id, sid=sid, state="ready") for track_id, sid in self.published.items()]
        tracks += [PublishedTrack(id=track_id, state="failed", error=error) for track_id, error in self.failed.items()]
        return Published(revision=self._published_revision, tracks=tracks)

    def subscribed_block(self) -> Subscribed:
        """What the router forwards to this participant now; the revision rises when it changed."""
        current = self.room.subscriptions_of(self.sid)
        if current != self._subscribed_sent:
            self._subscribed_sent = current
            self._subscribed_revision += 1
        tracks = [SubscribedTrack(sid=sid, id=TrackId(msid)) for sid, msid in current.items()]
        return Subscribed(revision=self._subscribed_revision, tracks=tracks)

    # --- the client's offers ------------------------------------------------------------------------

    async def answer(self, description: SessionDescription) -> SessionDescription | None:
        """Apply a client offer and return the answer; None if it was ignored (glare, stale)."""
        async with self._lock:
            if self.ended:
                return None
            if self._awaiting_answer is not None or not isinstance(description.sdp, str):
                logger.info("%s: client offer ignored (server offer outstanding)", self)
                return None
            revision = description.revision if isinstance(description.revision, int) else self._revision + 1
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="offer"))
            mids = {
                mid: self.published[TrackId(track_id)]
                for mid, track_id in sending_tracks(description.sdp).items()
                if TrackId(track_id) in self.published
            }
            self.room.router.publish_tracks(self.sid, mids)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            self._revision = revision
            return SessionDescription(type="answer", revision=revision, sdp=self.pc.localDescription.sdp)

    # --- server offers ------------------------------------------------------------------------------

    def request_offer(self) -> None:
        """Offer (soon) if the router needs it; one negotiation at a time."""
        if not self.ready or self.ended or (self._negotiation is not None and not self._negotiation.done()):
            return
        self._negotiation = asyncio.create_task(self._offer(), name=f"offer {self.sid}")

    async def _offer(self) -> None:
        try:
            async with self._lock:
                router = self.room.router
                if self.ended or self._awaiting_answer is not None or not router.needs_offer(self.sid):
                    return
                if self.pc.connectionState == "closed":  # aiortc closes it when the client's side closed
                    logger.info("%s: PeerConnection closed; no server offer", self)
                    return
                offer = await self.pc.createOffer()
                router.offer_sent(self.sid)
                await self.pc.setLocalDescription(offer)
                sdp = self._with_subscription_msids(self.pc.localDescription.sdp)
                self._revision += 1
                self._awaiting_answer = self._revision
                description = SessionDescription(type="offer", revision=self._revision, sdp=sdp)
                update = ServerUpdate(
                    peer_connections=[PeerConnectionState(id=self.pc_id, description=description)],
                    subscribed=self.subscribed_block(),
                )
            await self.send(update)
        except Exception:
            logger.exception("%s: server offer failed", self)

    def _with_subscription_msids(self, sdp: str) -> str:
        router = self.room.router
        for track_sid in self.room.subscriptions_of(self.sid):
            subscription = router.subscription(self.sid, track_sid)
            if subscription is not None and subscription.mid is not None and subscription.source is not None:
                sdp = with_msid(sdp, subscription.mid, subscription.source.participant_sid, track_sid)
        return sdp

    async def _apply_answer(self, description: SessionDescription) -> None:
        async with self._lock:
            if self.ended:
                return
            if description.revision != self._awaiting_answer or not isinstance(description.sdp, str):
                logger.info("%s: stale answer (revision %s) ignored", self, description.revision)
                return
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="answer"))
            self._awaiting_answer = None
        self.room.reconcile(self)  # subscriptions that changed meanwhile (it offers if needed)

    # --- the client's updates -----------------------------------------------------------------------

    async def on_update(self, update: ClientUpdate) -> None:
        """Publishes/unpublishes/enables from the track diff, then descriptions and candidates."""
        if self.ended:
            return
        await self.room.sync_local_tracks(self, update.participant.tracks)
        if update.peer_connections is UNSET:
            return
        for state in update.peer_connections:
            if state.id != self.pc_id:
                continue
            if state.description is not UNSET:
                await self._on_description(state.description)
            if state.ice is not UNSET:
                await self._on_ice(state.ice)

    async def _on_description(self, description: SessionDescription) -> None:
        if description.type == "answer":
            await self._apply_answer(description)
        elif description.type == "offer":
            answer = await self.answer(description)
            if answer is not None:
                await self.send(ServerUpdate(peer_connections=[PeerConnectionState(id=self.pc_id, description=answer)]))
                self.room.reconcile_all()

    async def _on_ice(self, ice: IceState) -> None:
        """Add the candidates beyond those already seen for this ufrag (each update repeats all)."""
        seen = self._ice_seen.get(ice.ufrag, 0)
        for entry in ice.candidates[seen:]:
            text = entry.candidate.removeprefix("candidate:")
            if not text:
                continue
            candidate = candidate_from_sdp(text)
            candidate.sdpMid = entry.sdp_mid if isinstance(entry.sdp_mid, str) else None
            candidate.sdpMLineIndex = entry.sdp_m_line_index if isinstance(entry.sdp_m_line_index, int) else None
            if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
                candidate.sdpMLineIndex = 0
            try:
                await self.pc.addIceCandidate(candidate)
            except ValueError as exc:
                logger.info("%s: candidate %r refused: %s", self, entry.candidate, exc)
        self._ice_seen[ice.ufrag] = max(seen, len(ice.candidates))
        if ice.complete is True:
            await self.pc.addIceCandidate(None)

    # --- the end ------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the router and close the PeerConnection (idempotent)."""
        if self.ended:
            return
        self.ended = True
        if self._negotiation is not None:
            self._negotiation.cancel()
        await self.pc.close()
