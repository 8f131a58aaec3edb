"""One PeerConnection (MAX_BUNDLE) and its offer/answer exchange (protocol doc §3).

A group room has one, with the SFU; a peer-to-peer or go room has one per peer, and the server
relays its descriptions and ICE to that peer verbatim (twilio-signaling-p2p.md §2-§3):
`mesh.py` keeps them by id. One revision counter per PeerConnection, shared by both ends:

* a client offer increments it and goes out as `offer` revision n; only an `answer` with the same
  revision completes it (others are ignored);
* a remote `offer` above the last completed revision is answered with its own revision, which
  becomes the counter; `create-offer` m sets the counter to m, and the next offer is m + 1;
* glare: the server relays the first of two crossing offers and drops the other, so a client
  offer still unanswered when a remote offer arrives is dropped and made again afterwards.

aiortc has no rollback, so a client offer is *not* applied locally until its answer arrives
(`setLocalDescription(offer)` then `setRemoteDescription(answer)`): dropping it costs nothing.
The first offer on a PeerConnection is the exception (it is applied at once to gather the ICE
candidates that every later offer carries; nobody can offer on it before answering it), and so is
one whose new m-lines need an ICE transport that never gathered (a PeerConnection that only ever
answered offers without m-lines). aiortc puts its candidates in the SDP, so no trickle ICE is
sent; a peer's trickled candidates (a browser's) are added once the remote description has their
ufrag (`IceBox`). Published m-lines are `sendrecv`, like the SDK's: a remote offer may take a
transceiver whose own offer was not applied yet (the SDK's transceiver recycling). Local tracks
that a remote offer had no m-line for (an answer cannot add m-lines) are offered right after the
answer, as the SDK does (`hooks.defer_unoffered` keeps aiortc from tripping over them meanwhile).

`subscription_mids` maps msid track ids of the remote side to m-lines: every m-line of a remote
offer, and the sending m-lines of a remote answer (a peer's answer carries its tracks in P2P
rooms; the SFU's answers send nothing and keep aiortc's own msids).
"""

from __future__ import annotations

import logging
import uuid

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp
from msgspec import UnsetType

from media.client.errors import ClientStateError, MediaError
from media.client.ice_box import IceBox
from media.sfu import hooks
from media.signaling.messages import IceServer, IceState, PeerConnectionId, SessionDescription, TrackId
from media.signaling.sdp import ice_ufrag, msid_tracks, sending_tracks

logger = logging.getLogger(__name__)


