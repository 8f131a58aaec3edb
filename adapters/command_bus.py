"""Group commit, free-running: commands are decided as they arrive and written as soon as the
store is free, so the store's commit latency bounds a command's latency, not the throughput.

Callers `await bus.execute(command)` on the event loop. Two threads do the work:

- the engine thread takes every command queued since it last looked (up to `max_batch`), has
  the engine decide them on its in-memory state (which then includes them) and queues the
  prepared batch for the writer; it also settles written batches, in order, and hands their
  results to the event loop, one hop per round;
- the writer thread commits every batch queued since its last transaction in one transaction
  (SQLite and PostgreSQL release the GIL while they write and sync). While one transaction
  syncs, the next batches are decided; they are then written together.

A caller's future is resolved only after its batch is committed. If a write loses a race
(another engine wrote first), its batches and every batch decided after them are re-run command
by command on fresh state; if the store fails otherwise, that write's callers get the error and
the batches decided after it are re-run. The writer takes nothing new until that is done.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from eventsourcing.persistence import IntegrityError

from domain.commands import Command
from domain.engine import Engine, Prepared
from domain.results import CommandResult

logger = logging.getLogger(__name__)

Waiter = tuple[Command, "asyncio.Future[CommandResult]"]
Batch = tuple[Prepared, list[Waiter]]
"""A decided batch and its callers."""
Answer = tuple[list[Waiter], "list[CommandResult] | BaseException"]
Written = tuple[list[Batch], "BaseException | None"]
"""One transaction's batches, and its error if it failed."""


