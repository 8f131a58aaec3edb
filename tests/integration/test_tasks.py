"""Stopping tasks that lose a cancellation (adapters/tasks.py), and the stack dump serve writes
when asked or when a stop is slow (adapters/stacks.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from adapters import stacks
from adapters.tasks import cancel_and_wait

TIMEOUT = 10.0


async def test_a_loop_of_requests_whose_cancel_was_swallowed_by_wait_for_is_still_stopped() -> None:
    """The relay's loop as nats-py makes it: every request awaited through asyncio.wait_for. The
    cancel arrives in the iteration its reply does; on Python 3.11 wait_for returns the reply and
    the loop runs on (one cancel() and a gather never returned: serve hung at stop)."""
    loop = asyncio.get_running_loop()
    requests: asyncio.Queue[asyncio.Future[int]] = asyncio.Queue()
    replies: list[int] = []

    async def relay_loop() -> None:
        while True:
            reply: asyncio.Future[int] = loop.create_future()
            requests.put_nowait(reply)
            replies.append(await asyncio.wait_for(reply, TIMEOUT))

    task = asyncio.create_task(relay_loop())
    first = await requests.get()
    await asyncio.sleep(0)  # the loop now waits inside wait_for
    first.set_result(1)
    task.cancel()  # in the same iteration as the reply
    async with asyncio.timeout(TIMEOUT):
        await cancel_and_wait([task])
    assert task.cancelled()


async def test_a_task_that_handles_its_first_cancel_and_goes_on_is_cancelled_again() -> None:
    ran_on = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ran_on.set()  # swallowed, as 3.11's wait_for does at a race
        await asyncio.Event().wait()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(TIMEOUT):
        await cancel_and_wait([task], again_after=0.01)
    assert ran_on.is_set() and task.cancelled()


async def test_tasks_that_end_or_fail_when_cancelled_are_waited_for_and_their_errors_not_raised() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    async def returns() -> None:
        return None

    failing, done = asyncio.create_task(fails_when_cancelled()), asyncio.create_task(returns())
    await asyncio.sleep(0)
    await cancel_and_wait([failing, done])
    assert isinstance(failing.exception(), RuntimeError) and done.result() is None


async def test_the_dump_holds_every_threads_stack_and_every_tasks_waiting_line(tmp_path: Path) -> None:
    async def waiting_for_the_relay() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(waiting_for_the_relay(), name="relay stop")
    await asyncio.sleep(0)
    path = tmp_path / "stderr"
    with path.open("w") as file:
        stacks.dump(file)
    task.cancel()
    dumped = path.read_text()
    assert "Current thread" in dumped and "in test_the_dump_holds" in dumped, dumped
    assert "name='relay stop'" in dumped and "in waiting_for_the_relay" in dumped, dumped
    assert dumped.rstrip().endswith("--- end of stacks ---")


async def test_a_slow_stop_is_logged_with_the_stacks(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.ERROR, logger="adapters.stacks"):
        await stacks.report_slow_stop(0.0)
    assert "still stopping after 0 s" in caplog.text
    assert "in test_a_slow_stop_is_logged_with_the_stacks" in capfd.readouterr().err
