"""A request/reply service on a subject pattern in a queue group, one task per request.

NATS runs a subscription's callback for one message at a time; answering each request in
its own task lets requests that arrive together be decided together (group commit). `stop()`
unsubscribes first, then waits for the requests in flight, so none is dropped.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


class Responder:
    subject: str
    queue: str

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._subscription = await self.nc.subscribe(self.subject, queue=self.queue, cb=self._receive)

    async def stop(self) -> None:
        """Stop taking requests, then finish those in flight."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _receive(self, msg: Msg) -> None:
        task = asyncio.create_task(self.handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, msg: Msg) -> None:
        reply = await self.answer(msg.subject.rsplit(".", 1)[-1], msg.data)
        if msg.reply:
            await msg.respond(reply)

    async def answer(self, name: str, data: bytes) -> bytes:
        """The reply envelope to request `name` (the subject's last token) with body `data`."""
        raise NotImplementedError
