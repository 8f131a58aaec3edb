"""Group commit, pipelined: batches are decided while the previous one is being written.

Callers `await bus.execute(command)`. The worker takes everything queued (up to
`max_batch`) and has the engine decide it on the engine thread, while the previous batch's
transaction is committed on the writer thread (SQLite and PostgreSQL release the GIL while
they write and sync). Batches are written strictly in order; a caller's future is resolved
only after its batch is committed. If a write loses a race (another engine wrote first),
that batch and the one decided on top of it are re-run command by command on fresh state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eventsourcing.persistence import IntegrityError

from domain.commands import Command
from domain.engine import Engine, Prepared
from domain.results import CommandResult

logger = logging.getLogger(__name__)

Waiter = tuple[Command, "asyncio.Future[CommandResult]"]


class CommandBus:
    def __init__(self, engine: Engine, *, max_batch: int = 1024) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: list[Waiter] = []
        self._ready = asyncio.Event()
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-writer")
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
        writing: tuple[Prepared, list[Waiter], asyncio.Future[None]] | None = None
        try:
            while True:
                if not self._queue and writing is None:
                    if self._stopping:
                        return
                    await self._ready.wait()
                    self._ready.clear()
                    continue
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                prepared = None
                if batch:
                    try:
                        prepared = await self._on_engine(loop, self.engine.prepare, [c for c, _ in batch])
                    except Exception as exc:  # a bug or a store failure: fail this batch, keep serving
                        logger.exception("deciding a batch of %d commands failed", len(batch))
                        self._fail(batch, exc)
                        batch = []
                failed = False
                if writing is not None:
                    failed = not await self._finish(loop, *writing)
                    writing = None
                if prepared is None:
                    continue
                if failed or prepared.retry:
                    if not prepared.retry:
                        await self._on_engine(loop, lambda p=prepared: self.engine.settle(p, committed=False))
                    await self._run_alone(loop, batch)
                    continue
                write = loop.run_in_executor(self._writer_thread, self.engine.write, prepared)
                writing = (prepared, batch, write)
        finally:
            self._engine_thread.shutdown(wait=True)
            self._writer_thread.shutdown(wait=True)

    async def _on_engine(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: object) -> Any:
        return await loop.run_in_executor(self._engine_thread, fn, *args)

    async def _finish(
        self, loop: asyncio.AbstractEventLoop, prepared: Prepared, batch: list[Waiter], write: asyncio.Future[None]
    ) -> bool:
        """Wait for a batch's write; resolve its callers. False if it must be re-run."""
        try:
            await write
        except IntegrityError:
            await self._on_engine(loop, lambda: self.engine.settle(prepared, committed=False))
            await self._run_alone(loop, batch)
            return False
        except Exception as exc:  # the store failed: every caller of the batch learns of it
            logger.exception("writing a batch of %d commands failed", len(batch))
            await self._on_engine(loop, lambda: self.engine.settle(prepared, committed=False))
            self._fail(batch, exc)
            return False
        await self._on_engine(loop, lambda: self.engine.settle(prepared, committed=True))
        self._resolve(batch, prepared.answers())
        return True

    async def _run_alone(self, loop: asyncio.AbstractEventLoop, batch: list[Waiter]) -> None:
        try:
            results = await loop.run_in_executor(self._engine_thread, self.engine.run_alone, [c for c, _ in batch])
        except Exception as exc:
            logger.exception("re-running %d commands failed", len(batch))
            self._fail(batch, exc)
            return
        self._resolve(batch, results)

    @staticmethod
    def _fail(batch: list[Waiter], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    def _resolve(self, batch: list[Waiter], results: list[CommandResult]) -> None:
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