class CommandBus:
    def __init__(self, engine: Engine, *, max_batch: int = 1024) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.batches = 0
        self.after_batch: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._engine_wake = threading.Condition(self._lock)
        self._writer_wake = threading.Condition(self._lock)
        # Under the lock:
        self._incoming: list[Waiter] = []
        self._to_write: list[Batch] = []
        self._writing = False
        self._written: list[Written] = []
        self._halted = False
        """The writer takes nothing while the engine thread re-runs after a failed write."""
        self._stopping = False
        self._idle_waiting = False

    async def execute(self, command: Command) -> CommandResult:
        if self._stopping:
            raise RuntimeError("the engine is stopping and takes no new commands")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._incoming.append((command, future))
            if self._idle_waiting:  # wake it once, not once per command
                self._idle_waiting = False
                self._engine_wake.notify()
        return await future

    async def run(self) -> None:
        """Process commands until `stop()`; finishes what was queued before stopping."""
        self._loop = loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        engine = threading.Thread(target=self._engine_thread, args=(finished,), name="engine", daemon=True)
        writer = threading.Thread(target=self._writer_thread, name="engine-writer", daemon=True)
        writer.start()
        engine.start()
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            self.stop()
            await asyncio.shield(finished)
            raise
        finally:
            await asyncio.to_thread(engine.join)
            await asyncio.to_thread(writer.join)

    def stop(self) -> None:
        """Take no new commands; `run()` returns once those in flight are done."""
        with self._lock:
            self._stopping = True
            self._engine_wake.notify()

    # --- engine thread ---------------------------------------------------------------------------

    def _engine_thread(self, finished: asyncio.Future[None]) -> None:
        crash: BaseException | None = None
        try:
            while self._engine_round():
                pass
        except BaseException as exc:  # a bug in the bus itself: nothing more can be decided
            logger.exception("the command bus stopped")
            crash = exc
        with self._lock:
            self._stopping = True
            self._writer_wake.notify()
            stranded, self._incoming = self._incoming, []
        self._hand_over(lambda: self._finish(finished, stranded, crash))

    @staticmethod
    def _finish(finished: asyncio.Future[None], stranded: list[Waiter], crash: BaseException | None) -> None:
        for _, future in stranded:
            if not future.done():
                future.set_exception(crash or RuntimeError("the engine stopped"))
        if finished.done():
            return
        if crash is None:
            finished.set_result(None)
        else:
            finished.set_exception(crash)

    def _engine_round(self) -> bool:
        """Settle what was written, decide what arrived; False when stopped and drained."""
        with self._lock:
            while not self._incoming and not self._written:
                if self._stopping and not self._to_write and not self._writing:
                    return False
                self._idle_waiting = True
                self._engine_wake.wait()
            self._idle_waiting = False
            incoming = self._incoming[: self.max_batch]
            del self._incoming[: self.max_batch]
            written, self._written = self._written, []
        answers: list[Answer] = []
        for batches, error in written:
            self._settle(batches, error, answers)
        if incoming:
            self._decide(incoming, answers)
        if answers:
            self._hand_over(lambda: self._answer(answers))
        return True

    def _decide(self, incoming: list[Waiter], answers: list[Answer]) -> None:
        try:
            prepared = self.engine.prepare([c for c, _ in incoming], look_up=False)
        except Exception as exc:  # a bug or a store failure: fail this batch, keep serving
            logger.exception("deciding a batch of %d commands failed", len(incoming))
            answers.append((incoming, exc))
            return
        if prepared.retry:  # it read stale state: re-run alone once nothing is being written
            self._drain(answers)
            answers.append((incoming, self._run_alone(incoming)))
            return
        if not prepared.results:  # every command was a repeat: nothing to write
            answers.append((incoming, prepared.answers()))
            return
        with self._lock:
            self._to_write.append((prepared, incoming))
            self._writer_wake.notify()

    def _drain(self, answers: list[Answer]) -> None:
        """Wait until every queued batch is written, and settle them."""
        while True:
            with self._lock:
                while self._writing or (self._to_write and not self._halted):
                    self._engine_wake.wait()
                written, self._written = self._written, []
            if not written:
                return
            for batches, error in written:
                self._settle(batches, error, answers)

    def _settle(self, batches: list[Batch], error: BaseException | None, answers: list[Answer]) -> None:
        if error is None:
            for prepared, waiters in batches:
                self.engine.settle(prepared, committed=True)
                answers.append((waiters, prepared.answers()))
            return
        # The writer halted after this failure: whatever it still holds was decided on top of
        # the failed batches and is re-run too, on fresh state (settling uncommitted forgets it).
        with self._lock:
            later, self._to_write = self._to_write, []
        for prepared, _ in (*batches, *later):
            self.engine.settle(prepared, committed=False)
        rerun = list(later)
        if isinstance(error, IntegrityError):
            rerun[:0] = batches
        else:
            logger.error("writing %d batches failed: %r", len(batches), error)
            answers.extend((waiters, error) for _, waiters in batches)
        for _, waiters in rerun:
            answers.append((waiters, self._run_alone(waiters)))
        with self._lock:
            self._halted = False
            self._writer_wake.notify()

    def _run_alone(self, batch: list[Waiter]) -> list[CommandResult] | Exception:
        try:
            return self.engine.run_alone([c for c, _ in batch])
        except Exception as exc:
            logger.exception("re-running %d commands failed", len(batch))
            return exc

    def _hand_over(self, callback: Callable[[], object]) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the event loop is closed: nobody is waiting any more
            logger.warning("the event loop closed before the command bus handed over its results")

    # --- writer thread ---------------------------------------------------------------------------

    def _writer_thread(self) -> None:
        while True:
            with self._lock:
                while not self._to_write or self._halted:
                    if self._stopping and not self._to_write:
                        return
                    self._writer_wake.wait()
                batches, self._to_write = self._to_write, []
                self._writing = True
            error: BaseException | None = None
            try:
                self.engine.write(*(prepared for prepared, _ in batches))
            except Exception as exc:
                error = exc
            with self._lock:
                self._writing = False
                self._written.append((batches, error))
                self._halted = error is not None
                self._engine_wake.notify()

    # --- event loop ------------------------------------------------------------------------------

    def _answer(self, answers: list[Answer]) -> None:
        for waiters, outcome in answers:
            if isinstance(outcome, BaseException):
                for _, future in waiters:
                    if not future.done():
                        future.set_exception(outcome)
                continue
            self.batches += 1
            for (_, future), result in zip(waiters, outcome, strict=True):
                if not future.done():
                    future.set_result(result)
        for hook in self.after_batch:
            hook()
