"""`FrameCounter`: consume a received track, counting decoded frames and video sizes.

aiortc queues every decoded frame of a remote track until someone calls `recv()`; a bot or load
test that does not look at the media still has to drain it (this, or aiortc's MediaBlackhole).

    counter = FrameCounter(event.track)
    await counter.wait_for(30)          # at least 30 frames, or TimeoutError
    counter.sizes                        # {(320, 240)} for video
    await counter.stop()
"""

from __future__ import annotations

import asyncio
import contextlib

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame


class FrameCounter:
    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.sizes: set[tuple[int, int]] = set()
        self.ended = False
        self._tick = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"frames of {track.kind} {track.id}")

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.frames += 1
                if isinstance(frame, VideoFrame):
                    self.sizes.add((frame.width, frame.height))
                self._tick.set()
                self._tick = asyncio.Event()
        except MediaStreamError:
            self.ended = True
            self._tick.set()

    async def wait_for(self, frames: int, timeout: float = 20.0) -> None:
        """Until at least `frames` frames were decoded in all."""
        try:
            async with asyncio.timeout(timeout):
                while self.frames < frames and not self.ended:
                    await self._tick.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.frames} of {frames} {self.track.kind} frames within {timeout} s") from None
        if self.frames < frames:
            raise TimeoutError(f"{self.track.kind} track ended after {self.frames} of {frames} frames")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
