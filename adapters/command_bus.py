"""Group commit on the event loop: commands that arrive together are decided and written together.

Callers `await bus.execute(command)` on the event loop, or `submit(command)` and answer from an
`on_resolved` hook (the NATS command service: no task per request). The bus's one drain task
takes every command queued since it last looked (up to `max_batch`), has the engine decide them
on its in-memory state, writes the batch's events and results in one transaction and resolves
the callers' futures: all on the event loop's thread, with no hand-off to another thread and back.
While a batch is decided and written, the loop cannot read the next requests; they wait in the
socket and make the next batch, so the batch grows with the load and one transaction serves it.

A caller's future is resolved only after its batch is committed. If a write loses a race
(another engine wrote first), the batch is re-run command by command on fresh state; if the
store fails otherwise, that batch's callers get the error and the bus keeps serving. Re-runs
back off between attempts (sleeps), so they run on a worker thread while the drain task waits
for them: the engine is never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from eventsourcing.persistence import IntegrityError

from domain.commands import Command
from domain.engine import Engine
from domain.results import CommandResult

logger = logging.getLogger(__name__)

Waiter = tuple[Command, "asyncio.Future[CommandResult]"]
LOOP_TURNS_TO_REPLY = 2


class CommandBus:
    def __init__(self, engine: Engine, *, max_batch: int = 1024) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.batches = 0
        self.after_batch: list[Callable[[], None]] = []
        """Called after each batch that committed, once its callers have had their turn."""
        self.on_resolved: list[Callable[[], Awaitable[None]]] = []
        """Awaited by the drain task as soon as a batch's futures are resolved (committed or
        failed), before anything else runs: `submit` callers send their replies from here."""
        self._incoming: list[Waiter] = []
        self._arrived: asyncio.Event | None = None
        self._stopping = False

    async def execute(self, command: Command) -> CommandResult:
        return await self.submit(command)

    def submit(self, command: Command) -> asyncio.Future[CommandResult]:
        """Queue `command` for the next batch (on the event loop); its future is resolved once the
        batch is committed (or has failed), just before the `on_resolved` hooks run."""
        if self._stopping:
            raise RuntimeError("the engine is stopping and takes no new commands")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._incoming.append((command, future))
        if self._arrived is not None:
            self._arrived.set()
        return future

    async def run(self) -> None:
        """Process commands until `stop()`; finishes what was queued before stopping."""
        self._arrived = arrived = asyncio.Event()
        if self._incoming:
            arrived.set()
        try:
            while True:
                await arrived.wait()
                arrived.clear()
                while self._incoming:
                    batch = self._incoming[: self.max_batch]
                    del self._incoming[: self.max_batch]
                    committed = await self._run_batch(batch)
                    for resolved in self.on_resolved:
                        try:
                            await resolved()
                        except Exception:  # a bug there must not stop the bus
                            logger.exception("a command bus hook failed")
                    await self._let_callers_run()
                    if committed:  # the followers, once the replies are out
                        for hook in self.after_batch:
                            hook()
                if self._stopping:
                    return
        finally:
            self._stopping = True
            stranded, self._incoming = self._incoming, []
            for _, future in stranded:
                if not future.done():
                    future.set_exception(RuntimeError("the engine stopped"))

    @staticmethod
    async def _let_callers_run() -> None:
        """Let the last batch's callers send their replies before the loop is held by the next.

        A caller resumes one loop iteration after its future is resolved and hands its reply to
        the NATS client, whose flusher task writes it to the socket an iteration later; the next
        batch would otherwise hold the loop (deciding, writing) before either ran, and every reply
        would wait for a whole batch more. Meanwhile the loop also reads what arrived.
        """
        for _ in range(LOOP_TURNS_TO_REPLY):
            await asyncio.sleep(0)

    def stop(self) -> None:
        """Take no new commands; `run()` returns once those in flight are done."""
        self._stopping = True
        if self._arrived is not None:
            self._arrived.set()

    async def _run_batch(self, batch: list[Waiter]) -> bool:
        """Decide and write a batch, and resolve its callers' futures; whether it committed."""
        try:
            outcome = await self._decide_and_write([c for c, _ in batch])
        except BaseException as exc:  # a bug or a store failure: fail this batch, keep serving
            if not isinstance(exc, Exception):  # cancelled: its callers are not left waiting
                for _, future in batch:
                    future.cancel()
                raise
            logger.exception("a batch of %d commands failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return False
        self.batches += 1
        for (_, future), result in zip(batch, outcome, strict=True):
            if not future.done():
                future.set_result(result)
        return True

    async def _decide_and_write(self, commands: list[Command]) -> list[CommandResult]:
        engine = self.engine
        prepared = engine.prepare(commands, look_up=False)
        if prepared.retry:  # it read stale state
            return await asyncio.to_thread(engine.run_alone, commands)
        if not prepared.results:  # every command was a repeat: nothing to write
            return prepared.answers()
        try:
            engine.write(prepared)
        except IntegrityError:  # another engine wrote first, or a repeat of an older command
            engine.settle(prepared, committed=False)
            return await asyncio.to_thread(engine.run_alone, commands)
        except BaseException:
            engine.settle(prepared, committed=False)
            raise
        engine.settle(prepared, committed=True)
        return prepared.answers()
