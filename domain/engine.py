"""The engine: an eventsourcing Application that executes commands (load → decide → save).

Commands that arrive together are executed as one batch and committed in one transaction with
their results (group commit). Active aggregates stay in memory between commands; the store's
version check keeps every room rule under concurrent engines: a batch that loses a race is
re-run one command at a time on fresh state, each retried until it wins or is refused.
A command_id seen before answers with its stored first result and records nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Final, Protocol

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent

from domain import account, room, room_name
from domain.codec import RoomSnapshot, StructMapper
from domain.commands import Command
from domain.errors import DomainError
from domain.events import Event, RoomCreated
from domain.handlers import HANDLERS, prefetch_keys, touched_keys
from domain.ids import SidSource, account_key, room_name_key
from domain.results import CommandResult, result_decoder, result_encoder
from domain.settings import AccountPolicy

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
State = room.Room | room_name.RoomName | account.Account


class CommandLog(Protocol):
    """What the engine needs from the recorder beyond eventsourcing's: stored command results.

    `insert_events(..., command_results=[(command_id, result_bytes)])` writes them in the same
    transaction as the events.
    """

    def select_command_results(self, command_ids: Sequence[str]) -> dict[str, bytes]: ...

    def select_events_for(self, originator_ids: Sequence[str]) -> list[StoredEvent]: ...

    def select_versions(self, originator_ids: Sequence[str]) -> dict[str, int]: ...


def _kind(aggregate_id: str) -> Any:
    if aggregate_id.startswith("name:"):
        return room_name
    if aggregate_id.startswith("account:"):
        return account
    return room


_APPLY: Final[dict[type[Event], Callable[[Any, Any], State]]] = {
    **{t: room.apply for t in room.ROOM_EVENT_TYPES},
    **{t: room_name.apply for t in room_name.NAME_EVENT_TYPES},
    **{t: account.apply for t in account.ACCOUNT_EVENT_TYPES},
}


def project(state: Any, events: Iterable[Any]) -> Any:
    """eventsourcing projector: fold stored events (after an optional snapshot) into state."""
    for event in events:
        if isinstance(event, RoomSnapshot):
            state = event.state  # decoded afresh from the stored snapshot: ours to mutate
            continue
        state = _kind(event.originator_id).apply(state, event)
    return state


SHARED_WRITES: Final = 10_000
"""For this many writes after it last noticed another writer of the log, an engine checks the
versions of what a batch reads before deciding (`refresh_stale`); a sole writer never does."""


class RoomsApplication(Application[str]):
    name = "Rooms"
    env: ClassVar[dict[str, str]] = {"ORIGINATOR_ID_TYPE": "text", "IS_SNAPSHOTTING_ENABLED": "y"}

    def construct_mapper(self) -> Mapper[str]:
        return StructMapper()


class _Retry(Exception):
    """The batch must be re-run one command at a time (lost a race, or read stale state)."""


class _Unit:
    """One command's view of the batch: aggregates, clock, SIDs and `record()`."""

    def __init__(self, engine: Engine, command: Command, now: datetime) -> None:
        self.engine = engine
        self.command_id = command.command_id
        self.now = now
        self.policy = engine.policy
        self.recorded = 0
        self.read: set[str] = set()

    def new_sid(self, prefix: str) -> str:
        return self.engine.sids(prefix)

    def room(self, sid: str) -> room.Room | None:
        found = self.engine.load(sid, self)
        return found if isinstance(found, room.Room) else None

    def room_name(self, unique_name: str) -> room_name.RoomName:
        found = self.engine.load(room_name_key(unique_name), self)
        assert isinstance(found, room_name.RoomName)
        return found

    def account(self) -> account.Account:
        found = self.engine.load(account_key(self.policy.account_sid), self)
        assert isinstance(found, account.Account)
        return found

    def record(self, aggregate_id: str, event_type: type[Event], **fields: Any) -> None:
        # A created room has a new SID: nothing to load. Recording touches the aggregate, so
        # the version check covers what was read: no need to note the read.
        if event_type is RoomCreated:
            current = None
        else:
            current = self.engine._cache.get(aggregate_id) or self.engine.load(aggregate_id, self)
        version = current.version + 1 if current is not None else 1
        event = event_type(
            originator_id=aggregate_id,
            originator_version=version,
            at=self.now,
            command_id=self.command_id,
            **fields,
        )
        self.engine.apply(aggregate_id, current, event)
        self.recorded += 1


