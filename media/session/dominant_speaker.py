"""Who is speaking: the dominant speaker of a group room, from the RFC 6464 audio levels.

The SFU reads each audio packet's level (`-dBov`: 0 loudest, 127 silence) without decoding.
Every `tick_s` the room samples each audio track's latest level, and this detector keeps, per
participant, the loudest sample of the last `window_s` seconds (speech comes in bursts; a window
bridges the gaps between words). The dominant speaker changes when another participant has been
the loudest, above `threshold` and by `margin` over the current speaker (or the current one fell
silent), for `hold` consecutive ticks. Silence keeps the last speaker, as Twilio does; a speaker
who leaves is forgotten.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from domain.ids import ParticipantSid

SILENCE = 127


@dataclass
class _Loudness:
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    """(time, loudness) with loudness = 127 - level (0 silence)."""

    def add(self, at: float, loudness: int, window_s: float) -> None:
        self.samples.append((at, loudness))
        while self.samples and self.samples[0][0] < at - window_s:
            self.samples.popleft()

    def peak(self, now: float, window_s: float) -> int:
        return max((loudness for at, loudness in self.samples if at >= now - window_s), default=0)


class DominantSpeaker:
    def __init__(self, *, window_s: float = 1.5, threshold: int = 30, margin: int = 6, hold: int = 2) -> None:
        self.current: ParticipantSid | None = None
        self._window_s = window_s
        self._threshold = threshold
        self._margin = margin
        self._hold = hold
        self._loudness: dict[ParticipantSid, _Loudness] = {}
        self._challenger: tuple[ParticipantSid, int] | None = None

    def observe(self, participant_sid: ParticipantSid, level: int, at: float) -> None:
        """One audio level sample of the participant (the loudest of its audio tracks if several)."""
        loudness = max(0, SILENCE - min(max(level, 0), SILENCE))
        self._loudness.setdefault(participant_sid, _Loudness()).add(at, loudness, self._window_s)

    def forget(self, participant_sid: ParticipantSid) -> None:
        self._loudness.pop(participant_sid, None)
        if self.current == participant_sid:
            self.current = None
        if self._challenger is not None and self._challenger[0] == participant_sid:
            self._challenger = None

    def tick(self, now: float) -> ParticipantSid | None:
        """The new dominant speaker if it changed at this tick, else None."""
        peaks = {sid: loudness.peak(now, self._window_s) for sid, loudness in self._loudness.items()}
        if not peaks:
            return None
        loudest = max(peaks, key=lambda sid: (peaks[sid], sid == self.current))
        if loudest == self.current or peaks[loudest] < self._threshold:
            self._challenger = None
            return None
        current = peaks.get(self.current, 0) if self.current is not None else 0
        if current >= self._threshold and peaks[loudest] < current + self._margin:
            self._challenger = None
            return None
        ticks = self._challenger[1] + 1 if self._challenger and self._challenger[0] == loudest else 1
        self._challenger = (loudest, ticks)
        if ticks < self._hold:
            return None
        self.current, self._challenger = loudest, None
        return loudest
