"""The deadline scheduler in a real engine service, on fake time.

Each test runs `EngineService.run()` (command bus, follower and scheduler loops) in the test's
event loop on a SQLite state directory, with a `FakeClock` that only moves when the test says.
What a test checks is what a REST user would see: the room's and participants' rows.
Nothing waits for wall-clock time: tests wait for a scheduler pass or a committed command.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.bootstrap import EngineService, build_engine_service, open_application, open_read_model
from adapters.clock import FakeClock
from adapters.config import load_config
from adapters.replay import read_log
from adapters.store.queries import Queries
from adapters.store.read_model import Follower
from domain import commands as cmd
from domain import events as ev
from domain.commands import ExpireDeadlines
from domain.projections import Row, micros
from domain.results import CommandResult

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TIMEOUT = 5.0
"""How long a test waits for the service to do something before failing (never reached when it works)."""
SECOND = timedelta(seconds=1)
_command_ids = itertools.count(1)


class SchedulerWatch(FakeClock):
    """A fake clock that also tells the test when the scheduler has finished a pass.

    The scheduler calls `sleep_until()` at the end of every pass and returns from it when the
    next pass begins; counting both lets `full_pass()` wait for a pass that began after it poked.
    """

    def __init__(self, start: datetime = START) -> None:
        super().__init__(start)
        self.begun = 0
        self.ended = 0
        self._ended = asyncio.Event()

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        self.ended += 1
        self._ended.set()
        try:
            await super().sleep_until(when, wake)
        finally:
            self.begun += 1

    async def _passes_ended(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.ended < count:
                self._ended.clear()
                await self._ended.wait()

    async def started(self) -> None:
        """The scheduler has made its first pass (and sleeps until the earliest deadline)."""
        await self._passes_ended(1)

    async def full_pass(self, service: EngineService) -> None:
        """Wake the scheduler and wait until a whole pass that began after now has ended."""
        target = self.begun + 2
        service.scheduler.poke()
        await self._passes_ended(target)


@asynccontextmanager
async def serving(state_dir: Path, clock: FakeClock) -> AsyncIterator[EngineService]:
    """An engine service on `state_dir`, as `openrooms serve` runs it; stopped and closed after."""
    config = load_config(state_dir=str(state_dir), env={})
    service = build_engine_service(config, clock=clock)
    stopping = asyncio.Event()
    task = asyncio.create_task(service.run(stopping))
    try:
        if isinstance(clock, SchedulerWatch):
            await clock.started()
        yield service
    finally:
        stopping.set()
        try:
            await asyncio.wait_for(task, TIMEOUT)
        finally:
            service.close()


async def until(service: EngineService, check: Callable[[], Any]) -> Any:
    """Wait until `check()` (run in a thread: it reads the read model) returns something truthy.

    It is re-checked after every batch the service's command bus commits.
    """
    committed = asyncio.Event()
    service.bus.after_batch.append(committed.set)
    try:
        async with asyncio.timeout(TIMEOUT):
            while not (found := await asyncio.to_thread(check)):
                await committed.wait()
                committed.clear()
            return found
    finally:
        service.bus.after_batch.remove(committed.set)


async def execute(service: EngineService, command_type: type[cmd.Command], **fields: Any) -> CommandResult:
    fields.setdefault("command_id", f"test-{next(_command_ids)}")
    async with asyncio.timeout(TIMEOUT):
        result = await service.bus.execute(command_type(**fields))
    assert result.ok, result
    return result


async def room_row(service: EngineService, room_sid: str) -> Row:
    row = await asyncio.to_thread(service.queries.room, room_sid)
    assert row is not None
    return row


async def participant_row(service: EngineService, room_sid: str, participant_sid: str) -> Row:
    row = await asyncio.to_thread(service.queries.participant, room_sid, participant_sid)
    assert row is not None
    return row


def ended(service: EngineService, room_sid: str) -> Callable[[], Row | None]:
    def check() -> Row | None:
        row = service.queries.room(room_sid)
        return row if row is not None and row["status"] == "completed" else None

    return check


async def room_events(service: EngineService, room_sid: str, event_type: type[ev.Event]) -> list[Any]:
    log = await asyncio.to_thread(lambda: list(read_log(service.app)))
    return [e for _, e in log if e.originator_id == room_sid and isinstance(e, event_type)]


# --- each deadline ---------------------------------------------------------------------------


async def test_an_unused_room_ends_five_minutes_after_it_was_created_and_not_a_second_before(tmp_path: Path) -> None:
    clock = SchedulerWatch()
    async with serving(tmp_path, clock) as service:
        room = str((await execute(service, cmd.CreateRoom)).room_sid)

        clock.advance(timedelta(minutes=5) - SECOND)
        await clock.full_pass(service)
        assert (await room_row(service, room))["status"] == "in-progress"

        clock.advance(SECOND)
        row = await until(service, ended(service, room))
        assert (row["end_reason"], row["end_time"], row["duration"]) == (
            "unused-timeout",
            micros(START + timedelta(minutes=5)),
            300,
        )
        assert len(await room_events(service, room, ev.RoomEnded)) == 1


async def test_an_emptied_room_ends_after_its_empty_room_timeout(tmp_path: Path) -> None:
    clock = SchedulerWatch()
    async with serving(tmp_path, clock) as service:
        room = str((await execute(service, cmd.CreateRoom, empty_room_timeout=1)).room_sid)
        await execute(service, cmd.ConnectParticipant, room=room, identity="alice")
        clock.advance(timedelta(minutes=1))
        await execute(service, cmd.DisconnectParticipant, room_sid=room, participant_sid="alice")

        clock.advance(timedelta(minutes=1) - SECOND)
        await clock.full_pass(service)
        assert (await room_row(service, room))["status"] == "in-progress"

        clock.advance(SECOND)
        row = await until(service, ended(service, room))
        assert (row["end_reason"], row["end_time"]) == ("empty-timeout", micros(START + timedelta(minutes=2)))


class OtherProcessFollower:
    """Follows the log into the read model after each of `service`'s commits, with its own
    connections, as the relay process does under `openrooms serve`."""

    def __init__(self, service: EngineService) -> None:
        self.app = open_application(service.config.store_url)
        self.read_model = open_read_model(service.config.store_url)
        self.follower = Follower(self.app, self.read_model, service.config.credentials.account_sid)
        self.queries = Queries(self.read_model, lambda: None)
        self.caught_up = asyncio.Event()
        self._committed = asyncio.Event()
        service.bus.after_batch.append(self._committed.set)

    async def run(self) -> None:
        while True:
            await self._committed.wait()
            self._committed.clear()
            await asyncio.to_thread(self.follower.catch_up)
            self.caught_up.set()

    async def until(self, check: Callable[[Queries], Any]) -> Any:
        async with asyncio.timeout(TIMEOUT):
            while not (found := await asyncio.to_thread(check, self.queries)):
                await self.caught_up.wait()
                self.caught_up.clear()
            return found

    def close(self) -> None:
        self.read_model.db.close()
        self.app.close()


async def test_a_scheduler_whose_read_model_another_process_follows_waits_for_it_and_writes_no_rows(
    tmp_path: Path,
) -> None:
    clock = SchedulerWatch()
    async with serving(tmp_path, clock) as service:
        service.follow_elsewhere()
        written_here: list[Any] = []
        service.follower.listeners.append(written_here.extend)
        other = OtherProcessFollower(service)
        following = asyncio.create_task(other.run())
        try:
            room = str((await execute(service, cmd.CreateRoom, empty_room_timeout=1)).room_sid)
            await execute(service, cmd.ConnectParticipant, room=room, identity="alice")
            clock.advance(timedelta(minutes=1))
            await execute(service, cmd.DisconnectParticipant, room_sid=room, participant_sid="alice")

            clock.advance(timedelta(minutes=1))
            row = await other.until(lambda q: (r := q.room(room)) is not None and r["status"] == "completed" and r)
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)
            other.close()

        assert (row["end_reason"], row["end_time"]) == ("empty-timeout", micros(START + timedelta(minutes=2)))
        assert written_here == [], "the engine's own follower wrote rows the other process follows"


async def test_a_participant_is_disconnected_at_max_participant_duration_with_error_53216(tmp_path: Path) -> None:
    clock = SchedulerWatch()
    async with serving(tmp_path, clock) as service:
        room = str((await execute(service, cmd.CreateRoom, max_participant_duration=600)).room_sid)
        alice = str((await execute(service, cmd.ConnectParticipant, room=room, identity="alice")).participant_sid)
        clock.advance(timedelta(minutes=5))
        bob = str((await execute(service, cmd.ConnectParticipant, room=room, identity="bob")).participant_sid)

        clock.advance(timedelta(minutes=5) - SECOND)
        await clock.full_pass(service)
        assert (await participant_row(service, room, alice))["status"] == "connected"

        clock.advance(SECOND)

        def alice_gone() -> Row | None:
            row = service.queries.participant(room, alice)
            return row if row is not None and row["status"] == "disconnected" else None

        row = await until(service, alice_gone)
        assert (row["disconnect_reason"], row["error_code"], row["duration"]) == ("max-duration", 53216, 600)
        assert (await participant_row(service, room, bob))["status"] == "connected"
        assert (await room_row(service, room))["status"] == "in-progress"


async def test_a_room_ends_after_24_hours_and_disconnects_whoever_is_still_in_it(tmp_path: Path) -> None:
    clock = SchedulerWatch()
    async with serving(tmp_path, clock) as service:
        room = str((await execute(service, cmd.CreateRoom, max_participant_duration=86400)).room_sid)
        clock.advance(SECOND)
        alice = str((await execute(service, cmd.ConnectParticipant, room=room, identity="alice")).participant_sid)

        clock.advance(timedelta(hours=24) - 2 * SECOND)
        await clock.full_pass(service)
        assert (await room_row(service, room))["status"] == "in-progress"

        clock.advance(SECOND)
        row = await until(service, ended(service, room))
        assert (row["end_reason"], row["duration"]) == ("max-duration", 86400)
        gone = await participant_row(service, room, alice)
        assert (gone["status"], gone["disconnect_reason"], gone["error_code"]) == ("disconnected", "room-ended", 53118)


# --- restarts and several schedulers ---------------------------------------------------------


async def test_a_restarted_service_recovers_the_deadlines_from_the_store(tmp_path: Path) -> None:
    async with serving(tmp_path, SchedulerWatch()) as before:
        room = str((await execute(before, cmd.CreateRoom)).room_sid)

    clock = SchedulerWatch(START)
    async with serving(tmp_path, clock) as after:
        clock.advance(timedelta(minutes=5) - SECOND)
        await clock.full_pass(after)
        assert (await room_row(after, room))["status"] == "in-progress"

        clock.advance(SECOND)
        row = await until(after, ended(after, room))
        assert (row["end_reason"], row["end_time"]) == ("unused-timeout", micros(START + timedelta(minutes=5)))
        assert len(await room_events(after, room, ev.RoomEnded)) == 1


async def test_a_deadline_that_passed_while_the_service_was_down_fires_when_it_starts(tmp_path: Path) -> None:
    async with serving(tmp_path, SchedulerWatch()) as before:
        room = str((await execute(before, cmd.CreateRoom)).room_sid)

    async with serving(tmp_path, SchedulerWatch(START + timedelta(minutes=10))) as after:
        row = await until(after, ended(after, room))
        assert (row["end_reason"], row["end_time"]) == ("unused-timeout", micros(START + timedelta(minutes=10)))


class HoldFirstSends:
    """Holds every scheduler's first command until each of them has sent one (so they all
    decided that the same deadline is due), then lets them race."""

    def __init__(self, schedulers: int) -> None:
        self.schedulers = schedulers
        self.sent: list[tuple[ExpireDeadlines, CommandResult]] = []
        self._arrived = 0
        self._open = asyncio.Event()
        self._all_answered = asyncio.Event()

    def wrap(self, execute: Callable[[ExpireDeadlines], Awaitable[CommandResult]]) -> Callable[..., Any]:
        async def held(command: ExpireDeadlines) -> CommandResult:
            self._arrived += 1
            if self._arrived >= self.schedulers:
                self._open.set()
            await self._open.wait()
            result = await execute(command)
            self.sent.append((command, result))
            if len(self.sent) >= self.schedulers:
                self._all_answered.set()
            return result

        return held

    async def answered(self) -> None:
        await asyncio.wait_for(self._all_answered.wait(), TIMEOUT)


async def test_two_schedulers_sending_the_same_expiry_end_the_room_once(tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with serving(tmp_path, clock) as one, serving(tmp_path, clock) as two:
        room = str((await execute(one, cmd.CreateRoom)).room_sid)
        hold = HoldFirstSends(2)
        for service in (one, two):
            service.scheduler.execute = hold.wrap(service.scheduler.execute)

        clock.advance(timedelta(minutes=5))
        for service in (one, two):
            service.scheduler.poke()  # the other engine's scheduler learns of the room now, not at its next poll
        await hold.answered()

        (first, first_result), (second, second_result) = hold.sent
        assert (
            first
            == second
            == ExpireDeadlines(command_id=f"expire:{room}:{micros(START + timedelta(minutes=5))}", room_sid=room)
        )
        assert first_result == second_result
        assert one.scheduler.expired == two.scheduler.expired == 1
        assert len(await room_events(one, room, ev.RoomEnded)) == 1
        for service in (one, two):
            row = await until(service, ended(service, room))
            assert row["end_reason"] == "unused-timeout"


async def test_advancing_a_shared_fake_clock_wakes_every_scheduler_sleeping_on_it() -> None:
    clock = FakeClock(START)
    deadline = START + timedelta(minutes=5)
    sleepers = [asyncio.create_task(clock.sleep_until(deadline, asyncio.Event())) for _ in range(3)]
    await asyncio.sleep(0)  # let them all start waiting
    clock.advance(timedelta(minutes=5))
    done, _ = await asyncio.wait(sleepers, timeout=TIMEOUT)
    assert len(done) == len(sleepers)
