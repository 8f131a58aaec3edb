"""Synthetic media for bots, load tests and tests: a moving gradient and a 440 Hz tone.

SyntheticVideoTrack(width=320, height=240)   yuv420p frames at aiortc's 30 fps pacing
ToneAudioTrack()                              20 ms frames of 48 kHz mono s16
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import time

from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame, VideoFrame

SAMPLE_RATE = 48000
SAMPLES_PER_FRAME = 960  # 20 ms


class SyntheticVideoTrack(VideoStreamTrack):
    """Frames with a moving gradient, so VP8 has something to encode."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._n = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        row = bytes((x + self._n * 4) % 256 for x in range(frame.planes[0].line_size))
        frame.planes[0].update(row * self.height)
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        self._n += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A 440 Hz tone, paced in real time like aiortc's AudioStreamTrack."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.frequency = frequency
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += SAMPLES_PER_FRAME
            wait = self._start + self._pts / SAMPLE_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing of the source
        step = 2 * math.pi * self.frequency / SAMPLE_RATE
        samples = array.array("h", (int(8000 * math.sin(step * (i + self._pts))) for i in range(SAMPLES_PER_FRAME)))
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES_PER_FRAME)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame
