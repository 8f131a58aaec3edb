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
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent

from domain import account, room, room_name
from domain.codec import RoomSnapshot, StructMapper
from domain.commands import Command
from domain.errors import DomainError
from domain.events import Event, RoomCreated
from domain.handlers import HANDLERS, prefetch_keys
from domain.ids import SidSource, account_key, room_name_key
from domain.results import CommandResult, result_decoder, result_encoder
from domain.settings import AccountPolicy

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
State = room.Room | room_name.RoomName | account.Account


def utc_now() -> datetime:
    return datetime.now(UTC)


class CommandLog(Protocol):
    """What the engine needs from the recorder beyond eventsourcing's: stored command results.

    `insert_events(..., command_results=[(command_id, result_bytes)])` writes them in the same
    transaction as the events.
    """

    def select_command_results(self, command_ids: Sequence[str]) -> dict[str, bytes]: ...

    def select_events_for(self, originator_ids: Sequence[str]) -> list[StoredEvent]: ...


def _kind(aggregate_id: str) -> Any:
    if aggregate_id.startswith("name:"):
        return room_name
    if aggregate_id.startswith("account:"):
        return account
    return room


def project(state: Any, events: Iterable[Any]) -> Any:
    """eventsourcing projector: fold stored events (after an optional snapshot) into state."""
    for event in events:
        if isinstance(event, RoomSnapshot):
            state = room.Room(**{f: getattr(event.state, f) for f in event.state.__struct_fields__})
            continue
        state = _kind(event.originator_id).apply(state, event)
    return state


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
        # A created room has a new SID: nothing to load.
        current = None if event_type is RoomCreated else self.engine.load(aggregate_id, self)
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
        clock: Clock = utc_now,
        cache_size: int = 20_000,
        snapshot_interval: int = 500,
        max_attempts: int = 20,
    ) -> None:
        self.app = app
        self.policy = policy
        self.sids = sids
        self.clock = clock
        self.cache_size = cache_size
        self.snapshot_interval = snapshot_interval
        self.max_attempts = max_attempts
        self._cache: OrderedDict[str, State] = OrderedDict()
        self._committed: dict[str, int] = {}
        self._pending: list[Event] = []
        self._touched: set[str] = set()
        self._to_stored = app.mapper.to_stored_event
        self.on_commit: list[Callable[[list[Event]], None]] = []

    @property
    def command_log(self) -> CommandLog:
        return self.app.recorder  # type: ignore[return-value]

    # --- aggregates --------------------------------------------------------------------------

    def load(self, aggregate_id: str, unit: _Unit) -> State | None:
        unit.read.add(aggregate_id)
        state = self._cache.get(aggregate_id)
        if state is not None:
            self._cache.move_to_end(aggregate_id)
            return state
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

    def prefetch(self, commands: Sequence[Command]) -> None:
        """Load the index entries a batch will read with one query instead of one per command."""
        wanted = {key for c in commands for key in prefetch_keys(c) if key not in self._cache}
        if not wanted:
            return
        found: dict[str, Any] = {}
        for stored in self.command_log.select_events_for(sorted(wanted)):
            event = self.app.mapper.to_domain_event(stored)
            found[stored.originator_id] = _kind(stored.originator_id).apply(found.get(stored.originator_id), event)
        for key in wanted:
            state = found.get(key) or _kind(key).empty(key)
            self._cache[key] = state
            self._committed[key] = state.version

    def apply(self, aggregate_id: str, current: State | None, event: Event) -> None:
        state = _kind(aggregate_id).apply(current, event)
        if current is None:
            self._cache[aggregate_id] = state
            self._committed.setdefault(aggregate_id, 0)
        self._pending.append(event)
        self._touched.add(aggregate_id)

    def evict(self, aggregate_ids: Iterable[str]) -> None:
        for aggregate_id in aggregate_ids:
            self._cache.pop(aggregate_id, None)
            self._committed.pop(aggregate_id, None)

    def cached_rooms(self) -> list[room.Room]:
        return [s for s in self._cache.values() if isinstance(s, room.Room)]

    # --- commands ----------------------------------------------------------------------------

    def execute(self, command: Command) -> CommandResult:
        return self.execute_batch([command])[0]

    def execute_batch(self, commands: Sequence[Command]) -> list[CommandResult]:
        """Results in order; the batch's events and results are committed together."""
        ids = list(dict.fromkeys(c.command_id for c in commands))
        known = {k: result_decoder.decode(v) for k, v in self.command_log.select_command_results(ids).items()}
        fresh: list[Command] = []
        for command in commands:
            if command.command_id not in known:
                known[command.command_id] = CommandResult()  # placeholder: first occurrence runs
                fresh.append(command)
        if fresh:
            self.prefetch(fresh)
            try:
                known.update(self._run_and_save(fresh))
            except _Retry:
                for command in fresh:
                    known[command.command_id] = self._run_alone(command)
        return [known[c.command_id] for c in commands]

    def _run_alone(self, command: Command) -> CommandResult:
        for attempt in range(self.max_attempts):
            stored = self.command_log.select_command_results([command.command_id])
            if stored:
                return result_decoder.decode(stored[command.command_id])
            try:
                return self._run_and_save([command])[command.command_id]
            except _Retry:
                logger.debug("command %s lost a race (attempt %d), retrying", command.command_id, attempt + 1)
        raise RuntimeError(f"command {command.command_id} kept conflicting after {self.max_attempts} attempts")

    def _run_and_save(self, commands: Sequence[Command]) -> dict[str, CommandResult]:
        now = self.clock()
        results: dict[str, CommandResult] = {}
        refused_reads: set[str] = set()
        try:
            for command in commands:
                unit = _Unit(self, command, now)
                try:
                    results[command.command_id] = HANDLERS[type(command)](unit, command)
                except DomainError as error:
                    if unit.recorded:
                        logger.error("command %s refused after recording events: %s", command.command_id, error)
                        raise _Retry from error
                    refused_reads |= unit.read
                    results[command.command_id] = CommandResult.refused(error)
            self._check_fresh(refused_reads - self._touched)
            pending = self._pending
            encoded = [(k, result_encoder.encode(v)) for k, v in results.items()]
            stored = [self._to_stored(e) for e in pending]
            self.app.recorder.insert_events(stored, command_results=encoded)
        except IntegrityError as exc:
            self._abort()
            raise _Retry from exc
        except BaseException:
            self._abort()
            raise
        self._commit()
        for listener in self.on_commit:
            listener(pending)
        return results

    def _check_fresh(self, aggregate_ids: set[str]) -> None:
        """A refusal read only committed state: make sure no other engine moved it on."""
        for aggregate_id in aggregate_ids:
            committed = self._committed.get(aggregate_id)
            if committed is None:
                continue
            if self.app.recorder.select_events(aggregate_id, gt=committed, limit=1):
                raise _Retry

    def _abort(self) -> None:
        self.evict(self._touched | {e.originator_id for e in self._pending})
        self._pending = []
        self._touched = set()
        # A refused command may have read stale cached state: fresh loads on the retry.
        self._cache.clear()
        self._committed.clear()

    def _commit(self) -> None:
        snapshots = []
        for aggregate_id in self._touched:
            state = self._cache.get(aggregate_id)
            if state is None:
                continue
            before = self._committed.get(aggregate_id, 0)
            self._committed[aggregate_id] = state.version
            if isinstance(state, room.Room) and state.version // self.snapshot_interval > before // self.snapshot_interval:
                snapshots.append(RoomSnapshot(originator_id=aggregate_id, originator_version=state.version, at=self.clock(), state=state))
        self._pending = []
        self._touched = set()
        if snapshots and self.app.snapshots is not None:
            self.app.snapshots.put(snapshots)
        while len(self._cache) > self.cache_size:
            aggregate_id, _ = self._cache.popitem(last=False)
            self._committed.pop(aggregate_id, None)
