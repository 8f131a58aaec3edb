"""Pacing of the log's followers (adapters/pacing.py)."""

from __future__ import annotations

import asyncio

import pytest

from adapters.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_first_pass_and_passes_after_a_quiet_spell_go_at_once():
    clock = Clock()
    pacer = Pacer(60.0, clock)
    await asyncio.wait_for(pacer.wait(), 5)  # no pass before: at once
    clock.now += 60.0
    await asyncio.wait_for(pacer.wait(), 5)  # a whole interval since: at once


async def test_a_pass_sooner_than_the_interval_waits_unless_hurried():
    clock = Clock()
    pacer = Pacer(60.0, clock)
    await pacer.wait()
    clock.now += 1.0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pacer.wait(), 0.05)  # 59 s to go
    hurry = asyncio.Event()
    waiting = asyncio.create_task(pacer.wait(hurry))
    await asyncio.sleep(0)
    assert not waiting.done()
    hurry.set()  # a reader waits for its writes
    await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(pacer.wait(hurry), 5)  # still hurried: at once
