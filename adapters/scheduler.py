"""Turns due deadlines into `expire_deadlines` commands.

Deadlines (unused room, empty room, 24 h room, max participant duration) are state in the
rooms; the read model exposes them. The scheduler sleeps until the earliest one (or until new
events may have moved it), then sends one `ExpireDeadlines` per room that has something due,
with a command id made from the room and the deadline, so two schedulers (several engines) or
a restart never act twice. After a restart it simply reads the deadlines again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from adapters.store.queries import Queries
from domain.commands import ExpireDeadlines
from domain.results import CommandResult

logger = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_SECONDS = 1.0
"""Back-off after a failed pass (store unreachable, say); a real wait, not synchronisation."""


class SchedulerClock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None: ...


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _from_micros(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


class DeadlineScheduler:
    def __init__(
        self,
        queries: Queries,
        execute: Callable[[ExpireDeadlines], Awaitable[CommandResult]],
        clock: SchedulerClock,
    ) -> None:
        self.queries = queries
        self.execute = execute
        self.clock = clock
        self.wake = asyncio.Event()
        self.expired = 0
        self._sent: dict[str, None] = {}
        self._sleeping_until: int | None = None
        """The deadline (µs) it sleeps until; None during a pass or when no deadline is known."""
        self._awaiting_events = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scheduler")

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        """Wait for a store query still running on the scheduler's thread (after `run` was
        cancelled): only then may the stores close."""
        self._thread.shutdown(wait=True)

    def poke(self) -> None:
        """Deadlines may have changed (events of other engines, say): look again now."""
        self.wake.set()

    def notice(self, earliest: datetime | None) -> None:
        """This engine committed events setting `earliest` as their earliest deadline (None: they
        set none). Wakes the scheduler only when that comes before the deadline it sleeps until,
        or when it waits for its own expiries to reach the read model; a pass in progress looks
        again if a deadline was set meanwhile."""
        sooner = earliest is not None and (self._sleeping_until is None or _micros(earliest) < self._sleeping_until)
        if sooner or self._awaiting_events:
            self.wake.set()

    async def run(self) -> None:
        while True:
            self.wake.clear()
            self._sleeping_until = None
            try:
                now = _micros(self.clock.now())  # one instant per pass: time may move during it
                sent = await self.fire_due(now)
                next_due = await self._blocking(self.queries.next_deadline)
            except Exception:
                logger.exception("scheduler pass failed; retrying after %s s", RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if not sent and next_due is not None and next_due <= now:
                # Due, but already sent: wait for new events rather than spin on the same answer.
                self._awaiting_events = True
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RETRY_SECONDS):  # not wait_for: it can swallow a cancel on 3.11
                            await self.wake.wait()
                finally:
                    self._awaiting_events = False
                continue
            self._sleeping_until = next_due
            when = _from_micros(next_due) if next_due is not None else None
            await self.clock.sleep_until(when, self.wake)

    async def fire_due(self, now: int | None = None) -> int:
        """Send what is due at `now` (µs; the clock's now by default) and not yet sent by this
        scheduler; returns how many were sent."""
        at = _micros(self.clock.now()) if now is None else now
        due = await self._blocking(self.queries.due, at)
        sent = 0
        for room_sid, deadline in due:
            command_id = f"expire:{room_sid}:{deadline}"
            if command_id in self._sent:
                continue
            result = await self.execute(ExpireDeadlines(command_id=command_id, room_sid=room_sid))
            self._sent[command_id] = None
            if len(self._sent) > 10_000:
                self._sent.pop(next(iter(self._sent)))
            sent += 1
            self.expired += 1
            if not result.ok:
                logger.warning("expiring deadlines of room %s failed: %s", room_sid, result.error_message)
        return sent