class Engine:
    """Executes commands against the log; one batch at a time (not thread-safe)."""

    def __init__(
        self,
        app: RoomsApplication,
        *,
        policy: AccountPolicy,
        sids: SidSource,
        clock: Clock,
        backoff: Callable[[int], None] = lambda attempt: None,
        cache_size: int = 20_000,
        recent_results: int = 50_000,
        snapshot_interval: int = 500,
        max_attempts: int = 50,
    ) -> None:
        self.app = app
        self.policy = policy
        self.sids = sids
        self.clock = clock
        self.cache_size = cache_size
        self.recent_results = recent_results
        self.snapshot_interval = snapshot_interval
        self.max_attempts = max_attempts
        self.backoff = backoff
        """Called with the attempt number before a command that lost a race is retried (the
        adapters pass a jittered sleep, so a busy room cannot starve one engine)."""
        self._cache: OrderedDict[str, State] = OrderedDict()
        self._committed: dict[str, int] = {}
        self._pending: list[Event] = []
        self._touched: set[str] = set()
        self._inflight: dict[str, CommandResult] = {}
        self._recent: dict[str, CommandResult] = {}
        """The results of the last `recent_results` commands this engine committed (insertion order)."""
        self.last_written_position = 0
        """The log position of the last event this engine committed (read-your-writes)."""
        self._writes = 0
        self._shared_at: int | None = None
        """`_writes` when another writer of the log was last noticed (a gap in the positions
        between two of this engine's writes, or a lost race); None if never."""
        self._to_stored = app.mapper.to_stored_event
        self.on_commit: list[Callable[[list[Event]], None]] = []

    @property
    def command_log(self) -> CommandLog:
        return self.app.recorder  # type: ignore[return-value]

    # --- aggregates --------------------------------------------------------------------------

    def load(self, aggregate_id: str, unit: _Unit) -> State | None:
        unit.read.add(aggregate_id)
        cached = self._cache.get(aggregate_id)
        if cached is not None:
            self._cache.move_to_end(aggregate_id)
            return cached
        state: State
        try:
            state = self.app.repository.get(aggregate_id, projector_func=project)
        except AggregateNotFoundError:
            if _kind(aggregate_id) is room:
                return None
            # Index entries and accounts exist from the start (version 0): cache them too,
            # the version check catches another engine writing version 1 first.
            state = _kind(aggregate_id).empty(aggregate_id)
        self._cache[aggregate_id] = state
        self._committed[aggregate_id] = state.version
        return state

    def refresh_stale(self, commands: Sequence[Command]) -> None:
        """Bring the cached aggregates a batch will read up to date where another engine has
        written since (one read of their latest versions, then only the events they miss), so
        the batch decides on their current state instead of losing its write to the version
        check. Versions ahead of the store are this engine's batches still being written. Only
        while other writers are about (`SHARED_WRITES`)."""
        if self._shared_at is None or self._writes - self._shared_at > SHARED_WRITES:
            return  # this engine is the log's only writer: what it holds is current
        wanted = {account_key(self.policy.account_sid)}
        for command in commands:
            wanted.update(touched_keys(command))
        for key in list(wanted):
            entry = self._cache.get(key)
            if isinstance(entry, room_name.RoomName) and entry.room_sid:
                wanted.add(entry.room_sid)
        cached = {key: state.version for key in wanted if (state := self._cache.get(key)) is not None}
        if not cached:
            return
        for key, version in self.command_log.select_versions(sorted(cached)).items():
            if version <= cached[key]:
                continue
            if self._committed.get(key) == cached[key]:  # nothing of ours in flight on it: catch up
                later = self.app.recorder.select_events(key, gt=cached[key])
                self._cache[key] = state = project(self._cache[key], map(self.app.mapper.to_domain_event, later))
                self._committed[key] = state.version
            else:  # our own write on it will lose the race: start afresh from the store
                del self._cache[key]
                self._committed.pop(key, None)

    def prefetch(self, commands: Sequence[Command]) -> None:
        """Load the index entries a batch will read with one query instead of one per command."""
        wanted = {key for c in commands for key in prefetch_keys(c) if key not in self._cache}
        if not wanted:
            return
        found: dict[str, Any] = {}
        for stored in self.command_log.select_events_for(sorted(wanted)):
            key = str(stored.originator_id)
            found[key] = _kind(key).apply(found.get(key), self.app.mapper.to_domain_event(stored))
        for key in wanted:
            state = found.get(key) or _kind(key).empty(key)
            self._cache[key] = state
            self._committed[key] = state.version

    def apply(self, aggregate_id: str, current: State | None, event: Event) -> None:
        state = _APPLY[type(event)](current, event)
        if current is None:
            self._cache[aggregate_id] = state
            self._committed.setdefault(aggregate_id, 0)
        self._pending.append(event)
        self._touched.add(aggregate_id)

    def cached_room(self, sid: str) -> room.Room | None:
        """The room as this engine holds it in memory (its latest decided state), if it does."""
        found = self._cache.get(sid)
        return found if isinstance(found, room.Room) else None

    def cached_rooms(self) -> list[room.Room]:
        return [s for s in self._cache.values() if isinstance(s, room.Room)]

    # --- commands ----------------------------------------------------------------------------

    def execute(self, command: Command) -> CommandResult:
        return self.execute_batch([command])[0]

    def execute_batch(self, commands: Sequence[Command]) -> list[CommandResult]:
        """Results in order; the batch's events and results are committed together."""
        prepared = self.prepare(commands)
        if prepared.retry:
            return self.run_alone(commands)
        try:
            self.write(prepared)
        except IntegrityError:
            self.settle(prepared, committed=False)
            return self.run_alone(commands)
        self.settle(prepared, committed=True)
        return prepared.answers()

    def prepare(self, commands: Sequence[Command], *, look_up: bool = True) -> Prepared:
        """Decide a batch on the in-memory state; nothing is written yet.

        The state it leaves in memory includes the batch, so the next batch can be prepared
        while this one is written (`write`, any thread) and then `settle`d, in order.
        Command ids this engine decided or committed lately answer from memory; the others are
        looked up in the log, unless `look_up` is False: then a repeat of an older command is
        caught by the write (the log takes a command id once), which fails, and the caller
        re-runs the batch with `run_alone`, which looks up.
        """
        ids = list(dict.fromkeys(c.command_id for c in commands))
        known = {k: v for k in ids if (v := self._inflight.get(k) or self._recent.get(k)) is not None}
        missing = [k for k in ids if k not in known] if look_up else []
        stored = self.command_log.select_command_results(missing) if missing else {}
        known.update((k, result_decoder.decode(v)) for k, v in stored.items())
        fresh: list[Command] = []
        seen: set[str] = set()
        for command in commands:
            if command.command_id not in known and command.command_id not in seen:
                seen.add(command.command_id)
                fresh.append(command)
        prepared = Prepared(commands=list(commands), known=known)
        if not fresh:
            return prepared
        try:
            self.refresh_stale(fresh)
            self.prefetch(fresh)
            results = self._decide(fresh)
        except _Retry:
            self._abort()
            prepared.retry = True
            return prepared
        except BaseException:
            self._abort()  # half-decided state must never reach the next batch
            raise
        prepared.results = results
        prepared.events = self._pending
        prepared.stored = [self._to_stored(e) for e in self._pending]
        prepared.encoded = [(k, result_encoder.encode(v)) for k, v in results.items()]
        prepared.versions = {a: self._cache[a].version for a in self._touched if a in self._cache}
        prepared.snapshots = self._snapshots(prepared.versions)
        self._inflight.update(results)
        self._pending = []
        self._touched = set()
        return prepared

    def write(self, *batches: Prepared) -> None:
        """Commit prepared batches' events and results in one transaction (thread-safe); the
        batches must be settled afterwards in the order they were prepared."""
        stored = [e for p in batches for e in p.stored]
        encoded = [r for p in batches for r in p.encoded]
        if not encoded:
            return
        ids = self.app.recorder.insert_events(stored, command_results=encoded)
        if ids:
            if self.last_written_position and min(ids) != self.last_written_position + 1:
                self._shared_at = self._writes  # someone else wrote in between: check freshness
            self._writes += 1
            self.last_written_position = max(self.last_written_position, max(ids))
        snapshots = [s for p in batches for s in p.snapshots]
        if snapshots and self.app.snapshots is not None:
            try:
                self.app.snapshots.recorder.insert_events(snapshots)
            except Exception:  # snapshots only speed up loading; the batches are committed
                logger.exception("writing %d snapshots failed", len(snapshots))

    def settle(self, prepared: Prepared, *, committed: bool) -> None:
        """After `write`: record what is now committed, or forget everything uncommitted."""
        for command_id in prepared.results:
            self._inflight.pop(command_id, None)
        if not committed:
            self._shared_at = self._writes  # most likely another engine wrote first
            self._abort()
            return
        prepared.known.update(prepared.results)
        self._recent.update(prepared.results)
        while len(self._recent) > self.recent_results:
            del self._recent[next(iter(self._recent))]
        self._committed.update(prepared.versions)
        while len(self._cache) > self.cache_size:
            aggregate_id, _ = self._cache.popitem(last=False)
            self._committed.pop(aggregate_id, None)
        for listener in self.on_commit:
            listener(prepared.events)

    def run_alone(self, commands: Sequence[Command]) -> list[CommandResult]:
        """Each command in its own transaction on fresh state, retried until it wins or is refused."""
        answers: dict[str, CommandResult] = {}
        for command in commands:
            if command.command_id not in answers:
                answers[command.command_id] = self._run_alone(command)
        return [answers[c.command_id] for c in commands]

    def _run_alone(self, command: Command) -> CommandResult:
        for attempt in range(self.max_attempts):
            if attempt:
                self.backoff(attempt)
            prepared = self.prepare([command])
            if prepared.retry:
                continue
            try:
                self.write(prepared)
            except IntegrityError:
                self.settle(prepared, committed=False)
                logger.debug("command %s lost a race (attempt %d), retrying", command.command_id, attempt + 1)
                continue
            self.settle(prepared, committed=True)
            return prepared.answers()[0]
        raise RuntimeError(f"command {command.command_id} kept conflicting after {self.max_attempts} attempts")

    def _decide(self, commands: Sequence[Command]) -> dict[str, CommandResult]:
        now = self.clock()
        results: dict[str, CommandResult] = {}
        unwritten_reads: set[str] = set()
        for command in commands:
            unit = _Unit(self, command, now)
            try:
                results[command.command_id] = HANDLERS[type(command)](unit, command)
            except DomainError as error:
                if unit.recorded:
                    logger.error("command %s refused after recording events: %s", command.command_id, error)
                    raise _Retry from error
                results[command.command_id] = CommandResult.refused(error)
            if not unit.recorded:
                unwritten_reads |= unit.read
        self._check_fresh(unwritten_reads - self._touched)
        return results

    def _check_fresh(self, aggregate_ids: set[str]) -> None:
        """A command that wrote nothing (refused, or nothing to do) read only committed state
        that no version check will cover: make sure no other engine moved it on. (Past the
        version in memory: this engine's own batches still being written are not news, and if
        another engine wrote beside one of them, that batch's write fails and this is re-run.)"""
        for aggregate_id in aggregate_ids:
            state = self._cache.get(aggregate_id)
            if state is None:
                continue
            if self.app.recorder.select_events(aggregate_id, gt=state.version, limit=1):
                raise _Retry

    def _abort(self) -> None:
        """Forget all uncommitted state (and anything possibly stale): fresh loads from here on."""
        self._pending = []
        self._touched = set()
        self._cache.clear()
        self._committed.clear()

    def _snapshots(self, versions: dict[str, int]) -> list[StoredEvent]:
        snapshots = []
        for aggregate_id, version in versions.items():
            state = self._cache[aggregate_id]
            before = self._committed.get(aggregate_id, 0)
            if isinstance(state, room.Room) and version // self.snapshot_interval > before // self.snapshot_interval:
                snapshot = RoomSnapshot(
                    originator_id=aggregate_id, originator_version=version, at=self.clock(), state=state
                )
                snapshots.append(self._to_stored(snapshot))
        return snapshots


class Prepared:
    """A decided batch: its events and results, written together, then settled."""

    def __init__(self, commands: list[Command], known: dict[str, CommandResult]) -> None:
        self.commands = commands
        self.known = known
        self.results: dict[str, CommandResult] = {}
        self.events: list[Event] = []
        self.stored: list[StoredEvent] = []
        self.encoded: list[tuple[str, bytes]] = []
        self.versions: dict[str, int] = {}
        self.snapshots: list[StoredEvent] = []
        self.retry = False

    def answers(self) -> list[CommandResult]:
        """Each command's result, in order (first results for repeated ids)."""
        merged = {**self.known, **self.results}
        return [merged[c.command_id] for c in self.commands]
