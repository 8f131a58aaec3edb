"""Where a running `openrooms serve` is: every thread's and every asyncio task's stack, on stderr.

`kill -USR1 <pid>` asks for it at any time; a stop that takes longer than `STOP_REPORT_S`
writes it by itself, so a hung shutdown says what it waits for instead of just being killed
by the service manager.
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import logging
import signal
import sys
from typing import TextIO

logger = logging.getLogger(__name__)
STOP_REPORT_S = 10.0
"""A stop still running after this long is reported (the service manager's own limit is longer:
systemd's default is 90 s)."""


def task_stacks() -> str:
    """Every asyncio task of the running loop and the line it waits on, innermost frame last."""
    out = io.StringIO()
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    out.write(f"{len(tasks)} asyncio tasks:\n")
    for task in tasks:
        task.print_stack(file=out)
    return out.getvalue()


def dump(file: TextIO | None = None) -> None:
    """Write the threads' stacks (faulthandler: no locks taken) and the tasks' stacks to `file`."""
    file = file or sys.stderr
    file.write("--- openrooms: stacks of all threads ---\n")
    file.flush()
    faulthandler.dump_traceback(file, all_threads=True)
    file.write(task_stacks())
    file.write("--- end of stacks ---\n")
    file.flush()


def on_signal(loop: asyncio.AbstractEventLoop, sig: int = signal.SIGUSR1) -> None:
    """Dump the stacks each time `sig` arrives (on the loop: between tasks)."""
    loop.add_signal_handler(sig, dump)


async def report_slow_stop(delay: float = STOP_REPORT_S) -> None:
    """Started when a stop begins, cancelled when it ends: if it is still running after `delay`,
    log it and dump the stacks once."""
    await asyncio.sleep(delay)
    logger.error("still stopping after %.0f s; the stacks follow", delay)
    dump()
