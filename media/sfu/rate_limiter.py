"""A minimum-interval rate limiter, used for keyframe requests sent upstream.

Keyframe requests must be rate-limited: a burst of PLIs makes the publisher send keyframes back
to back, those large bursts cause loss at the subscribers, and the loss causes more PLIs
(reference/media-sfu-aiortc.md §2.4).
"""

from __future__ import annotations

from collections.abc import Callable


class RateLimiter:
    """Allows at most one action per `interval` seconds of `clock` (a monotonic clock)."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None

    def try_acquire(self) -> bool:
        """Take the slot if `interval` has passed since the last taken one; say whether it was taken."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True
