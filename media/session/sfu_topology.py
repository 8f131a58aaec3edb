"""Group rooms: one PeerConnection per participant to this process's SFU router.

`reconcile` makes the router forward exactly the tracks the engine subscribed a participant to,
once the publisher's upstream track is known to the router (the engine decides a subscription
before the publisher's offer is applied: it waits here until then), and only while the
participant's PeerConnection is stable (adding m-lines mid-negotiation breaks it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import RTCDataChannel
from msgspec import UNSET, UnsetType

from domain.ids import ParticipantSid, TrackSid
from media.session.room_signals import RoomSignals
from media.session.sfu_peer import SfuPeer
from media.sfu import Router, SfuConfig, UnknownTrackError
from media.signaling.messages import PeerConnectionId, PeerConnectionState, RoomOptions, ServerUpdate, TrackId

if TYPE_CHECKING:
    from media.session.media_room import MediaRoom
    from media.session.participant_session import ParticipantSession

logger = logging.getLogger(__name__)


class SfuTopology:
    """The router of one group room and each local participant's `SfuPeer`."""

    def __init__(self, room: MediaRoom, config: SfuConfig | None, on_closed: Callable[[Router], None]) -> None:
        self.room = room
        self.router = Router(room.room_sid, config, on_offer_needed=self._request_offer)
        self.peers: dict[ParticipantSid, SfuPeer] = {}
        self.signals = RoomSignals(room, self.router)
        self._on_closed = on_closed
        self._sends: set[asyncio.Task[None]] = set()

    def options(self, session_timeout_s: int) -> RoomOptions:
        return RoomOptions(session_timeout=session_timeout_s, media_region="local")

    def subscriptions_of(self, sid: ParticipantSid) -> dict[TrackSid, str]:
        """What the router forwards to `sid`, named by MT sid (the msid of the server's offers)."""
        if sid not in self.peers:
            return {}
        return {
            track_sid: track_sid
            for track_sid in sorted(self.room.wanted_by(sid))
            if self.router.is_subscribed(sid, track_sid)
        }

    # --- sessions ---------------------------------------------------------------------------------

    async def join(self, session: ParticipantSession, offer: PeerConnectionState | None) -> list[PeerConnectionState]:
        pc_id = offer.id if offer is not None else PeerConnectionId(str(uuid.uuid4()))
        peer = self.peers[session.sid] = SfuPeer(session, self.router, pc_id)
        self.router.add_participant(session.sid, peer.pc)
        peer.pc.on("datachannel", lambda channel: self._data_channel(session, channel))
        session.media_signaling = self.signals.add(session.sid, session.requested_media_signaling)
        if offer is None or isinstance(offer.description, UnsetType):
            return []
        answer = await peer.answer(offer.description)
        return [PeerConnectionState(id=pc_id, description=answer)] if answer is not None else []

    async def joined(self, session: ParticipantSession) -> None:
        peer = self.peers.get(session.sid)
        if peer is not None and self.signals.open(session.sid, peer.pc):
            self.router.renegotiate(session.sid)  # the MSP channels need SCTP: a server offer adds it
        self.reconcile_all()

    async def on_peer_connections(self, session: ParticipantSession, entries: list[PeerConnectionState]) -> None:
        peer = self.peers.get(session.sid)
        if peer is None:
            return
        for entry in entries:
            if entry.id != peer.pc_id:
                continue
            outcome = await peer.on_state(entry)
            if outcome == "answered":
                self.reconcile(session.sid)  # subscriptions that changed meanwhile (it offers if needed)
            elif outcome == "offered":
                self.reconcile_all()

    def lost(self, session: ParticipantSession) -> None:
        pass  # the PeerConnection does not depend on the socket

    async def resync(self, session: ParticipantSession) -> list[PeerConnectionState]:
        """Keep the PeerConnection; an offer still unanswered goes again (the old socket may have lost it)."""
        peer = self.peers.get(session.sid)
        if peer is None:
            return []
        offer = peer.outstanding_offer
        return [PeerConnectionState(id=peer.pc_id, description=offer if offer is not None else UNSET)]

    async def resynced(self, session: ParticipantSession) -> None:
        self._request_offer(session.sid)

    async def leave(self, session: ParticipantSession) -> None:
        peer = self.peers.pop(session.sid, None)
        if peer is None:
            return
        self.signals.remove(session.sid)
        needing = self.router.remove_participant(session.sid)
        await peer.close()
        for sid in needing:
            self._request_offer(sid)

    async def close(self) -> None:
        await self.signals.close()
        for peer in list(self.peers.values()):
            await peer.close()
        self.peers.clear()
        self._on_closed(self.router)

    # --- subscriptions ----------------------------------------------------------------------------

    async def subscriptions_changed(self, sid: ParticipantSid) -> None:
        self.reconcile(sid)

    async def published(self, session: ParticipantSession) -> None:
        pass  # the router learns the track from the publisher's next offer

    async def track_unpublished(self, track_sid: TrackSid) -> None:
        try:
            needing = self.router.unpublish_track(track_sid)
        except UnknownTrackError:
            return
        for sid in needing:
            self._request_offer(sid)

    def _data_channel(self, session: ParticipantSession, channel: RTCDataChannel) -> None:
        """A data track's channel from its publisher (labelled with the client's track id)."""
        track_sid = session.published.get(TrackId(channel.label))
        if track_sid is None or session.sid not in self.peers:
            logger.info("%s: data channel %r matches no published track; ignored", session, channel.label)
            return
        self.router.publish_data_track(session.sid, track_sid, channel)
        self.reconcile_all()

    def reconcile(self, sid: ParticipantSid) -> None:
        """Make the router forward exactly the wanted tracks whose upstream it knows."""
        peer = self.peers.get(sid)
        if peer is None or peer.closed or not peer.stable:
            return  # retried once its negotiation is over
        wanted = self.room.wanted_by(sid)
        for track_sid in sorted(wanted):
            if self.router.has_track(track_sid):  # else the publisher's offer or channel is still to come
                self.router.subscribe(sid, track_sid, track_sid)
        for track_sid in self.room.track_sids():
            if track_sid not in wanted and self.router.is_subscribed(sid, track_sid):
                self.router.unsubscribe(sid, track_sid)
        if self.router.needs_offer(sid):
            peer.request_offer()  # the offer carries the new `subscribed`
        else:
            self._push_subscribed(peer.session)  # e.g. a data channel on an SCTP transport already negotiated

    def _push_subscribed(self, session: ParticipantSession) -> None:
        block = session.subscribed_changed()
        if block is not None:
            task = asyncio.create_task(session.send(ServerUpdate(subscribed=block)))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    def reconcile_all(self) -> None:
        for sid in list(self.peers):
            self.reconcile(sid)

    def _request_offer(self, sid: ParticipantSid) -> None:
        peer = self.peers.get(sid)
        if peer is not None:
            peer.request_offer()
