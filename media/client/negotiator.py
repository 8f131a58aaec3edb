"""The client's one PeerConnection (MAX_BUNDLE) and its offer/answer exchange (protocol doc §3).

One revision counter per PeerConnection, shared by both sides:

* a client offer increments it and goes out as `offer` revision n; only an `answer` with the same
  revision completes it (others are ignored);
* a server `offer` above the last completed revision is answered with its own revision, which
  becomes the counter; `create-offer` m sets the counter to m, and the next offer is m + 1;
* glare: the server wins and ignores a client offer while its own is outstanding, so a client
  offer still unanswered when a server offer arrives is dropped and made again afterwards.

aiortc has no rollback, so a client offer is *not* applied locally until its answer arrives
(`setLocalDescription(offer)` then `setRemoteDescription(answer)`): dropping it costs nothing.
The first offer is the exception (it is applied at once to gather the ICE candidates that every
later offer carries; the server cannot offer before `connected`). aiortc puts its candidates in
the SDP, so no trickle ICE is sent. Published m-lines are `sendrecv`, like the SDK's: if a server
offer takes a new transceiver before its own offer was applied, that is the SDK's transceiver
recycling, which the server supports.

`subscription_mids` maps each msid track id of the server's *offers* to its m-line (the server
names subscriptions there; its answers keep aiortc's own msids).
"""

from __future__ import annotations

import logging
import uuid

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import MediaStreamTrack

from media.client.errors import MediaError
from media.sfu import hooks
from media.signaling.messages import PeerConnectionId, SessionDescription
from media.signaling.sdp import msid_tracks

logger = logging.getLogger(__name__)


class Negotiator:
    """A PeerConnection, its id on the wire, and the state of its offer/answer exchange."""

    def __init__(self) -> None:
        hooks.install()  # a client re-offer must keep the payload types negotiated by server offers
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.id = PeerConnectionId(str(uuid.uuid4()))
        self.revision = 0
        self.stable_revision = 0
        self.subscription_mids: dict[str, str] = {}
        """msid track id → mid, from the server's offers."""
        self._pending: RTCSessionDescription | None = None
        self.wants_offer = False
        """A change is waiting for the next client offer (one exchange at a time)."""
        self.pc.on("connectionstatechange", self._on_connection_state)

    def add_track(self, track: MediaStreamTrack) -> RTCRtpTransceiver:
        return self.pc.addTransceiver(track, direction="sendrecv")

    async def first_offer(self) -> SessionDescription:
        """The connect offer, revision 1, applied at once (ICE gathering)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.revision = 1
        self._pending = self.pc.localDescription
        return SessionDescription(type="offer", revision=1, sdp=self.pc.localDescription.sdp)

    async def offer(self) -> SessionDescription | None:
        """A new client offer, or None (remembered in `wants_offer`) while one is outstanding."""
        if self._pending is not None:
            self.wants_offer = True
            return None
        self.wants_offer = False
        self._pending = await self.pc.createOffer()
        self.revision += 1
        return SessionDescription(type="offer", revision=self.revision, sdp=self._pending.sdp)

    async def on_description(self, description: SessionDescription) -> SessionDescription | None:
        """Apply a server description; the answer to send back, if it was an offer.

        Ignored once the PeerConnection is closed: aiortc closes it by itself when the server's
        side went away, which happens just before the server's `disconnected` arrives."""
        if self.pc.connectionState == "closed":
            logger.info("pc %s: %s ignored, the PeerConnection is closed", self.id, description.type)
            return None
        try:
            if description.type == "answer":
                await self._apply_answer(description)
            elif description.type == "offer":
                return await self._answer(description)
            elif description.type == "create-offer" and isinstance(description.revision, int):
                if description.revision > self.stable_revision and self._pending is None:
                    self.revision = description.revision
                    self.wants_offer = True
            elif description.type == "close":
                await self.pc.close()
        except InvalidStateError as exc:  # closed meanwhile (aiortc marks it closed before connectionState says so)
            logger.info("pc %s: %s ignored: %s", self.id, description.type, exc)
        except (ValueError, AttributeError) as exc:  # aiortc's errors for descriptions it cannot apply
            raise MediaError(f"cannot apply the server's {description.type}: {exc}", code=53402) from exc
        return None

    async def _apply_answer(self, description: SessionDescription) -> None:
        pending = self._pending
        if pending is None or description.revision != self.revision or not isinstance(description.sdp, str):
            logger.info("pc %s: answer revision %s ignored (at %d)", self.id, description.revision, self.revision)
            return
        if self.pc.signalingState != "have-local-offer":
            await self.pc.setLocalDescription(pending)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="answer"))
        self._pending = None
        self.stable_revision = self.revision

    async def _answer(self, description: SessionDescription) -> SessionDescription | None:
        revision = description.revision
        if not isinstance(revision, int) or revision <= self.stable_revision or not isinstance(description.sdp, str):
            logger.info("pc %s: offer revision %s ignored (stable %d)", self.id, revision, self.stable_revision)
            return None
        if self._pending is not None:  # glare: the server ignored ours; offer again afterwards
            logger.info("pc %s: client offer %d dropped for server offer %d", self.id, self.revision, revision)
            self._pending = None
            self.wants_offer = True
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description.sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.subscription_mids.update({track_id: mid for mid, track_id in msid_tracks(description.sdp).items()})
        self.revision = self.stable_revision = revision
        return SessionDescription(type="answer", revision=revision, sdp=self.pc.localDescription.sdp)

    def receiving_track(self, msid_track_id: str) -> MediaStreamTrack | None:
        """The track of the m-line that the server's offer named `msid_track_id`, if any."""
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
