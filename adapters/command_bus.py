"""Group commit, pipelined: batches are decided while the previous one is being written.

Callers `await bus.execute(command)`. The worker takes everything queued (up to
`max_batch`) and has the engine decide it on the engine thread, while the previous batch's
transaction is committed on the writer thread (SQLite and PostgreSQL release the GIL while
they write and sync); then, still on the engine thread, it waits for that write and settles
it, so a cycle costs one hop through the event loop. Batches are written strictly in order;
a caller's future is resolved only after its batch is committed. If a write loses a race (another engine wrote first),
that batch and the one decided on top of it are re-run command by command on fresh state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from eventsourcing.persistence import IntegrityError

from domain.commands import Command
from domain.engine import Engine, Prepared
from domain.results import CommandResult

logger = logging.getLogger(__name__)

Waiter = tuple[Command, "asyncio.Future[CommandResult]"]
Writing = tuple[Prepared, list[Waiter], "Future[None]"]
"""A decided batch, its callers, and its write in progress on the writer thread."""
Outcome = tuple[list[Waiter], "list[CommandResult] | BaseException"]


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
        writing: Writing | None = None
        try:
            while True:
                if not self._queue and writing is None:
                    if self._stopping:
                        return
                    await self._ready.wait()
                    self._ready.clear()
                    continue
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                # One hop to the engine thread a cycle: it decides this batch, then waits for the
                # previous one's write and settles it. Each hop waits for a busy event loop.
                prepared, done = await loop.run_in_executor(self._engine_thread, self._step, batch, writing)
                writing = None
                for waiters, outcome in done:
                    if isinstance(outcome, BaseException):
                        self._fail(waiters, outcome)
                    else:
                        self._resolve(waiters, outcome)
                if prepared is not None:
                    writing = (prepared, batch, self._writer_thread.submit(self.engine.write, prepared))
        finally:
            self._engine_thread.shutdown(wait=True)
            self._writer_thread.shutdown(wait=True)

    def _step(self, batch: list[Waiter], writing: Writing | None) -> tuple[Prepared | None, list[Outcome]]:
        """On the engine thread: decide `batch` and finish the batch being written. Returns the
        prepared batch to write next (None if there is none) and the batches now answered."""
        done: list[Outcome] = []
        prepared = None
        if batch:
            try:
                prepared = self.engine.prepare([c for c, _ in batch])
            except Exception as exc:  # a bug or a store failure: fail this batch, keep serving
                logger.exception("deciding a batch of %d commands failed", len(batch))
                done.append((batch, exc))
        failed = writing is not None and not self._finish(*writing, done)
        if prepared is None:
            return None, done
        if failed or prepared.retry:
            if not prepared.retry:
                self.engine.settle(prepared, committed=False)
            done.append((batch, self._run_alone(batch)))
            return None, done
        return prepared, done

    def _finish(self, prepared: Prepared, batch: list[Waiter], write: Future[None], done: list[Outcome]) -> bool:
        """Wait for a batch's write and settle it; its outcome goes to `done`. False if it was not committed."""
        try:
            write.result()
        except IntegrityError:
            self.engine.settle(prepared, committed=False)
            done.append((batch, self._run_alone(batch)))
            return False
        except Exception as exc:  # the store failed: every caller of the batch learns of it
            logger.exception("writing a batch of %d commands failed", len(batch))
            self.engine.settle(prepared, committed=False)
            done.append((batch, exc))
            return False
        self.engine.settle(prepared, committed=True)
        done.append((batch, prepared.answers()))
        return True

    def _run_alone(self, batch: list[Waiter]) -> list[CommandResult] | Exception:
        try:
            return self.engine.run_alone([c for c, _ in batch])
        except Exception as exc:
            logger.exception("re-running %d commands failed", len(batch))
            return exc

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
