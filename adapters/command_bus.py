"""Group commit: commands that arrive together run as one engine batch in one transaction.

Callers `await bus.execute(command)`. A single worker takes everything queued (up to
`max_batch`), runs it on the engine in a worker thread (so the event loop keeps accepting
commands while a batch commits) and resolves each caller's future with its own result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from domain.commands import Command
from domain.engine import Engine
from domain.results import CommandResult

logger = logging.getLogger(__name__)


class CommandBus:
    def __init__(self, engine: Engine, *, max_batch: int = 1024) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: list[tuple[Command, asyncio.Future[CommandResult]]] = []
        self._ready = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._stopping = False
        self.batches = 0
        self.after_batch: list[Callable[[], None]] = []

    async def execute(self, command: Command) -> CommandResult:
        if self._stopping:
            raise RuntimeError("the engine is stopping and takes no new commands")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        self._ready.set()
        return await future

    async def run(self) -> None:
        """Process batches until `stop()`; finishes what was queued before stopping."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._queue:
                    batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                    await self._run_batch(loop, batch)
                if self._stopping:
                    return
        finally:
            self._executor.shutdown(wait=True)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Command, asyncio.Future[CommandResult]]]) -> None:
        commands = [command for command, _ in batch]
        try:
            results = await loop.run_in_executor(self._executor, self.engine.execute_batch, commands)
        except Exception as exc:  # a store failure: every caller of the batch learns of it
            logger.exception("batch of %d commands failed", len(commands))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        for hook in self.after_batch:
            hook()

    def stop(self) -> None:
        """Take no new commands; `run()` returns once those in flight are done."""
        self._stopping = True
        self._ready.set()
