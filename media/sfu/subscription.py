"""One subscriber's outbound stream: a sender on its PeerConnection, fed from a published track.

A `Subscription` owns one `RTCRtpTransceiver` of the subscriber's PeerConnection for its whole
life. Its source (a `PublishedTrack`) can change: when it is recycled for another track, or when
a publisher is replaced. The subscriber nevertheless sees one continuous RTP stream (one SSRC,
sequence numbers by +1, increasing timestamps: the rewriting of media.sfu.wire).

For each packet from the source it:

1. drops it while the subscriber has not answered yet (the sender is not started);
2. for video, drops it until a keyframe starts (after subscribing or a source change), asking
   the publisher for one meanwhile (rate-limited by the published track);
3. maps the payload type to the subscriber's number for the same codec and hands the packet to
   `hooks.SenderInjector`, whose wire (media.sfu.wire, in C) rewrites sequence number and
   timestamp, keeps the RFC 6464 audio level, sends it and keeps the retransmission history that
   answers the subscriber's NACKs.

All of it is synchronous: the published track forwards one packet to all its subscriptions in a
plain loop, with no coroutine per subscriber, and the per-subscriber step is one C call
(docs/benchmarks.md "SFU").

The subscriber's PLI/FIR become a keyframe request upstream; its REMB goes to the published
track, whose REMB to the publisher is the minimum over subscribers.
"""

from __future__ import annotations

import logging

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from domain.ids import ParticipantSid
from media.sfu import hooks
from media.sfu.config import SfuConfig
from media.sfu.idle_track import IdleTrack
from media.sfu.keyframe import is_keyframe_start
from media.sfu.published_track import PublishedTrack

logger = logging.getLogger(__name__)


class Subscription:
    """The SFU's sender of one m-line on a subscriber's PeerConnection."""

    def __init__(
        self,
        subscriber_sid: ParticipantSid,
        transceiver: RTCRtpTransceiver,
        config: SfuConfig,
    ) -> None:
        self.subscriber_sid = subscriber_sid
        self.transceiver = transceiver
        self.kind = transceiver.kind
        self.source: PublishedTrack | None = None
        self.msid_track_id: str | None = None
        self.dropped_waiting_keyframe = 0
        self.subscriber_estimate: int | None = None
        self.switched_off = False
        """The subscriber asked not to receive it for now (a render hint): nothing is forwarded."""
        self._waiting_keyframe = False
        self._codec_mismatch_logged = False
        self._codec: RTCRtpCodecParameters | None = None  # the source codec `_payload_type` is for
        self._payload_type: int | None = None
        self._source_ssrc: int | None = None
        self.injector = hooks.SenderInjector(
            transceiver,
            history_size=config.history_size,
            on_keyframe_request=self._on_keyframe_request,
            on_remb=self._on_remb,
        )

    @property
    def packets_sent(self) -> int:
        return self.injector.wire.packets_sent

    @property
    def mid(self) -> str | None:
        """The m-line's mid, known once the SFU's offer containing it was created."""
        return self.transceiver.mid

    @property
    def free(self) -> bool:
        """True when the m-line carries nothing and can be recycled for another track."""
        return self.source is None

    def attach(self, source: PublishedTrack, msid_track_id: str) -> None:
        """Forward `source` on this m-line, named `msid_track_id` in the next offer."""
        self.detach()
        self.msid_track_id = msid_track_id
        self.transceiver.sender.replaceTrack(IdleTrack(self.kind, msid_track_id))
        self.transceiver.direction = "sendrecv"
        self.source = source
        self._codec = None
        self._source_ssrc = None
        self.injector.wire.switch_source()
        self._waiting_keyframe = self.kind == "video"
        if source.codec is not None:
            self._prefer_codec(source.codec)
        source.add_subscription(self)

    def detach(self) -> None:
        """Stop forwarding; the m-line stays (aiortc cannot signal a stopped transceiver) and can be
        recycled. Its direction becomes `recvonly`, so the next offer tells the subscriber."""
        if self.source is not None:
            self.source.remove_subscription(self)
            self.source = None
            self.transceiver.direction = "recvonly"

    def switch(self, on: bool) -> None:
        """Stop forwarding (off) or resume from a keyframe (on), keeping the m-line and one continuous stream."""
        if on != self.switched_off:
            return
        self.switched_off = not on
        if on:
            self.injector.wire.switch_source()  # sequence continues; timestamps jump by the time switched off
            self._waiting_keyframe = self.kind == "video"
            if self.source is not None:
                self.source.request_keyframe()

    def _prefer_codec(self, codec: RTCRtpCodecParameters) -> None:
        """Offer only the publisher's codec (and its RTX) so the subscriber cannot pick another."""
        if self.mid is not None:
            return  # already negotiated: the codec list of an m-line is kept (hooks.install)
        capabilities = RTCRtpSender.getCapabilities(self.kind).codecs
        preferred = [c for c in capabilities if c.mimeType.lower() == codec.mimeType.lower()]
        preferred += [c for c in capabilities if c.mimeType.lower() == f"{self.kind}/rtx"]
        if preferred:
            self.transceiver.setCodecPreferences(preferred)

    def forward(self, packet: RtpPacket, codec: RTCRtpCodecParameters, now: float, ntp: int) -> None:
        """Send one of the source's packets to the subscriber, rewritten (see the module docstring).

        `now` (the router's clock) and `ntp` (the wall clock, `hooks.ntp_now()`) are read once per
        packet by the published track, for all its subscriptions."""
        source = self.source
        injector = self.injector
        if source is None or self.switched_off or not injector.ready:
            return
        if packet.ssrc != self._source_ssrc:
            self._follow_source_ssrc(packet.ssrc)
        if codec is not self._codec:
            self._codec, self._payload_type = codec, injector.payload_type_for(codec)
        payload_type = self._payload_type
        if payload_type is None:
            self._log_codec_mismatch(codec, source)
            return
        if self._waiting_keyframe:
            if not is_keyframe_start(codec.mimeType, packet.payload):
                self.dropped_waiting_keyframe += 1
                source.request_keyframe()
                return
            self._waiting_keyframe = False
        injector.forward(
            payload_type,
            packet.marker,
            packet.sequence_number,
            packet.timestamp,
            packet.payload,
            ntp,
            packet.extensions.audio_level,
            now,
            codec.clockRate,
        )

    def _follow_source_ssrc(self, ssrc: int) -> None:
        """The source's packets now carry another SSRC (the publisher restarted its stream): its
        numbers are unrelated to the previous ones, so map them afresh, from a keyframe for video."""
        if self._source_ssrc is not None:
            self.injector.wire.switch_source()
            self._waiting_keyframe = self.kind == "video"
        self._source_ssrc = ssrc

    def _log_codec_mismatch(self, codec: RTCRtpCodecParameters, source: PublishedTrack) -> None:
        if self._codec_mismatch_logged:
            return
        self._codec_mismatch_logged = True
        logger.warning(
            "subscriber %s did not negotiate %s for track %s; dropping",
            self.subscriber_sid,
            codec.mimeType,
            source.track_sid,
        )

    def _on_keyframe_request(self) -> None:
        if self.source is not None:
            self.source.request_keyframe()

    async def _on_remb(self, bitrate: int) -> None:
        self.subscriber_estimate = bitrate
        if self.source is not None:
            await self.source.report_subscriber_estimate(self, bitrate)
