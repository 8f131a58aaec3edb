"""The event relay: the log, in order, into the JetStream stream `ROOMS_EVENTS`.

Every event goes to `rooms.evt.<room_sid>.<event>` (index and account events under the room
they concern) with `Nats-Msg-Id` = `<aggregate id>:<version>` (for room events that is
`<room_sid>:<sequence>`). The relay follows the log from a position kept in the read-model
database and moves it only after JetStream acknowledged everything before it; after a relay
restart or a NATS outage it publishes again from there, and the stream's duplicate window
drops what was already stored. So the stream holds every event once, in per-room order.

One acknowledgement per batch. Waiting for JetStream's ack of every message cost the relay more
than everything else it does (a reply subject, a future and a random token per message, then an
ack message to parse). The relay publishes a batch's messages without reply subjects and only the
last one with one: JetStream stores one connection's messages in order, so the last one's ack
says the batch is stored when the stream sequence it gives is exactly the batch's size past the
previous batch's. Whenever that cannot be shown (the first batch, a duplicate, another publisher's
message in between, a message JetStream dropped), the relay publishes the batch again with an ack
per message; the duplicate window drops what was already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification
from nats.aio.client import Client
from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from adapters.nats.lease import Lease
from adapters.pacing import Pacer
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
        nc: Client,
        read_model: ReadModel,
        settings: StreamSettings,
        *,
        batch_size: int = 1000,
        ack_timeout: float = 5.0,
        observe_ack: Callable[[float], None] | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.app = app
        self.nc = nc
        self.js = nc.jetstream()
        self.read_model = read_model
        self.settings = settings
        self.batch_size = batch_size
        self.ack_timeout = ack_timeout
        self.observe_ack = observe_ack
        self.lease = lease
        """With several relays on one store, only the lease's holder publishes (None: always)."""
        self.wake = asyncio.Event()
        self._pacer = Pacer()
        self.published = 0
        self._position: int | None = None
        """The stored position as this relay last read or moved it."""
        self._stream_sequence: int | None = None
        """The stream's sequence after this relay's last batch, when the acks showed it (else None)."""
        self.acked_once = 0
        """Batches stored with one ack."""
        self.acked_each = 0
        """Batches published (again) with an ack per message."""
        self.leading = False
        """Whether this relay published at its last wake-up (it held the lease, or there is none)."""

    async def ensure_stream(self) -> None:
        await ensure_stream(self.js, self.settings)

    def position(self) -> int:
        return self.read_model.position(TRACKING)

    def lag(self) -> int:
        return lag(self.app, self.read_model)

    async def run(self) -> None:
        """Relay until cancelled; waits on `wake` (set after commits) or polls every second, and
        publishes at most one batch per pacing interval (adapters/pacing.py). With a lease, only
        while holding it: asked again before every batch, which also renews it while commits keep
        the relay busy (renewed only at wake-ups, it expired under a steady load and publishing
        stopped for a second)."""
        failures = 0
        while True:
            try:
                while True:  # at most one batch per pacing interval: events coming meanwhile join the next
                    await self._pacer.wait()
                    if not await self.leads():
                        self.leading = False
                        break
                    if not self.leading:  # (again) the publishing relay: another may have moved the position
                        self._position = None
                        self.leading = True
                    if not await self.relay_once():
                        break
                failures = 0
            except (TimeoutError, OSError, Exception) as exc:  # NATS down or slow: try again
                failures += 1
                delay = min(5.0, 0.1 * 2**failures)
                logger.warning("relay paused (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
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
        """Publish the next batch after the stored position; False when there was nothing.

        The store is read and the position moved on the event loop: the relay's process does
        nothing else meanwhile, and a thread hand-off each way cost more than the reads."""
        start, rows = self._next_batch()
        if not rows:
            return False
        began = time.perf_counter()
        messages = [message_of(notification) for notification in rows]
        if not await self._publish_acked_once(messages):
            await self._publish_acked_each(messages)
        end = rows[-1].id
        moved = self.read_model.advance(TRACKING, start, end)
        self._position = end if moved else None  # not moved: another relay did; read it again
        self.published += len(rows)
        if self.observe_ack is not None:
            self.observe_ack(time.perf_counter() - began)
        return True

    async def _publish_acked_once(self, messages: list[tuple[str, bytes, str]]) -> bool:
        """Publish with one ack for the batch; True when it shows every message stored (module docstring)."""
        previous = self._stream_sequence
        if previous is None:
            return False
        self._stream_sequence = None
        *first, (subject, body, msg_id) = messages
        for message_subject, message_body, message_id in first:
            await self.nc.publish(message_subject, message_body, headers={"Nats-Msg-Id": message_id})
        ack = await self._acked([await self.js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id})])
        if ack.duplicate or ack.seq != previous + len(messages):
            logger.info(
                "relay: stream sequence %d, not %d: publishing the batch again, acked",
                ack.seq,
                previous + len(messages),
            )
            return False
        self._stream_sequence = ack.seq
        self.acked_once += 1
        return True

    async def _publish_acked_each(self, messages: list[tuple[str, bytes, str]]) -> None:
        futures = []
        for subject, body, msg_id in messages:
            futures.append(await self.js.publish_async(subject, body, headers={"Nats-Msg-Id": msg_id}))
        ack = await self._acked(futures)
        self._stream_sequence = None if ack.duplicate else ack.seq
        self.acked_each += 1

    async def _acked(self, futures: list[asyncio.Future[PubAck]]) -> PubAck:
        """Wait for every ack (`ack_timeout` at most); the last one."""
        try:
            async with asyncio.timeout(self.ack_timeout):
                acks = await asyncio.gather(*futures)
        finally:
            for future in futures:
                future.cancel()
        return acks[-1]

    def _next_batch(self) -> tuple[int, Sequence[Notification]]:
        """The position (read once, then kept) and the events after it."""
        if self._position is None:
            self._position = self.position()
        start = self._position
        return start, self.app.recorder.select_notifications(start, self.batch_size, inclusive_of_start=False)
