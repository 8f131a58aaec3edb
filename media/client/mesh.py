"""`Mesh`: the client's PeerConnections by id, and what the server's `peer_connections` do to them.

A group room has one, to the SFU (the connect PeerConnection). In a peer-to-peer or go room the
server gives each pair of participants one PeerConnection id and relays between the two ends
(twilio-signaling-p2p.md §2-§3; media/session/mesh_topology.py), so the client has one per peer:

* an `offer` or `create-offer` under an unknown id opens a PeerConnection: the first participant
  answers a joiner's connect offer that way, then attaches its local tracks and offers them (two
  rounds, as the SDK's answer-then-reoffer, §3.2); a joiner attaches its tracks and offers under
  each `create-offer` id. (aiortc cannot attach them before answering: a transceiver that was
  created first but does not get the offer's first m-line gets its ICE transport stopped when the
  BUNDLE group is applied, and that transport is the one all m-lines share);
* `close` closes one (the connect PeerConnection of a participant alone in the room, the link to
  a peer that left or was lost); a closed id is never used again;
* `synced` lists the ids it keeps; the others are closed;
* publish and unpublish change every PeerConnection, and each offers again on its own.

Unlike the SDK, an entry with only `ice` (or nothing) under an unknown id opens nothing: the server
relays those only on links it opened with an offer or a `create-offer` (§9.1).

Every local track goes out as one `TrackCopy` per PeerConnection (track_relay.py). A subscription
is matched across all of them: the receiver whose remote msid track id is the `subscribed`
entry's id, on whichever PeerConnection it arrived. The state is the best over the
PeerConnections (`new` with none), as in the SDK.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiortc import RTCConfiguration
from aiortc.mediastreams import MediaStreamTrack
from msgspec import UNSET

from media.client.negotiator import Negotiator
from media.client.track_relay import TrackRelay
from media.signaling.messages import PeerConnectionId, PeerConnectionState, TrackId

logger = logging.getLogger(__name__)
STATE_RANK = {"closed": 0, "failed": 1, "disconnected": 2, "new": 3, "connecting": 4, "connected": 5}
"""The SDK's ranking for the summary (summarizeIceOrPeerConnectionStates): the highest wins."""


class Mesh:
    """The open PeerConnections by id, the ids closed for good, and the local tracks they all send."""

    def __init__(self, configuration: RTCConfiguration | None = None) -> None:
        self.configuration = configuration
        """Every PeerConnection's STUN/TURN servers and ICE transport policy."""
        self.negotiators: dict[PeerConnectionId, Negotiator] = {}
        self._closed: set[PeerConnectionId] = set()
        self._tracks: dict[TrackId, MediaStreamTrack] = {}
        self._relay = TrackRelay()

    def open(self, pc_id: PeerConnectionId | None = None, *, attach: bool = True) -> Negotiator:
        """A new PeerConnection under `pc_id` (else a fresh id), sending every local track if `attach`."""
        negotiator = Negotiator(pc_id, self.configuration)
        if attach:
            self._attach(negotiator)
        self.negotiators[negotiator.id] = negotiator
        return negotiator

    def _attach(self, negotiator: Negotiator) -> None:
        for track in self._tracks.values():
            negotiator.add_track(self._relay.copy(track))

    def local_candidate_types(self) -> set[str]:
        return {
            candidate.type
            for negotiator in self.negotiators.values()
            for transceiver in negotiator.pc.getTransceivers()[:1]
            for candidate in transceiver.receiver.transport.transport.iceGatherer.getLocalCandidates()
        }

    def add_track(self, track: MediaStreamTrack) -> None:
        self._tracks[TrackId(track.id)] = track
        for negotiator in self.negotiators.values():
            negotiator.add_track(self._relay.copy(track))

    def remove_track(self, track_id: TrackId) -> None:
        self._tracks.pop(track_id, None)
        for negotiator in self.negotiators.values():
            negotiator.remove_track(track_id)

    @property
    def wants_offer(self) -> bool:
        return any(negotiator.wants_offer for negotiator in self.negotiators.values())

    @property
    def connection_state(self) -> str:
        states = [str(negotiator.pc.connectionState) for negotiator in self.negotiators.values()]
        return max(states, key=lambda state: STATE_RANK.get(state, 0), default="new")

    async def offers(self) -> list[PeerConnectionState]:
        """A new offer on every PeerConnection with a change to offer and no offer outstanding
        (the others offer once their answer is in)."""
        states = []
        for negotiator in [negotiator for negotiator in self.negotiators.values() if negotiator.wants_offer]:
            description = await negotiator.offer()
            if description is not None:
                states.append(PeerConnectionState(id=negotiator.id, description=description))
        return states

    async def apply(self, entries: Iterable[PeerConnectionState], *, only: bool = False) -> list[PeerConnectionState]:
        """Apply the server's entries in order; the answers to send back. `only` (a `synced`):
        close every PeerConnection the entries do not name."""
        entries = list(entries)
        if only:
            named = {entry.id for entry in entries}
            for pc_id in [pc_id for pc_id in self.negotiators if pc_id not in named]:
                await self._close(pc_id)
        answers = []
        for entry in entries:
            answer = await self._apply(entry)
            if answer is not None:
                answers.append(answer)
        return answers

    async def _apply(self, entry: PeerConnectionState) -> PeerConnectionState | None:
        description = entry.description
        if description is not UNSET and description.type == "close":
            await self._close(entry.id)
            return None
        negotiator = self.negotiators.get(entry.id)
        opened_by_offer = False
        if negotiator is None:
            if entry.id in self._closed or description is UNSET or description.type not in ("offer", "create-offer"):
                return None
            logger.info("pc %s: opened for the peer's %s", entry.id, description.type)
            opened_by_offer = description.type == "offer"
            negotiator = self.open(entry.id, attach=not opened_by_offer)
        answer = await negotiator.on_description(description) if description is not UNSET else None
        if opened_by_offer:
            self._attach(negotiator)  # offered after the answer
        if entry.ice is not UNSET:
            await negotiator.add_ice(entry.ice)
        return PeerConnectionState(id=entry.id, description=answer) if answer is not None else None

    async def _close(self, pc_id: PeerConnectionId) -> None:
        self._closed.add(pc_id)
        negotiator = self.negotiators.pop(pc_id, None)
        if negotiator is not None:
            logger.info("pc %s: closed", pc_id)
            await negotiator.close()

    def receiving_track(self, track_id: str) -> MediaStreamTrack | None:
        """The track received under the remote msid track id `track_id`, on any PeerConnection."""
        for negotiator in self.negotiators.values():
            track = negotiator.receiving_track(track_id)
            if track is not None:
                return track
        return None

    async def close(self) -> None:
        for pc_id in list(self.negotiators):
            await self._close(pc_id)
        await self._relay.close()
