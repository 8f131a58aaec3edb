"""Twilio status callbacks: a tracked follower of the log fills an outbox; a deliverer empties it.

    log ──follower (position `webhooks`, CAS)──▶ webhook_outbox ──deliverer (leases)──▶ StatusCallback URLs

`build_webhooks(app, db, auth_token=..., clock=...)` gives the component. The composition root
runs `await webhooks.run()` as a task (until cancelled), calls `webhooks.wake()` after each
committed batch, and after cancelling the task calls `webhooks.close()` (from a thread) before
closing `db`. docs/callbacks.md describes what is sent and the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from adapters.store.sql import Database
from adapters.webhooks.delivery import Deliverer, Delivery, DeliveryClock, RetryPolicy
from adapters.webhooks.follower import CallbackFollower
from adapters.webhooks.outbox import Outbox
from domain.engine import RoomsApplication

__all__ = ["Delivery", "WebhookSettings", "Webhooks", "build_webhooks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookSettings:
    max_in_flight: int = 32
    """Requests under way at once, over all rooms (one per room at most)."""
    request_timeout: float = 15.0
    """Seconds one request may take before it counts as failed."""
    first_retry_delay: float = 1.0
    max_retry_delay: float = 60.0
    give_up_after: float = 4 * 3600
    """Seconds after its first attempt at which a failing callback is dropped (and logged)."""
    poll_seconds: float = 0.5
    """How often to look for events and callbacks written by other processes."""
    batch_size: int = 500
    lease_seconds: float | None = None
    """How long a claimed callback is reserved for this process; default 2 × timeout + 30 s."""
    from_start: bool = False
    """Where a follower seen for the first time starts: the log's end (default: no callbacks
    for rooms that lived before webhooks were switched on) or its beginning."""


class Webhooks:
    """The follower and the deliverer, run together."""

    def __init__(self, follower: CallbackFollower, deliverer: Deliverer, outbox: Outbox, poll_seconds: float) -> None:
        self.follower = follower
        self.deliverer = deliverer
        self.outbox = outbox
        self.poll_seconds = poll_seconds
        self._committed = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks-follower")

    def wake(self) -> None:
        """New events were committed: follow them now (call on the event loop)."""
        self._committed.set()

    async def run(self) -> None:
        """Follow the log and deliver until cancelled; cancelling loses nothing."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow())
            group.create_task(self.deliverer.run())

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            self._committed.clear()
            before = self.follower.appended
            try:
                await loop.run_in_executor(self._thread, self.follower.catch_up)
                failures = 0
            except Exception as exc:  # the store is unreachable, say: the next pass starts from the position
                failures += 1
                if failures == 1:
                    logger.exception("following the log into the webhook outbox failed; retrying")
                else:
                    logger.warning("following the log into the webhook outbox failed again (%d): %s", failures, exc)
            if self.follower.appended != before:
                self.deliverer.wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):  # not wait_for: it can swallow a cancel on 3.11
                    await self._committed.wait()

    def lag(self) -> int:
        """Events committed but not yet followed into the outbox (a store read: call off the loop)."""
        return max(0, (self.follower.app.recorder.max_notification_id() or 0) - self.outbox.position())

    def pending(self) -> int:
        """Callbacks waiting in the outbox, in flight included (a store read: call off the loop)."""
        return self.outbox.pending()

    def close(self) -> None:
        """After `run` ended: wait for the store work still on the component's threads."""
        self.follower.stop()
        self._thread.shutdown(wait=True)
        self.deliverer.close()


def build_webhooks(
    app: RoomsApplication,
    db: Database,
    *,
    auth_token: str,
    clock: DeliveryClock,
    settings: WebhookSettings | None = None,
    observe: Callable[[Delivery], None] | None = None,
    rng: random.Random | None = None,
) -> Webhooks:
    """The status-callback component on the log of `app`, with its tables in `db`.

    `clock` has `now()` and `sleep_until(when, wake)` (adapters.clock.SystemClock or FakeClock);
    `observe` is called with every attempt's outcome (delivered / retrying / given-up).
    """
    settings = settings or WebhookSettings()
    outbox = Outbox(db)
    outbox.create_tables(0 if settings.from_start else app.recorder.max_notification_id() or 0)
    follower = CallbackFollower(app, outbox, clock.now, batch_size=settings.batch_size)
    deliverer = Deliverer(
        outbox,
        clock,
        auth_token=auth_token,
        policy=RetryPolicy(settings.first_retry_delay, settings.max_retry_delay, settings.give_up_after),
        max_in_flight=settings.max_in_flight,
        request_timeout=settings.request_timeout,
        lease_seconds=settings.lease_seconds,
        poll_seconds=settings.poll_seconds,
        observe=observe,
        rng=rng,
    )
    return Webhooks(follower, deliverer, outbox, settings.poll_seconds)
