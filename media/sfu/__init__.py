"""The group-room SFU's forwarding core: RTP forwarded between aiortc PeerConnections, undecoded.

* `Router` (router.py): one room; the session layer adds participants' PeerConnections,
  registers published tracks by mid, subscribes and unsubscribes, and learns when a subscriber's
  PeerConnection needs a new server offer.
* `PublishedTrack` (published_track.py): the fan-out of one publisher m-line, keyframe requests
  and REMB to the publisher, RFC 6464 audio levels.
* `Subscription` (subscription.py): one subscriber m-line: keyframe gating, payload types,
  switch-off (render hints).
* `PublishedDataTrack` (data_track.py): a data track's channel fanned out to one channel per subscriber.
* `Wire` (wire.py, in C: _wire.c): the per-subscriber forwarding step: sequence number and
  timestamp rewriting, serialization, SRTP, `sendto`, the retransmission history.
* Pure pieces: keyframe detection (keyframe.py), `RateLimiter` (rate_limiter.py), `SfuConfig` (config.py).
* hooks.py: every private aiortc hook, documented with the aiortc source it relies on.

"""

from media.sfu.config import SfuConfig
from media.sfu.errors import SfuError, UnknownMidError, UnknownParticipantError, UnknownTrackError
from media.sfu.published_track import AudioLevel, PublishedTrack
from media.sfu.router import Router
from media.sfu.subscription import Subscription

__all__ = [
    "AudioLevel",
    "PublishedTrack",
    "Router",
    "SfuConfig",
    "SfuError",
    "Subscription",
    "UnknownMidError",
    "UnknownParticipantError",
    "UnknownTrackError",
]
