"""The unit-test world: the engine over the in-memory store, a fake clock, given/when helpers.

Tests read as "given these commands, when this command, then these events (or this error)".
What a test observes is what a user of the service observes: the command's result, the events
it recorded, and the read model (domain/projections.py) rebuilt from the log, the same rows
the REST API answers from.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest

from domain import commands as cmd
from domain.engine import Engine, RoomsApplication
from domain.events import Event
from domain.ids import CountingSidSource
from domain.projections import MemoryView, project
from domain.results import CommandResult
from domain.settings import AccountPolicy

ACCOUNT_SID = "AC" + "0" * 32
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (tz-aware UTC)."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Outcome(NamedTuple):
    """What one command produced: its result and the events it recorded, in log order."""

    result: CommandResult
    events: list[Event]

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def code(self) -> int | None:
        return self.result.error_code

    @property
    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def of(self, event_type: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, event_type)]

    def one(self, event_type: type[Any]) -> Any:
        found = self.of(event_type)
        assert len(found) == 1, f"expected one {event_type.__name__}, got {self.names}"
        return found[0]


class World:
    """One engine with its own in-memory store, clock and SID counter."""

    def __init__(self, policy: AccountPolicy | None = None) -> None:
        self.clock = FakeClock()
        self.policy = policy or AccountPolicy(account_sid=ACCOUNT_SID)
        self.app = RoomsApplication(env={"PERSISTENCE_MODULE": "adapters.store.memory:Factory"})
        self.engine = Engine(self.app, policy=self.policy, sids=CountingSidSource(), clock=self.clock)
        self._ids = itertools.count(1)

    # --- commands ------------------------------------------------------------------------

    def command(self, command_type: type[cmd.Command], **fields: Any) -> cmd.Command:
        fields.setdefault("command_id", f"cmd-{next(self._ids)}")
        return command_type(**fields)

    def execute(self, command: cmd.Command, engine: Engine | None = None) -> Outcome:
        before = self.position()
        result = (engine or self.engine).execute(command)
        return Outcome(result, self.log(after=before))

    def when(self, command_type: type[cmd.Command], **fields: Any) -> Outcome:
        return self.execute(self.command(command_type, **fields))

    def given(self, command_type: type[cmd.Command], **fields: Any) -> CommandResult:
        outcome = self.when(command_type, **fields)
        assert outcome.ok, f"given {command_type.__name__} was refused: {outcome.result}"
        return outcome.result

    # --- common givens -------------------------------------------------------------------

    def room(self, **fields: Any) -> str:
        sid = self.given(cmd.CreateRoom, **fields).room_sid
        assert sid is not None
        return sid

    def join(self, room: str, identity: str, *tracks: str, **fields: Any) -> CommandResult:
        """Connect `identity`; each track is `name:kind` (`mic:audio`)."""
        specs = [cmd.TrackSpec(name=t.split(":")[0], kind=t.split(":")[1]) for t in tracks]  # type: ignore[arg-type]
        return self.given(cmd.ConnectParticipant, room=room, identity=identity, tracks=specs, **fields)

    def publish(self, room: str, participant: str, name: str, kind: str = "audio", **fields: Any) -> str:
        result = self.given(
            cmd.PublishTrack, room_sid=room, participant_sid=participant, name=name, kind=kind, **fields
        )
        assert result.track_sid is not None
        return result.track_sid

    # --- observation ---------------------------------------------------------------------

    def position(self) -> int:
        notifications = self.app.recorder.select_notifications(0, 1_000_000)
        return notifications[-1].id if notifications else 0

    def log(self, after: int = 0) -> list[Event]:
        notifications = self.app.recorder.select_notifications(after + 1, 1_000_000)
        return [self.app.mapper.to_domain_event(n) for n in notifications]

    def view(self) -> MemoryView:
        """The read model rebuilt from the whole log."""
        view = MemoryView()
        for event in self.log():
            view.apply(project(event, self.policy.account_sid))
        return view

    def connected(self, room: str) -> set[str]:
        """Identities of the participants connected to `room`, as the REST API lists them."""
        rows = self.view().tables["participants"].values()
        return {r["identity"] for r in rows if r["room_sid"] == room and r["status"] == "connected"}

    def status(self, room: str) -> str:
        return str(self.view().tables["rooms"][(room,)]["status"])

    def published(self, room: str) -> set[str]:
        """`identity/track name` of every track published in `room`."""
        view = self.view()
        identities = {r["sid"]: r["identity"] for r in view.tables["participants"].values()}
        return {
            f"{identities[r['participant_sid']]}/{r['name']}"
            for r in view.tables["published_tracks"].values()
            if r["room_sid"] == room
        }

    def subscriptions(self, room: str) -> dict[str, set[str]]:
        """For every connected participant's identity, the `publisher/track` names it is subscribed to."""
        view = self.view()
        participants = view.tables["participants"].values()
        identities = {r["sid"]: r["identity"] for r in participants}
        out: dict[str, set[str]] = {
            r["identity"]: set() for r in participants if r["room_sid"] == room and r["status"] == "connected"
        }
        for r in view.tables["subscribed_tracks"].values():
            if r["room_sid"] == room:
                out[identities[r["participant_sid"]]].add(f"{identities[r['publisher_sid']]}/{r['name']}")
        return out


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def make_world() -> Callable[..., World]:
    """A world whose account has the given policy fields (`client_room_creation=False`, ...)."""

    def make(**policy: Any) -> World:
        return World(AccountPolicy(account_sid=ACCOUNT_SID, **policy))

    return make


@pytest.fixture
def start() -> datetime:
    return START
