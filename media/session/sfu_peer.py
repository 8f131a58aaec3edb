"""A group-room participant's PeerConnection to the SFU and its negotiation (protocol doc §3).

One BUNDLE PeerConnection per participant, with one revision counter shared by both sides:

* a client offer (in `connect` or `update`) is applied, its sending m-lines are registered with
  the router by `mid → msid track id → MT sid` (on every offer: transceivers get recycled), and
  answered with the same revision;
* when the router says the PeerConnection needs an offer (subscriptions changed), the peer
  offers with revision + 1, together with the `subscribed` block that names each m-line's msid
  track id (the MT sid of the track it forwards), and applies the client's answer from a later
  `update`. While its offer is outstanding a client offer is ignored: the server wins glare and
  the SDK offers again after answering.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp
from msgspec import UnsetType

from media.signaling.messages import (
    IceState,
    PeerConnectionId,
    PeerConnectionState,
    ServerUpdate,
    SessionDescription,
    TrackId,
)
from media.signaling.sdp import sending_tracks, with_msid

if TYPE_CHECKING:
    from media.session.participant_session import ParticipantSession
    from media.sfu import Router

logger = logging.getLogger(__name__)


class SfuPeer:
    """One participant's PeerConnection to the room's router."""

    def __init__(self, session: ParticipantSession, router: Router, pc_id: PeerConnectionId) -> None:
        self.session = session
        self.router = router
        self.pc_id = pc_id
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.closed = False
        self._revision = 0
        self._awaiting_answer: int | None = None
        self._ice_seen: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._negotiation: asyncio.Task[None] | None = None
        self._last_offer: SessionDescription | None = None

    def __str__(self) -> str:
        return str(self.session)

    @property
    def stable(self) -> bool:
        """Connected, and no offer/answer exchange in progress: the router may add m-lines."""
        return self.session.ready and not self._lock.locked() and self._awaiting_answer is None

    # --- the client's offers ------------------------------------------------------------------------

    async def answer(self, description: SessionDescription) -> SessionDescription | None:
        """Apply a client offer and return the answer; None if it was ignored (glare, stale)."""
        async with self._lock:
            if self.closed:
                return None
            if self._awaiting_answer is not None or not isinstance(description.sdp, str):
                logger.info("%s: client offer ignored (server offer outstanding)", self)
                return None
            revision = description.revision if isinstance(description.revision, int) else self._revision + 1
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="offer"))
            published = self.session.published
            mids = {
                mid: published[TrackId(track_id)]
                for mid, track_id in sending_tracks(description.sdp).items()
                if TrackId(track_id) in published
            }
            self.router.publish_tracks(self.session.sid, mids)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            self._revision = revision
            return SessionDescription(type="answer", revision=revision, sdp=self.pc.localDescription.sdp)

    # --- server offers ------------------------------------------------------------------------------

    @property
    def outstanding_offer(self) -> SessionDescription | None:
        """The server offer still waiting for its answer (a socket lost meanwhile may have lost it)."""
        return self._last_offer if self._awaiting_answer is not None else None

    def request_offer(self) -> None:
        """Offer (soon) if the router needs it; one negotiation at a time."""
        if not self.session.ready or self.closed or (self._negotiation is not None and not self._negotiation.done()):
            return
        self._negotiation = asyncio.create_task(self._offer(), name=f"offer {self.session.sid}")

    async def _offer(self) -> None:
        try:
            async with self._lock:
                sid = self.session.sid
                if self.closed or self._awaiting_answer is not None or not self.router.needs_offer(sid):
                    return
                if self.pc.connectionState == "closed":  # aiortc closes it when the client's side closed
                    logger.info("%s: PeerConnection closed; no server offer", self)
                    return
                offer = await self.pc.createOffer()
                self.router.offer_sent(sid)
                await self.pc.setLocalDescription(offer)
                sdp = self._with_subscription_msids(self.pc.localDescription.sdp)
                self._revision += 1
                self._awaiting_answer = self._revision
                description = self._last_offer = SessionDescription(type="offer", revision=self._revision, sdp=sdp)
                update = ServerUpdate(
                    peer_connections=[PeerConnectionState(id=self.pc_id, description=description)],
                    subscribed=self.session.subscribed_block(),
                )
            await self.session.send(update)
        except Exception:
            logger.exception("%s: server offer failed", self)

    def _with_subscription_msids(self, sdp: str) -> str:
        sid = self.session.sid
        for track_sid in self.session.room.subscriptions_of(sid):
            subscription = self.router.subscription(sid, track_sid)
            if subscription is not None and subscription.mid is not None and subscription.source is not None:
                sdp = with_msid(sdp, subscription.mid, subscription.source.participant_sid, track_sid)
        return sdp

    async def _apply_answer(self, description: SessionDescription) -> bool:
        """Apply the client's answer to the outstanding offer; False if it was stale."""
        async with self._lock:
            if self.closed:
                return False
            if description.revision != self._awaiting_answer or not isinstance(description.sdp, str):
                logger.info("%s: stale answer (revision %s) ignored", self, description.revision)
                return False
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="answer"))
            self._awaiting_answer = None
            return True

    # --- the client's peer_connections entries -------------------------------------------------------

    async def on_state(self, state: PeerConnectionState) -> str | None:
        """Apply a description and candidates from the client; "answered" or "offered" when one applied."""
        outcome = None
        if not isinstance(state.description, UnsetType):
            outcome = await self._on_description(state.description)
        if not isinstance(state.ice, UnsetType):
            await self._on_ice(state.ice)
        return outcome

    async def _on_description(self, description: SessionDescription) -> str | None:
        if description.type == "answer":
            return "answered" if await self._apply_answer(description) else None
        if description.type == "offer":
            answer = await self.answer(description)
            if answer is not None:
                await self.session.send(
                    ServerUpdate(peer_connections=[PeerConnectionState(id=self.pc_id, description=answer)])
                )
                return "offered"
        return None

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

    async def close(self) -> None:
        """Close the PeerConnection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._negotiation is not None:
            self._negotiation.cancel()
        await self.pc.close()
