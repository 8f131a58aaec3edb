"""The deliverer: callbacks from the outbox to their URLs, at least once, in order per room.

Each pass claims the due heads of rooms (a lease per row, so processes sharing the database
never both send one), up to `max_in_flight` requests at a time, and sends each as its own task:
a slow or dead endpoint holds up only its own room. A 2xx removes the row, and the room's next
callback becomes due. Anything else (another status, a connection error, the per-request
timeout) schedules the row again after a jittered exponential backoff capped at `max_delay`;
once `give_up_after` has passed since its first attempt, a failing callback is logged with its
room and removed, so later ones flow. Stopping gives the leases back: a new deliverer, here or
elsewhere, resends what was in flight (at least once) and the rest of the outbox.

Time comes from the injected clock (`now()` and `sleep_until()` of adapters.clock), so tests
drive the backoff schedule with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import aiohttp
from yarl import URL

from adapters.webhooks.outbox import Entry, Outbox
from adapters.webhooks.signature import SignedRequest, signed_request

logger = logging.getLogger(__name__)
T = TypeVar("T")
Outcome = Literal["delivered", "retrying", "given-up"]
RETRY_SECONDS = 1.0
"""Pause after a failed outbox query (the database unreachable, say); a real wait."""


class DeliveryClock(Protocol):
    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 1.0
    """Seconds before the second attempt (before jitter); doubles with each failure."""
    max_delay: float = 60.0
    give_up_after: float = 4 * 3600
    """Seconds after the first attempt at which a failing callback is given up."""

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th failed attempt: half fixed, half random."""
        ceiling: float = min(self.max_delay, self.first_delay * 2.0 ** min(failures - 1, 30))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Delivery:
    """What happened to one attempt; given to the `observe` hook (metrics, tests)."""

    room_sid: str
    sequence: int
    event: str
    outcome: Outcome
    attempts: int
    status: int | None = None
    error: str | None = None


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _time(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC)


