"""Stopping asyncio tasks that may lose a cancellation.

On Python 3.11 `asyncio.wait_for` returns its result instead of raising when the cancellation
arrives in the same loop iteration as the result (CPython gh-86296, fixed in 3.12), and nats-py
awaits every request through it (JetStream publishes, key-value reads and writes). A loop doing
such requests can so swallow the one `cancel()` meant to stop it and run on: `openrooms serve`
then waited for its relay process until the service manager killed it. `cancel_and_wait`
cancels again until the tasks have ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

CANCEL_AGAIN_S = 1.0
"""How long a cancelled task gets to end before it is cancelled again. Cleanup that may take
longer than this after a cancellation shields itself (`asyncio.shield`), as webhook delivery's
lease release does; tasks whose cleanup must run unshielded are not stopped with this."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], *, again_after: float = CANCEL_AGAIN_S) -> None:
    """Cancel `tasks` and return once every one has ended (cancelled, returned or failed; their
    exceptions are retrieved, not raised)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_after)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit
