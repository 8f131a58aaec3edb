"""One published track: the fan-out from a publisher's receiver to its subscriptions.

On `attach()` the publisher's `RTCRtpReceiver` hands its packets to the SFU instead of decoding
them (`hooks.take_over_rtp`): aiortc keeps the statistics for its receiver reports, unwraps RTX
and sends NACKs; no frame is depayloaded, buffered or decoded, and aiortc's own REMB is never
computed. Each media packet then comes here: the RFC 6464 audio level is read, and the packet is
handed to each subscription, synchronously (`Subscription.forward` sends without awaiting).

Upstream feedback is owned here:

* keyframe requests (a new subscriber, a subscriber's PLI/FIR, a subscriber waiting for a
  keyframe) are rate-limited to one PLI per `keyframe_request_interval_s`; the PLI goes out with
  the next packet received from the publisher, so no task is needed;
* the REMB sent to a video publisher is min(subscribers' latest estimates, `max_bitrate_bps`),
  repeated every `remb_interval_s` and sent at once when the target changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc import RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from domain.ids import ParticipantSid, TrackSid
from media.sfu import hooks
from media.sfu.config import SfuConfig
from media.sfu.rate_limiter import RateLimiter

if TYPE_CHECKING:
    from media.sfu.subscription import Subscription

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioLevel:
    """The last RFC 6464 level of an audio track: `level` is -dBov (0 loudest, 127 silence)."""

    level: int
    voice_activity: bool
    at: float


class PublishedTrack:
    """A publisher's track as the SFU forwards it (one per publisher m-line)."""

    def __init__(
        self,
        participant_sid: ParticipantSid,
        track_sid: TrackSid,
        receiver: RTCRtpReceiver,
        kind: str,
        config: SfuConfig,
        clock: Callable[[], float],
    ) -> None:
        self.participant_sid = participant_sid
        self.track_sid = track_sid
        self.kind = kind
        self.receiver = receiver
        self.codec: RTCRtpCodecParameters | None = None
        self.media_ssrc: int | None = None
        self.audio_level: AudioLevel | None = None
        self.packets_received = 0
        self.keyframe_requests_sent = 0
        self.last_remb_sent: int | None = None
        self.rembs_sent = 0
        self._config = config
        self._clock = clock
        self._subscriptions: list[Subscription] = []
        self._keyframe_limiter = RateLimiter(config.keyframe_request_interval_s, clock)
        self._pli_pending = False
        self._remb_target: int | None = None
        self._remb_last_sent_at: float | None = None
        self._subscriber_estimates: dict[int, int] = {}  # id(subscription) → bit/s
        self._active = True

    def attach(self) -> None:
        """Take over the publisher's receiver: fan-out, no decoding, no aiortc REMB."""
        hooks.take_over_rtp(self.receiver, self._on_rtp)

    def retire(self) -> None:
        """Stop forwarding for good (unpublished, or the client recycled the m-line: a newer
        `PublishedTrack` then hooks the same receiver and this one's hook passes packets through)."""
        self._active = False
        self._subscriptions.clear()
        self._subscriber_estimates.clear()

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def add_subscription(self, subscription: Subscription) -> None:
        """Start forwarding to `subscription`. It asks for a keyframe itself once its subscriber is
        connected: one asked for now would arrive before and be dropped, and the rate limit would
        then hold back the request that counts."""
        if subscription not in self._subscriptions:
            self._subscriptions.append(subscription)

    def remove_subscription(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        self._subscriber_estimates.pop(id(subscription), None)

    def request_keyframe(self) -> bool:
        """Ask the publisher for a keyframe, unless one was asked within the rate-limit interval."""
        if self.kind != "video" or not self._keyframe_limiter.try_acquire():
            return False
        self._pli_pending = True
        return True

    async def report_subscriber_estimate(self, subscription: Subscription, bitrate: int) -> None:
        """A subscriber's REMB for this track; the publisher's REMB follows the minimum."""
        self._subscriber_estimates[id(subscription)] = bitrate
        if self.remb_target() != self._remb_target:
            await self._send_remb()

    def remb_target(self) -> int:
        """min(subscribers' estimates, configured cap): what the publisher is told it may send."""
        return min([*self._subscriber_estimates.values(), self._config.max_bitrate_bps])

    async def _on_rtp(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        if not self._active:
            return
        self.packets_received += 1
        self.codec = codec
        self.media_ssrc = packet.ssrc
        if self.kind == "audio" and packet.extensions.audio_level is not None:
            vad, level = packet.extensions.audio_level
            self.audio_level = AudioLevel(level=level, voice_activity=bool(vad), at=self._clock())
        now, ntp = self._clock(), hooks.ntp_now()
        for subscription in self._subscriptions:
            subscription.forward(packet, codec, now, ntp)
        if self._pli_pending or self._remb_due():
            await self._flush_feedback()

    def _remb_due(self) -> bool:
        if self.kind != "video":
            return False
        last = self._remb_last_sent_at
        return last is None or self._clock() - last >= self._config.remb_interval_s

    async def _flush_feedback(self) -> None:
        if self._pli_pending and self.media_ssrc is not None:
            self._pli_pending = False
            self.keyframe_requests_sent += 1
            await hooks.send_pli(self.receiver, self.media_ssrc)
        if self._remb_due():
            await self._send_remb()

    async def _send_remb(self) -> None:
        if self.media_ssrc is None:
            return
        target = self.remb_target()
        if await hooks.send_remb(self.receiver, target, [self.media_ssrc]):
            self._remb_target = target
            self._remb_last_sent_at = self._clock()
            self.last_remb_sent = target
            self.rembs_sent += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("REMB %d bit/s to %s for track %s", target, self.participant_sid, self.track_sid)