class Deliverer:
    def __init__(
        self,
        outbox: Outbox,
        clock: DeliveryClock,
        *,
        auth_token: str,
        policy: RetryPolicy | None = None,
        max_in_flight: int = 32,
        request_timeout: float = 15.0,
        lease_seconds: float | None = None,
        poll_seconds: float = 0.5,
        observe: Callable[[Delivery], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.clock = clock
        self.auth_token = auth_token
        self.policy = policy or RetryPolicy()
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self.lease = timedelta(seconds=lease_seconds if lease_seconds is not None else 2 * request_timeout + 30)
        """How long a claimed row stays ours: longer than a request may take."""
        self.poll_seconds = poll_seconds
        self.observe = observe
        self.rng = rng or random.Random()
        self.owner = uuid.uuid4().hex
        self.wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks-delivery")

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        """Wait for an outbox query still running on the deliverer's thread."""
        self._thread.shutdown(wait=True)

    async def run(self) -> None:
        """Deliver until cancelled; then give back the leases of requests cut short."""
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        connector = aiohttp.TCPConnector(limit=self.max_in_flight)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
                asyncio.TaskGroup() as group,
            ):
                while True:
                    self.wake.clear()
                    passed = self.clock.now()
                    try:
                        claimed = await self._fill(group, session, passed)
                        when = await self._next_due()
                    except Exception:
                        logger.exception("webhook delivery pass failed; retrying in %s s", RETRY_SECONDS)
                        await asyncio.sleep(RETRY_SECONDS)
                        continue
                    if not claimed and when is not None and when <= passed:
                        when = None  # was due, yet not ours to claim (a race): wait for news, never spin
                    await self._sleep(when)
        finally:
            await asyncio.shield(self._release())

    async def _release(self) -> None:
        try:
            released = await self._blocking(self.outbox.release, self.owner)
        except Exception:  # the lease simply expires; another deliverer sends the row then
            logger.exception("releasing webhook leases of %s failed", self.owner)
            return
        if released:
            logger.info("gave back %d webhook lease(s) in flight at stop", released)

    async def _fill(self, group: asyncio.TaskGroup, session: aiohttp.ClientSession, now: datetime) -> int:
        """Claim room heads due at `now` up to the free request slots and start sending them."""
        free = self.max_in_flight - len(self._in_flight)
        if free <= 0:
            return 0
        entries = await self._blocking(
            self.outbox.claim, self.owner, _micros(now), _micros(now + self.lease), free, tuple(self._in_flight)
        )
        for entry in entries:
            self._in_flight[entry.room_sid] = group.create_task(self._deliver(entry, session))
        return len(entries)

    async def _next_due(self) -> datetime | None:
        if len(self._in_flight) >= self.max_in_flight:
            return None  # a finished request wakes us
        due = await self._blocking(self.outbox.next_due, tuple(self._in_flight))
        return None if due is None else _time(due)

    async def _sleep(self, when: datetime | None) -> None:
        """Until `when`, a wake (new callbacks, a finished request) or the poll interval."""
        if when is not None and when <= self.clock.now():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_seconds):  # not wait_for: it can swallow a cancel on 3.11
                await self.clock.sleep_until(when, self.wake)

    async def _deliver(self, entry: Entry, session: aiohttp.ClientSession) -> None:
        try:
            started = self.clock.now()
            request = signed_request(
                self.auth_token, url=entry.url, method=entry.method, params=entry.params, token=entry.token
            )
            status, error = await self._send(session, request)
            if status is not None and 200 <= status < 300:
                await self._blocking(self.outbox.remove, entry)
                self._report(entry, "delivered", status)
            else:
                await self._failed(entry, started, status, error or f"HTTP {status}")
        except Exception:  # the outbox failed: the lease expires and the row is sent again
            logger.exception(
                "webhook %s #%d of room %s: recording the attempt failed", entry.event, entry.sequence, entry.room_sid
            )
        finally:
            self._in_flight.pop(entry.room_sid, None)
            self.wake.set()

    async def _send(self, session: aiohttp.ClientSession, request: SignedRequest) -> tuple[int | None, str | None]:
        try:
            async with session.request(
                request.method,
                URL(request.url, encoded=True),  # as signed, byte for byte
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
            ) as response:
                return response.status, None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _failed(self, entry: Entry, started: datetime, status: int | None, error: str) -> None:
        attempts = entry.attempts + 1
        first = entry.first_attempt_at if entry.first_attempt_at is not None else _micros(started)
        now = self.clock.now()
        if (_micros(now) - first) / 1_000_000 >= self.policy.give_up_after:
            await self._blocking(self.outbox.remove, entry)
            logger.warning(
                "gave up webhook %s #%d of room %s to %s after %d attempts (last: %s)",
                entry.event, entry.sequence, entry.room_sid, entry.url, attempts, error,
            )  # fmt: skip
            self._report(entry, "given-up", status, error, attempts)
            return
        delay = self.policy.delay(attempts, self.rng)
        await self._blocking(
            lambda: self.outbox.retry_later(
                entry, self.owner, first_attempt_at=first, next_attempt_at=_micros(now) + int(delay * 1e6), error=error
            )
        )
        log = logger.warning if attempts == 1 else logger.info
        log(
            "webhook %s #%d of room %s to %s failed (%s, attempt %d); retrying in %.1f s",
            entry.event, entry.sequence, entry.room_sid, entry.url, error, attempts, delay,
        )  # fmt: skip
        self._report(entry, "retrying", status, error, attempts)

    def _report(
        self, entry: Entry, outcome: Outcome, status: int | None, error: str | None = None, attempts: int = 0
    ) -> None:
        if self.observe is None:
            return
        delivery = Delivery(
            room_sid=entry.room_sid,
            sequence=entry.sequence,
            event=entry.event,
            outcome=outcome,
            attempts=attempts or entry.attempts + 1,
            status=status,
            error=error,
        )
        try:
            self.observe(delivery)
        except Exception:
            logger.exception("the webhook observe hook failed")
