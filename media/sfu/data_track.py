"""A published data track: the publisher's RTCDataChannel, fanned out to one channel per subscriber.

twilio-video publishes a `LocalDataTrack` as an RTCDataChannel on its PeerConnection, labelled
with the publication's id (protocol doc §6). The SFU receives it (`datachannel` event), and for
each subscriber opens a channel of its own with the same `ordered`, `maxPacketLifeTime` and
`maxRetransmits`, labelled with the `id` the subscriber is told in `subscribed` (the SDK matches
the incoming channel by that label). Messages are relayed as they arrive, text or binary. A
message that arrives while a subscriber's channel is still opening is dropped for that
subscriber (counted), as a browser's channel would drop it.
"""

from __future__ import annotations

import logging

from aiortc import RTCDataChannel, RTCPeerConnection

from domain.ids import ParticipantSid, TrackSid

logger = logging.getLogger(__name__)


class PublishedDataTrack:
    """One data track: its source channel and the channels that carry it to subscribers."""

    kind = "data"

    def __init__(self, participant_sid: ParticipantSid, track_sid: TrackSid, channel: RTCDataChannel) -> None:
        self.participant_sid = participant_sid
        self.track_sid = track_sid
        self.channel = channel
        self.subscribers: dict[ParticipantSid, RTCDataChannel] = {}
        self.messages_received = 0
        self.messages_dropped = 0
        channel.on("message", self._forward)

    def _forward(self, message: str | bytes) -> None:
        self.messages_received += 1
        for out in self.subscribers.values():
            if out.readyState == "open":
                out.send(message)
            else:
                self.messages_dropped += 1

    def subscribe(self, subscriber_sid: ParticipantSid, pc: RTCPeerConnection, label: str) -> bool:
        """Open a channel to the subscriber; True when its PeerConnection needs an offer (no SCTP yet)."""
        needs_offer = pc.sctp is None
        source = self.channel
        self.subscribers[subscriber_sid] = pc.createDataChannel(
            label,
            ordered=source.ordered,
            maxPacketLifeTime=source.maxPacketLifeTime,
            maxRetransmits=source.maxRetransmits,
        )
        return needs_offer

    def unsubscribe(self, subscriber_sid: ParticipantSid) -> None:
        out = self.subscribers.pop(subscriber_sid, None)
        if out is not None:
            out.close()

    def retire(self) -> None:
        """The track is unpublished: close every subscriber's channel, stop relaying."""
        self.channel.remove_listener("message", self._forward)
        for subscriber_sid in list(self.subscribers):
            self.unsubscribe(subscriber_sid)
