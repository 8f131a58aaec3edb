"""Settings of the forwarding plane (passed in by the composition root; no environment reads here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SfuConfig:
    """How the SFU forwards and what feedback it gives publishers.

    * `max_bitrate_bps`: the cap of the REMB sent to video publishers; they get
      min(subscribers' estimates, this cap), or this cap alone while nobody subscribes.
    * `remb_interval_s`: how often the REMB is repeated (it is also sent when the target changes).
    * `keyframe_request_interval_s`: at most one PLI per this interval per published track.
    * `history_size`: packets kept per subscription to answer NACKs (aiortc's own keeps 128).
    """

    max_bitrate_bps: int = 2_000_000
    remb_interval_s: float = 1.0
    keyframe_request_interval_s: float = 0.5
    history_size: int = 1024
