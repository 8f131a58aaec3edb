"""The body of an engine process for test_concurrent_engines (run with `runpy.run_path`).

Executed in a spawned process with `ARGS = (store_url, commands, start, out)` in its globals:
it waits at the `start` barrier, starts an engine on the store (creating or checking the
schema, as a service does at start), executes `commands` one at a time and puts
`[(command_id, encoded result), ...]` on `out`, or the traceback text if anything failed.
"""

from __future__ import annotations

import traceback
import uuid
from typing import Any

from adapters.clock import SystemClock, jittered_backoff
from adapters.store.url import parse_store_url
from domain.commands import Command
from domain.engine import Engine, RoomsApplication
from domain.results import result_encoder
from domain.settings import AccountPolicy

ACCOUNT_SID = "AC" + "0" * 32


def main(store_url: str, commands: list[Command], start: Any, out: Any) -> None:
    try:
        start.wait()
        app = RoomsApplication(env=parse_store_url(store_url).env)
        try:
            engine = Engine(
                app,
                policy=AccountPolicy(account_sid=ACCOUNT_SID),
                sids=lambda p: p + uuid.uuid4().hex,
                clock=SystemClock().now,
                backoff=jittered_backoff,
            )
            out.put([(c.command_id, result_encoder.encode(engine.execute(c))) for c in commands])
        finally:
            app.close()
    except BaseException:
        start.abort()
        out.put(traceback.format_exc())
        raise


if __name__ == "__engine_worker__":
    main(*ARGS)  # type: ignore[name-defined]  # noqa: F821
