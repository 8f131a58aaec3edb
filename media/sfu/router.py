"""The forwarding plane of one group room: who publishes which track, who receives it.

The session layer (which speaks RSP and SDP) drives a `Router`; the router never creates or
applies session descriptions itself. Each participant has ONE PeerConnection to the SFU
(twilio-video's model), created with `bundlePolicy=MAX_BUNDLE`, carrying both the tracks the
participant publishes (m-lines from the client's offers) and its subscriptions (m-lines the SFU
adds, sent to the client in a server offer).

Typical use by the session layer:

1. `add_participant(sid, pc)` when the participant connects.
2. On a client offer: `pc.setRemoteDescription(offer)`, then `publish_tracks(sid, {mid: track_sid})`
   with the mids of the m-lines it parsed from the offer's `a=msid` lines, **before**
   `pc.setLocalDescription(answer)` (packets flow once the answer is applied; earlier packets would
   not be forwarded and could be decoded by aiortc).
3. `subscribe(subscriber_sid, track_sid, msid_track_id)` / `unsubscribe(...)`: each returns True
   when the subscriber's PeerConnection needs a new server offer (`needs_offer(sid)` says the same,
   and `on_offer_needed` is called). The session layer then runs `pc.createOffer()`,
   `setLocalDescription`, sends the offer, applies the answer, and calls `offer_sent(sid)` after
   creating it. `subscription(...).mid` gives the m-line's mid once the offer exists.
4. `remove_participant(sid)` when the participant leaves; it returns the subscribers whose
   PeerConnections now need an offer (their m-lines for its tracks went idle).

Data tracks (data_track.py) come in as the publisher's RTCDataChannels, not m-lines:
`publish_data_track(sid, track_sid, channel)` when the channel arrives; `subscribe`/`unsubscribe`
serve them like media tracks (the subscriber gets a channel labelled `msid_track_id`; it needs an
offer only when its PeerConnection has no SCTP transport yet).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiortc import RTCBundlePolicy, RTCDataChannel, RTCPeerConnection
from aiortc.codecs import is_rtx

from domain.ids import ParticipantSid, RoomSid, TrackSid
from media.sfu import hooks
from media.sfu.config import SfuConfig
from media.sfu.data_track import PublishedDataTrack
from media.sfu.errors import SfuError, UnknownMidError, UnknownParticipantError, UnknownTrackError
from media.sfu.idle_track import IdleTrack
from media.sfu.published_track import PublishedTrack
from media.sfu.subscription import Subscription

logger = logging.getLogger(__name__)


@dataclass
class _Participant:
    sid: ParticipantSid
    pc: RTCPeerConnection
    published: dict[TrackSid, PublishedTrack] = field(default_factory=dict)
    slots: list[Subscription] = field(default_factory=list)
    subscribed: dict[TrackSid, Subscription] = field(default_factory=dict)
    data_published: set[TrackSid] = field(default_factory=set)
    data_subscribed: set[TrackSid] = field(default_factory=set)
    needs_offer: bool = False


class Router:
    """Forwards RTP between the PeerConnections of one room's participants, without decoding."""

    def __init__(
        self,
        room_sid: RoomSid,
        config: SfuConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_offer_needed: Callable[[ParticipantSid], None] | None = None,
    ) -> None:
        hooks.install()
        self.room_sid = room_sid
        self._config = config or SfuConfig()
        self._clock = clock
        self._on_offer_needed = on_offer_needed
        self._participants: dict[ParticipantSid, _Participant] = {}
        self._tracks: dict[TrackSid, PublishedTrack] = {}
        self._retired_packets = 0
        self._data: dict[TrackSid, PublishedDataTrack] = {}

    def packets_received(self) -> int:
        """RTP packets received from publishers since the router was made (unpublished tracks included)."""
        return self._retired_packets + sum(track.packets_received for track in self._tracks.values())

    def peer_connections(self) -> int:
        return len(self._participants)

    # --- participants ---------------------------------------------------------------------------

    def add_participant(self, participant_sid: ParticipantSid, pc: RTCPeerConnection) -> None:
        """Take `pc` (the participant's only PeerConnection to the SFU, MAX_BUNDLE) into the room."""
        if hooks.bundle_policy(pc) != RTCBundlePolicy.MAX_BUNDLE:
            raise SfuError(f"participant {participant_sid}'s PeerConnection must use bundlePolicy=MAX_BUNDLE")
        self._participants[participant_sid] = _Participant(participant_sid, pc)

        async def on_connection_state_change() -> None:
            if pc.connectionState == "connected":
                await hooks.start_negotiated_media(pc)

        pc.on("connectionstatechange", on_connection_state_change)
        logger.info("room %s: participant %s added to the router", self.room_sid, participant_sid)

    def remove_participant(self, participant_sid: ParticipantSid) -> set[ParticipantSid]:
        """Forget a participant: unpublish its tracks and drop its subscriptions (closing its
        PeerConnection is the caller's). Returns the other participants that now need an offer."""
        participant = self._participant(participant_sid)
        needing: set[ParticipantSid] = set()
        for track_sid in [*participant.published, *participant.data_published]:
            needing |= self.unpublish_track(track_sid)
        for track_sid in list(participant.data_subscribed):
            self._data[track_sid].unsubscribe(participant_sid)
        for subscription in participant.slots:
            subscription.detach()
        del self._participants[participant_sid]
        needing.discard(participant_sid)
        logger.info("room %s: participant %s removed from the router", self.room_sid, participant_sid)
        return needing

    # --- publishing -----------------------------------------------------------------------------

    def publish_tracks(self, participant_sid: ParticipantSid, tracks: Mapping[str, TrackSid]) -> list[PublishedTrack]:
        """Register the participant's published tracks by the mid of their m-line.

        Call after `setRemoteDescription(client offer)` and before `setLocalDescription(answer)`.
        A mid already registered under the same track id is left alone; under another id (the
        client recycled the m-line for a new track) the old track is unpublished first.
        """
        participant = self._participant(participant_sid)
        by_mid = {t.mid: t for t in participant.pc.getTransceivers() if t.mid is not None}
        registered: list[PublishedTrack] = []
        for mid, track_sid in tracks.items():
            transceiver = by_mid.get(mid)
            if transceiver is None:
                raise UnknownMidError(participant_sid, mid)
            existing = next((t for t in participant.published.values() if t.receiver is transceiver.receiver), None)
            if existing is not None and existing.track_sid == track_sid:
                registered.append(existing)
                continue
            if existing is not None:
                self.unpublish_track(existing.track_sid)
            track = PublishedTrack(
                participant_sid, track_sid, transceiver.receiver, transceiver.kind, self._config, self._clock
            )
            track.codec = next((c for c in hooks.negotiated_codecs(transceiver) if not is_rtx(c)), None)
            track.attach()
            participant.published[track_sid] = track
            self._tracks[track_sid] = track
            registered.append(track)
            logger.info(
                "room %s: participant %s publishes %s track %s on mid %s",
                self.room_sid,
                participant_sid,
                transceiver.kind,
                track_sid,
                mid,
            )
        return registered

    def publish_data_track(self, participant_sid: ParticipantSid, track_sid: TrackSid, channel: RTCDataChannel) -> None:
        """Register the publisher's RTCDataChannel of data track `track_sid` (its label is the client's track id)."""
        participant = self._participant(participant_sid)
        if track_sid in self._data:
            return
        self._data[track_sid] = PublishedDataTrack(participant_sid, track_sid, channel)
        participant.data_published.add(track_sid)
        logger.info("room %s: participant %s publishes data track %s", self.room_sid, participant_sid, track_sid)

    def has_track(self, track_sid: TrackSid) -> bool:
        """Whether the router can forward `track_sid` (its media m-line or data channel has arrived)."""
        return track_sid in self._tracks or track_sid in self._data

    def unpublish_track(self, track_sid: TrackSid) -> set[ParticipantSid]:
        """Stop forwarding a track and unsubscribe everyone from it; returns who needs an offer."""
        data = self._data.pop(track_sid, None)
        if data is not None:
            data.retire()
            for participant in self._participants.values():
                participant.data_subscribed.discard(track_sid)
                participant.data_published.discard(track_sid)
            return set()
        track = self.published_track(track_sid)
        needing: set[ParticipantSid] = set()
        for subscription in track.subscriptions:
            if self.unsubscribe(subscription.subscriber_sid, track_sid):
                needing.add(subscription.subscriber_sid)
        track.retire()
        self._retired_packets += track.packets_received
        del self._tracks[track_sid]
        owner = self._participants.get(track.participant_sid)
        if owner is not None:
            owner.published.pop(track_sid, None)
        return needing

    def published_track(self, track_sid: TrackSid) -> PublishedTrack:
        """The published track (codec, audio level, counters); raises UnknownTrackError."""
        track = self._tracks.get(track_sid)
        if track is None:
            raise UnknownTrackError(track_sid)
        return track

    # --- subscribing ----------------------------------------------------------------------------

    def subscribe(self, subscriber_sid: ParticipantSid, track_sid: TrackSid, msid_track_id: str) -> bool:
        """Forward `track_sid` to `subscriber_sid` on an m-line whose msid track id is `msid_track_id`.

        Recycles an idle m-line of the same kind that the router added earlier, or adds a
        `sendrecv` transceiver. Returns True when the subscriber's PeerConnection needs an offer
        (False if it was already subscribed).
        """
        participant = self._participant(subscriber_sid)
        data = self._data.get(track_sid)
        if data is not None:
            if track_sid in participant.data_subscribed:
                return False
            participant.data_subscribed.add(track_sid)
            if data.subscribe(subscriber_sid, participant.pc, msid_track_id):
                self._offer_needed(participant)
                return True
            return False
        track = self.published_track(track_sid)
        if track_sid in participant.subscribed:
            return False
        subscription = next((s for s in participant.slots if s.free and s.kind == track.kind), None)
        if subscription is None:
            transceiver = participant.pc.addTransceiver(IdleTrack(track.kind, msid_track_id), direction="sendrecv")
            subscription = Subscription(subscriber_sid, transceiver, self._config)
            participant.slots.append(subscription)
        subscription.attach(track, msid_track_id)
        participant.subscribed[track_sid] = subscription
        self._offer_needed(participant)
        return True

    def unsubscribe(self, subscriber_sid: ParticipantSid, track_sid: TrackSid) -> bool:
        """Stop forwarding `track_sid` to the subscriber; its m-line goes idle (recvonly) and will be
        recycled. Returns True when the subscriber's PeerConnection needs an offer."""
        participant = self._participant(subscriber_sid)
        if track_sid in participant.data_subscribed:
            participant.data_subscribed.discard(track_sid)
            self._data[track_sid].unsubscribe(subscriber_sid)
            return False
        subscription = participant.subscribed.pop(track_sid, None)
        if subscription is None:
            return False
        subscription.detach()
        self._offer_needed(participant)
        return True

    def switch(self, subscriber_sid: ParticipantSid, track_sid: TrackSid, *, on: bool) -> bool:
        """Switch a subscription off or on (render hints); False if the subscriber does not receive the
        track (or it is a data track, which is never switched off)."""
        participant = self._participants.get(subscriber_sid)
        subscription = participant.subscribed.get(track_sid) if participant is not None else None
        if subscription is None:
            return False
        subscription.switch(on)
        logger.info("room %s: %s switched %s for %s", self.room_sid, track_sid, "on" if on else "off", subscriber_sid)
        return True

    def is_subscribed(self, subscriber_sid: ParticipantSid, track_sid: TrackSid) -> bool:
        """Whether `track_sid` (media or data) is forwarded to the subscriber."""
        participant = self._participant(subscriber_sid)
        return track_sid in participant.subscribed or track_sid in participant.data_subscribed

    def subscription(self, subscriber_sid: ParticipantSid, track_sid: TrackSid) -> Subscription | None:
        """The subscriber's subscription to a track (mid, msid track id, counters), if any."""
        return self._participant(subscriber_sid).subscribed.get(track_sid)

    # --- negotiation bookkeeping ------------------------------------------------------------------

    def needs_offer(self, participant_sid: ParticipantSid) -> bool:
        """True when subscriptions changed since the last `offer_sent` for this participant."""
        return self._participant(participant_sid).needs_offer

    def renegotiate(self, participant_sid: ParticipantSid) -> None:
        """A change outside the router's subscriptions (SCTP for the media-signaling channels) needs an offer."""
        self._offer_needed(self._participant(participant_sid))

    def offer_sent(self, participant_sid: ParticipantSid) -> None:
        """The session layer created (and will send) a server offer covering all current changes."""
        self._participant(participant_sid).needs_offer = False

    def _offer_needed(self, participant: _Participant) -> None:
        first = not participant.needs_offer
        participant.needs_offer = True
        if first and self._on_offer_needed is not None:
            self._on_offer_needed(participant.sid)

    def _participant(self, participant_sid: ParticipantSid) -> _Participant:
        participant = self._participants.get(participant_sid)
        if participant is None:
            raise UnknownParticipantError(participant_sid)
        return participant
