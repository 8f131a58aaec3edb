"""Keeping `openrooms serve`'s child processes running: its relay process and its bundled nats-server.

Either can die under a running service: the kernel's OOM killer, an operator's `kill -9`, a
crash. Without it the service stays up but stops working (no NATS: no commands; no relay: no
event stream, a read model that falls behind), so serve starts the child again. The event loop
learns of the exit from a pidfd (Linux 5.3+; elsewhere a worker thread waits for it), so
watching costs nothing while the child runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)
RESTART_DELAY_S = 1.0
"""Between a child's exit and its next start, and between failed starts (a real wait: a child
that cannot start must not be restarted in a tight loop)."""


async def keep_running(
    name: str,
    pid: Callable[[], int],
    wait: Callable[[], object],
    start: Callable[[], Awaitable[None]],
    *,
    on_restart: Callable[[], None] | None = None,
) -> None:
    """Start the child again each time it exits; until cancelled (cancel it before stopping the
    child). `pid()` is the current child's process id, `wait()` reaps it (blocking) and returns
    its exit status, `start()` starts the next one."""
    while True:
        current = pid()
        code = await _exit_of(current, wait)
        logger.error("%s %d exited with %s; starting another in %.0f s", name, current, code, RESTART_DELAY_S)
        while True:
            await asyncio.sleep(RESTART_DELAY_S)
            try:
                await start()
                break
            except Exception:
                logger.exception("starting %s again failed; retrying in %.0f s", name, RESTART_DELAY_S)
        if on_restart is not None:
            on_restart()


async def _exit_of(pid: int, wait: Callable[[], object]) -> object:
    """Once the child `pid` has exited: `wait()`'s result."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # gone already
        return wait()
    except (AttributeError, OSError):  # no pidfd here: a worker thread waits
        return await asyncio.to_thread(wait)
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)  # readable once the process has exited
    try:
        await exited.wait()
    finally:
        loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
    return wait()
