"""Dominant speaker and network quality for one group room, over its participants' MSP channels.

    signals = RoomSignals(room, router)
    grants = signals.add(sid, requested)       # at connect: the channels granted in `connected`
    needs_offer = signals.open(sid, pc)        # after `connected`: the server opens the channels
    signals.remove(sid) · await signals.close()

While someone asked for the dominant speaker, a ticker samples every audio track's latest RFC 6464
level from the router every `tick_s` (dominant_speaker.py decides) and tells every participant
that asked when the speaker changes, a participant whose channel becomes ready (again) at once,
and everyone every `RETELL_S` (a message that did not go out is not lost for good).
Network quality is answered per report: the reporter's level, and the other participants' last
levels when it asked for them (`remoteReportLevel` > 0). Render hints switch a subscriber's
tracks off and on (`Router.switch`), answered per hint and announced on `track_switch_off`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection

from domain.ids import ParticipantSid, TrackSid
from media.session.dominant_speaker import DominantSpeaker
from media.session.media_signaling import MediaSignaling
from media.sfu import Router, UnknownTrackError
from media.signaling.messages import MediaSignalingGrant

if TYPE_CHECKING:
    from media.session.media_room import MediaRoom

logger = logging.getLogger(__name__)
TICK_S = 0.1
RETELL_S = 2.0
"""The current speaker is told again this often, besides on every change: the SDK ignores a
repeat, and a client that missed a message (a channel not open yet, a transport it set up
again) is caught up."""


class RoomSignals:
    def __init__(
        self, room: MediaRoom, router: Router, *, tick_s: float = TICK_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._room = room
        self._router = router
        self._tick_s = tick_s
        self._clock = clock
        self.speaker = DominantSpeaker()
        self._signals: dict[ParticipantSid, MediaSignaling] = {}
        self._levels: dict[ParticipantSid, int] = {}
        self._sampled: dict[str, float] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._retold_at = -math.inf

    def add(self, sid: ParticipantSid, requested: list[str]) -> dict[str, MediaSignalingGrant]:
        signals = self._signals[sid] = MediaSignaling(sid, requested, self._on_quality, self._on_hints)
        if signals.wants("active_speaker") and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name=f"room {self._room.room_sid} speaker")
        return signals.grants

    def open(self, sid: ParticipantSid, pc: RTCPeerConnection) -> bool:
        signals = self._signals.get(sid)
        return signals.open(pc) if signals is not None else False

    def remove(self, sid: ParticipantSid) -> None:
        signals = self._signals.pop(sid, None)
        if signals is not None:
            signals.close()
        self._levels.pop(sid, None)
        self.speaker.forget(sid)

    async def close(self) -> None:
        for sid in list(self._signals):
            self.remove(sid)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    # --- dominant speaker ----------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)  # the sampling period itself
            try:
                self._sample()
                now = self._clock()
                changed = self.speaker.tick(now)
                if changed is not None:
                    logger.info("room %s: dominant speaker %s", self._room.room_sid, changed)
                retell = now >= self._retold_at + RETELL_S
                if retell:
                    self._retold_at = now
                for signals in self._signals.values():
                    if signals.speaker_ready and (changed is not None or retell or not signals.speaker_told):
                        self._tell_speaker(signals)
            except Exception:  # the top of a task loop: keep detecting
                logger.exception("room %s: dominant speaker tick failed", self._room.room_sid)

    def _sample(self) -> None:
        for view in list(self._room.view.participants.values()):
            for track_sid, track in view.tracks.items():
                if track.kind != "audio":
                    continue
                try:
                    heard = self._router.published_track(track_sid).audio_level
                except UnknownTrackError:
                    continue
                if heard is not None and heard.at > self._sampled.get(track_sid, 0.0):
                    self._sampled[track_sid] = heard.at
                    self.speaker.observe(view.sid, heard.level, heard.at)

    def _tell_speaker(self, signals: MediaSignaling) -> None:
        if self.speaker.current is not None:
            message = {"type": "active_speaker", "participant": self.speaker.current}
            signals.speaker_told = signals.send("active_speaker", message)

    # --- network quality -----------------------------------------------------------------------------

    def _on_quality(self, sid: ParticipantSid, level: int, report: dict[str, Any]) -> None:
        self._levels[sid] = level
        signals = self._signals.get(sid)
        if signals is None:
            return
        reply: dict[str, Any] = {"type": "network_quality", "local": level}
        if isinstance(report.get("remoteReportLevel"), int) and report["remoteReportLevel"] > 0:
            reply["remotes"] = [{"sid": other, "level": lvl} for other, lvl in self._levels.items() if other != sid]
        signals.send("network_quality", reply)

    # --- render hints and track switch-off -----------------------------------------------------------

    def _on_hints(self, sid: ParticipantSid, hints: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Switch tracks off or on for subscriber `sid` as its hints say; one result per hint."""
        results: list[dict[str, Any]] = []
        switched: dict[str, list[str]] = {"off": [], "on": []}
        for hint in hints:
            track = hint.get("track")
            if not isinstance(track, str):
                continue
            enabled = hint.get("enabled")
            if isinstance(enabled, bool):
                if not self._router.switch(sid, TrackSid(track), on=enabled):
                    results.append({"track": track, "result": "UNKNOWN_TRACK"})
                    continue
                switched["on" if enabled else "off"].append(track)
            results.append({"track": track, "result": "OK"})
        signals = self._signals.get(sid)
        if signals is not None and (switched["off"] or switched["on"]):
            signals.send("track_switch_off", {"type": "track_switch_off", **switched})
        return results
