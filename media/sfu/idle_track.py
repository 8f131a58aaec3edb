"""The placeholder track a subscription's sender holds.

aiortc's `RTCRtpSender._run_rtp` polls every 20 ms while it has no track, and encodes whatever a
track yields. The SFU injects packets itself (`hooks.SenderInjector`), so the sender gets a track
whose `recv()` never returns: aiortc's own RTP loop then waits forever at no cost. The track's
id is the msid track id written in the SFU's offer for that m-line, which the session layer
chooses (twilio-video matches `subscribed[].id` against it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.mediastreams import MediaStreamTrack
from av.frame import Frame
from av.packet import Packet


class IdleTrack(MediaStreamTrack):
    """A track of `kind` that never yields a frame, named `track_id` in SDP."""

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id

    async def recv(self) -> Frame | Packet[Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover
