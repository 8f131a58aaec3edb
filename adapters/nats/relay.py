"""The event relay: the log, in order, into the JetStream stream `ROOMS_EVENTS`.

Every event goes to `rooms.evt.<room_sid>.<event>` (index and account events under the room
they concern) with `Nats-Msg-Id` = `<aggregate id>:<version>` (for room events that is
`<room_sid>:<sequence>`). The relay follows the log from a position kept in the read-model
database and moves it only after JetStream acknowledged everything before it; after a relay
restart or a NATS outage it publishes again from there, and the stream's duplicate window
drops what was already stored. So the stream holds every event once, in per-room order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from adapters.nats.lease import Lease
from adapters.store.read_model import ReadModel
from domain.codec import decode, topic_of
from domain.engine import RoomsApplication
from domain.events import EVENT_TYPES, event_name

logger = logging.getLogger(__name__)
STREAM = "ROOMS_EVENTS"
TRACKING = "relay"


@dataclass(frozen=True)
class StreamSettings:
    replicas: int = 1
    retention: str = "limits"  # limits | interest | workqueue
    max_age_seconds: float = 7 * 24 * 3600
    duplicate_window_seconds: float = 600

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=STREAM,
            subjects=["rooms.evt.>"],
            retention=RetentionPolicy(self.retention),
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            max_age=self.max_age_seconds,
            duplicate_window=self.duplicate_window_seconds,
        )


def subject_of(event: Any) -> str:
    room = event.originator_id if event.originator_id.startswith("RM") else event.room_sid
    return f"rooms.evt.{room}.{event_name(type(event))}"


_NAMES: dict[str, str] = {topic_of(cls): event_name(cls) for cls in EVENT_TYPES}


def message_of(notification: Notification) -> tuple[str, bytes, str]:
    """(subject, body, Nats-Msg-Id) of a stored event.

    The body is `{"position": <notification id>, <the event's fields>}`: the stored JSON with the
    position spliced in front, byte for byte what encoding the decoded event would give (the
    stored state is the event's msgspec JSON), without decoding it. Only index and account
    events, filed under the room they concern, are decoded for its SID."""
    originator = str(notification.originator_id)
    if originator.startswith("RM"):
        subject = f"rooms.evt.{originator}.{_NAMES[notification.topic]}"
    else:
        subject = subject_of(decode(notification.topic, notification.state))
    body = b'{"position":%d,%s' % (notification.id, notification.state[1:])
    return subject, body, f"{originator}:{notification.originator_version}"


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> None:
    """Create the stream, or bring its configuration to `settings`."""
    config = settings.config()
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
        logger.info("created stream %s", STREAM)
    else:
        await js.update_stream(config)


def lag(app: RoomsApplication, read_model: ReadModel) -> int:
    """Events committed but not yet acknowledged by JetStream (from the stored position)."""
    return max(0, (app.recorder.max_notification_id() or 0) - read_model.position(TRACKING))


class EventRelay:
    def __init__(
        self,
        app: RoomsApplication,
        js: JetStreamContext,
        read_model: ReadModel,
        settings: StreamSettings,
        *,
        batch_size: int = 1000,
        ack_timeout: float = 5.0,
        observe_ack: Callable[[float], None] | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.app = app
        self.js = js
        self.read_model = read_model
        self.settings = settings
        self.batch_size = batch_size
        self.ack_timeout = ack_timeout
        self.observe_ack = observe_ack
        self.lease = lease
        """With several relays on one store, only the lease's holder publishes (None: always)."""
        self.wake = asyncio.Event()
        self.published = 0
        self._position: int | None = None
        """The stored position as this relay last read or moved it."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay")
        """Its own thread for store reads, so replies waiting on the default pool never hold it up."""

    async def ensure_stream(self) -> None:
        await ensure_stream(self.js, self.settings)

    def close(self) -> None:
        """Wait for the relay's thread to finish its store read: only then may the store close."""
        self._thread.shutdown(wait=True)

    def position(self) -> int:
        return self.read_model.position(TRACKING)

    def lag(self) -> int:
        return lag(self.app, self.read_model)

    async def run(self) -> None:
        """Relay until cancelled; waits on `wake` (set after commits) or polls every second. With
        a lease, only while holding it (asked again at every wake-up)."""
        failures = 0
        leading = False
        while True:
            try:
                if await self.leads():
                    if not leading:  # (again) the publishing relay: another may have moved the position
                        self._position = None
                    leading = True
                    while await self.relay_once():
                        pass
                else:
                    leading = False
                failures = 0
            except (TimeoutError, OSError, Exception) as exc:  # NATS down or slow: try again
                failures += 1
                delay = min(5.0, 0.1 * 2**failures)
                logger.warning("relay paused (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.wake.wait()

    async def leads(self) -> bool:
        """Whether this relay is the one that publishes (it holds the lease, or there is none)."""
        return self.lease is None or await self.lease.held()

    async def relay_once(self) -> bool:
        """Publish the next batch after the stored position; False when there was nothing."""
        loop = asyncio.get_running_loop()
        start, rows = await loop.run_in_executor(self._thread, self._next_batch)
        if not rows:
            return False
        began = time.perf_counter()
        futures = []
        try:
            for notification in rows:
                subject, body, msg_id = message_of(notification)
                futures.append(await self.js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id}))
            async with asyncio.timeout(self.ack_timeout):
                await asyncio.gather(*futures)
        finally:
            for future in futures:
                future.cancel()
        end = rows[-1].id
        moved = await loop.run_in_executor(self._thread, self.read_model.advance, TRACKING, start, end)
        self._position = end if moved else None  # not moved: another relay did; read it again
        self.published += len(rows)
        if self.observe_ack is not None:
            self.observe_ack(time.perf_counter() - began)
        return True

    def _next_batch(self) -> tuple[int, Sequence[Notification]]:
        """On the relay's thread: the position (read once, then kept) and the events after it."""
        if self._position is None:
            self._position = self.position()
        start = self._position
        return start, self.app.recorder.select_notifications(start, self.batch_size, inclusive_of_start=False)
