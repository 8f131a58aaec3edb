"""Keeping a child process running (adapters/children.py), with real child processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from adapters import children
from adapters.children import keep_running
from adapters.tasks import cancel_and_wait

TIMEOUT = 10.0
"""Never reached when it works."""


async def test_a_child_that_exits_is_started_again_and_a_start_that_fails_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(children, "RESTART_DELAY_S", 0.01)
    running = [subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])]  # dies at once
    attempts = 0
    restarted = asyncio.Event()

    async def start() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("address already in use")  # the first start again fails
        running.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))

    keeping = asyncio.create_task(
        keep_running("child", lambda: running[-1].pid, lambda: running[-1].wait(), start, on_restart=restarted.set)
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            await restarted.wait()
        assert attempts == 2
        assert running[0].returncode == 3, "the dead child was reaped"
        assert len(running) == 2 and running[1].poll() is None, "the new child runs"
    finally:
        await cancel_and_wait([keeping])
        running[-1].kill()
        running[-1].wait()
