"""`openrooms replay`: the audit timeline of the log, and `--verify`.

Reads the log from position 0 with a progress bar (stderr). Without `--verify` it prints the
timeline (one line per event, or one JSON object per line with `--json`), optionally only for
one room. With `--verify` it rebuilds every aggregate and the read model in memory
(domain.audit), checks the invariants, compares with the stored read model and exits 1 with
a report on any difference, 0 when the log and the read model agree.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TextIO

import msgspec
from tqdm import tqdm

from adapters.bootstrap import open_application, open_read_model
from adapters.store.read_model import ReadModel
from domain.audit import Audit, compare_tables
from domain.codec import decode
from domain.engine import RoomsApplication
from domain.events import Event, event_name
from domain.projections import SCHEMA

CHUNK = 10_000
_JSON = msgspec.json.Encoder()


@dataclass
class ReplayReport:
    events: int = 0
    problems: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.problems and not self.differences


def read_log(
    app: RoomsApplication, *, progress: bool = False, part: tuple[int, int] = (0, 1), counter: Any = None
) -> Iterator[tuple[int, Any]]:
    """(position, event) for every event in the log (or one partition of it), in order."""
    total = app.recorder.max_notification_id() or 0
    bar = tqdm(total=total, unit="ev", file=sys.stderr, disable=not progress, mininterval=0.5)
    start = 0
    select_raw = app.recorder.select_raw  # type: ignore[attr-defined]
    try:
        while True:
            rows = select_raw(start, CHUNK, part)
            if not rows:
                return
            for position, topic, state in rows:
                yield position, decode(topic, state)
            start = rows[-1][0]
            bar.update(len(rows))
            if counter is not None:
                with counter.get_lock():
                    counter.value += len(rows)
    finally:
        bar.close()


def summary(event: Event) -> str:
    fields = {
        k: v
        for k, v in msgspec.structs.asdict(event).items()
        if k not in ("originator_id", "originator_version", "at", "command_id", "settings")
    }
    return " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, (), ""))


def print_timeline(app: RoomsApplication, out: TextIO, *, room: str | None, as_json: bool, progress: bool) -> int:
    count = 0
    for position, event in read_log(app, progress=progress):
        if room is not None and event.originator_id != room and getattr(event, "room_sid", None) != room:
            continue
        count += 1
        if as_json:
            body = msgspec.to_builtins(event)
            out.write(_JSON.encode({"position": position, **body}).decode() + "\n")
        else:
            out.write(
                f"{position:>9} {event.at.isoformat()} {event.originator_id} #{event.originator_version:<5} "
                f"{event_name(type(event)):<26} {summary(event)}\n"
            )
    return count


def stored_tables(
    read_model: ReadModel, part: tuple[int, int] = (0, 1)
) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for name, table in SCHEMA.items():
        key, rows = table.key, read_model.rows(name, part)  # keyed as MemoryView keys them
        tables[name] = {(row[key[0]],) if len(key) == 1 else (row[key[0]], row[key[1]]): row for row in rows}
    return tables


def verify(
    app: RoomsApplication,
    read_model: ReadModel | None,
    account_sid: str,
    *,
    progress: bool = False,
    part: tuple[int, int] = (0, 1),
    counter: Any = None,
) -> ReplayReport:
    """Audit the log (or one partition of it) and compare with the stored read model."""
    audit = Audit(account_sid)
    audit.feed(read_log(app, progress=progress, part=part, counter=counter))
    report = ReplayReport(events=audit.events, problems=audit.finish())
    if read_model is not None:
        if part == (0, 1):
            _check_position(app, read_model, report)
        if not report.differences:
            report.differences.extend(compare_tables(audit.view.tables, stored_tables(read_model, part)))
    return report


def _check_position(app: RoomsApplication, read_model: ReadModel, report: ReplayReport) -> None:
    last = app.recorder.max_notification_id() or 0
    stored_position = read_model.position()
    if stored_position != last:
        report.differences.append(f"the read model is at position {stored_position}, the log at {last}")


def _verify_part(store_url: str, account_sid: str, part: tuple[int, int], counter: Any) -> ReplayReport:
    app = open_application(store_url)
    read_model = open_read_model(store_url)
    try:
        return verify(app, read_model, account_sid, part=part, counter=counter)
    finally:
        read_model.db.close()
        app.close()


PARALLEL_FROM = 50_000
"""Logs shorter than this are verified in-process: starting workers costs more than it saves."""


def verify_store(
    store_url: str, account_sid: str, *, progress: bool = False, workers: int | None = None
) -> ReplayReport:
    """`replay --verify`: one worker process per core, each rebuilding and checking a partition."""
    app = open_application(store_url)
    read_model = open_read_model(store_url)
    total = app.recorder.max_notification_id() or 0
    n = workers if workers is not None else (os.cpu_count() or 1) if total >= PARALLEL_FROM else 1
    if n <= 1:
        try:
            return verify(app, read_model, account_sid, progress=progress)
        finally:
            read_model.db.close()
            app.close()
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    counter = context.Value("q", 0)
    report = ReplayReport()
    with ProcessPoolExecutor(max_workers=n, mp_context=context, initializer=_share, initargs=(counter,)) as pool:
        futures = [pool.submit(_verify_part_shared, store_url, account_sid, (k, n)) for k in range(n)]
        with tqdm(total=total, unit="ev", file=sys.stderr, disable=not progress, mininterval=0.5) as bar:
            while not all(f.done() for f in futures):
                wait(futures, timeout=0.5)
                bar.n = counter.value
                bar.refresh()
        for future in futures:
            part = future.result()
            report.events += part.events
            report.problems.extend(part.problems)
            report.differences.extend(part.differences)
    _check_position(app, read_model, report)
    read_model.db.close()
    app.close()
    return report


_COUNTER: Any = None


def _share(counter: Any) -> None:
    """Worker initializer: keep the progress counter; exclude the inherited heap from collections.

    Everything the worker inherits from the parent lives as long as the worker: freezing it
    spares each collection a walk over it (and the copy-on-write faults the walk would cause).
    """
    global _COUNTER
    _COUNTER = counter
    gc.freeze()


def _verify_part_shared(store_url: str, account_sid: str, part: tuple[int, int]) -> ReplayReport:
    return _verify_part(store_url, account_sid, part, _COUNTER)
