"""Pacing for the followers of the log: the work every commit asks for, coalesced.

A follower that runs once per commit (the relay's wake-up, the read-model follower) pays its
fixed cost per pass (a process or thread wake-up, a store read, a transaction, NATS messages)
however few events the pass finds. At a thousand commits a second that fixed cost was most of the
service's CPU (docs/benchmarks.md "NATS plane"). Paced, a follower runs at most once per
`interval`: the first commit after a quiet spell is followed at once; commits that come sooner
wait for the rest of the interval and are taken in one pass. The cost is at most `interval` of
added lag, and nothing at low rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

FOLLOW_INTERVAL_S = 0.005
"""How often, at most, a follower runs while commits keep coming (5 ms: the relay's lag target is
50 ms at p99; a reader that waits for its own writes hurries the read-model follower)."""


class Pacer:
    """At most one pass per `interval`, measured from the start of the previous pass."""

    def __init__(self, interval: float = FOLLOW_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last = -math.inf

    async def wait(self, hurry: asyncio.Event | None = None) -> None:
        """Wait for the rest of the interval since the previous pass began (cut short when
        `hurry` is set), then count this pass as begun."""
        delay = self._last + self.interval - self._clock()
        if delay > 0:
            if hurry is None:
                await asyncio.sleep(delay)
            elif not hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await hurry.wait()
        self._last = self._clock()
