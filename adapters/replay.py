"""`openrooms replay`: the audit timeline of the log, and `--verify`.

Reads the log from position 0 with a progress bar (stderr). Without `--verify` it prints the
timeline (one line per event, or one JSON object per line with `--json`), optionally only for
one room. With `--verify` it rebuilds every aggregate and the read model in memory
(domain.audit), checks the invariants, compares with the stored read model and exits 1 with
a report on any difference, 0 when the log and the read model agree.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import msgspec
from tqdm import tqdm

from domain.audit import Audit, compare_tables
from domain.codec import decode
from domain.engine import RoomsApplication
from domain.events import Event, event_name
from domain.projections import SCHEMA

from adapters.store.read_model import ReadModel

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


def read_log(app: RoomsApplication, *, progress: bool = False) -> Iterator[tuple[int, Any]]:
    """(position, event) for every event in the log, in order."""
    total = app.recorder.max_notification_id() or 0
    bar = tqdm(total=total, unit="ev", file=sys.stderr, disable=not progress, mininterval=0.5)
    start = 0
    select_raw = app.recorder.select_raw  # type: ignore[attr-defined]
    try:
        while True:
            rows = select_raw(start, CHUNK)
            if not rows:
                return
            for position, topic, state in rows:
                yield position, decode(topic, state)
            start = rows[-1][0]
            bar.update(len(rows))
    finally:
        bar.close()


def summary(event: Event) -> str:
    fields = {
        k: v for k, v in msgspec.structs.asdict(event).items()
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


def stored_tables(read_model: ReadModel) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
    for name, table in SCHEMA.items():
        tables[name] = {tuple(row[c] for c in table.key): row for row in read_model.rows(name)}
    return tables


def verify(app: RoomsApplication, read_model: ReadModel | None, account_sid: str, *, progress: bool) -> ReplayReport:
    audit = Audit(account_sid)
    last = 0
    for position, event in read_log(app, progress=progress):
        audit.feed(position, event)
        last = position
    report = ReplayReport(events=audit.events, problems=audit.finish())
    if read_model is not None:
        stored_position = read_model.position()
        if stored_position != last:
            report.differences.append(f"the read model is at position {stored_position}, the log at {last}")
        else:
            report.differences.extend(compare_tables(audit.view.tables, stored_tables(read_model)))
    return report