def rtc_configuration(ice_servers: list[IceServer], *, relay_only: bool = False) -> RTCConfiguration:
    """A PeerConnection configuration with the STUN/TURN servers `iced` gave (or the app chose)."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=server.urls,
                username=server.username if isinstance(server.username, str) else None,
                credential=server.credential if isinstance(server.credential, str) else None,
            )
            for server in ice_servers
        ],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL,
    )


class Negotiator:
    """A PeerConnection, its id on the wire, and the state of its offer/answer exchange."""

    def __init__(self, pc_id: PeerConnectionId | None = None, configuration: RTCConfiguration | None = None) -> None:
        hooks.install()  # a client re-offer must keep the payload types negotiated by remote offers
        self.pc = RTCPeerConnection(configuration or rtc_configuration([]))
        self.id = pc_id or PeerConnectionId(str(uuid.uuid4()))
        self.revision = 0
        self.stable_revision = 0
        self.subscription_mids: dict[str, str] = {}
        """msid track id → mid, from the remote descriptions."""
        self.senders: dict[TrackId, RTCRtpTransceiver] = {}
        """The transceivers sending the local tracks, by publication id."""
        self._pending: RTCSessionDescription | None = None
        self._ice = IceBox()
        self.wants_offer = False
        """A change is waiting for the next client offer (one exchange at a time)."""
        self.pc.on("connectionstatechange", self._on_connection_state)

    def add_track(self, track: MediaStreamTrack) -> None:
        """Send `track` (its id is the publication id) on a new m-line, from the next offer on."""
        self.senders[TrackId(track.id)] = self.pc.addTransceiver(track, direction="sendrecv")
        self.wants_offer = True

    def remove_track(self, track_id: TrackId) -> None:
        """Stop sending the track: its m-line becomes `recvonly` from the next offer on."""
        transceiver = self.senders.pop(track_id, None)
        if transceiver is None:
            return
        track = transceiver.sender.track
        transceiver.sender.replaceTrack(None)
        transceiver.direction = "recvonly"
        self.wants_offer = True
        if track is not None:
            track.stop()

    async def first_offer(self) -> SessionDescription:
        """The connect offer, revision 1 (applied at once)."""
        offer = await self.offer()
        if offer is None:
            raise ClientStateError(f"pc {self.id}: the connect offer must be its first")
        return offer

    async def offer(self) -> SessionDescription | None:
        """A new client offer, or None (remembered in `wants_offer`) while one is outstanding.

        An offer with an ICE transport that never gathered (the first one on the PeerConnection)
        is applied at once: its candidates are only gathered then."""
        if self._pending is not None:
            self.wants_offer = True
            return None
        self.wants_offer = False
        offer = await self.pc.createOffer()
        if self.pc.localDescription is None or self._gathering_needed():
            await self.pc.setLocalDescription(offer)
            offer = self.pc.localDescription
        self._pending = offer
        self.revision += 1
        return SessionDescription(type="offer", revision=self.revision, sdp=offer.sdp)

    def _gathering_needed(self) -> bool:
        return any(
            transceiver.sender.transport.transport.iceGatherer.state == "new"
            for transceiver in self.pc.getTransceivers()
        )

    async def on_description(self, description: SessionDescription) -> SessionDescription | None:
        """Apply a remote description; the answer to send back, if it was an offer (a `close` is
        for `Mesh`).

        Ignored once the PeerConnection is closed: aiortc closes it by itself when the remote
        side went away, which happens just before the server's `disconnected` or `close` arrives."""
        if self.pc.connectionState == "closed":
            logger.info("pc %s: %s ignored, the PeerConnection is closed", self.id, description.type)
            return None
        try:
            if description.type == "answer":
                await self._apply_answer(description)
            elif description.type == "offer":
                return await self._answer(description)
            elif description.type == "create-offer":
                self._create_offer(description.revision)
        except InvalidStateError as exc:  # closed meanwhile (aiortc marks it closed before connectionState says so)
            logger.info("pc %s: %s ignored: %s", self.id, description.type, exc)
        except (ValueError, AttributeError) as exc:  # aiortc's errors for descriptions it cannot apply
            raise MediaError(f"cannot apply the remote {description.type}: {exc}", code=53402) from exc
        return None

    def _create_offer(self, revision: int | UnsetType) -> None:
        if isinstance(revision, int) and revision > self.stable_revision and self._pending is None:
            self.revision = revision
            self.wants_offer = True

    async def _apply_answer(self, description: SessionDescription) -> None:
        pending = self._pending
        if pending is None or description.revision != self.revision or not isinstance(description.sdp, str):
            logger.info("pc %s: answer revision %s ignored (at %d)", self.id, description.revision, self.revision)
            return
        if self.pc.signalingState != "have-local-offer":
            await self.pc.setLocalDescription(pending)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="answer"))
        self.subscription_mids.update({track_id: mid for mid, track_id in sending_tracks(description.sdp).items()})
        self._pending = None
        self.stable_revision = self.revision
        await self._add_candidates()

    async def _answer(self, description: SessionDescription) -> SessionDescription | None:
        revision = description.revision
        if not isinstance(revision, int) or revision <= self.stable_revision or not isinstance(description.sdp, str):
            logger.info("pc %s: offer revision %s ignored (stable %d)", self.id, revision, self.stable_revision)
            return None
        if self._pending is not None:  # glare: the server dropped ours; offer again afterwards
            logger.info("pc %s: client offer %d dropped for remote offer %d", self.id, self.revision, revision)
            self._pending = None
            self.wants_offer = True
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid is None:
                hooks.defer_unoffered(transceiver)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.subscription_mids.update({track_id: mid for mid, track_id in msid_tracks(description.sdp).items()})
        self.revision = self.stable_revision = revision
        if any(transceiver.mid is None for transceiver in self.senders.values()):
            self.wants_offer = True  # tracks the offer had no m-line for
        await self._add_candidates()
        return SessionDescription(type="answer", revision=revision, sdp=self.pc.localDescription.sdp)

    async def add_ice(self, ice: IceState) -> None:
        """Take a peer's trickled candidates; added once the remote description has their ufrag."""
        self._ice.update(ice)
        await self._add_candidates()

    async def _add_candidates(self) -> None:
        remote = self.pc.remoteDescription
        if remote is None or self.pc.connectionState == "closed":
            return
        for entry in self._ice.take(ice_ufrag(remote.sdp)):
            line = entry.candidate.removeprefix("candidate:")
            if not line:
                continue  # an end-of-candidates marker
            try:
                candidate = candidate_from_sdp(line)
                candidate.sdpMid = entry.sdp_mid if isinstance(entry.sdp_mid, str) else None
                candidate.sdpMLineIndex = entry.sdp_m_line_index if isinstance(entry.sdp_m_line_index, int) else None
                if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
                    candidate.sdpMLineIndex = 0
                await self.pc.addIceCandidate(candidate)
            except (AssertionError, IndexError, ValueError) as exc:  # aiortc's and aioice's for a bad candidate
                logger.info("pc %s: candidate %r ignored: %s", self.id, entry.candidate, exc)

    def receiving_track(self, msid_track_id: str) -> MediaStreamTrack | None:
        """The track of the m-line that the remote side named `msid_track_id`, if any."""
        mid = self.subscription_mids.get(msid_track_id)
        for transceiver in self.pc.getTransceivers():
            if mid is not None and transceiver.mid == mid:
                return transceiver.receiver.track
        return None

    async def _on_connection_state(self) -> None:
        # aiortc leaves media negotiated while DTLS was connecting unstarted (hooks.start_negotiated_media).
        if self.pc.connectionState == "connected":
            await hooks.start_negotiated_media(self.pc)

    async def close(self) -> None:
        await self.pc.close()
        for transceiver in self.senders.values():
            if transceiver.sender.track is not None:
                transceiver.sender.track.stop()
