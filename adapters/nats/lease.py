"""Which relay publishes: a lease on a key of the JetStream KV bucket RELAY_LEASES.

Every engine process runs a relay, and with several engines on one store they would all
publish every event (JetStream keeps one copy, but each relay pays for all of them and core
subscribers see every event once per relay). So a relay publishes only while it holds the lease
on the key `ROOMS_EVENTS`: it creates the key (which fails while another holds it), renews it
every third of the time-to-live by updating it against its last revision, and deletes it when it
stops. A holder that dies stops renewing; the bucket's entries expire after the time-to-live, and
the next relay to ask takes over from the stored position (the stream's duplicate window drops
anything published twice around the change).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from media.worker.registry import key_value

logger = logging.getLogger(__name__)
BUCKET = "RELAY_LEASES"
KEY = "ROOMS_EVENTS"
TTL_S = 3.0


class Lease:
    def __init__(
        self, js: JetStreamContext, holder: str, *, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.holder = holder
        self._js = js
        self._ttl_s = ttl_s
        self._clock = clock
        self._kv: KeyValue | None = None
        self._revision: int | None = None
        """The key's revision as this holder last wrote it; None while not holding."""
        self._next_check = 0.0

    async def held(self) -> bool:
        """Whether this relay may publish now: asks NATS at most every third of the time-to-live."""
        now = self._clock()
        if now < self._next_check:
            return self._revision is not None
        self._next_check = now + self._ttl_s / 3
        kv = self._kv = self._kv or await key_value(self._js, BUCKET, ttl_s=self._ttl_s)
        was_holding = self._revision is not None
        try:
            if self._revision is None:
                self._revision = await self._create_or_reclaim(kv)
            else:
                self._revision = await kv.update(KEY, self.holder.encode(), last=self._revision)
        except KeyWrongLastSequenceError:  # another relay holds it (or took it over from us)
            self._revision = None
        if self._revision is not None and not was_holding:
            logger.info("relay %s holds the lease: it publishes", self.holder)
        elif self._revision is None and was_holding:
            logger.warning("relay %s lost the lease to another relay", self.holder)
        return self._revision is not None

    async def _create_or_reclaim(self, kv: KeyValue) -> int:
        """Take the free lease; or reclaim it from a holder of this holder's name, which is this
        relay's predecessor: `openrooms serve` starts its next relay process under the same name
        once the previous one has exited (adapters/relay_process.py `SupervisedRelay`), and it
        need not wait for the dead one's entry to expire. Raises KeyWrongLastSequenceError when
        another relay holds it."""
        try:
            return int(await kv.create(KEY, self.holder.encode()))
        except KeyWrongLastSequenceError:
            try:
                entry = await kv.get(KEY)
            except NotFoundError:  # expired meanwhile: the next check creates it
                raise KeyWrongLastSequenceError from None
            if entry.value != self.holder.encode() or entry.revision is None:
                raise
            return int(await kv.update(KEY, self.holder.encode(), last=entry.revision))

    async def release(self) -> None:
        """Give the lease up (another relay takes over at its next check)."""
        if self._revision is None or self._kv is None:
            return
        with contextlib.suppress(KeyWrongLastSequenceError, NotFoundError):  # already someone else's
            await self._kv.delete(KEY, last=self._revision)
        self._revision = None
