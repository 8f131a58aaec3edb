"""Clocks: the system clock, and a fake one that tests move by hand.

The engine reads `now()`; the scheduler also waits with `sleep_until()`, which returns at the
deadline or as soon as `wake` is set (new deadlines may have arrived).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime, timedelta


def jittered_backoff(attempt: int) -> None:
    """Before retrying a command that lost a race: sleep a random 0..min(50 ms, 1 ms·2^attempt)."""
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        timeout = None if when is None else max(0.0, (when - self.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on 3.11
                await wake.wait()


class FakeClock:
    """Time stands still until `advance()`; sleepers wake when time passes their deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta
        # Wake every sleeper (several schedulers may share one clock); later ones wait anew.
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        while when is None or self._now < when:
            moved = asyncio.ensure_future(self._moved.wait())
            woken = asyncio.ensure_future(wake.wait())
            try:
                done, _ = await asyncio.wait({moved, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                woken.cancel()
            if woken in done:
                return
